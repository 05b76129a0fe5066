"""Bad input gets one clear message, a hint and a documented exit code."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import dvflow
from conftest import cli, git, tracking_client
from dvflow.core._record import RECORD_ARTIFACT


def _assert_clean_error(result, code: int, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[errors[0] + 1].startswith("hint: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_outside_a_git_repository(tmp_path: Path) -> None:
    _assert_clean_error(cli("run", cwd=tmp_path), 3, "not inside a git repository", "dvflow init")


def test_run_in_a_git_repository_without_dvc(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    _assert_clean_error(cli("run", cwd=tmp_path), 3, "not a DVC project", "dvflow init")


def test_run_without_dvc_yaml(make_project) -> None:
    root = make_project()
    (root / "dvc.yaml").unlink()
    _assert_clean_error(cli("run", cwd=root), 3, "no dvc.yaml")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dvc.yaml", "stages:\n  train:\n    cmd: [python train.py\n"),
        ("dvc.lock", "schema: '2.0'\nstages: {train: [\n"),
        ("params.yaml", "train:\n  lr: 0.1\n   epochs: 3\n"),
        ("dvflow.yaml", "tracking_uri: [unclosed\n"),
    ],
)
def test_broken_yaml_is_reported_with_its_line(make_project, name: str, text: str) -> None:
    root = make_project()
    (root / name).write_text(text)
    result = cli("run", cwd=root)
    _assert_clean_error(result, 3, name, "invalid YAML (line")
    assert not (root / "data" / "clean").exists()


def test_unknown_setting_in_dvflow_yaml_is_refused(make_project) -> None:
    root = make_project()
    (root / "dvflow.yaml").write_text("tracking_url: sqlite:///mlflow.db\n")
    _assert_clean_error(cli("run", cwd=root), 3, "unknown setting(s): tracking_url")


def test_unreachable_tracking_server_fails_before_any_stage_when_required(make_project) -> None:
    root = make_project()
    uri = f"http://127.0.0.1:{_free_port()}"
    result = cli("run", "--require-tracking", "--tracking-uri", uri, cwd=root)
    _assert_clean_error(result, 4, uri, "unreachable")
    assert not (root / "data" / "clean").exists()
    assert not (root / "dvc.lock").exists()


def test_unreachable_server_from_environment_is_reported_when_required(make_project) -> None:
    root = make_project()
    (root / "dvflow.yaml").write_text("require_tracking: true\n")
    uri = f"http://127.0.0.1:{_free_port()}"
    result = cli("run", cwd=root, env={"DVFLOW_TRACKING_URI": uri})
    _assert_clean_error(result, 4, "unreachable")
    assert not (root / ".dvflow" / "spool").exists()


def test_show_unknown_run_id(make_project) -> None:
    root = make_project()
    dvflow.run_pipeline(root)
    _assert_clean_error(cli("show", "0" * 32, cwd=root), 5, "no run '" + "0" * 32)


def test_show_run_without_record(make_project) -> None:
    root = make_project()
    client = tracking_client(root)
    experiment = client.create_experiment("other")
    run = client.create_run(experiment)
    _assert_clean_error(cli("show", run.info.run_id, cwd=root), 5, "no dvflow provenance record")


def test_tampered_record_is_detected(make_project) -> None:
    root = make_project()
    result = dvflow.run_pipeline(root)
    run_id = result.stages[1].run_id
    artifact_uri = tracking_client(root).get_run(run_id).info.artifact_uri
    path = Path(artifact_uri.removeprefix("file://")) / RECORD_ARTIFACT
    path.write_text(
        path.read_text()
        .replace('"lr":"0.1"', '"lr":"0.01"')
        .replace('"train.lr":"0.1"', '"train.lr":"0.01"')
    )

    shown = cli("show", run_id, cwd=root)
    _assert_clean_error(shown, 1, "tampered", run_id)
    assert "train.lr = 0.01" in shown.stdout  # what was shown is what is stored
    with pytest.raises(dvflow.RecordTamperedError):
        dvflow.load_record(run_id, root)


def test_record_replaced_by_garbage_is_reported_as_tampered(make_project) -> None:
    root = make_project()
    result = dvflow.run_pipeline(root)
    run_id = result.stages[0].run_id
    artifact_uri = tracking_client(root).get_run(run_id).info.artifact_uri
    (Path(artifact_uri.removeprefix("file://")) / RECORD_ARTIFACT).write_text("{not json")
    _assert_clean_error(cli("show", run_id, cwd=root), 1, "tampered")


def test_verbose_flag_shows_the_traceback(tmp_path: Path) -> None:
    result = cli("-v", "run", cwd=tmp_path)
    assert result.returncode == 3
    assert "Traceback" in result.stderr


def test_usage_error_exits_2() -> None:
    _assert_clean_error(cli("run", "--no-such-flag"), 2, "No such option", "dvflow run --help")
    _assert_clean_error(cli("show"), 2, "Missing argument 'RUN_ID'")


def test_missing_param_is_caught_before_any_stage_runs(make_project) -> None:
    root = make_project()
    dvflow.run_pipeline(root)
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("- prepare.factor", "- prepare.scale"))
    result = cli("run", cwd=root)
    _assert_clean_error(result, 3, "params.yaml", "prepare.scale")
    assert (root / "data" / "clean" / "scaled.txt").exists()  # DVC removed nothing
    assert (root / "model.txt").exists()


def test_missing_command_is_named(make_project) -> None:
    root = make_project()
    (root / "dvc.yaml").write_text("stages:\n  x:\n    cmd: no-such-tool --go\n")
    _assert_clean_error(cli("run", cwd=root), 6, "exited with 127 (command not found)")


def test_show_outside_a_project_writes_nothing(tmp_path: Path) -> None:
    _assert_clean_error(cli("show", "0" * 32, cwd=tmp_path), 4, "no store there yet")
    assert list(tmp_path.iterdir()) == []
    missing = tmp_path / "missing"
    _assert_clean_error(cli("show", "x", "-C", str(missing)), 3, "no such folder")
    assert not missing.exists()


def test_show_against_an_unreachable_server_fails_fast(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    result = cli("show", "0" * 32, "--tracking-uri", uri, cwd=tmp_path, timeout=30)
    _assert_clean_error(result, 4, "unreachable")


@pytest.mark.parametrize("command", ["init", "demo"])
def test_a_folder_that_cannot_be_made_is_reported(tmp_path: Path, command: str) -> None:
    (tmp_path / "afile").write_text("x")
    _assert_clean_error(cli(command, str(tmp_path / "afile" / "sub")), 3, "cannot create")
    _assert_clean_error(cli(command, str(tmp_path / "afile")), 2, "is a file")


def test_unknown_stage_name_points_to_the_stage_list(make_project) -> None:
    root = make_project()
    _assert_clean_error(cli("run", "nosuchstage", cwd=root), 3, "nosuchstage", "dvc stage list")


def test_error_messages_mask_credentials_in_urls(make_project) -> None:
    root = make_project()
    uri = f"http://alice:s3cr3t-pw@127.0.0.1:{_free_port()}"
    result = cli("run", "--require-tracking", "--tracking-uri", uri, cwd=root)
    _assert_clean_error(result, 4, "http://***@127.0.0.1")
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    # Not required: the run records to the spool, which must not keep the password either.
    spooled = cli("run", "--tracking-uri", uri, cwd=root)
    assert spooled.returncode == 0, spooled.stderr
    assert "http://***@127.0.0.1" in spooled.stderr
    assert "s3cr3t-pw" not in spooled.stderr + spooled.stdout
    files = [p for p in (root / ".dvflow" / "spool").rglob("*") if p.is_file()]
    assert any(p.name == "record.json" for p in files)
    assert not [p for p in files if b"s3cr3t-pw" in p.read_bytes()]


def test_a_tracking_url_with_a_typo_is_named(make_project) -> None:
    root = make_project()
    (root / "dvflow.yaml").write_text("tracking_uri: http//127.0.0.1:5000\n")
    _assert_clean_error(cli("run", cwd=root), 3, "looks like a URL with a typo")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("governance: [prices]\n", "'governance' must be a mapping"),
        ("governance:\n  price: {s3: 1}\n", "unknown governance setting(s): price"),
        ("governance:\n  grace_days: -1\n", "'governance.grace_days' must be a whole number"),
        ("governance:\n  prices: {s3: cheap}\n", "'governance.prices.s3' must be a price"),
        ("governance:\n  sanitisers: {prepare: {keeps: [a]}}\n", "'governance.sanitisers.prepare'"),
        ("governance:\n  sanitisers: {prepare: {drops: email}}\n", "drops' must be a list"),
    ],
)
def test_a_malformed_governance_setting_is_refused(make_project, text: str, message: str) -> None:
    root = make_project()
    (root / "dvflow.yaml").write_text(text)
    _assert_clean_error(cli("run", cwd=root), 3, message)


def test_governance_settings_are_read(tmp_path) -> None:
    from dvflow.core._config import load_config

    (tmp_path / "dvflow.yaml").write_text(
        "governance:\n  grace_days: 0\n  prices: {s3: 0.02}\n"
        "  sanitisers: {prepare: {drops: [email], masks: [phone]}}\n"
    )
    settings = load_config(tmp_path, environ={}).governance
    assert settings.grace_days == 0
    assert settings.prices == {"s3": 0.02}
    assert settings.sanitisers["prepare"].drops == ("email",)
    assert settings.sanitisers["prepare"].masks == ("phone",)
    assert load_config(tmp_path.parent, environ={}).governance.grace_days == 7
