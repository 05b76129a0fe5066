"""``dvflow keygen`` and ``dvflow attest``: signing keys, and signed statements of a model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ._options import project_options

DEFAULT_KEY_DIR = "~/.config/dvflow/keys"


@click.command()
@click.option(
    "--out",
    metavar="DIR",
    help=f"Folder for the key pair (default: {DEFAULT_KEY_DIR}, or under $XDG_CONFIG_HOME).",
)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["ed25519", "ecdsa-p256"]),
    default="ed25519",
    show_default=True,
    help="Key type (ECDSA P-256 is what OpenSSF model signing uses).",
)
@click.option("--name", default="dvflow-attest", show_default=True, help="File name stem.")
@click.option("--force", is_flag=True, help="Replace an existing key pair of that name.")
@click.option(
    "--passphrase-env",
    metavar="VAR",
    default="DVFLOW_KEY_PASSPHRASE",
    show_default=True,
    help="Encrypt the private key with the passphrase in this environment variable, when set.",
)
def keygen(out: str | None, kind: str, name: str, force: bool, passphrase_env: str) -> None:
    """Write a signing key pair: NAME.key (private, mode 0600) and NAME.pub.

    Keep the private key out of the project: it never goes to MLflow, DVC or
    Git ('dvflow doctor' warns when Git tracks one). Hand NAME.pub to whoever
    verifies your attestations.
    """
    from dvflow.export._dsse import default_key_dir, generate_keypair, passphrase_from_env

    pair = generate_keypair(
        out or default_key_dir(),
        kind=kind,
        name=name,
        passphrase=passphrase_from_env(passphrase_env),
        force=force,
    )
    locked = f", encrypted with ${passphrase_env}" if pair.encrypted else ""
    click.echo(f"private key: {pair.private} ({pair.kind}, mode 0600{locked})")
    click.echo(f"public key:  {pair.public}")
    click.echo(f"keyid:       {pair.keyid}")


@click.command()
@click.argument("target")
@click.option("--key", required=True, metavar="KEY", help="The private key (PEM) to sign with.")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Where to write the envelope (default: NAME-vVERSION.intoto.json here; '-': stdout).",
)
@click.option(
    "--passphrase-env",
    metavar="VAR",
    default="DVFLOW_KEY_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the key's passphrase (for an encrypted key).",
)
@click.option(
    "--stages",
    is_flag=True,
    help="Also sign one statement per upstream stage run (a JSON-lines bundle, .intoto.jsonl).",
)
@project_options
def attest(
    *,
    target: str,
    key: str,
    output: str | None,
    passphrase_env: str,
    stages: bool,
    path: str,
    tracking_uri: str | None,
) -> None:
    """Sign what made TARGET (models:/NAME/VERSION, models:/NAME@ALIAS or a stage run id).

    Writes a DSSE envelope around an in-toto Statement v1 with a SLSA
    provenance v1 predicate: every model file by sha256, every input of the
    stage and of the stages upstream by sha256 and DVC md5, the commit, the
    command, the params and the records' digests. The envelope is also
    logged to the producing run; its sha256 is tagged on the model version.
    """
    from dvflow.export._attest import attest as run_attest
    from dvflow.export._dsse import passphrase_from_env

    result = run_attest(
        target,
        key,
        path,
        tracking_uri=tracking_uri,
        passphrase=passphrase_from_env(passphrase_env),
        stages=stages,
    )
    if output == "-":
        click.echo(result.envelope.decode("utf-8"), nl=False)
        where = "stdout"
    else:
        where = output or result.default_file
        Path(where).write_bytes(result.envelope)
    click.echo(
        f"attested {target} (run {result.target.run_id}): {result.subjects} subject(s), "
        f"{result.dependencies} dependencies, {result.records} record(s)",
        err=True,
    )
    click.echo(f"signed by keyid {result.keyid[:16]}; envelope sha256 {result.sha256}", err=True)
    click.echo(f"wrote {where}; logged as {result.artifact} of the run", err=True)


F = TypeVar("F", bound=Callable[..., Any])


def attestation_options(command: F) -> F:
    """``verify``'s flags for a signed attestation."""
    options = [
        click.option(
            "--pubkey",
            multiple=True,
            metavar="PUB",
            help="Verify TARGET's signed attestation with this trusted public key (repeatable).",
        ),
        click.option(
            "--attestation",
            metavar="FILE",
            help="The envelope to verify (default: the one 'dvflow attest' logged; with --pubkey).",
        ),
        click.option(
            "--builder",
            multiple=True,
            metavar="ID",
            help="Accept only attestations by this builder id (repeatable; with --pubkey).",
        ),
        click.option(
            "--files",
            metavar="DIR",
            help="Offline: check the model files in DIR; no store, no network (with --pubkey).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def verify_signed(
    target: str,
    path: str,
    tracking_uri: str | None,
    *,
    pubkey: tuple[str, ...],
    attestation: str | None,
    builder: tuple[str, ...],
    files: str | None,
) -> None:
    """``dvflow verify TARGET --pubkey PUB``: the checks, or the first failure (its exit code)."""
    from dvflow.export._verify_attest import verify_attestation

    from ._views import show_checks

    if not pubkey:
        raise click.UsageError("--attestation, --builder and --files need --pubkey PUB")
    result = verify_attestation(
        target,
        path,
        pubkeys=pubkey,
        attestation=attestation,
        builders=builder,
        files=files,
        tracking_uri=tracking_uri,
    )
    where = " (offline)" if result.offline else ""
    click.echo(f"verify {target} attestation {result.source}{where}")
    show_checks(result.checks)
    click.echo("attestation verified")
