"""How the CLI shows results: progress, pipeline runs, records, checks, graphs, diffs.

The library returns values; these functions turn them into lines for a
terminal (click.echo), so ``_cli`` keeps to parsing flags and calling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dvflow.core._printable import printable as _p

if TYPE_CHECKING:
    from dvflow.runs._results import PipelineRun, Progress


_STATUS_STYLE = {
    "ran": "green",
    "restored": "cyan",
    "up-to-date": "blue",
    "failed": "red",
    "killed": "red",
}


def render_progress(progress: Progress) -> None:
    if progress.event == "notice":
        message = _p(progress.message, newlines=True)
        click.echo(click.style("warning: ", fg="yellow") + message, err=True)
    elif progress.event == "plan":
        names = ", ".join(_p(s) for s in progress.stages) or "none"
        click.echo(f"dvflow: {progress.total} stage(s) to check: {names}", err=True)
    elif progress.event == "stage-start":
        click.echo(
            f"[{progress.index}/{progress.total}] {_p(progress.stage or '')}: starting "
            f"(run {progress.run_id})",
            err=True,
        )
    elif progress.event == "synced":
        click.echo(
            f"[{progress.index}/{progress.total}] synced run {progress.stage} as {progress.run_id}",
            err=True,
        )
    elif progress.event == "stage-end":
        status = click.style(progress.status or "", fg=_STATUS_STYLE.get(progress.status or ""))
        click.echo(
            f"[{progress.index}/{progress.total}] {_p(progress.stage or '')}: {status} "
            f"in {progress.seconds:.1f}s",
            err=True,
        )


def render_pipeline(result: PipelineRun) -> None:
    if result.noop:
        _render_noop(result)
        return
    click.echo(f"pipeline run {result.run_id}: {result.status}")
    for stage in result.stages:
        link = f" (outputs made by run {stage.produced_by})" if stage.produced_by else ""
        click.echo(f"  {_p(stage.name):<20} {stage.status:<11} run {stage.run_id}{link}")
        for key in stage.skipped_params:
            click.echo(f"    note: param {_p(key)} was logged by the script with another value")
    for model in result.registered:
        what = "registered version" if model.created else "version"
        same = "" if model.created else " already has this md5"
        click.echo(f"  model {model.name}: {what} {model.version}{same}")
    dirty = " (dirty work tree: patch stored)" if result.dirty else ""
    click.echo(f"  code: {result.commit or 'no commit yet'}{dirty}")
    click.echo(f"  store: {result.tracking_uri}  experiment: {result.experiment}")
    if result.spooled:
        click.echo(
            "  spooled: the store did not answer, so the run ids above (and model versions) "
            "are the local spool's; 'dvflow sync' uploads them and prints the store's ids"
        )


def _render_noop(result: PipelineRun) -> None:
    click.echo("pipeline up to date: nothing ran, nothing recorded")
    for stage in result.stages:
        if not stage.outputs:
            made = "no outputs"
        elif stage.produced_by:
            made = f"outputs made by run {stage.produced_by}"
        else:
            made = "no run known"
        click.echo(f"  {_p(stage.name):<20} {stage.status:<11} {made}")
    dirty = " (dirty work tree)" if result.dirty else ""
    click.echo(f"  code: {result.commit or 'no commit yet'}{dirty}")
    if any(stage.outputs and stage.produced_by is None for stage in result.stages):
        click.echo(
            "  note: the lineage index knows no run that made some of these outputs; "
            "'dvflow lineage PATH' reads the store into it, 'dvflow run --record-noop' "
            "records this run anyway"
        )


def render_record(data: dict[str, Any], run_status: str) -> None:
    stage = data.get("stage") or {}
    code, mlflow = data["code"], data["mlflow"]
    title = f"stage '{_p(stage['name'])}' ({stage['status']})" if stage else "pipeline"
    click.echo(f"{title}  run {mlflow['run_id']}  status {run_status}")
    dirty = f" dirty, patch sha256 {code['patch_sha256']}" if code["dirty"] else " clean"
    click.echo(f"  code      {code['commit']} on {code['branch']}{dirty}")
    if stage.get("produced_by"):
        click.echo(f"  outputs first produced by run {stage['produced_by']}")
    for label, key in (("input", "inputs"), ("output", "outputs")):
        for pointer in data.get(key, []):
            click.echo(f"  {label:<9} {_p(pointer['path'])}  md5 {pointer['md5']}")
    for name, value in sorted(data.get("params", {}).items()):
        click.echo(f"  param     {_p(name)} = {_p(str(value))}")
    for name, value in sorted(data.get("metrics", {}).items()):
        click.echo(f"  metric    {_p(name)} = {value}")
    for child in data.get("stages", []):
        click.echo(
            f"  stage     {_p(child['name']):<16} {child['status']:<11} run {child['run_id']}"
        )
    env = data["environment"]
    click.echo(
        f"  env       python {env['python']}, dvc {env['dvc']}, mlflow {env['mlflow']}, "
        f"{env['platform']}"
    )


_LEVELS = {"pass": ("pass", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}


def show_checks(checks: Any) -> None:
    for check in checks:
        word, color = _LEVELS[check.level]
        click.echo(f"  {click.style(word, fg=color)}  {check.name:<9} {check.detail}")
        if check.level == "warn" and check.hint:
            click.echo(f"        hint: {check.hint}")


def show_graph(graph: Any, fmt: str) -> None:
    from dvflow.trace import _render

    for warning in graph.warnings:
        click.echo(f"warning: {warning}", err=True)
    render = {
        "json": _render.to_json,
        "dot": _render.to_dot,
        "mermaid": _render.to_mermaid,
    }.get(fmt, _render.to_tree)
    click.echo(render(graph).rstrip("\n"))


def show_rebuild(outcome: Any) -> None:
    patch = ", patch applied" if outcome.patch_applied else ""
    click.echo(f"  rebuild of stage {outcome.stage} in {outcome.seconds:.1f}s{patch}:")
    for out in outcome.outputs:
        same = (
            f"md5 {out.recorded}"
            if out.verdict == "identical"
            else (f"recorded {out.recorded}, rebuilt {out.rebuilt}")
        )
        click.echo(f"    {out.verdict:<10} {out.path}  {same}")
    for metric in outcome.metrics:
        if metric.rebuilt is None:  # not a number off by some amount: not there at all
            click.echo(
                f"    metric     {metric.name}: recorded {metric.recorded}, "
                "missing after the rebuild"
            )
            continue
        mark = "within tolerance" if metric.within else "OUTSIDE tolerance"
        click.echo(
            f"    metric     {metric.name}: recorded {metric.recorded}, rebuilt "
            f"{metric.rebuilt} ({mark})"
        )
    color = {"identical": "green", "equivalent": "yellow"}.get(outcome.verdict, "red")
    click.echo(click.style(outcome.verdict, fg=color, bold=True))


def show_diff(result: Any) -> None:
    def name(side: Any) -> str:
        code = (side.commit or "no commit")[:8] + ("+dirty" if side.dirty else "")
        return f"{side.target} (stage {side.stage}, {code})"

    click.echo(f"A: {name(result.a)}\nB: {name(result.b)}")
    for label, side in (("A", result.a), ("B", result.b)):
        if side.patched:
            click.echo(f"code     {label}'s uncommitted patch changes: {', '.join(side.patched)}")
    if result.commits_ahead is not None:
        click.echo(
            f"code     B is {result.commits_ahead} commit(s) ahead of A, "
            f"{result.commits_behind} behind; {len(result.files)} file(s) changed"
        )
        for status, file in result.files:
            click.echo(f"         {status} {file}")
    for change in result.data:
        click.echo(f"data     {change.path}  {change.old} -> {change.new}")
        for label, files in (("+", change.added), ("-", change.removed), ("~", change.modified)):
            for file in files:
                click.echo(f"           {label} {file}")
    for key, (old, new) in result.params.items():
        click.echo(f"param    {key}  {old} -> {new}")
    for key, (old, new) in result.metrics.items():
        delta = f" ({new - old:+g})" if old is not None and new is not None else ""
        click.echo(f"metric   {key}  {old} -> {new}{delta}")
    changed = _show_consumers(result.consumers)
    for line in result.packages:
        click.echo(f"package  {line}")
    if not (
        result.files or result.data or result.params or result.metrics or result.packages or changed
    ):
        click.echo("no differences")


def _show_consumers(consumers: Any) -> bool:
    """The metrics of the stages downstream of each model; True if any changed."""
    for group in consumers:
        runs = " -> ".join(f"run {r[:8]}" if r else "no run" for r in (group.a_run, group.b_run))
        click.echo(f"metrics of {group.stage} (consumed this model): {runs}")
        for key, (old, new) in group.metrics.items():
            delta = f" ({new - old:+g})" if old is not None and new is not None else ""
            click.echo(f"metric   {group.stage}: {key}  {old} -> {new}{delta}")
    return any(group.metrics for group in consumers)
