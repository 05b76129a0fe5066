"""A stage's params, metrics and tags go in one request; a refused one falls back, kind by kind."""

from __future__ import annotations

import dvflow
from conftest import git, tracking_client
from dvflow.core._record import DIGEST_TAG


def test_a_param_the_script_logged_with_another_value_is_skipped_and_the_rest_logged(
    make_project,
) -> None:
    root = make_project()
    script = root / "train.py"
    script.write_text(
        script.read_text()
        + "\nimport mlflow\n\nwith mlflow.start_run():\n    mlflow.log_param('train.lr', '0.999')\n"
    )
    git(root, "commit", "-qam", "the script logs a param itself")

    result = dvflow.run_pipeline(root)

    train = result.stages[1]
    assert train.status == "ran" and train.skipped_params == ("train.lr",)
    run = tracking_client(root).get_run(train.run_id)
    assert run.data.params["train.lr"] == "0.999"  # the script's, MLflow keeps the first
    assert run.data.params["train.epochs"] == "3" and "dvflow.io_sha256" in run.data.params
    assert {"loss", "eval.acc", "eval.n"} <= set(run.data.metrics)
    assert run.data.tags["dvflow.status"] == "ran" and DIGEST_TAG in run.data.tags
    assert dvflow.load_record(train.run_id, root).params["train.lr"] == "0.1"


def test_a_recorded_stage_run_holds_params_metrics_and_tags_from_one_batch(make_project) -> None:
    root = make_project()

    result = dvflow.run_pipeline(root)

    train = tracking_client(root).get_run(result.stages[1].run_id)
    assert train.data.params == {
        "train.lr": "0.1",
        "train.epochs": "3",
        "dvflow.io_sha256": train.data.params["dvflow.io_sha256"],
    }
    assert set(train.data.metrics) == {"loss", "eval.acc", "eval.n"}
    assert train.data.tags["dvflow.outputs_key"] and DIGEST_TAG in train.data.tags
    assert result.stages[1].skipped_params == ()
