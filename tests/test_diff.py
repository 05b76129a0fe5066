"""diff of two recorded runs or model versions, on the real history repository."""

from __future__ import annotations

import json

from conftest import cli, tracking_client
from history_repo import HistoryRepo, dvflow


def test_diff_of_two_model_versions_names_param_metric_data_and_patch(
    history: HistoryRepo,
) -> None:
    result = cli("diff", "models:/lin-model/1", "models:/lin-model/2", "-C", str(history.root))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "param    train.alpha  0.5 -> 0.9" in out
    assert "metric   score  1.0 -> 1.8 (+0.8)" in out
    assert "data     model/model.bin  " in out
    assert "B's uncommitted patch changes: params.yaml" in out
    data = json.loads(
        cli(
            "diff", "models:/lin-model/1", "models:/lin-model/2", "--json", "-C", str(history.root)
        ).stdout
    )
    assert data["params"] == {"train.alpha": ["0.5", "0.9"]}
    assert (
        data["metrics"]["score"]["delta"] == 0.8
        or abs(data["metrics"]["score"]["delta"] - 0.8) < 1e-9
    )
    assert data["a"]["commit"] == history.first and data["b"]["dirty"] is True


def test_diff_of_directory_outputs_lists_the_files_that_changed(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    # main: featurize.n 3, outputs made by plain 'dvc repro' before
    dvflow(root, "run", "--record-noop")
    client = tracking_client(root)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`dvflow.stage` = 'featurize'",
        order_by=["attributes.start_time ASC"],
    )
    first, last = runs[0].info.run_id, runs[-1].info.run_id
    result = cli("diff", first, last, "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert "param    featurize.n  2 -> 3" in result.stdout
    assert "data     features  " in result.stdout
    assert "           ~ raw.txt.feat" in result.stdout
    assert "           ~ words.txt.feat" in result.stdout
    assert "B is 2 commit(s) ahead of A" in result.stdout


def test_diff_of_an_unknown_run_is_not_found(history: HistoryRepo) -> None:
    result = cli("diff", "0" * 32, "models:/lin-model/1", "-C", str(history.root))
    assert result.returncode == 5
    assert "Traceback" not in result.stderr
