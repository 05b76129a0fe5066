"""``dvflow gc mlflow``: the soft-deleted runs and logged models ``mlflow gc`` may take.

What ``gc plan --mlflow`` reuses: ``mlflow_options(command, protect=False)``
(its own ``--protect`` is the same choice), ``plan_mlflow_gc`` with the same
``path``, ``tracking_uri`` and ``protect``, then ``show_mlflow_plan`` (or
``plan.to_dict()`` under a key of its JSON).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ._options import project_options, protect_option

if TYPE_CHECKING:
    from dvflow.governance._mlflow_gc import Entity, MlflowGcPlan


def mlflow_options(command: Any, *, protect: bool = True) -> Any:
    """The flags of the MLflow side of gc (not -C/--tracking-uri: the caller's)."""
    command = click.option(
        "--backend-store-uri",
        metavar="URI",
        help="A tracking server's database (as 'mlflow gc' needs it): to list its deleted "
        "logged models and to name it in the command.",
    )(command)
    command = click.option(
        "--experiment",
        "experiments",
        metavar="NAME",
        multiple=True,
        help="Also judge this experiment's deleted runs (repeatable; default: the project's).",
    )(command)
    return protect_option(command) if protect else command


@click.command("mlflow")
@mlflow_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@project_options
def mlflow_gc(
    *,
    protect: str,
    experiments: tuple[str, ...],
    backend_store_uri: str | None,
    as_json: bool,
    path: str,
    tracking_uri: str | None,
) -> None:
    """Which soft-deleted MLflow runs and logged models 'mlflow gc' may delete.

    Those that back a protected model version, or lie in its lineage, are
    refused by name with the command that restores them; the rest are
    printed as one 'mlflow gc' command naming exactly them. dvflow never
    runs 'mlflow gc' itself.
    """
    from dvflow.governance._mlflow_gc import plan_mlflow_gc

    plan = plan_mlflow_gc(
        path,
        tracking_uri=tracking_uri,
        protect="registered" if protect == "registered" else "aliased",
        experiments=experiments,
        backend_store_uri=backend_store_uri,
    )
    show_mlflow_plan(plan, as_json=as_json)


def show_mlflow_plan(plan: MlflowGcPlan, *, as_json: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2, sort_keys=True))
        return
    scope = ", ".join(f"'{e.name}' (id {e.experiment_id})" for e in plan.experiments)
    click.echo(f"MLflow store {plan.store}, experiment {scope or '(none found)'}")
    protected = ", ".join(plan.protected_versions) or "none"
    click.echo(f"protected model versions ({plan.protect}): {protected}")
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if plan.refused:
        click.echo(f"\nrefused ({len(plan.refused)}): they back a protected model version")
        for entity in plan.refused:
            click.echo(f"  {entity.label}: {entity.why}")
            click.echo(f"    restore: {entity.restore}")
    if plan.deletable:
        click.echo(f"\nmay be deleted ({len(plan.deletable)}):")
        for entity in plan.deletable:
            click.echo(f"  {entity.label}")
    if plan.outside:
        click.echo(f"\nnot judged ({len(plan.outside)}): deleted in other experiments")
        click.echo("  " + _some(plan.outside))
    if not plan.refused and not plan.deletable:
        click.echo("\nnothing soft-deleted in these experiments")
    if plan.command_text:
        _show_command(plan)


def _show_command(plan: MlflowGcPlan) -> None:
    if plan.blocked:
        click.echo("\nnot yet safe to run 'mlflow gc':")
        for reason in plan.blocked:
            click.echo(f"  - {reason}")
        click.echo("then hand this to mlflow gc (dvflow does not run it):")
    else:
        click.echo("\nhand this to mlflow gc (dvflow does not run it):")
    click.echo(f"  {plan.command_text}")
    if "***" in (plan.command_text or ""):
        click.echo("  (credentials in the URIs are shown as ***: give them as you do to MLflow)")


def _some(entities: tuple[Entity, ...]) -> str:
    shown = ", ".join(e.label for e in entities[:5])
    return shown + (f", and {len(entities) - 5} more" if len(entities) > 5 else "")
