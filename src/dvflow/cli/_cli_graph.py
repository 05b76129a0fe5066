"""The lineage commands: ``lineage``, ``impact`` and ``index``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._options import graph_options, output_format, project_options, sync_choice

if TYPE_CHECKING:
    from dvflow.trace._graph import Graph

html_option = click.option(
    "--html",
    "html_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Also write the graph as one self-contained HTML page (inline SVG, opens offline).",
)


def _write_html(graph: Graph, command: str, file: str, path: str, tracking_uri: str | None) -> None:
    from dvflow.trace._html import write_lineage_html

    shown = write_lineage_html(graph, file, command=command, path=path, tracking_uri=tracking_uri)
    click.echo(f"wrote {click.format_filename(file)}: {shown}", err=True)


@click.command()
@click.argument("target")
@graph_options
@html_option
def lineage(
    *,
    target: str,
    sync: bool,
    offline: bool,
    path: str,
    tracking_uri: str | None,
    html_file: str | None,
    **flags: bool,
) -> None:
    """What produced TARGET, back to its roots.

    TARGET: models:/NAME/VERSION, models:/NAME@ALIAS, a run id, a path
    (optionally path@rev) or a DVC md5. Works from Git history alone in
    repositories that never ran dvflow.
    """
    from dvflow.trace._queries import lineage as upstream

    from ._views import show_graph

    fmt = output_format(flags)
    graph = upstream(target, path, tracking_uri=tracking_uri, sync=sync_choice(sync, offline))
    if html_file:
        _write_html(graph, f"dvflow lineage {target}", html_file, path, tracking_uri)
        if not any(flags.values()):
            return  # the page was asked for; a format flag asks for the text too
    show_graph(graph, fmt)


@click.command()
@click.argument("target")
@graph_options
@html_option
@click.option("--pii", is_flag=True, help="Also say which of it personal-data marks taint.")
def impact(
    *,
    target: str,
    sync: bool,
    offline: bool,
    path: str,
    tracking_uri: str | None,
    html_file: str | None,
    pii: bool,
    **flags: bool,
) -> None:
    """Everything built on TARGET: data versions, stage runs, models, aliases in use.

    Follows dvc.lock history across every branch and tag, and the runs in
    the tracking store. TARGET as for 'dvflow lineage'. --pii adds each
    node's personal-data status (tainted, sanitiser, derived: 'dvflow pii').
    """
    from dvflow.trace._queries import impact as downstream

    from ._views import show_graph

    fmt = output_format(flags)
    if pii:
        from ._cli_pii import show_impact_pii

        show_impact_pii(target, path, tracking_uri, sync_choice(sync, offline), fmt)
        return
    graph = downstream(target, path, tracking_uri=tracking_uri, sync=sync_choice(sync, offline))
    if html_file:
        _write_html(graph, f"dvflow impact {target}", html_file, path, tracking_uri)
        if not any(flags.values()):
            return  # the page was asked for; a format flag asks for the text too
    show_graph(graph, fmt)


@click.command()
@click.option("--rebuild", is_flag=True, help="Forget the index and build it from scratch.")
@click.option("--sync", is_flag=True, help="Re-read the tracking store even if unchanged.")
@click.option("--offline", is_flag=True, help="Read Git only, not the tracking store.")
@project_options
def index(*, rebuild: bool, sync: bool, offline: bool, path: str, tracking_uri: str | None) -> None:
    """Update the lineage index (.dvflow/index.sqlite) from Git and the store.

    The index is a cache: Git and MLflow stay the truth, and 'lineage' and
    'impact' update it themselves. Use this to warm it, or --rebuild it.
    """
    from dvflow.trace._queries import update_index

    status = update_index(
        path, tracking_uri=tracking_uri, rebuild=rebuild, sync=sync_choice(sync, offline)
    )
    for warning in status.warnings:
        click.echo(f"warning: {warning}", err=True)
    new = status.updated
    click.echo(
        f"read {new.commits} new commit(s), {new.refs} updated ref(s), {new.runs} new run(s), "
        + (f"{new.models} model version(s)" if new.synced_store else "store unchanged")
    )
    click.echo(
        f"index {status.path}: {status.commits} commits with DVC files, "
        f"{status.stage_entries} stage/source entries, {status.runs} runs, "
        f"{status.model_versions} model versions, {status.refs} refs"
    )
