"""The one typed configuration object, loaded in one place.

Precedence, highest first: explicit arguments (CLI flags) > environment
(``DVFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_URI``, ``DVFLOW_EXPERIMENT``) >
``dvflow.yaml`` at the project root > defaults. Loading never writes the
caller's ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import ConfigError, InvalidFileError
from ._govsettings import GovernanceSettings, governance_settings
from ._yaml import load_yaml_file

CONFIG_FILE = "dvflow.yaml"
STATE_DIR = ".dvflow"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACTS_DIR = "mlartifacts"
_KNOWN_KEYS = frozenset(
    {
        "tracking_uri",
        "experiment",
        "artifact_location",
        "push",
        "require_tracking",
        "openlineage",
        "governance",
    }
)
_SWITCHES = frozenset({"push", "require_tracking"})
_OPENLINEAGE_KEYS = frozenset({"url", "endpoint", "namespace", "transport"})


@dataclass(frozen=True)
class OpenLineageSettings:
    """``openlineage:`` in dvflow.yaml: where ``dvflow run`` sends its events live.

    ``url`` (+ ``endpoint``, default ``api/v1/lineage``) is an HTTP consumer
    such as Marquez, whose API key comes from ``OPENLINEAGE_API_KEY``, never
    from the file; ``transport`` is an openlineage-python transport mapping
    (file, console, kafka...) used as given. ``namespace`` names the jobs.
    """

    url: str | None = None
    endpoint: str | None = None
    namespace: str | None = None
    transport: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Config:
    """Resolved settings of one project."""

    root: Path
    tracking_uri: str
    experiment: str
    # None: the store's own default (a tracking server's artifact store).
    artifact_location: str | None
    push: bool = False
    # Stop instead of recording to the local spool when the server does not answer.
    require_tracking: bool = False
    openlineage: OpenLineageSettings | None = None
    governance: GovernanceSettings = field(default_factory=GovernanceSettings)


def resolve_tracking_uri(uri: str, root: Path) -> str:
    """Make a relative SQLite or file URI absolute against the project root.

    Stage commands run in their own ``wdir``; a relative URI there would open
    a second, empty store.
    """
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((root / uri[len("sqlite:///") :]).resolve())
    if "://" not in uri:
        return (root / uri).resolve().as_uri()
    return uri


def read_config_file(root: Path) -> dict[str, Any]:
    path = root / CONFIG_FILE
    if not path.exists():
        return {}
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidFileError(path, "expected a mapping of settings at the top level")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise InvalidFileError(
            path,
            f"unknown setting(s): {', '.join(map(str, unknown))}",
            hint=f"Known settings: {', '.join(sorted(_KNOWN_KEYS))}.",
        )
    for key, value in data.items():
        if key == "openlineage":
            data[key] = _openlineage_settings(path, value)
        elif key == "governance":
            data[key] = governance_settings(path, value)
        elif key in _SWITCHES:
            if not isinstance(value, bool):
                raise InvalidFileError(path, f"'{key}' must be true or false")
        elif not isinstance(value, str) or not value:
            raise InvalidFileError(path, f"'{key}' must be a non-empty string")
    return data


def _openlineage_settings(path: Path, value: Any) -> OpenLineageSettings:
    if not isinstance(value, dict):
        raise InvalidFileError(path, "'openlineage' must be a mapping (url, namespace...)")
    unknown = sorted(map(str, set(value) - _OPENLINEAGE_KEYS))
    if unknown:
        raise InvalidFileError(
            path,
            f"unknown openlineage setting(s): {', '.join(unknown)}",
            hint=f"Known: {', '.join(sorted(_OPENLINEAGE_KEYS))}; the API key goes in "
            "OPENLINEAGE_API_KEY.",
        )
    for key in ("url", "endpoint", "namespace"):
        if key in value and (not isinstance(value[key], str) or not value[key]):
            raise InvalidFileError(path, f"'openlineage.{key}' must be a non-empty string")
    transport = value.get("transport")
    if transport is not None and not (isinstance(transport, dict) and transport.get("type")):
        raise InvalidFileError(
            path,
            "'openlineage.transport' must be a mapping with a 'type' (http, file, console, kafka)",
        )
    if not value.get("url") and transport is None:
        raise InvalidFileError(
            path,
            "'openlineage' needs a 'url' (an HTTP consumer such as Marquez) or a 'transport'",
        )
    return OpenLineageSettings(
        url=value.get("url"),
        endpoint=value.get("endpoint"),
        namespace=value.get("namespace"),
        transport=transport,
    )


def load_config(
    root: Path,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the configuration of the project at ``root``."""
    env = os.environ if environ is None else environ
    file_values = read_config_file(root)
    uri = (
        tracking_uri
        or env.get("DVFLOW_TRACKING_URI")
        or env.get("MLFLOW_TRACKING_URI")
        or file_values.get("tracking_uri")
        or DEFAULT_TRACKING_URI
    )
    name = (
        experiment
        or env.get("DVFLOW_EXPERIMENT")
        or file_values.get("experiment")
        or root.name
        or "dvflow"
    )
    artifacts = file_values.get("artifact_location")
    if artifacts is None and not resolve_tracking_uri(uri, root).startswith(("http:", "https:")):
        # A local store keeps artifacts next to it; a team server keeps them
        # in its own artifact store, where every clone can read them.
        artifacts = DEFAULT_ARTIFACTS_DIR
    if not uri.strip():
        raise ConfigError("the tracking URI is empty", hint="Set tracking_uri in dvflow.yaml.")
    if uri.lower().startswith(("http//", "https//", "http:/", "https:/")) and "://" not in uri:
        raise ConfigError(
            f"the tracking URI '{uri}' looks like a URL with a typo",
            hint="Write it as http://HOST:PORT (a colon and two slashes).",
        )
    artifact_location = (
        artifacts
        if artifacts is None or "://" in artifacts
        else (root / artifacts).resolve().as_uri()
    )
    return Config(
        root=root,
        tracking_uri=resolve_tracking_uri(uri, root),
        experiment=name,
        artifact_location=artifact_location,
        push=bool(file_values.get("push", False)),
        require_tracking=bool(file_values.get("require_tracking", False)),
        openlineage=file_values.get("openlineage"),
        governance=file_values.get("governance") or GovernanceSettings(),
    )
