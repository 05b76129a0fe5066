"""Bounded YAML: alias bombs, huge and deep files are refused, naming the file, never a hang.

A 1 KB YAML file can stand for 10^9 values through aliases ("billion
laughs"). PyYAML loads it fast, as shared references; whoever walks the
result (flattening params, JSON, hashing) then hangs. The commands below ran
for hours on such files: a subprocess timeout is the failure signal here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import cli, git, tracking_client
from dvflow import InvalidFileError
from dvflow.core import _yaml
from dvflow.core._dvcfiles import read_lock, read_metrics_file
from dvflow.core._history import parse_file, read_blobs, read_named
from dvflow.core._yaml import load_yaml_file, load_yaml_text

HANG = 60  # seconds: every command here takes a few; a hang would take hours


def list_bomb(indent: str = "", levels: int = 9, width: int = 9) -> str:
    """``width ** levels`` strings in a few hundred bytes."""
    lines = [f'{indent}l0: &l0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def mapping_bomb(indent: str = "", levels: int = 9, width: int = 9) -> str:
    """The same with mappings, which dvflow flattens into dotted keys."""
    lines = [f"{indent}m0: &m0 {{v: 1}}"]
    for i in range(1, levels + 1):
        refs = ", ".join(f"k{j}: *m{i - 1}" for j in range(width))
        lines.append(f"{indent}m{i}: &m{i} {{{refs}}}")
    return "\n".join(lines) + "\n"


def refused(call: object) -> InvalidFileError:
    with pytest.raises(InvalidFileError) as caught:
        call()  # type: ignore[operator]
    return caught.value


# -- the loader ----------------------------------------------------------------


@pytest.mark.parametrize("bomb", [list_bomb(), mapping_bomb()], ids=["lists", "mappings"])
def test_an_alias_bomb_is_refused_naming_the_file(bomb: str) -> None:
    error = refused(lambda: load_yaml_text(bomb, "abc12345:dvc.lock"))
    assert error.message.startswith("abc12345:dvc.lock: an alias bomb")
    assert error.exit_code == 3


def test_merge_keys_that_multiply_are_an_alias_bomb_too() -> None:
    text = "m0: &m0 {a: 1}\n" + "".join(
        f"m{i}: &m{i}\n  <<: [{', '.join([f'*m{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )
    assert "alias bomb" in refused(lambda: load_yaml_text(text, "params.yaml")).message


def test_an_alias_to_the_node_that_contains_it_is_refused() -> None:
    error = refused(lambda: load_yaml_text("a: &a [1, *a]\n", "params.yaml"))
    assert "refers to a node that contains it" in error.message


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    deep = "[" * (_yaml.MAX_DEPTH + 1) + "]" * (_yaml.MAX_DEPTH + 1)
    assert "nested deeper" in refused(lambda: load_yaml_text(deep, "m.yaml")).message
    nested = "a: " + "{b: " * (_yaml.MAX_DEPTH - 2) + "1" + "}" * (_yaml.MAX_DEPTH - 2)
    assert load_yaml_text(nested, "m.yaml")["a"]["b"]["b"]


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "dvc.lock"
    with path.open("wb") as handle:  # sparse: costs no disk
        handle.truncate(_yaml.MAX_BYTES + 1)
    error = refused(lambda: load_yaml_file(path))
    assert "larger than the 64 MB" in error.message and str(path) in error.message


def test_ordinary_anchors_aliases_and_merge_keys_still_load() -> None:
    text = "defaults: &d {lr: 0.1, epochs: 3}\nsmall: {<<: *d, lr: 0.01}\nlarge: *d\n" + "".join(
        f"m{i}: [{', '.join(['*d'] * 100)}]\n" for i in range(100)
    )
    data = load_yaml_text(text, "params.yaml")
    assert data["small"] == {"lr": 0.01, "epochs": 3} and data["large"]["epochs"] == 3
    assert len(data["m99"]) == 100


def test_reading_a_lock_or_metrics_file_with_a_bomb_names_the_file(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  s:\n    cmd: c\n    params:\n      params.yaml:\n"
        + list_bomb("        ")
    )
    assert str(lock) in refused(lambda: read_lock(lock)).message
    metrics = tmp_path / "m.yaml"
    metrics.write_text("acc: 1\n" + mapping_bomb())
    assert str(metrics) in refused(lambda: read_metrics_file(metrics)).message


def test_a_committed_alias_bomb_is_skipped_with_a_notice_naming_file_and_commit() -> None:
    lock = b"schema: '2.0'\nstages:\n  s:\n    cmd: c\n    params:\n      params.yaml:\n"
    lock += list_bomb("        ").encode()
    skipped: list[str] = []
    assert parse_file("sub/dvc.lock", lock, commit="0123456789abcdef", skipped=skipped) == []
    assert skipped == [skipped[0]] and skipped[0].startswith(
        "skipped sub/dvc.lock at commit 01234567: an alias bomb"
    )
    assert parse_file("sub/dvc.lock", lock) == []  # without a list: skipped, like broken YAML
    good = b"schema: '2.0'\nstages:\n  s:\n    cmd: c\n    outs:\n    - path: o\n      md5: " + (
        b"a" * 32 + b"\n"
    )
    pipeline = b"stages:\n" + mapping_bomb("  ").encode()
    entries = parse_file("dvc.lock", good, pipeline, commit="fedcba9876543210", skipped=skipped)
    assert [e.outs for e in entries] == [(("o", "a" * 32),)]
    assert skipped[1].startswith("skipped dvc.yaml at commit fedcba98: an alias bomb")


def test_a_committed_file_too_large_to_read_is_skipped_unread(tmp_path: Path) -> None:
    # Git keeps 64 MB of repeated lines in a few KB: reading them back is the cost.
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    big = b"schema: '2.0'\n" + b"# padding line\n" * (_yaml.MAX_BYTES // 15 + 1)
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    git(root, "add", "dvc.lock")
    git(root, "commit", "-qm", "small")
    sha = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=root,
            input=big,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    blob = read_blobs(root, [sha])[sha]
    assert blob == b"" and getattr(blob, "size", None) == len(big)
    assert len(read_blobs(root, [sha], max_size=None)[sha]) == len(big)  # when asked for
    assert read_named(root, ["HEAD:dvc.lock"])["HEAD:dvc.lock"].startswith(b"schema")
    skipped: list[str] = []
    assert parse_file("dvc.lock", blob, commit="ab" * 20, skipped=skipped) == []
    assert skipped == [
        f"skipped dvc.lock at commit abababab: {len(big):,} bytes: larger than the 64 MB "
        "dvflow reads"
    ]


# -- the commands ----------------------------------------------------------------


def _run(root: Path) -> None:
    result = cli("run", cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr
    git(root, "add", "-A")
    git(root, "commit", "-qm", "ran")


def _with_bomb_in_lock_params(lock: str) -> str:
    marker = "        prepare.factor: 2\n"
    assert marker in lock
    return lock.replace(marker, marker + list_bomb("        "), 1)


def test_run_refuses_a_dvc_lock_with_an_alias_bomb_under_params(make_project) -> None:
    root = make_project()
    _run(root)
    lock = root / "dvc.lock"
    lock.write_text(_with_bomb_in_lock_params(lock.read_text()))
    try:
        result = cli("run", cwd=root, timeout=HANG)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dvflow run hung on a 1 KB dvc.lock for {HANG} s")
    assert result.returncode == 3, result.stderr
    assert f"error: {lock}: an alias bomb" in result.stderr
    assert "Traceback" not in result.stderr


_REPORT = """\
lines = ["acc: 0.5", "m0: &m0 {v: 1}"]
for i in range(1, 10):
    refs = ", ".join(f"k{j}: *m{i - 1}" for j in range(9))
    lines.append(f"m{i}: &m{i} {{{refs}}}")
open("report.yaml", "w").write("\\n".join(lines) + "\\n")
"""


def test_a_metrics_yaml_with_an_alias_bomb_is_a_notice_and_the_stage_still_succeeds(
    make_project,
) -> None:
    root = make_project(commit=False)
    (root / "report.py").write_text(_REPORT)
    with (root / "dvc.yaml").open("a") as handle:
        handle.write(
            "  report:\n    cmd: python report.py\n    deps:\n      - report.py\n"
            "    metrics:\n      - report.yaml:\n          cache: false\n"
        )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "fixture project")
    try:
        result = cli("run", "report", cwd=root, timeout=HANG)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dvflow run hung on a metrics file for {HANG} s")
    assert result.returncode == 0, result.stderr
    assert "warning: metrics file report.yaml not logged: an alias bomb" in result.stderr
    client = tracking_client(root)
    experiment = client.get_experiment_by_name(root.name)
    runs = client.search_runs([experiment.experiment_id])
    stage = next(r for r in runs if r.data.tags.get("dvflow.stage") == "report")
    assert stage.info.status == "FINISHED" and stage.data.tags["dvflow.status"] == "ran"
    assert stage.data.metrics == {}
    parent = next(r for r in runs if r.data.tags.get("dvflow.kind") == "pipeline")
    assert parent.info.status == "FINISHED"


def test_lineage_impact_and_check_skip_an_alias_bomb_committed_on_another_branch(
    make_project,
) -> None:
    root = make_project(commit=False)
    with (root / "dvc.yaml").open("a") as handle:  # check draws the model's lineage
        handle.write("artifacts:\n  model:\n    path: model.txt\n    type: model\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "fixture project")
    _run(root)
    before = cli("check", cwd=root, timeout=HANG)
    branch = git(root, "branch", "--show-current").strip()
    git(root, "checkout", "-qb", "hostile")
    lock = root / "dvc.lock"
    good = lock.read_text()
    lock.write_text(_with_bomb_in_lock_params(good))
    git(root, "commit", "-qam", "a 1 KB dvc.lock that stands for 10^9 values")
    commit = git(root, "rev-parse", "HEAD").strip()[:8]
    lock.write_text(good + "# read again\n")  # a new dvc.lock, whose dvc.yaml is read too
    with (root / "dvc.yaml").open("a") as handle:
        handle.write(mapping_bomb())
    git(root, "commit", "-qam", "and a dvc.yaml")
    second = git(root, "rev-parse", "HEAD").strip()[:8]
    git(root, "checkout", "-q", branch)

    def query(*args: str) -> subprocess.CompletedProcess[str]:
        for index in (root / ".dvflow").glob("index*"):
            index.unlink()  # each command reads history afresh
        try:
            return cli(*args, cwd=root, timeout=HANG)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dvflow {args[0]} hung for {HANG} s on an alias bomb on another branch")

    for args in (("lineage", "model.txt"), ("impact", "data/raw.txt")):
        result = query(*args)
        assert result.returncode == 0, result.stderr
        assert f"warning: skipped dvc.lock at commit {commit}: an alias bomb" in result.stderr
        assert f"warning: skipped dvc.yaml at commit {second}: an alias bomb" in result.stderr
        assert "model.txt" in result.stdout
    result = query("check")
    assert result.returncode == before.returncode, result.stderr
    assert f"skipped dvc.lock at commit {commit}: an alias bomb" in result.stdout
    assert "warn  lineage" in result.stdout
    # With a personal-data mark, check's pii line reads the index first: the warnings stay.
    marked = cli("pii", "mark", "data/raw.txt", "--basis", "b", cwd=root, timeout=HANG)
    assert marked.returncode == 0, marked.stderr
    result = query("check")
    assert "pii" in result.stdout
    assert f"skipped dvc.lock at commit {commit}: an alias bomb" in result.stdout
