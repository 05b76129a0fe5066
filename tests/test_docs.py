"""Every command has help text and is documented; the README's commands are CI's."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvflow.cli._cli import cli

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


def _code(markdown: str) -> str:
    """The fenced blocks and inline code spans of a Markdown page."""
    import re

    blocks = re.findall(r"```[a-z]*\n(.*?)```", markdown, re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL))
    return "\n".join(blocks + spans)


def test_team_page_names_only_real_commands_flags_and_remote_options() -> None:
    import re

    from dvc.config_schema import REMOTE_SCHEMAS

    code = _code((ROOT / "docs" / "team.md").read_text())
    used = re.findall(r"\bdvflow (\w+)((?: +--?[\w-]+)*)", code)
    assert {name for name, _ in used} >= {"run", "sync", "doctor", "init", "lineage", "impact"}
    for name, flags in used:
        assert name in cli.commands, name
        known = {o for p in cli.commands[name].params for o in p.opts + p.secondary_opts}
        for flag in flags.split():
            assert flag in known, (name, flag)
    remote_options = {
        str(getattr(key, "schema", key)) for schema in REMOTE_SCHEMAS.values() for key in schema
    }
    options = re.findall(r"dvc remote modify (?:--local )?\w+ (\w+)", code)
    assert {"jobs", "endpointurl", "version_aware", "connection_string"} <= set(options)
    assert set(options) <= remote_options, set(options) - remote_options
