"""Personal data and erasure: ``pii mark|unmark|status``, ``erase plan|apply``, ``impact --pii``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ._options import project_options, sync_choice

if TYPE_CHECKING:
    from dvflow.trace._graph import Node
    from dvflow.trace._taint import Taint

_STATUS_WORD = {
    "marked": "marked",
    "tainted": "tainted",
    "sanitiser": "sanitiser (read it, writes clean data)",
    "derived": "derived through a sanitiser, not tainted",
}


@click.group()
def pii() -> None:
    """Personal data: mark data versions, see what they taint."""


@pii.command("mark")
@click.argument("target", metavar="PATH[@REV|@MD5]")
@click.option("--fields", default="", metavar="F1,F2", help="The personal fields, comma-separated.")
@click.option("--basis", required=True, metavar="TEXT", help="Why this data may be held.")
@project_options
def mark(*, target: str, fields: str, basis: str, path: str, tracking_uri: str | None) -> None:
    """Record in dvflow.governance.yaml that a data version holds personal data.

    PATH is DVC-tracked (a file, a tracked folder, or a file inside one), at
    the work tree's version, at @REV, or at @MD5. Commit the file afterwards.
    """
    from dvflow.governance._pii import mark as do_mark

    made = do_mark(
        target, basis=basis, fields=fields.split(","), path=path, tracking_uri=tracking_uri
    )
    for one in made:
        shown = f" fields {', '.join(one.fields)};" if one.fields else ""
        click.echo(f"marked {one.path} {one.md5}:{shown} basis: {one.basis}")
    click.echo("commit dvflow.governance.yaml to share the mark")


@pii.command("unmark")
@click.argument("target", metavar="PATH[@REV|@MD5]")
@project_options
def unmark(*, target: str, path: str, tracking_uri: str | None) -> None:
    """Remove the marks of PATH (every version, or the one @REV or @MD5 names)."""
    from dvflow.governance._pii import unmark as do_unmark

    for one in do_unmark(target, path=path, tracking_uri=tracking_uri):
        click.echo(f"unmarked {one.path} {one.md5}")


@pii.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON.")
@click.option("--sync", is_flag=True, help="Re-read the tracking store before answering.")
@click.option("--offline", is_flag=True, help="Answer from the index without reading the store.")
@project_options
def status(
    *, as_json: bool, sync: bool, offline: bool, path: str, tracking_uri: str | None
) -> None:
    """Every marked data version and what it taints: data, runs, model versions (aliases).

    A declared sanitiser stage (governance.sanitisers in dvflow.yaml) stops
    the taint: what it writes is listed as derived, not tainted.
    """
    from dvflow.governance._pii import pii_status

    result = pii_status(path, tracking_uri=tracking_uri, sync=sync_choice(sync, offline))
    for warning in result.taint.graph.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(taint_json(result.taint, result.marks), indent=2, sort_keys=True))
        return
    if not result.marks:
        click.echo("no data version is marked as holding personal data ('dvflow pii mark')")
        return
    for one in result.marks:
        shown = f"fields {', '.join(one.fields)}; " if one.fields else ""
        click.echo(f"marked   {one.path} {one.md5} ({shown}basis: {one.basis}; {one.by} {one.at})")
    for line in taint_lines(result.taint):
        click.echo(line)


def _node_text(node: Node) -> str:
    from dvflow.trace._taint import model_line, stage_of

    if node.kind == "data":
        return f"{node.attrs.get('path', node.label)} {node.attrs.get('md5', '')}".rstrip()
    if node.kind == "model":
        return model_line(node)
    if node.kind == "run":
        return f"{stage_of(node)} run {node.id.partition(':')[2]}"
    if node.kind == "alias":
        return node.label
    return f"{stage_of(node)} ({node.kind}, {node.attrs.get('file', '')})"


def taint_lines(taint: Taint, only: set[str] | None = None) -> list[str]:
    """One line per tainted, sanitiser and derived node; models: 'NAME vN @alias is tainted'."""
    order = {"data": 0, "run": 1, "stage": 1, "entry": 1, "model": 2}
    nodes = sorted(
        (n for n in taint.graph.nodes.values() if n.kind in order),
        key=lambda n: (order[n.kind], _node_text(n)),
    )
    nodes = [n for n in nodes if only is None or n.id in only]
    lines = []
    for wanted in ("tainted", "sanitiser", "derived"):
        for node in (n for n in nodes if taint.status[n.id] == wanted):
            if node.kind == "model":
                verb = "is tainted" if wanted == "tainted" else "derives from it, not tainted"
                lines.append(f"{wanted:<8} model {_node_text(node)} {verb}")
            else:
                kind = "data" if node.kind == "data" else "run"
                lines.append(f"{wanted:<8} {kind:<5} {_node_text(node)}")
    tainted = [n for n in nodes if taint.status[n.id] == "tainted"]
    data = sum(1 for n in tainted if n.kind == "data")
    runs = sum(1 for n in tainted if order[n.kind] == 1)
    models = ", ".join(_node_text(n) for n in tainted if n.kind == "model") or "none"
    lines.append(f"taints {data} derived data version(s), {runs} run(s); model versions: {models}")
    return lines


def taint_json(taint: Taint, marks: Any = ()) -> dict[str, Any]:
    return {
        "marks": [m.to_dict() for m in marks],
        "nodes": [
            {"id": n.id, "kind": n.kind, "label": _node_text(n), "pii": taint.status[n.id]}
            for n in sorted(taint.graph.nodes.values(), key=lambda n: n.id)
        ],
        "tainted_aliases": [
            {"name": n, "version": v, "alias": a} for n, v, a in taint.tainted_aliases()
        ],
    }


def show_impact_pii(
    target: str, path: str, tracking_uri: str | None, sync: bool | None, fmt: str
) -> None:
    """``impact TARGET --pii``: the impact, then which of it holds personal data."""
    from dvflow.governance._pii import impact_pii

    from ._views import show_graph

    graph, taint = impact_pii(target, path, tracking_uri=tracking_uri, sync=sync)
    show_graph(graph, fmt)
    if fmt != "tree":
        return
    reached = set(graph.nodes)
    if not any(taint.status.get(n) in ("marked", "tainted") for n in reached):
        click.echo("pii: nothing in this impact is tainted by a personal-data mark")
        return
    for line in taint_lines(taint, only=reached):
        click.echo(f"pii: {line}")


@click.group()
def erase() -> None:
    """Erasure requests: plan what to delete, then apply the plan."""


@erase.command("plan")
@click.argument("target", metavar="PATH[@REV|@MD5]")
@click.option("--request-id", required=True, metavar="ID", help="The erasure request's id.")
@click.option(
    "-o", "--out", metavar="FILE", type=click.Path(dir_okay=False), help="Where to write the plan."
)
@project_options
def erase_plan(
    *, target: str, request_id: str, out: str | None, path: str, tracking_uri: str | None
) -> None:
    """Plan the erasure of a data version holding personal data, and of what it tainted.

    Writes a plan (JSON, default .dvflow/plans/erase-<sha>.json) listing the
    objects to delete (remote and cache), the Git commits still pointing at
    them, the MLflow runs and logged models to delete, the model versions to
    retrain with their stages, and what is out of reach. Deletes nothing.
    """
    from dvflow.governance._erase import plan_erase

    plan, file = plan_erase(target, request_id, path, tracking_uri=tracking_uri, out=out)
    totals = plan["totals"]
    click.echo(
        f"erase {len(plan['data_versions'])} data version(s): {totals['objects']} object(s), "
        f"{totals['bytes']} bytes (remote {totals['remote']['objects']}, "
        f"cache {totals['cache']['objects']})"
    )
    for kept in plan["kept_shared"]:
        click.echo(f"  kept   {kept['md5']}: the same bytes are in {', '.join(kept['also_in'])}")
    click.echo(f"  git    {len(plan['commits'])} commit(s) still point at it (not rewritten)")
    runs, models = plan["mlflow"]["runs"], plan["mlflow"]["logged_models"]
    click.echo(f"  mlflow {len(runs)} run(s) and {len(models)} logged model(s) to delete")
    for item in plan["retrain"]:
        aliases = "".join(f" @{a}" for a in item["aliases"])
        click.echo(
            f"  retrain {item['model']} v{item['version']}{aliases}: re-run "
            f"{', '.join(item['stages']) or 'its stages'} without the data"
        )
    for warning in plan["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    acknowledge = "".join(f" --acknowledge {p}" for p in plan["protected"])
    click.echo(f"wrote {click.format_filename(str(file))}; plan_sha256 {plan['plan_sha256']}")
    click.echo(
        f"apply: dvflow erase apply {click.format_filename(str(file))} "
        f"--confirm {plan['plan_sha256']}{acknowledge}"
    )


@erase.command("apply")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--confirm", metavar="SHA", help="The plan's plan_sha256: you read it.")
@click.option(
    "--acknowledge",
    multiple=True,
    metavar="NAME/V",
    help="A protected (aliased or dvflow.keep) model version the erasure touches (repeat).",
)
@project_options
def erase_apply(
    *,
    plan: str,
    confirm: str | None,
    acknowledge: tuple[str, ...],
    path: str,
    tracking_uri: str | None,
) -> None:
    """Delete exactly what PLAN lists; write tombstones and an audit record.

    Refused without the plan's sha256 (--confirm, exit 31), for an edited
    plan (exit 30), and while a protected model version it touches is not
    named with --acknowledge (exit 32). Tombstones (md5, request id, time)
    go to dvflow.governance.yaml: commit it; 'verify' then says erased.
    """
    from dvflow.governance._erase import apply_erase

    done = apply_erase(plan, confirm, acknowledge, path, tracking_uri=tracking_uri)
    where: dict[str, int] = {}
    for obj in done.deleted:
        where[obj["where"]] = where.get(obj["where"], 0) + 1
    shown = ", ".join(f"{n} from the {w}" for w, n in sorted(where.items())) or "none present"
    click.echo(f"deleted {len(done.deleted)} object(s) ({shown})")
    click.echo(
        f"deleted {len(done.runs)} MLflow run(s) (soft: 'mlflow gc' purges their artifacts) "
        f"and {len(done.logged_models)} logged model(s)"
    )
    click.echo(f"wrote {done.tombstones} tombstone(s) to dvflow.governance.yaml: commit it")
    click.echo(f"audit record {click.format_filename(str(done.audit))}")
