"""Every command has help text and is documented; the README's commands are CI's."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvflow._cli import cli

ROOT = Path(__file__).parent.parent
COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_is_documented(name: str) -> None:
    command = cli.commands[name]
    assert command.help and len(command.help) > 20
    assert f"dvflow {name}" in (ROOT / "docs" / "cli.md").read_text()
    assert f"dvflow {name}" in (ROOT / "README.md").read_text()


def test_exit_codes_in_docs_match_the_errors() -> None:
    import dvflow

    docs = (ROOT / "docs" / "cli.md").read_text()
    codes = {
        getattr(dvflow, name).exit_code
        for name in dvflow.__all__
        if isinstance(getattr(dvflow, name), type)
        and issubclass(getattr(dvflow, name), dvflow.DvflowError)
    }
    for code in codes | {0, 2}:
        assert f"| {code} |" in docs


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme
