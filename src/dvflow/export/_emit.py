"""OpenLineage events sent while ``dvflow run`` goes, and the outbox of those not taken.

Where to send: ``openlineage:`` in dvflow.yaml, else OpenLineage's own
configuration (``OPENLINEAGE_URL``, then ``OPENLINEAGE_CONFIG`` or an
``openlineage.yml`` in the project, the working folder or
``~/.openlineage``); ``OPENLINEAGE_DISABLED=true`` turns it off.
openlineage-python (``dvflow[openlineage]``) carries the events.

A consumer never fails a run and never holds it up by more than
``SEND_BUDGET`` seconds: events go out from a background thread, an HTTP
consumer gets one try with that timeout, and after the first failure the
run's remaining events go straight to the outbox
(``.dvflow/openlineage-outbox.jsonl``), which ``dvflow sync`` sends in
order. Events are written redacted; the transport's settings (an API key)
are never written anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dvflow.core import _git
from dvflow.core._config import STATE_DIR, Config
from dvflow.core._exceptions import ConsumerError, InvalidFileError
from dvflow.core._record import ProvenanceRecord
from dvflow.core._redact import Redactor, redact_shapes
from dvflow.core._yaml import load_yaml_file

from ._naming import Names, azure_accounts, strip_userinfo, tracking_namespace
from ._openlineage import RunContext, event_line, run_events

OUTBOX = Path(STATE_DIR) / "openlineage-outbox.jsonl"
SEND_BUDGET = 1.0  # seconds a consumer may add to a run, at most
EXTRA_HINT = "install dvflow's openlineage extra: pip install 'dvflow[openlineage]'"
_NO_DIGEST = "0" * 64


@dataclass(frozen=True)
class Endpoint:
    """Where events go: an openlineage-python transport, and how to name it to a person."""

    transport: Mapping[str, Any]  # may hold an API key: never written, never shown
    shown: str  # without credentials
    source: str  # dvflow.yaml, OPENLINEAGE_URL or the openlineage.yml read
    namespace: str | None = None


def find_endpoint(
    project: Path, config: Config, environ: Mapping[str, str] | None = None
) -> Endpoint | None:
    """The configured consumer, or None when events are not sent live."""
    env = os.environ if environ is None else environ
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    namespace = env.get("OPENLINEAGE_NAMESPACE") or None
    settings = config.openlineage
    if settings is not None:
        namespace = settings.namespace or namespace
        if settings.transport is not None:
            transport = dict(settings.transport)
            return Endpoint(_bounded(transport), _describe(transport), "dvflow.yaml", namespace)
        assert settings.url is not None  # the config loader demands url or transport
        http = _http(settings.url, settings.endpoint, env.get("OPENLINEAGE_API_KEY"))
        return Endpoint(http, _describe(http), "dvflow.yaml", namespace)
    if env.get("OPENLINEAGE_URL"):
        http = _http(
            env["OPENLINEAGE_URL"], env.get("OPENLINEAGE_ENDPOINT"), env.get("OPENLINEAGE_API_KEY")
        )
        return Endpoint(http, _describe(http), "OPENLINEAGE_URL", namespace)
    for path in _yaml_candidates(project, env):
        found = _transport_in(path)
        if found is not None:
            return Endpoint(_bounded(found), _describe(found), path.name, namespace)
    return None


def _yaml_candidates(project: Path, env: Mapping[str, str]) -> list[Path]:
    if env.get("OPENLINEAGE_CONFIG"):
        return [Path(env["OPENLINEAGE_CONFIG"])]
    home = Path(env.get("HOME") or Path.home())
    return [
        project / "openlineage.yml",
        Path.cwd() / "openlineage.yml",
        home / ".openlineage" / "openlineage.yml",
    ]


def _transport_in(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = load_yaml_file(path)
    transport = data.get("transport") if isinstance(data, dict) else None
    if not isinstance(transport, dict) or not transport.get("type"):
        raise InvalidFileError(path, "expected a 'transport' mapping with a 'type'")
    return transport


def _http(url: str, endpoint: str | None, api_key: str | None) -> dict[str, Any]:
    transport: dict[str, Any] = {"type": "http", "url": url}
    if endpoint:
        transport["endpoint"] = endpoint
    if api_key:
        transport["auth"] = {"type": "api_key", "apiKey": api_key}
    return _bounded(transport)


def _bounded(transport: dict[str, Any]) -> dict[str, Any]:
    """An HTTP consumer gets one try within the budget; 'dvflow sync' tries again later."""
    if transport.get("type") in ("http", "async_http"):
        transport = {
            **transport,
            "timeout": min(float(transport.get("timeout", SEND_BUDGET)), SEND_BUDGET),
        }
        transport["retry"] = {"total": 0, "read": 0, "connect": 0, "status_forcelist": []}
    return transport


def _describe(transport: Mapping[str, Any]) -> str:
    kind = str(transport.get("type"))
    if kind in ("http", "async_http"):
        url = strip_userinfo(str(transport.get("url", ""))).rstrip("/")
        endpoint = str(transport.get("endpoint", "api/v1/lineage")).lstrip("/")
        return redact_shapes(f"{url}/{endpoint}")
    if kind == "file":
        return (
            f"file {transport.get('log_file_path') or transport.get('logFilePath') or ''}".strip()
        )
    return kind


def consumer_problem(endpoint: Endpoint) -> str | None:
    """Why events cannot go to the consumer now (None: they can), without sending one.

    An HTTP consumer must accept a connection within the send budget; other
    transports are only checked for openlineage-python itself.
    """
    import importlib.util
    import socket
    from urllib.parse import urlsplit

    if importlib.util.find_spec("openlineage") is None:
        return f"openlineage-python is not installed ({EXTRA_HINT})"
    if endpoint.transport.get("type") not in ("http", "async_http"):
        return None
    parts = urlsplit(str(endpoint.transport.get("url", "")))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=SEND_BUDGET):
            return None
    except OSError as exc:
        return f"no answer ({exc.strerror or type(exc).__name__})"


def make_transport(endpoint: Endpoint) -> Any:
    """The openlineage-python transport; ImportError when the extra is not installed."""
    from openlineage.client.transport import get_default_factory

    return get_default_factory().create(dict(endpoint.transport))


def send(transport: Any, line: str) -> None:
    """Send one event line; any failure of the consumer raises."""
    response = transport.emit(json.loads(line))
    if response is not None and hasattr(response, "raise_for_status"):
        response.raise_for_status()


def _reason(exc: BaseException) -> str:
    """Why the consumer did not take an event, in a few words (not the client's whole chain)."""
    name, text = type(exc).__name__, str(exc)
    if "Timeout" in name or "timed out" in text:
        return f"no answer within {SEND_BUDGET:g} s"
    if name == "ConnectionError" or "Failed to establish a new connection" in text:
        return "no answer (connection refused)" if "refused" in text else "no answer"
    first = text.splitlines()[0] if text else name
    return redact_shapes(first)[:200]


def http_endpoint(url: str, environ: Mapping[str, str] | None = None) -> Endpoint:
    """An HTTP consumer named on the command line (its API key from OPENLINEAGE_API_KEY)."""
    env = os.environ if environ is None else environ
    http = _http(url, env.get("OPENLINEAGE_ENDPOINT"), env.get("OPENLINEAGE_API_KEY"))
    return Endpoint(http, _describe(http), "--url")


def send_events(lines: Sequence[str], endpoint: Endpoint) -> int:
    """Send event lines in order; ConsumerError at the first the consumer does not take."""
    try:
        transport = make_transport(endpoint)
    except ImportError:
        raise ConsumerError(
            endpoint.shown, "openlineage-python is not installed", EXTRA_HINT
        ) from None
    try:
        for sent, line in enumerate(lines):
            try:
                send(transport, line)
            except Exception as exc:  # any failure of the consumer stops the sending
                raise ConsumerError(
                    endpoint.shown,
                    f"{_reason(exc)} (sent {sent} of {len(lines)} event(s))",
                    "Nothing is kept: run the same command again once the consumer answers "
                    "(consumers such as Marquez take an event sent twice as one).",
                ) from None
    finally:
        with contextlib.suppress(Exception):
            transport.close()
    return len(lines)


# -- the outbox ------------------------------------------------------------


def outbox_lines(root: Path) -> list[str]:
    path = root / OUTBOX
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def keep(root: Path, lines: Sequence[str]) -> None:
    """Append events to the outbox (whole lines, flushed to disk)."""
    if not lines:
        return
    path = root / OUTBOX
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(line + "\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())


def _rewrite(root: Path, lines: Sequence[str]) -> None:
    path = root / OUTBOX
    if not lines:
        path.unlink(missing_ok=True)
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    os.replace(temporary, path)


@dataclass(frozen=True)
class Delivery:
    """What 'dvflow sync' did with the outbox."""

    sent: int = 0
    left: int = 0
    endpoint: str | None = None
    problem: str | None = None  # why the rest was left


def send_outbox(root: Path, config: Config) -> Delivery:
    """Send the outbox's events in order; stop at the first the consumer does not take.

    Each event is sent once: the outbox is rewritten without what was sent,
    also when sending stops half-way.
    """
    lines = outbox_lines(root)
    if not lines:
        return Delivery()
    endpoint = find_endpoint(root, config)
    if endpoint is None:
        return Delivery(left=len(lines), problem="no OpenLineage consumer is configured")
    try:
        transport = make_transport(endpoint)
    except ImportError:
        return Delivery(left=len(lines), endpoint=endpoint.shown, problem=EXTRA_HINT)
    sent = 0
    try:
        for line in lines:
            try:
                send(transport, line)
            except Exception as exc:  # any consumer failure leaves the rest
                return Delivery(sent, len(lines) - sent, endpoint.shown, _reason(exc))
            sent += 1
    finally:
        _rewrite(root, lines[sent:])
        with contextlib.suppress(Exception):
            transport.close()
    return Delivery(sent, 0, endpoint.shown)


# -- live ------------------------------------------------------------------


@dataclass
class _Started:
    record: ProvenanceRecord
    start_ms: int
    parent: tuple[str, int] | None


class LiveLineage:
    """The events of one ``dvflow run``, sent from a background thread as they happen."""

    def __init__(self, root: Path, endpoint: Endpoint, names: Names, redactor: Redactor) -> None:
        self.root, self.endpoint, self.names, self.redactor = root, endpoint, names, redactor
        self.sent = 0
        self.problem: str | None = None  # the consumer's first failure: the rest is kept
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._kept: list[str] = []
        self._in_flight: list[str] = []
        self._abandoned = False  # close() gave up waiting: the worker must not count or keep
        self._open: dict[str, _Started] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="dvflow-openlineage", daemon=True)
        self._thread.start()

    def started(
        self, record: ProvenanceRecord, start_ms: int, parent: tuple[str, int] | None = None
    ) -> None:
        """A run began: its START (what is known before it ran: the job, its parent)."""
        run_id = record.mlflow["run_id"]
        self._open[run_id] = _Started(record, start_ms, parent)
        event = run_events(
            record,
            self._context(
                record, start_ms=start_ms, end_ms=None, mlflow_status="RUNNING", parent=parent
            ),
        )[0]
        event["run"]["facets"].pop("dvflow_provenance", None)  # no record yet
        event["inputs"] = []
        self._put(event)

    def finished(
        self,
        record: ProvenanceRecord,
        digest: str,
        end_ms: int,
        models: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A run's record is written: its terminal event, as ``export openlineage`` gives it."""
        begun = self._open.pop(record.mlflow["run_id"], None)
        if begun is None:
            return
        ctx = self._context(
            record,
            start_ms=begun.start_ms,
            end_ms=end_ms,
            mlflow_status=record.status,
            parent=begun.parent,
            digest=digest,
        )
        ctx = replace(ctx, models=tuple(models))
        self._put(run_events(record, ctx)[1])

    def ended_without_record(self, run_id: str, mlflow_status: str, end_ms: int) -> None:
        """A run ended before its record was written (killed): its terminal event all the same."""
        begun = self._open.pop(run_id, None)
        if begun is None:
            return
        ctx = self._context(
            begun.record,
            start_ms=begun.start_ms,
            end_ms=end_ms,
            mlflow_status=mlflow_status,
            parent=begun.parent,
        )
        event = run_events(begun.record, ctx)[1]
        event["run"]["facets"].pop("dvflow_provenance", None)
        event["inputs"] = []
        self._put(event)

    def close(self) -> str | None:
        """Wait for the last sends (at most SEND_BUDGET); keep what is left. A notice, or None."""
        self._queue.put(None)
        self._thread.join(SEND_BUDGET)
        with self._lock:
            left = list(self._kept)  # in the order they were made: failed, in flight, queued
            self._kept.clear()
            if self._thread.is_alive():
                self.problem = self.problem or f"no answer within {SEND_BUDGET:g} s"
                left += self._in_flight
                self._abandoned = True
            while True:
                try:
                    line = self._queue.get_nowait()
                except queue.Empty:
                    break
                if line is not None:
                    left.append(line)
            if self._abandoned:
                self._queue.put(None)  # the worker stops after the send it is stuck in
        keep(self.root, left)
        if not left:
            return None
        return (
            f"OpenLineage: {len(left)} event(s) wait in {OUTBOX.as_posix()} "
            f"({self.endpoint.shown}: {self.problem}); 'dvflow sync' sends them"
        )

    # -- inside ------------------------------------------------------------

    def _context(
        self,
        record: ProvenanceRecord,
        *,
        start_ms: int,
        end_ms: int | None,
        mlflow_status: str,
        parent: tuple[str, int] | None,
        digest: str = _NO_DIGEST,
    ) -> RunContext:
        job_namespace, dataset_namespace = self.names.of(record)
        return RunContext(
            run_id=record.mlflow["run_id"],
            start_ms=start_ms,
            end_ms=end_ms,
            mlflow_status=mlflow_status,
            record_sha256=digest,
            job_namespace=job_namespace,
            dataset_namespace=dataset_namespace,
            tracking_namespace=self.names.tracking,
            tracking_uri=self.names.tracking_uri,
            parent=parent,
            azure_accounts=self.names.azure,
        )

    def _put(self, event: Mapping[str, Any]) -> None:
        self._queue.put(event_line(event, self.redactor))

    def _work(self) -> None:
        transport: Any = None
        while (line := self._queue.get()) is not None:
            with self._lock:
                if self.problem is not None or self._abandoned:
                    self._kept.append(line)
                    continue
                self._in_flight = [line]
            try:
                transport = transport or make_transport(self.endpoint)
                send(transport, line)
            except ImportError:
                self._fail(line, EXTRA_HINT)
            except Exception as exc:  # a consumer's failure never fails the run
                self._fail(line, _reason(exc))
            else:
                with self._lock:
                    self._in_flight = []
                    if not self._abandoned:
                        self.sent += 1
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()

    def _fail(self, line: str, problem: str) -> None:
        with self._lock:
            self._in_flight = []
            if not self._abandoned:
                self.problem = problem
                self._kept.append(line)


def live_lineage(root: Path, config: Config, redactor: Redactor) -> LiveLineage | None:
    """The live sender of a run, or None when no consumer is configured."""
    endpoint = find_endpoint(root, config)
    if endpoint is None:
        return None
    git_root = _git.find_root(root)
    names = Names(
        namespace=endpoint.namespace,
        remote=_git.remote_url(git_root),
        folder=root.name,
        tracking=tracking_namespace(config.tracking_uri),
        tracking_uri=Redactor().redact(strip_userinfo(config.tracking_uri)),
        azure=azure_accounts(root),
    )
    return LiveLineage(root, endpoint, names, redactor)
