"""The entry point and its one error handler: ``error: <message>``, a hint, an exit code.

A traceback only with ``-v``.

Exit codes (also in docs/cli.md): 0 success; 1 a check failed (tampered
record, promote refused, verify failed); 2 usage error (or verify --rebuild
could not re-run); 3 project problem (not a repo, no dvc.yaml, broken YAML,
DVC refused, work tree locked); 4 tracking store unusable; 5 not found;
6 a pipeline stage failed; 7 environment problem (disk full, the store's
file locked, a folder or not a database, a database URI without its database
or driver); 10-14 ``check`` found drift; 20-25 ``verify --pubkey`` refused an
attestation; 30 a gc plan is stale or edited; 31 its --confirm is missing or wrong;
130 interrupted.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ._cli import cli
from ._options import State

if TYPE_CHECKING:
    from dvflow.core._exceptions import DvflowError


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every DvflowError into one clear message."""
    from dvflow.core._exceptions import DvflowError

    try:
        cli.main(args=argv, prog_name="dvflow", standalone_mode=False)
    except DvflowError as exc:
        shown = _out_of_space(exc) or exc
        _report(shown)
        sys.exit(shown.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "dvflow"
        click.echo(f"error: {exc.format_message()}", err=True)
        click.echo(f"hint: see '{command} --help'", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        from dvflow.stores._remote import escaped_client_error

        remote = escaped_client_error(exc)  # a cloud client's error is the remote's problem
        if remote is not None:
            _report(remote)
            sys.exit(remote.exit_code)
        machine = _environment_problem(exc)
        if machine is not None:
            _report(machine)
            sys.exit(machine.exit_code)
        _report(exc, f"unexpected {type(exc).__name__}: {exc}")
        click.echo("hint: this is a dvflow bug; run again with -v and report it", err=True)
        sys.exit(70)
    sys.exit(0)


def _environment_problem(exc: BaseException) -> DvflowError | None:
    """A full disk anywhere (DVC's cache, git, the spool...) is the machine's problem, exit 7."""
    import errno

    from dvflow.core._exceptions import EnvironmentProblemError

    if isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        what = (exc.strerror or "no space left on device").lower()
        where = f" ({exc.filename})" if exc.filename else ""
        problem = EnvironmentProblemError(
            f"{what}{where}",
            hint="Free some space there, then run the command again.",
        )
        problem.__cause__ = exc  # -v shows where it happened
        return problem
    return None


# How git and DVC say that the disk is full, in the messages dvflow passes on.
_NO_SPACE = ("no space left on device", "out of diskspace", "disk quota exceeded")


def _out_of_space(exc: DvflowError) -> DvflowError | None:
    """A git or DVC command that failed for want of disk space: exit 7, not 3.

    A stage's own failure stays exit 6, and a remote's stays the remote's (3).
    """
    from dvflow.core._exceptions import DvcError, EnvironmentProblemError, GitError, RemoteError

    if not isinstance(exc, (GitError, DvcError)) or isinstance(exc, RemoteError):
        return None
    if not any(words in exc.message.lower() for words in _NO_SPACE):
        return None
    problem = EnvironmentProblemError(
        exc.message, hint="Free some space on that disk, then run the command again."
    )
    problem.__cause__ = exc
    return problem


def _report(exc: BaseException, message: str | None = None) -> None:
    from dvflow.core._printable import printable
    from dvflow.core._redact import Redactor

    # Messages can quote URLs from DVC or MLflow; mask credential shapes in them,
    # and escape control characters of the names they quote.
    def redact(text: str) -> str:
        return printable(Redactor().redact(text), newlines=True)

    if State.verbose:
        import traceback

        traceback.print_exception(exc)
    text = message or str(getattr(exc, "message", None) or exc)
    click.echo(f"error: {redact(text)}", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        click.echo(f"hint: {redact(hint)}", err=True)
