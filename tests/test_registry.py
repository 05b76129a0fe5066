"""Registration (artifacts: and dvflow register) and the promote gate, on real stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import cli, git, predict_with, tracking_client
from dvflow.core._record import DIGEST_TAG
from history_repo import HistoryRepo, dvc, dvflow, set_param


def own_remote(root: Path, tmp_path: Path) -> Path:
    """Point the copy at a remote of its own and push everything to it."""
    remote = tmp_path / "remote"
    dvc(root, "remote", "modify", "--local", "storage", "url", str(remote))
    dvc(root, "push", "-q", "--all-commits")
    return remote


def object_path(remote: Path, md5: str) -> Path:
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def dep_md5(lock: dict[str, Any], stage: str, path: str) -> str:
    return str(next(d["md5"] for d in lock[stage]["deps"] if d["path"] == path))


def test_dvflow_run_registers_artifacts_models_with_their_lineage_tags(
    history: HistoryRepo,
) -> None:
    client = tracking_client(history.root)
    versions = {str(v.version): v for v in client.search_model_versions("name = 'lin-model'")}
    assert set(versions) == {"1", "2"}
    v1 = versions["1"]
    run = client.get_run(v1.run_id)
    assert run.data.tags["dvflow.stage"] == "train"
    tags = v1.tags
    assert tags["dvflow.git_commit"] == history.first
    assert tags["dvflow.git_dirty"] == "false"
    assert tags["dvflow.record_sha256"] == run.data.tags[DIGEST_TAG]
    import yaml

    lock = yaml.safe_load(git(history.root, "show", "v1.0:dvc.lock"))["stages"]
    outs = {o["path"]: o["md5"] for o in lock["train"]["outs"]}
    assert tags["dvflow.model_md5"] == outs["model/model.bin"]
    upstream = json.loads(tags["dvflow.upstream"])
    # Every upstream dataset by its DVC md5; code files are not datasets.
    assert upstream == {
        "features": dep_md5(lock, "train", "features"),
        "data/raw.txt": dep_md5(lock, "featurize", "data/raw.txt"),
        "data/words.txt": dep_md5(lock, "featurize", "data/words.txt"),
    }
    assert versions["2"].tags["dvflow.git_dirty"] == "true"
    assert v1.source.endswith(tags["dvflow.model_md5"][2:])


def test_a_new_version_only_when_the_model_md5_changes(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    # main's model was made by plain 'dvc repro': the stage is up to date, the md5 is new.
    # Up to date, so recorded only when asked (--record-noop).
    first = dvflow(root, "run", "--record-noop")
    second = dvflow(root, "run", "--record-noop")
    assert "model lin-model: registered version 3" in first
    assert "model lin-model: version 3 already has this md5" in second
    client = tracking_client(root)
    versions = client.search_model_versions("name = 'lin-model'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    assert second.count("up-to-date") >= 2


def test_a_model_logged_by_the_stage_is_registered_from_the_logged_model(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("logged")
    result = cli("run", "-C", str(root))
    assert result.returncode == 0, result.stderr
    client = tracking_client(root)
    (version,) = client.search_model_versions("name = 'logged-model'")
    assert version.source.startswith("models:/m-")
    assert version.tags["dvflow.model_path"] == "model.txt"
    assert "7" in predict_with(f"sqlite:///{root / 'mlflow.db'}", "models:/logged-model/1")


def test_register_a_stage_output_by_stage_name_with_an_alias(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    # On main the outputs come from plain 'dvc repro': no recorded run made them.
    refused = cli("register", "featurize", "--name", "lin-features", "-C", str(root))
    assert refused.returncode == 5
    assert "no recorded run made the current outputs" in refused.stderr
    git(root, "checkout", "-q", "experiment")
    dvc(root, "checkout", "-q")
    result = cli(
        "register", "featurize", "--name", "lin-features", "--alias", "candidate", "-C", str(root)
    )
    assert result.returncode == 0, result.stderr
    assert "registered lin-features version 1" in result.stdout
    again = cli("register", "featurize", "--name", "lin-features", "-C", str(root))
    assert "already registered as lin-features version 1" in again.stdout
    client = tracking_client(root)
    version = client.get_model_version_by_alias("lin-features", "candidate")
    assert version.tags["dvflow.model_md5"].endswith(".dir")
    assert json.loads(version.tags["dvflow.upstream"]).keys() == {"data/raw.txt", "data/words.txt"}


def test_register_takes_the_one_cached_output_and_asks_among_several(
    history_copy: HistoryRepo, make_project: Callable[..., Path]
) -> None:
    # train outputs the model and a cache: false metrics file: the model it is.
    root = history_copy.root
    run_id = tracking_client(root).get_model_version("lin-model", "1").run_id
    result = cli("register", run_id, "--name", "only-cached", "-C", str(root))
    assert result.returncode == 0, result.stderr
    version = tracking_client(root).get_model_version("only-cached", "1")
    assert version.tags["dvflow.model_path"] == "model/model.bin"

    two = make_project("basic")
    dvc_yaml = two / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace("- plot.csv:\n          cache: false", "- plot.csv")
    )
    assert cli("run", "-C", str(two)).returncode == 0
    result = cli("register", "train", "--name", "x", "-C", str(two))
    assert result.returncode == 2, result.stderr
    assert "several outputs DVC caches" in result.stderr
    assert "--path" in result.stderr and "model.txt, plot.csv" in result.stderr
    missing = cli("register", "train", "--name", "x", "--path", "nope.txt", "-C", str(two))
    assert missing.returncode == 5 and "no output 'nope.txt'" in missing.stderr


def test_promote_refuses_a_missing_remote_object_and_force_records_the_override(
    history_copy: HistoryRepo, tmp_path: Path
) -> None:
    root = history_copy.root
    remote = own_remote(root, tmp_path)
    md5 = tracking_client(root).get_model_version("lin-model", "1").tags["dvflow.model_md5"]
    object_path(remote, md5).unlink()
    refused = cli("promote", "lin-model", "1", "--alias", "production", "-C", str(root))
    assert refused.returncode == 1, refused.stderr
    assert "missing from the DVC remote: model/model.bin" in refused.stderr
    assert "dvc push --all-commits" in refused.stderr and "--force" in refused.stderr
    # Every check is shown, passed or failed.
    assert refused.stdout.count("pass") == 3 and refused.stdout.count("FAIL") == 1
    client = tracking_client(root)
    assert "production" not in client.get_registered_model("lin-model").aliases

    forced = cli("promote", "lin-model", "1", "--alias", "production", "--force", "-C", str(root))
    assert forced.returncode == 0, forced.stderr
    assert "forced" in forced.stdout
    version = client.get_model_version("lin-model", "1")
    assert client.get_registered_model("lin-model").aliases["production"] == 1
    override = json.loads(version.tags["dvflow.forced.production"])
    assert override["by"] == "Test User"
    assert any("missing from the DVC remote" in f for f in override["failed"])


def test_promote_refuses_a_dirty_run_whose_patch_is_gone(
    history_copy: HistoryRepo, tmp_path: Path
) -> None:
    root = history_copy.root
    own_remote(root, tmp_path)
    client = tracking_client(root)
    run_id = client.get_model_version("lin-model", "2").run_id
    artifacts = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (artifacts / "dvflow" / "code.patch").unlink()
    refused = cli("promote", "lin-model", "2", "--alias", "production", "-C", str(root))
    assert refused.returncode == 1
    assert "dirty work tree and no intact patch stored" in refused.stderr


def test_promote_passes_a_complete_lineage_and_moves_the_alias(
    history_copy: HistoryRepo, tmp_path: Path
) -> None:
    root = history_copy.root
    own_remote(root, tmp_path)
    first = cli("promote", "lin-model", "1", "--alias", "production", "-C", str(root))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("pass") == 4, first.stdout
    assert "alias @production -> lin-model version 1" in first.stdout
    moved = cli(
        "promote",
        "lin-model",
        "2",
        "--alias",
        "production",
        "--stage",
        "Production",
        "-C",
        str(root),
    )
    assert moved.returncode == 0, moved.stderr
    assert "dirty work tree; its patch is stored" in moved.stdout
    assert "Warning" not in moved.stderr
    client = tracking_client(root)
    assert client.get_registered_model("lin-model").aliases["production"] == 2
    assert client.get_model_version("lin-model", "2").current_stage == "Production"
    impact = cli("impact", "data/raw.txt", "-C", str(root))
    assert "lin-model v2  @production" in impact.stdout


def test_promote_refuses_a_tampered_record(history_copy: HistoryRepo, tmp_path: Path) -> None:
    root = history_copy.root
    own_remote(root, tmp_path)
    client = tracking_client(root)
    run_id = client.get_model_version("lin-model", "1").run_id
    artifacts = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    record = artifacts / "dvflow" / "record.json"
    record.write_bytes(record.read_bytes().replace(b'"ran"', b'"RAN"'))
    refused = cli("promote", "lin-model", "1", "--alias", "production", "-C", str(root))
    assert refused.returncode == 1
    assert "does not match its digest" in refused.stderr


def test_promote_an_unknown_version_is_not_found(history: HistoryRepo) -> None:
    result = cli("promote", "lin-model", "42", "--alias", "production", "-C", str(history.root))
    assert result.returncode == 5
    assert "no registered model 'lin-model' version 42" in result.stderr


def test_registry_tags_and_sources_carry_no_credentials(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    planted = "planted-pass-in-registry-remote"
    url = f"https://planted-user:{planted}@example.invalid/store"
    dvc(root, "remote", "add", "--local", "-f", "-d", "web", url)
    git(root, "remote", "add", "origin", f"https://bot:{planted}@example.invalid/team/repo.git")
    git(root, "checkout", "-q", "experiment")
    dvc(root, "checkout", "-q")
    set_param(root, "train", "alpha", "0.3")
    made = dvflow(root, "run")
    assert "model lin-model: registered version 3" in made
    result = cli("register", "featurize", "--name", "feat", "--alias", "c", "-C", str(root))
    assert result.returncode == 0, result.stderr
    client = tracking_client(root)
    new = client.get_model_version("lin-model", "3")
    assert new.source.startswith("https://***@example.invalid/store/files/md5/")
    for version in (new, client.get_model_version("feat", "1")):
        assert planted not in json.dumps(dict(version.tags)) + version.source


def test_a_bad_alias_or_name_is_a_usage_error_before_any_work(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    git(root, "checkout", "-q", "experiment")
    dvc(root, "checkout", "-q")
    for args in (
        ("register", "featurize", "--name", "feat", "--alias", "bad alias!"),
        ("register", "featurize", "--name", "bad/name"),
        ("promote", "lin-model", "1", "--alias", "v3"),
        ("promote", "lin-model", "1", "--alias", "latest"),
    ):
        result = cli(*args, "-C", str(root))
        assert result.returncode == 2, (args, result.stderr)
        assert "invalid" in result.stderr
    names = [m.name for m in tracking_client(root).search_registered_models()]
    assert "feat" not in names
