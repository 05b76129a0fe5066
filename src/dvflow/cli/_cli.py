"""The command line: parse flags, call one library function, render the result.

``_main.main`` runs these commands and is the one place errors become
messages and exit codes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ._cli_attest import attest, attestation_options, keygen, verify_signed
from ._cli_export import export
from ._cli_graph import impact, index, lineage
from ._cli_mlgc import gc_group
from ._cli_web import ui
from ._options import State, project_options, store_sync

if TYPE_CHECKING:
    from dvflow.export._emit import Delivery


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dvflow")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
def cli(verbose: bool) -> None:
    """Reproducible ML results: Git + DVC + MLflow, one provenance record per run."""
    State.verbose = verbose
    if verbose:
        from dvflow.stores._tracking import show_library_logs

        show_library_logs()


for _command in (lineage, impact, index, export, keygen, attest, ui, gc_group):
    cli.add_command(_command)


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--remote", metavar="URL", help="DVC remote URL (default: a local folder).")
@click.option("--force", is_flag=True, help="Replace an existing remote and dvflow.yaml.")
@click.option("--ci", is_flag=True, help="Also write .github/workflows/dvflow.yml.")
def init(path: str, remote: str | None, force: bool, ci: bool) -> None:
    """Make PATH a dvflow project (git, DVC, remote, MLflow store, .gitignore)."""
    from dvflow.core._redact import Redactor
    from dvflow.team._project import init_project

    if not path:
        raise click.BadParameter("is empty; use '.' for the current folder", param_hint="PATH")
    result = init_project(path, remote=remote, force=force, ci=ci)
    redact = Redactor().redact
    for line in result.done:
        click.echo(f"  done: {redact(line)}")
    for line in result.kept:
        click.echo(f"  kept: {redact(line)}")
    click.echo(f"dvflow project ready at {result.root}.")
    if not (result.root / "dvc.yaml").exists():
        click.echo("Next: describe your pipeline in dvc.yaml (see 'dvc stage add --help'),")
        click.echo("      commit, then 'dvflow run'.")
    else:
        click.echo("Next: git add -A && git commit -m 'dvflow init', then 'dvflow run'.")


@cli.command()
@click.argument("stages", nargs=-1)
@project_options
@click.option("--experiment", metavar="NAME", help="MLflow experiment name.")
@click.option("-P", "--all-pipelines", is_flag=True, help="Run every dvc.yaml in the repository.")
@click.option(
    "--push/--no-push",
    default=None,
    help="Push each stage's outputs to the DVC remote before its run is marked finished "
    "(default: 'push' in dvflow.yaml, else off).",
)
@click.option(
    "--require-tracking",
    is_flag=True,
    default=None,
    help="Stop (exit 4) when the tracking server does not answer, instead of recording "
    "to the local spool for 'dvflow sync' (default: 'require_tracking' in dvflow.yaml).",
)
@click.option("-f", "--force", is_flag=True, help="Run stages even if nothing changed.")
@click.option(
    "-s", "--single-item", is_flag=True, help="Run only STAGES, not the stages they depend on."
)
@click.option("--downstream", is_flag=True, help="Run STAGES and the stages that depend on them.")
@click.option(
    "--keep-going",
    is_flag=True,
    help="After a stage fails, go on with the stages that do not depend on it.",
)
@click.option("--pull", is_flag=True, help="Pull missing data from the DVC remote as needed.")
@click.option("--dry", is_flag=True, help="Print what would run; run and record nothing.")
@click.option(
    "--record-noop",
    is_flag=True,
    help="When every stage is up to date, record an 'up-to-date' run per stage anyway "
    "(by default such a run records nothing and does not open MLflow).",
)
def run(
    *,
    stages: tuple[str, ...],
    path: str,
    tracking_uri: str | None,
    experiment: str | None,
    all_pipelines: bool,
    push: bool | None,
    require_tracking: bool | None,
    record_noop: bool,
    **repro: bool,
) -> None:
    """Run the pipeline like 'dvc repro [STAGES]' and record every stage in MLflow.

    When the tracking server does not answer, before or during the run, the
    pipeline goes on and its records go to a local spool (.dvflow/spool/);
    'dvflow sync' uploads them later. The flags -f, -s, --downstream,
    --keep-going, --pull and --dry mean what they mean for 'dvc repro'.

    When every stage is up to date, nothing is recorded and MLflow is not
    opened: the command says so and names the recorded runs that made the
    current outputs (from the lineage index). --record-noop records anyway.
    """
    from dvflow.runs._dry import dry_run
    from dvflow.runs._pipeline import run_pipeline
    from dvflow.stores._repro import ReproFlags

    from ._views import render_pipeline, render_progress

    if stages and all_pipelines:
        raise click.UsageError("give STAGES or --all-pipelines, not both")
    flags = ReproFlags(**repro)
    if flags.dry:
        for stage in dry_run(path, stages, all_pipelines=all_pipelines, flags=flags):
            click.echo(f"  {stage.name:<20} {stage.action:<13} {stage.cmd}")
        click.echo("dry run: nothing ran, nothing recorded")
        return
    result = run_pipeline(
        path,
        stages,
        tracking_uri=tracking_uri,
        experiment=experiment,
        all_pipelines=all_pipelines,
        push=push,
        require_tracking=require_tracking,
        on_progress=render_progress,
        flags=flags,
        record_noop=record_noop,
    )
    render_pipeline(result)


@cli.command()
@click.option(
    "--from",
    "source",
    metavar="URI",
    help="Copy another store's runs instead of the spool's (moving to a team "
    "server: --from sqlite:///mlflow.db).",
)
@project_options
def sync(source: str | None, path: str, tracking_uri: str | None) -> None:
    """Upload the runs recorded to the local spool while the server did not answer.

    Runs keep their original start and end times, statuses, params, metrics,
    datasets, artifacts, logged models and parent links; spool ids are mapped
    to the store's, and each record and its digest are rewritten to match.
    Safe to run again after an interruption: what was copied is not copied
    twice. With --from, another store's runs are copied the same way.
    """
    from dvflow.team._sync import sync_spool

    from ._views import render_progress

    result = sync_spool(path, tracking_uri=tracking_uri, source=source, on_progress=render_progress)
    if not result.runs and not result.versions:
        if not result.lineage.sent and not result.lineage.left:
            click.echo(f"nothing to sync: {'that store' if source else 'the spool'} is empty")
        _lineage_delivered(result.lineage)
        return
    for old, new in result.runs:
        click.echo(f"  run {old} -> {new}" if old != new else f"  run {old}: completed")
    for old, new in result.models:
        click.echo(f"  logged model {old} -> {new}")
    there = "version" if result.source else "spool version"
    for name, old_version, new_version in result.versions:
        click.echo(f"  model {name}: {there} {old_version} -> version {new_version}")
    already = len(result.runs) - result.copied
    note = f" ({already} copied before)" if already else ""
    click.echo(f"synced {result.copied} run(s) to {result.tracking_uri}{note}")
    _lineage_delivered(result.lineage)


def _lineage_delivered(delivery: Delivery) -> None:
    """Say what became of the OpenLineage outbox; exit 8 when the consumer did not take it."""
    from dvflow.core._exceptions import ConsumerError
    from dvflow.export._emit import OUTBOX

    if delivery.sent:
        click.echo(f"sent {delivery.sent} OpenLineage event(s) to {delivery.endpoint}")
    if not delivery.left:
        return
    waiting = f"{delivery.left} OpenLineage event(s) still wait in {OUTBOX.as_posix()}"
    if delivery.endpoint is None:  # no consumer configured any more: nothing failed
        click.echo(f"{waiting}: {delivery.problem}")
        return
    raise ConsumerError(
        delivery.endpoint,
        f"{delivery.problem}; {waiting}",
        "Run 'dvflow sync' again once the consumer answers; what was sent is not sent twice.",
    )


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@store_sync
@project_options
def show(run_id: str, as_json: bool, sync: bool, path: str, tracking_uri: str | None) -> None:
    """Print RUN_ID's provenance record and check it against its digest."""
    from dvflow.core._exceptions import RecordTamperedError
    from dvflow.proof._show import check_record

    from ._views import render_record

    check = check_record(run_id, path, tracking_uri=tracking_uri, sync=sync or None)
    if check.note:
        click.echo(f"run {run_id.strip()}: {check.note}", err=True)
    if as_json:
        # The stored bytes exactly, so `dvflow show ID --json | sha256sum` checks the tag.
        click.echo(check.raw, nl=False)
    else:
        render_record(check.record.to_dict(), check.run_status)
        if check.result_commit:
            click.echo(f"  results   held by commit {check.result_commit} (dvflow bind)")
    if not check.intact:
        raise RecordTamperedError(
            check.run_id, check.expected_sha256 or "none", check.actual_sha256
        )
    click.echo(check.verdict, err=True)


@cli.command()
@click.argument("rev", default="HEAD")
@project_options
def bind(rev: str, path: str, tracking_uri: str | None) -> None:
    """Tag the runs whose outputs commit REV's dvc.lock holds with that commit.

    Stages run before their dvc.lock is committed; after 'git commit', run
    'dvflow bind' so each run names the commit that holds its results
    (tag dvflow.result_commit).
    """
    from dvflow.runs._bind import bind_commit

    result = bind_commit(path, rev, tracking_uri=tracking_uri)
    click.echo(f"bound {len(result.bound)} run(s) to commit {result.commit}")
    if result.already_bound:
        click.echo(f"{len(result.already_bound)} run(s) were already bound to an earlier commit")


@cli.command()
@click.argument("target")
@click.option("--name", required=True, metavar="NAME", help="Registered model name.")
@click.option("--path", "output", metavar="OUT", help="Which output of the run is the model.")
@click.option("--alias", metavar="ALIAS", help="Point this alias at the version too.")
@project_options
def register(
    *,
    target: str,
    name: str,
    output: str | None,
    alias: str | None,
    path: str,
    tracking_uri: str | None,
) -> None:
    """Register an output of a recorded run as a model version, with its lineage.

    TARGET is a stage run id, or a stage name (the run that made its current
    outputs). A version is made only when no version of NAME has the
    model's md5 yet. Models declared in dvc.yaml 'artifacts:' with 'type:
    model' are registered by 'dvflow run' itself.
    """
    from dvflow._registry import register_model

    result = register_model(
        target, name, path, output=output, alias=alias, tracking_uri=tracking_uri
    )
    verb = "registered" if result.created else "already registered as"
    click.echo(f"{verb} {result.name} version {result.version} (md5 {result.md5})")
    if result.alias:
        click.echo(f"alias @{result.alias} -> version {result.version}")


@cli.command()
@click.argument("name")
@click.argument("version")
@click.option("--alias", required=True, metavar="ALIAS", help="The alias to move (production...).")
@click.option(
    "--force", is_flag=True, help="Move it despite failed checks (recorded on the version)."
)
@click.option(
    "--stage",
    type=click.Choice(["Staging", "Production", "Archived"]),
    help="Also transition the deprecated registry stage (opt-in).",
)
@click.option(
    "--require-attestation",
    "require_attestation",
    multiple=True,
    metavar="PUB",
    help="Also require an attestation of the version that verifies with this public key "
    "(repeatable: any of them).",
)
@project_options
def promote(
    *,
    name: str,
    version: str,
    alias: str,
    force: bool,
    stage: str | None,
    require_attestation: tuple[str, ...],
    path: str,
    tracking_uri: str | None,
) -> None:
    """Point ALIAS of model NAME at VERSION once its lineage is complete.

    Checks: the run's record matches its digest; the commit exists and was
    clean or its patch is stored; every input and the model are in the DVC
    remote; with --require-attestation, a signed attestation of the version
    verifies with one of those keys. Exit code 1 when a check fails and
    --force is not given.
    """
    from dvflow._registry import promote as promote_version
    from dvflow.core._exceptions import LineageIncompleteError

    from ._views import show_checks

    gate = None
    if require_attestation:
        from dvflow.export._gates import attestation_gate

        gate = attestation_gate(require_attestation, path, tracking_uri)
    try:
        result = promote_version(
            name,
            version,
            alias,
            path,
            force=force,
            stage=stage,
            tracking_uri=tracking_uri,
            gate=gate,
        )
    except LineageIncompleteError as exc:
        show_checks(exc.checks)
        raise
    show_checks(result.checks)
    forced = " (forced: the failed checks are recorded on the version)" if result.forced else ""
    click.echo(f"alias @{result.alias} -> {result.name} version {result.version}{forced}")
    if result.stage:
        click.echo(f"stage -> {result.stage}")


@cli.command()
@click.argument("target")
@click.option("--rebuild", is_flag=True, help="Re-run the stage and compare its outputs.")
@click.option(
    "--rtol",
    type=click.FloatRange(min=0, max=1e6),
    default=1e-9,
    show_default=True,
    help="Relative tolerance (with --rebuild).",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0, max=1e300),
    default=0.0,
    show_default=True,
    help="Absolute tolerance (with --rebuild).",
)
@attestation_options
@store_sync
@project_options
def verify(
    *,
    target: str,
    rebuild: bool,
    rtol: float,
    atol: float,
    sync: bool,
    path: str,
    tracking_uri: str | None,
    **signed: Any,
) -> None:
    """Check that TARGET (a run id, models:/NAME/VERSION or models:/NAME@ALIAS) reproduces.

    Quick checks: the record's digest, the commit (on a remote branch or tag
    when there is a git remote), the patch of a dirty run, every input and
    output in the DVC remote, the environment then and now (warnings), and the
    dvflow.io tag lineage reads against the record.
    --rebuild re-runs the stage in a temporary worktree at the recorded
    commit and compares the outputs: identical, equivalent (metrics within
    --rtol/--atol) or diverged. Exit 0 when it verifies, 1 when a check
    fails or the rebuild diverged, 2 when the stage could not be re-run.

    With --pubkey: verify TARGET's signed attestation instead (--attestation
    FILE, else the one 'dvflow attest' logged), offline with --files DIR
    (exit codes 20-25: docs/cli.md).
    """
    from dvflow.core._exceptions import VerificationFailedError
    from dvflow.proof._verify import AUTHENTICITY_NOTE
    from dvflow.proof._verify import verify as run_verify

    from ._views import show_checks, show_rebuild

    context = click.get_current_context()
    given = {
        name
        for name in ("rtol", "atol")
        if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    }
    if given and not rebuild:
        raise click.UsageError("--rtol and --atol apply to --rebuild only")
    if signed["pubkey"] or any(signed.values()):
        if rebuild:
            raise click.UsageError("--rebuild and --pubkey are two kinds of verify: run them apart")
        verify_signed(target, path, tracking_uri, **signed)
        return

    def step(message: str) -> None:
        click.echo(f"dvflow: {message}", err=True)

    result = run_verify(
        target,
        path,
        rebuild_stage=rebuild,
        rtol=rtol,
        atol=atol,
        tracking_uri=tracking_uri,
        on_step=step,
        sync=sync or None,
    )
    click.echo(f"verify {target} (run {result.run_id})")
    show_checks(result.checks)
    click.echo(f"  {AUTHENTICITY_NOTE}")
    if result.rebuild is not None:
        show_rebuild(result.rebuild)
    elif rebuild and result.failures:
        click.echo("  rebuild skipped: a check failed")
    if result.failures:
        hints = [c.hint for c in result.checks if not c.ok and c.hint]
        raise VerificationFailedError(target, result.failures, hints)


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@store_sync
@project_options
def diff(*, a: str, b: str, as_json: bool, sync: bool, path: str, tracking_uri: str | None) -> None:
    """What changed from run (or model version) A to B: code, data, params, metrics, packages."""
    import json

    from dvflow.proof._diff import diff_runs

    from ._views import show_diff

    result = diff_runs(a, b, path, tracking_uri=tracking_uri, sync=sync or None)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return
    show_diff(result)


@cli.command()
@click.argument("target")
@click.option("--into", metavar="DIR", help="Where (default: .dvflow/checkouts/<run id>).")
@project_options
def checkout(*, target: str, into: str | None, path: str, tracking_uri: str | None) -> None:
    """Put the exact code and data of TARGET (a run or model version) into a worktree.

    The worktree is at the recorded commit with the recorded patch applied,
    and holds every DVC-tracked input and output of the run, from the cache
    or the DVC remote.
    """
    from dvflow.proof._checkout import checkout as do_checkout

    result = do_checkout(target, path, into=into, tracking_uri=tracking_uri)
    sha = f" (sha256 {result.patch_sha256}, {result.patch_bytes} bytes)" if result.patched else ""
    patched = f" + its recorded patch{sha}" if result.patched else ""
    if result.notice:
        click.echo(f"note: {result.notice}")
    click.echo(f"checked out run {result.run_id}: commit {result.commit[:12]}{patched}")
    for file in result.files:
        click.echo(f"  data  {file}")
    click.echo(
        "note: dvc.lock there is the commit's, written before this run (the run's own "
        "outputs are those of its record), so 'dvc status' there reports them as changed"
    )
    click.echo(f"enter it:   cd {result.folder}")
    click.echo(f"remove it:  git worktree remove --force {result.folder}")


@cli.command()
@click.option(
    "--release",
    "release",
    multiple=True,
    metavar="TAG",
    help="Release tag to check (default: tags at HEAD).",
)
@click.option(
    "--alias", default="production", show_default=True, help="The alias a release must match."
)
@click.option(
    "--summary",
    "summary",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Append Markdown with a Mermaid lineage diagram (e.g. $GITHUB_STEP_SUMMARY).",
)
@click.option(
    "--require-attestation",
    "require_attestation",
    multiple=True,
    metavar="PUB",
    help="Require each model at HEAD to have an attestation that verifies with this "
    "public key (repeatable: any of them); exit 14 otherwise.",
)
@store_sync
@project_options
def check(
    *,
    release: tuple[str, ...],
    alias: str,
    summary: str | None,
    require_attestation: tuple[str, ...],
    sync: bool,
    path: str,
    tracking_uri: str | None,
) -> None:
    """The CI gate: may this commit or release merge?

    Fails (exit 10) when dvc.lock is not up to date with the code and params,
    (11) when outputs in dvc.lock are not in the DVC remote, (12) when outputs
    at HEAD have no recorded run, (13) when a release tag's model version
    (ALIAS) differs from the tag's dvc.lock, (14, with --require-attestation)
    when a model at HEAD has no attestation that verifies with those keys.
    All checks are printed; the exit code is the first failure's.
    """
    from dvflow.team._gate import check_project, summary_markdown

    from ._views import show_checks

    result = check_project(
        path,
        release=release,
        alias=alias,
        tracking_uri=tracking_uri,
        sync=sync or None,
        require_attestation=require_attestation,
    )
    show_checks(result.checks)
    for failed in (c for c in result.checks if not c.ok and c.hint):
        click.echo(f"hint: {failed.name}: {failed.hint}", err=True)
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fobj:
                fobj.write(summary_markdown(result))
        except OSError as exc:
            # The gate's verdict matters more than its summary: keep its exit code.
            click.echo(f"warning: cannot write the summary to {summary}: {exc.strerror}", err=True)
    if result.exit_code:
        click.echo(f"error: check failed (exit {result.exit_code})", err=True)
        sys.exit(result.exit_code)
    click.echo("check passed")


@cli.command()
@project_options
def doctor(*, path: str, tracking_uri: str | None) -> None:
    """Is this setup sound? Tools, DVC remote, credentials, store, .gitignore.

    One line per check with its fix; exit 1 when a check fails (warnings
    do not fail).
    """
    from dvflow.team._doctor import doctor as run_doctor

    from ._views import show_checks

    checks = run_doctor(path, tracking_uri=tracking_uri)
    show_checks(checks)
    for check in checks:
        if check.level == "fail" and check.hint:
            click.echo(f"fix: {check.name}: {check.hint}", err=True)
    if any(c.level == "fail" for c in checks):
        sys.exit(1)
    click.echo(
        "setup is sound" + (" (see the warnings)" if any(c.level == "warn" for c in checks) else "")
    )


@cli.command()
@click.argument("directory", default="dvflow-demo", type=click.Path(file_okay=False))
def demo(directory: str) -> None:
    """Create a small real project in DIRECTORY and run it three times."""
    from ._demo import run_demo
    from ._views import render_progress, show_checks, show_graph, show_rebuild

    def step(message: str) -> None:
        click.echo(click.style(f"==> {message}", bold=True), err=True)

    result = run_demo(directory, on_step=step, on_progress=render_progress)
    click.echo("")
    for number, run_result in enumerate(result.runs, 1):
        click.echo(f"run {number}: " + ", ".join(f"{s.name} {s.status}" for s in run_result.stages))
    for number, run_result in enumerate(result.runs, 1):
        for model in run_result.registered:
            what = "registered" if model.created else "unchanged:"
            click.echo(f"run {number}: {what} {model.name} v{model.version}")
    promoted = result.promotion
    click.echo(f"\n{promoted.name} v{promoted.version} promoted to @{promoted.alias}; its lineage:")
    show_graph(result.lineage, "tree")
    models = sorted({n.label for n in result.impact.of_kind("model")})
    click.echo(f"\ndata/raw.csv ends up in: {', '.join(models) or 'no model'}")
    click.echo(f"\nverify --rebuild models:/{promoted.name}@{promoted.alias}:")
    if result.verification.rebuild is not None:
        show_rebuild(result.verification.rebuild)
    else:
        show_checks(result.verification.checks)
    last = result.runs[-1]
    click.echo(f"\nproject:  {result.root}")
    click.echo(f"MLflow:   {result.tracking_uri} (experiment '{last.experiment}')")
    click.echo(f"record:   {_tool('dvflow')} show {last.stages[-1].run_id} -C {result.root}")
    click.echo(f"impact:   {_tool('dvflow')} impact data/raw.csv -C {result.root}")
    click.echo(f"see it:   {_tool('dvflow')} ui -C {result.root}")
    click.echo(
        f"browse:   cd {result.root} && {_tool('mlflow')} ui "
        "--backend-store-uri sqlite:///mlflow.db"
    )


def _tool(name: str) -> str:
    """How to call a tool of dvflow's environment: bare when on PATH, else its path."""
    import shutil
    from pathlib import Path

    installed = Path(sys.executable).with_name(name)
    if not installed.exists() or shutil.which(name) == str(installed):
        return name
    return str(installed)
