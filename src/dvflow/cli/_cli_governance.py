"""``dvflow storage`` and ``dvflow gc plan|apply``: what the data costs, and a safe gc."""

from __future__ import annotations

import functools
import json
import sys
import time
from typing import Any

import click

from ._cli_mlgc import mlflow_gc, mlflow_options, show_mlflow_plan
from ._options import project_options, protect_option


class _Progress:
    """Long work says how far it got on stderr: after two seconds, then every two seconds."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, what: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self.start < 2.0 or not done or (now - self.last < 2.0 and not finished):
            return
        self.last = now
        of = f"/{total}" if total is not None else ""
        end = "\r" if self.tty and not finished else "\n"
        click.echo(f"  {what}: {done}{of}{end}", err=True, nl=False)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@click.command()
@project_options
@click.option("-r", "--remote", metavar="NAME", help="DVC remote (default: the project's).")
@click.option(
    "--commits", default=10, show_default=True, metavar="N", help="Growth over the last N commits."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--top", default=10, show_default=True, metavar="N", help="Paths and versions shown.")
def storage(
    *,
    path: str,
    tracking_uri: str | None,
    remote: str | None,
    commits: int,
    as_json: bool,
    top: int,
) -> None:
    """What the data costs: bytes per remote, cache, path and version, and why each is kept."""
    from dvflow.governance._prices import usd
    from dvflow.governance._storage import storage_report

    report = storage_report(
        path, remote=remote, commits=commits, tracking_uri=tracking_uri, progress=_Progress()
    )
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True, indent=2))
        return
    totals, price = report.remote_totals, report.price
    click.echo(f"remote {report.remote['name']} ({report.remote['url']})")
    click.echo(
        f"  {totals['objects']} object(s), {_size(totals['bytes'])}: "
        f"{usd(report.usd_per_month)}/month at "
        + (
            f"${price['usd_per_gb_month']:g}/GB-month ({price['source']})"
            if price["usd_per_gb_month"] is not None
            else f"no known price for {price['scheme']} (set governance.prices.{price['scheme']})"
        )
    )
    if totals["legacy_objects"]:
        click.echo(
            f"  of which DVC 2 layout: {totals['legacy_objects']} ({_size(totals['legacy_bytes'])})"
        )
    if totals["noncurrent_versions"]:
        click.echo(
            f"  of which noncurrent versions: {totals['noncurrent_versions']} "
            f"({_size(totals['noncurrent_bytes'])})"
        )
    cache = report.cache_totals
    click.echo(f"cache: {cache['objects']} object(s), {_size(cache['bytes'])}")
    click.echo("kept for (remote):")
    for reason, kept in report.kept_for.items():
        click.echo(f"  {reason:<14} {kept['objects']:>8} object(s) {_size(kept['bytes']):>12}")
    click.echo(f"largest paths (all their versions, objects counted once; top {top}):")
    for item in report.paths[:top]:
        click.echo(f"  {_size(item['bytes']):>12}  {item['path']}  ({item['versions']} version(s))")
    click.echo(f"largest data versions (top {top}):")
    for item in report.versions[:top]:
        missing = item.get("missing_objects") or 0
        absent = f"  ({missing} object(s) not in the remote)" if missing else ""
        click.echo(f"  {_size(item['bytes']):>12}  {item['path']}@{item['md5'][:12]}{absent}")
    if report.growth:
        click.echo(f"growth over the last {len(report.growth)} commit(s) of HEAD:")
        for row in report.growth:
            click.echo(
                f"  {row['commit'][:8]}  {_size(row['bytes']):>12}  +{_size(row['added_bytes'])}"
            )


@click.group()
def gc() -> None:
    """Registry-aware garbage collection: DVC objects (plan, review, apply) and MLflow runs."""


@gc.command("plan")
@project_options
@click.option("-r", "--remote", metavar="NAME", help="DVC remote (default: the project's).")
@click.option("-w", "--workspace", is_flag=True, help="Keep what HEAD and the work tree use.")
@click.option("-a", "--all-branches", is_flag=True, help="Keep what every branch's tip uses.")
@click.option("-T", "--all-tags", is_flag=True, help="Keep what every tag uses.")
@click.option("-A", "--all-commits", is_flag=True, help="Keep what any commit uses.")
@protect_option
@click.option(
    "--project",
    "projects",
    metavar="PATH",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Another project sharing the remote: keep what it needs too (repeatable).",
)
@click.option(
    "--grace-days",
    type=click.IntRange(min=0),
    metavar="N",
    help="Keep objects pushed in the last N days (default: governance.grace_days, else 7).",
)
@click.option("--no-cache", is_flag=True, help="Plan the remote only, not the local cache.")
@click.option(
    "-o", "--output", metavar="FILE", type=click.Path(dir_okay=False), help="Plan file to write."
)
@click.option(
    "--mlflow",
    "with_mlflow",
    is_flag=True,
    help="Also judge the MLflow store's soft-deleted runs and logged models (as 'gc mlflow').",
)
@functools.partial(mlflow_options, protect=False)  # --protect above serves both sides
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def gc_plan(
    *,
    path: str,
    tracking_uri: str | None,
    remote: str | None,
    protect: str,
    projects: tuple[str, ...],
    grace_days: int | None,
    no_cache: bool,
    output: str | None,
    with_mlflow: bool,
    experiments: tuple[str, ...],
    backend_store_uri: str | None,
    as_json: bool,
    **scopes: bool,
) -> None:
    """Write a plan of what gc would delete; delete nothing.

    Kept: the lineage of protected model versions, the Git scopes named
    (none named: --workspace), other projects' (--project), and objects
    younger than --grace-days (default: governance.grace_days, else 7).
    With --mlflow, also which soft-deleted MLflow runs and logged models
    'mlflow gc' may take (dvflow never runs it).
    """
    from pathlib import Path

    from dvflow.governance._gc import GcOptions, plan_gc
    from dvflow.governance._keep import Scopes

    options = GcOptions(Scopes(**scopes), protect, projects, cache=not no_cache)
    plan = plan_gc(
        path,
        remote=remote,
        options=options,
        tracking_uri=tracking_uri,
        out=Path(output) if output else None,
        progress=_Progress(),
        grace_days=grace_days,
    )
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    ml_plan = None
    if with_mlflow:
        from dvflow.governance._mlflow_gc import plan_mlflow_gc

        ml_plan = plan_mlflow_gc(
            path,
            tracking_uri=tracking_uri,
            protect="registered" if protect == "registered" else "aliased",
            experiments=experiments,
            backend_store_uri=backend_store_uri,
        )
    if as_json:
        shown = plan.data if ml_plan is None else {**plan.data, "mlflow": ml_plan.to_dict()}
        click.echo(json.dumps(shown, sort_keys=True, indent=2))
        return
    _show_plan(plan)
    if ml_plan is not None:
        click.echo("")
        show_mlflow_plan(ml_plan)


gc.add_command(mlflow_gc)


def _show_plan(plan: Any) -> None:
    from dvflow.governance._prices import usd

    data = plan.data
    totals, kept = data["totals"], data["kept"]
    click.echo(f"remote {data['remote']['name']} ({data['remote']['url']})")
    for version in data["protected"]:
        aliases = "".join(f" @{a}" for a in version["aliases"])
        click.echo(
            f"  protected: {version['name']} v{version['version']}{aliases} "
            f"({version['data_versions']} data version(s))"
        )
    click.echo(f"  scopes kept: {', '.join(data['options']['scopes'])}")
    click.echo(
        f"  keep: {kept['objects']} object(s), {_size(kept['bytes'])} "
        f"({kept['in_grace_period']} younger than {data['grace_days']} day(s))"
    )
    click.echo(
        f"  delete: {totals['remote_objects']} object(s) from the remote "
        f"({_size(totals['remote_bytes'])}, {usd(totals['usd_per_month_saved'])}/month), "
        f"{totals['cache_objects']} from the cache ({_size(totals['cache_bytes'])})"
    )
    click.echo(f"plan {click.format_filename(str(plan.path))}")
    click.echo(f"plan_sha256 {plan.sha}")
    if totals["objects"]:
        click.echo(f"apply: dvflow gc apply {plan.path} --confirm {plan.sha[:12]}")


@gc.command("apply")
@click.argument("plan_file", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--confirm", "confirm_sha", metavar="SHA", help="The plan's plan_sha256.")
@project_options
def gc_apply(
    *, plan_file: str, confirm_sha: str | None, path: str, tracking_uri: str | None
) -> None:
    """Delete exactly what PLAN lists, once confirmed and checked again.

    Refused (exit 31) without --confirm the plan's sha256; refused (exit
    30) when the plan was edited or an object it lists is needed now.
    """
    done = _apply(plan_file, confirm_sha, path, tracking_uri)
    click.echo(
        f"deleted {done.remote_objects} object(s) from the remote and "
        f"{done.cache_objects} from the cache ({_size(done.bytes)})"
    )
    click.echo(f"audit record {click.format_filename(str(done.audit))}")


def _apply(plan_file: str, confirm_sha: str | None, path: str, tracking_uri: str | None) -> Any:
    from dvflow.governance._gc import apply_gc

    return apply_gc(
        plan_file,
        confirm_sha=confirm_sha,
        path=path,
        tracking_uri=tracking_uri,
        progress=_Progress(),
    )
