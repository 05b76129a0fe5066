"""Serving the app: a socket bound to loopback unless told otherwise, and uvicorn on it."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dvflow.core._exceptions import InvalidArgumentError

from ._app import LOOPBACK, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
NO_AUTH_WARNING = (
    "the server has no authentication: anyone who can reach {url} reads every "
    "record, param and lineage of this project"
)


@dataclass(frozen=True)
class Bound:
    """A listening socket and the URL it answers at."""

    sock: socket.socket
    url: str
    loopback: bool


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Bound:
    """Listen on ``host:port`` (port 0: any free one) before the server starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidArgumentError(
            "--host",
            host,
            f"no such address ({exc.strerror})",
            "Give an IP address or name of this machine.",
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    if os.name != "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InvalidArgumentError(
            "--port",
            str(port),
            f"cannot listen on {host}:{port} ({exc.strerror})",
            "Pick another port with --port N (--port 0 picks a free one).",
        ) from None
    sock.listen(128)
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return Bound(sock, f"http://{shown}:{real_port}/", is_loopback(host))


def serve(
    path: str | os.PathLike[str],
    bound: Bound,
    *,
    tracking_uri: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the project at ``path`` on ``bound`` until interrupted (Ctrl-C)."""
    import uvicorn

    from . import _read

    project = _read.Project(Path(path), tracking_uri)
    _read.catalog(project)  # fail now, with the CLI's message, if it is no project
    hosts = None if bound.loopback else ["*"]
    app = create_app(Path(path), tracking_uri=tracking_uri, allowed_hosts=hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(bound.url)
    try:
        server.run(sockets=[bound.sock])
    finally:
        bound.sock.close()
