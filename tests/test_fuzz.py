"""Malformed and hostile files fed to every parser: the only failure is a DvflowError.

Property-based (hypothesis): random text and bytes, random YAML/JSON
documents of any shape, and known-hostile snippets (Python tags, alias
bombs, deep nesting, NaN, huge numbers, wrong types in the right places).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvflow import DvflowError
from dvflow.core import _yaml as yaml_file
from dvflow.core._config import read_config_file
from dvflow.core._dvcfiles import check_params_files, read_lock, read_metrics_file, read_pipeline
from dvflow.core._exceptions import UnsafeFileError
from dvflow.core._history import parse_file
from dvflow.core._record import parse_record

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOSTILE = [
    "!!python/object/apply:os.system ['echo pwned']",
    "a: &a [*a]",
    "a: &x ['lol','lol']\nb: &y [*x,*x,*x,*x,*x,*x,*x,*x]\nc: &z [*y,*y,*y,*y,*y,*y,*y,*y]\n"
    "d: [*z,*z,*z,*z,*z,*z,*z,*z]\n",
    "[" * 5000 + "]" * 5000,
    "stages: {s: {cmd: 1, deps: 7, outs: {path: 3}}}",
    "stages: [1, 2, 3]",
    "stages: {s: {outs: [{path: [1], md5: {a: 1}, size: 'big', files: 3}]}}",
    "outs: [{path: x, files: [{version_id: 1}, 7]}]\ndeps: [{repo: [1]}]",
    "key: .nan\nother: 1e400\nbig: 123456789012345678901234567890",
    "\t- tab indented",
    "a: 1\na: 2",
    "--- !!binary |\n  R0lGODlhDAAMAIQAAP//9/X17unp5WZmZgAAAOfn515eXvPz7Y6OjuDg4J+fn5",
    "\x00\x01\x02",
    "{",
    "",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
documents = (
    st.text(max_size=300)
    | st.sampled_from(HOSTILE)
    | json_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True))
    | st.dictionaries(
        st.sampled_from(["stages", "outs", "deps", "schema", "train", "artifacts", "metrics"]),
        json_values,
        max_size=3,
    ).map(lambda v: yaml.safe_dump(v, allow_unicode=True))
)


def only_dvflow_errors(call: Callable[[], Any]) -> None:
    """``call`` returns, or raises a DvflowError a user can read; nothing else."""
    try:
        call()
    except DvflowError as exc:
        error = exc
    else:
        return
    assert error.message
    assert error.exit_code in (1, 3, 5)


def in_folder(name: str, text: str, parse: Callable[[Path], Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        only_dvflow_errors(lambda: parse(root))


@SETTINGS
@given(documents)
def test_dvc_yaml(text: str) -> None:
    in_folder("dvc.yaml", text, read_pipeline)


@SETTINGS
@given(documents)
def test_dvc_lock(text: str) -> None:
    in_folder("dvc.lock", text, lambda root: read_lock(root / "dvc.lock"))


@SETTINGS
@given(documents)
def test_params_yaml(text: str) -> None:
    in_folder("params.yaml", text, lambda root: check_params_files(root, ["params.yaml"]))


@SETTINGS
@given(documents)
def test_dvflow_yaml(text: str) -> None:
    in_folder("dvflow.yaml", text, read_config_file)


@SETTINGS
@given(documents, st.sampled_from(["m.json", "m.yaml", "m.toml"]))
def test_metrics_files(text: str, name: str) -> None:
    in_folder(name, text, lambda root: read_metrics_file(root / name))


@SETTINGS
@given(documents | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_committed_dvc_files_never_raise(text: str) -> None:
    # History holds whatever was committed: a bad commit yields no entries, no error.
    for name in ("dvc.lock", "sub/dvc.lock", "data/x.dvc"):
        entries = parse_file(name, text.encode("utf-8", "surrogatepass"))
        assert isinstance(entries, list)


def valid_record() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "stage",
        "status": "FINISHED",
        "code": {"commit": "a" * 40, "branch": "main", "dirty": False},
        "environment": {"python": "3.11", "platform": "linux", "dvc": "3", "mlflow": "3"},
        "mlflow": {"tracking_uri": "x", "experiment_id": "1", "run_id": "r"},
        "started": "t",
        "ended": "t",
        "stage": {"name": "s", "cmd": "c", "status": "ran", "produced_by": None},
        "inputs": [{"path": "a", "md5": "0" * 32}],
        "outputs": [],
        "params": {},
        "metrics": {},
        "stages": [],
    }


@SETTINGS
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_record_bytes(raw: bytes) -> None:
    only_dvflow_errors(lambda: parse_record(raw))


@SETTINGS
@given(
    st.sampled_from(list(valid_record())),
    json_values,
    st.sampled_from(["code", "mlflow", "stage", "environment", "inputs"]),
    json_values,
)
def test_records_with_a_field_of_the_wrong_shape(
    key: str, value: Any, inner: str, inner_value: Any
) -> None:
    record = valid_record()
    record[key] = value
    if isinstance(record.get(inner), dict):
        record[inner] = {**record[inner], "commit": inner_value, "name": inner_value}
    elif isinstance(record.get(inner), list):
        record[inner] = [inner_value]
    only_dvflow_errors(lambda: parse_record(json.dumps(record).encode()))


@pytest.mark.parametrize("snippet", HOSTILE)
def test_every_hostile_snippet_in_every_file(snippet: str) -> None:
    for name, parse in (
        ("dvc.yaml", read_pipeline),
        ("dvc.lock", lambda root: read_lock(root / "dvc.lock")),
        ("params.yaml", lambda root: check_params_files(root, ["params.yaml"])),
        ("dvflow.yaml", read_config_file),
        ("m.yaml", lambda root: read_metrics_file(root / "m.yaml")),
    ):
        in_folder(name, snippet, parse)
    assert isinstance(parse_file("dvc.lock", snippet.encode()), list)


def alias_document(levels: int, width: int, mapping: bool, under_params: bool) -> str:
    """``width ** levels`` values in a few lines of anchors and aliases, top-level or in params."""
    indent = "        " if under_params else ""
    lines = [f"{indent}a0: &a0 {{v: 1}}" if mapping else f"{indent}a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        refs = [f"k{j}: *a{i - 1}" if mapping else f"*a{i - 1}" for j in range(width)]
        lines.append(f"{indent}a{i}: &a{i} " + ("{%s}" if mapping else "[%s]") % ", ".join(refs))
    head = "schema: '2.0'\nstages:\n  s:\n    cmd: c\n    params:\n      params.yaml:\n"
    return (head if under_params else "") + "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.integers(1, 12), st.booleans(), st.booleans())
def test_aliases_in_every_yaml_file_are_read_or_refused_never_expanded_past_the_limit(
    levels: int, width: int, mapping: bool, under_params: bool
) -> None:
    # Read, a document's values are walked whole (flattened, hashed, dumped):
    # small expansions are read, large ones refused, whichever file it is.
    text = alias_document(levels, width, mapping, under_params)
    values = width**levels
    readers: list[tuple[str, Callable[[Path], Any]]] = [
        ("dvc.yaml", lambda root: yaml_file.load_yaml_file(root / "dvc.yaml")),
        ("dvc.lock", lambda root: read_lock(root / "dvc.lock")),
        ("params.yaml", lambda root: check_params_files(root, ["params.yaml"])),
        ("dvflow.yaml", read_config_file),
        ("m.yaml", lambda root: read_metrics_file(root / "m.yaml")),
    ]
    for name, parse in readers:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / name).write_text(text, encoding="utf-8")
            refusal = ""
            try:
                json.dumps(parse(root), default=str)  # read: walked whole
            except UnsafeFileError as exc:
                refusal = exc.message
            except DvflowError:  # wrong shape for that file: a clear error too
                pass
        if refusal:
            assert values > 50_000 and "alias bomb" in refusal and name in refusal
        else:
            assert values <= yaml_file.MAX_ALIAS_NODES
    skipped: list[str] = []
    entries = parse_file("dvc.lock", text.encode(), commit="c" * 40, skipped=skipped)
    if skipped:
        assert values > 50_000 and skipped[0].startswith("skipped dvc.lock at commit cccccccc")
    else:
        assert values <= yaml_file.MAX_ALIAS_NODES
        assert sum(len(e.params) for e in entries) <= (levels + 1) * values


HOSTILE_PATHS = [
    "../x",
    "..",
    "a/../../x",
    "a/..",
    "/etc/passwd",
    "//server/share",
    "C:\\x",
    "\\\\server\\x",
    "a\\..\\..\\x",
    "link/x",
    "link",
    "ok/../link/x",
    "a\x00b",
    "s3://bucket/key",
    "",
    "x" * 5000,
    "\ud800",
]
hostile_paths = (
    st.sampled_from(HOSTILE_PATHS)
    | st.lists(st.sampled_from(["a", "..", ".", "", "link", "\\", "b c", "/"]), max_size=6).map(
        "/".join
    )
    | st.text(max_size=40)
)


@SETTINGS
@given(hostile_paths, json_values | st.sampled_from(["0" * 32, "0" * 32 + ".dir", "../" * 11]))
def test_records_with_hostile_paths_never_lead_outside(path: str, md5: Any) -> None:
    """A record's pointer, and a .dir listing's entry, lead inside the worktree or are refused."""
    from dvflow.core._dvcfiles import Pointer
    from dvflow.stores._confine import checked_listing, checked_md5, confined

    record = valid_record()
    record["inputs"] = [{"path": path, "md5": md5}]
    try:
        pointers = parse_record(json.dumps(record).encode()).inputs
    except DvflowError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        (tree / "link").symlink_to(tmp)  # a symbolic link out of the worktree
        before = sorted(Path(tmp).rglob("*"))
        for pointer in (*pointers, Pointer(path, None)):
            for check in (
                lambda p=pointer: confined(tree, p.path, "r", "input"),
                lambda p=pointer: checked_listing([{"relpath": p.path, "md5": md5}], "r", "d"),
                lambda p=pointer: checked_md5(p.md5, "r", "input"),
            ):
                refused: DvflowError | None = None
                try:
                    found = check()
                except DvflowError as exc:
                    refused = exc
                if refused is not None:
                    assert refused.exit_code == 1 and refused.message
                    continue
                if isinstance(found, Path):
                    assert found.resolve().is_relative_to(tree.resolve())
                    on_the_way = [found, *found.parents]
                    inner = [q for q in on_the_way if q.is_relative_to(tree.resolve())]
                    assert not any(q.is_symlink() for q in inner)
        assert sorted(Path(tmp).rglob("*")) == before
