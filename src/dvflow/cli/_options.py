"""Flags that several commands share."""

from __future__ import annotations

from typing import Any

import click


def project_options(command: Any) -> Any:
    """``-C DIR`` and ``--tracking-uri URI``, shared by the commands that use a project."""
    command = click.option(
        "--tracking-uri", metavar="URI", help="MLflow store (overrides dvflow.yaml)."
    )(command)
    return click.option(
        "-C",
        "--cwd",
        "path",
        default=".",
        type=click.Path(file_okay=False),
        callback=_not_empty,
        help="Project folder (default: current).",
    )(command)


def _not_empty(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``-C ""`` is a slip (an unset shell variable), not a request for the current folder."""
    if value == "":
        raise click.BadParameter("an empty folder name; leave -C out for the current folder")
    return value


_FORMATS = {
    "tree": "A readable tree (the default).",
    "json": "JSON (schema: docs/lineage.schema.json).",
    "dot": "Graphviz DOT.",
    "mermaid": "Mermaid flowchart (GitHub pages, CI summaries).",
}


def graph_options(command: Any) -> Any:
    for name, help_text in reversed(_FORMATS.items()):
        command = click.option(f"--{name}", f"fmt_{name}", is_flag=True, help=help_text)(command)
    command = click.option(
        "--offline", is_flag=True, help="Answer from the index without reading the store."
    )(command)
    command = click.option(
        "--sync", is_flag=True, help="Re-read the tracking store before answering."
    )(command)
    return project_options(command)


def output_format(flags: dict[str, bool]) -> str:
    chosen = [name for name in _FORMATS if flags.get(f"fmt_{name}")]
    if len(chosen) > 1:
        raise click.UsageError(
            f"give one output format, not {' and '.join('--' + c for c in chosen)}"
        )
    return chosen[0] if chosen else "tree"


def store_sync(command: Any) -> Any:
    """``--sync`` of the commands that read runs: the store itself, not the lineage index."""
    return click.option(
        "--sync",
        is_flag=True,
        help="Read the runs from the tracking store, not the lineage index (and update it).",
    )(command)


def sync_choice(sync: bool, offline: bool) -> bool | None:
    if sync and offline:
        raise click.UsageError("give --sync or --offline, not both")
    return True if sync else False if offline else None


class State:
    """What the group's own flags set for the whole command (``-v``)."""

    verbose = False


def protect_option(command: Any) -> Any:
    """``--protect``: which model versions' lineage gc keeps (DVC objects and MLflow runs)."""
    return click.option(
        "--protect",
        type=click.Choice(["aliased", "registered"]),
        default="aliased",
        show_default=True,
        help="Model versions whose lineage is kept: those with an alias or tagged "
        "dvflow.keep, or every registered version.",
    )(command)
