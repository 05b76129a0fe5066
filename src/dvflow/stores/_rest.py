"""What dvflow asks a tracking server over plain REST, without importing MLflow.

- ``server_stamp``: has the server moved? The lineage index answers the read
  commands while the store has not moved since it last read it. For a
  SQLite store the file's size and time say so; for a server, this stamp
  does: the experiments, the newest run started, the newest run ended, and
  the registered models with their aliases and newest versions. Anything new
  (a run, a run that ended, a version, an alias moved) changes it. A run's
  tags changed afterwards do not: ``--sync`` reads them.
- ``proxied_artifact``: one artifact of a run whose artifacts the server
  serves itself (``mlflow-artifacts:/``), by one GET.

Each answers None when the server does not answer as expected: the caller
then asks MLflow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

STAMP_TIMEOUT_S = 5.0


def server_stamp(uri: str) -> str | None:
    """A digest of what moves when anyone writes to the server at ``uri`` (None: no answer)."""
    try:
        experiments = _call(
            uri, "experiments/search", {"max_results": 50000, "view_type": "ALL"}
        ).get("experiments", [])
        ids = sorted(str(e["experiment_id"]) for e in experiments)
        parts: list[Any] = [
            sorted((str(e["experiment_id"]), e.get("lifecycle_stage")) for e in experiments)
        ]
        for order in ("attributes.start_time DESC", "attributes.end_time DESC"):
            runs = _call(
                uri,
                "runs/search",
                {
                    "experiment_ids": ids,
                    "max_results": 1,
                    "run_view_type": "ALL",
                    "order_by": [order],
                },
            ).get("runs", [])
            parts.append([r.get("info") for r in runs])
        models = _call(uri, "registered-models/search", {"max_results": 1000}, method="GET")
        parts.append(models.get("registered_models", []))
    except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError):
        return None
    text = json.dumps(parts, sort_keys=True)
    return "server:" + hashlib.sha256(text.encode()).hexdigest()


def proxied_artifact(uri: str, artifact_uri: str, artifact_file: str) -> bytes | None:
    """``artifact_file`` of the run whose artifacts are at ``artifact_uri`` (None: not there)."""
    location = urlsplit(artifact_uri)
    if location.scheme != "mlflow-artifacts" or ".." in artifact_file.split("/"):
        return None
    parts = urlsplit(uri)
    host = location.netloc or parts.netloc.rpartition("@")[2]
    path = f"{parts.path.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts"
    path += f"{location.path.rstrip('/')}/{quote(artifact_file)}"
    request = urllib.request.Request(  # noqa: S310 - an http(s) URI, checked by the caller
        urlunsplit((parts.scheme, host, path, "", "")),
        headers=_auth(parts.username, parts.password),
    )
    try:
        with urllib.request.urlopen(request, timeout=STAMP_TIMEOUT_S) as response:  # noqa: S310
            data: bytes = response.read()
    except (OSError, urllib.error.URLError):
        return None
    return data


def _call(uri: str, endpoint: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    query = urlencode(body) if method == "GET" else ""
    url = urlunsplit(
        (parts.scheme, host, parts.path.rstrip("/") + f"/api/2.0/mlflow/{endpoint}", query, "")
    )
    request = urllib.request.Request(  # noqa: S310 - an http(s) URI, checked by the caller
        url,
        data=None if method == "GET" else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **_auth(parts.username, parts.password)},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=STAMP_TIMEOUT_S) as response:  # noqa: S310
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _auth(user: str | None, password: str | None) -> dict[str, str]:
    """The credentials MLflow's own client would send (the URI's, else its variables)."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user = user or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}
