"""``dvflow export openlineage``: recorded runs as OpenLineage events (JSON lines)."""

from __future__ import annotations

import click

from ._options import project_options, sync_choice


@click.group()
def export() -> None:
    """Hand dvflow's lineage to other systems (OpenLineage)."""


@export.command()
@click.argument("target", required=False)
@click.option("-o", "--output", metavar="FILE", help="Write the events to FILE (default: stdout).")
@click.option("--namespace", metavar="NS", help="Job namespace (default: the Git remote).")
@click.option(
    "--url",
    metavar="URL",
    help="Send the events to an OpenLineage HTTP consumer (Marquez: http://HOST:5000) "
    "instead of printing them; its API key comes from OPENLINEAGE_API_KEY.",
)
@click.option("--sync", is_flag=True, help="Re-read the tracking store before exporting.")
@click.option("--offline", is_flag=True, help="Export from the index without reading the store.")
@project_options
def openlineage(
    *,
    target: str | None,
    output: str | None,
    namespace: str | None,
    url: str | None,
    sync: bool,
    offline: bool,
    path: str,
    tracking_uri: str | None,
) -> None:
    """OpenLineage 2-0-2 RunEvents of the recorded runs, one JSON line each.

    Without TARGET: every recorded run of the store. TARGET as for 'dvflow
    lineage': the runs of its lineage. A START and a terminal event per
    stage and pipeline run; exporting twice gives the same bytes.
    """
    from dvflow.export._export import export_openlineage

    lines = export_openlineage(
        target,
        path,
        tracking_uri=tracking_uri,
        namespace=namespace,
        sync=sync_choice(sync, offline),
    )
    text = "".join(line + "\n" for line in lines)
    if url is not None:
        from dvflow.export._emit import http_endpoint, send_events

        endpoint = http_endpoint(url)
        send_events(lines, endpoint)
        click.echo(f"sent {len(lines)} event(s) to {endpoint.shown}", err=True)
        if output is None:
            return
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    click.echo(f"wrote {len(lines)} event(s) to {output}", err=True)
