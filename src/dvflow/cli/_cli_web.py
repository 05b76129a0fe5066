"""``dvflow ui``: the local web view of lineage and records."""

from __future__ import annotations

from pathlib import Path

import click

from ._options import project_options


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--host",
    default=None,
    metavar="HOST",
    help="Address to listen on (default 127.0.0.1). Another than loopback serves the "
    "project to the network, without authentication.",
)
@project_options
def ui(*, port: int, host: str | None, path: str, tracking_uri: str | None) -> None:
    """Serve a read-only web view of the project's models, runs and lineage.

    Pages: registered models with aliases and verify state, the latest
    pipeline runs, each model version's lineage graph, each run's record and
    digest state, data impact, diffs, and a JSON API under /api/. Listens on
    127.0.0.1 only unless --host says otherwise. Ctrl-C stops it.
    """
    from dvflow.web._serve import DEFAULT_HOST, NO_AUTH_WARNING, bind, serve

    bound = bind(host or DEFAULT_HOST, port)
    if not bound.loopback:
        click.echo(f"warning: {NO_AUTH_WARNING.format(url=bound.url)}", err=True)

    def ready(url: str) -> None:
        shown = click.format_filename(Path(path).resolve().name)
        click.echo(f"dvflow ui: serving {shown} at {url} (Ctrl-C stops)")

    serve(path, bound, tracking_uri=tracking_uri, on_ready=ready)
