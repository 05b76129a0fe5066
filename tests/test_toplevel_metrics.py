"""Top-level ``metrics:``/``plots:`` (DVC 3, DVCLive): recorded on the stage that owns them.

The fixture (tests/projects/dvclive) writes what DVCLive writes, in plain
Python: ``dvclive/metrics.json`` and a step history per metric, declared at
the top level of dvc.yaml inside the ``train`` stage's output directory; an
``evaluate`` stage downstream whose metrics file lies in its output
directory under a templated path (``results/evaluate//metrics.json``); and
``nested/dvc.yaml`` with example-get-started-experiments' ``results/train``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, dvc, git, stage_runs, tracking_client


def run(root: Path, *args: str) -> None:
    result = cli("run", *args, "-C", str(root))
    assert result.returncode == 0, result.stderr


def artifact_paths(root: Path, run_id: str, folder: str = "") -> set[str]:
    client = tracking_client(root)
    found: set[str] = set()
    for item in client.list_artifacts(run_id, folder):
        found |= artifact_paths(root, run_id, item.path) if item.is_dir else {item.path}
    return found


def history(root: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    points = tracking_client(root).get_metric_history(run_id, key)
    return sorted((p.step, p.value) for p in points)


@pytest.fixture
def recorded(make_project: Callable[..., Path]) -> Path:
    """The dvclive project, both pipelines run by dvflow, committed and pushed."""
    root = make_project("dvclive")
    run(root)
    run(root, "nested/dvc.yaml")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    pushed = dvc(root, "push", "-q")
    assert pushed.returncode == 0, pushed.stderr
    return root


def test_dvclive_metrics_history_and_plots_are_recorded_on_the_training_run(
    recorded: Path,
) -> None:
    runs = stage_runs(recorded)
    client = tracking_client(recorded)
    train = client.get_run(runs["train"])
    assert train.data.metrics == {"train.loss": 0.59049, "step": 4.0}
    assert history(recorded, runs["train"], "train.loss") == [
        (0, 0.9),
        (1, 0.81),
        (2, 0.729),
        (3, 0.6561),
        (4, 0.59049),
    ]
    assert "plots/dvclive/plots/metrics/train/loss.tsv" in artifact_paths(
        recorded, runs["train"], "plots"
    )
    record = json.loads(cli("show", runs["train"], "--json", "-C", str(recorded)).stdout)
    assert record["metrics"] == {"train.loss": 0.59049, "step": 4.0}


def test_metrics_dvclive_declares_during_the_first_run_are_recorded_on_that_run(
    make_project: Callable[..., Path],
) -> None:
    # DVCLive writes its top-level metrics: and plots: into dvc.yaml while the
    # stage's first run goes on: they were not there when the run was planned.
    root = make_project("dvclive", commit=False)
    pipeline = root / "dvc.yaml"
    text = pipeline.read_text()
    pipeline.write_text(text[: text.index("metrics:")] + text[text.index("artifacts:") :])
    with (root / "train.py").open("a") as script:
        script.write(
            "\nfrom pathlib import Path\n"
            "Path('dvc.yaml').write_text(Path('dvc.yaml').read_text()\n"
            "    + 'metrics:\\n- dvclive/metrics.json\\nplots:\\n- dvclive/plots/metrics:\\n'\n"
            "    + '    x: step\\n')\n"
        )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "no top-level metrics yet")
    run(root)
    assert "- dvclive/metrics.json" in pipeline.read_text()  # the script declared them
    train = stage_runs(root)["train"]
    assert tracking_client(root).get_run(train).data.metrics == {"train.loss": 0.59049, "step": 4.0}
    assert len(history(root, train, "train.loss")) == 5
    assert "plots/dvclive/plots/metrics/train/loss.tsv" in artifact_paths(root, train, "plots")


def test_a_templated_top_level_metrics_file_belongs_to_the_stage_whose_directory_holds_it(
    recorded: Path,
) -> None:
    runs = stage_runs(recorded)
    client = tracking_client(recorded)
    # MLflow refuses '@' in a name: logged as 'recall_5', the record keeps the file's name.
    assert client.get_run(runs["evaluate"]).data.metrics == {"acc": 0.9, "recall_5": 1.0}
    record = json.loads(cli("show", runs["evaluate"], "--json", "-C", str(recorded)).stdout)
    assert record["metrics"] == {"acc": 0.9, "recall@5": 1.0}
    assert artifact_paths(recorded, runs["evaluate"], "plots") == set()


def test_top_level_paths_of_a_dvcyaml_in_a_subfolder_are_relative_to_it(recorded: Path) -> None:
    fit = stage_runs(recorded)["nested/dvc.yaml:fit"]
    assert tracking_client(recorded).get_run(fit).data.metrics == {"eval.acc": 0.8, "step": 2.0}
    assert history(recorded, fit, "eval.acc") == [(0, 0.5), (1, 0.7), (2, 0.8)]
    assert artifact_paths(recorded, fit, "plots") == {
        "plots/nested/results/train/plots/metrics/eval/acc.tsv"
    }


# evaluate: its metrics file is declared under a templated path (resolved by DVC).
@pytest.mark.parametrize("stage", ["train", "evaluate", "nested/dvc.yaml:fit"])
def test_a_rebuild_whose_directory_differs_only_in_non_metric_files_is_equivalent(
    recorded: Path, stage: str
) -> None:
    result = cli("verify", stage_runs(recorded)[stage], "--rebuild", "-C", str(recorded))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("equivalent")
    assert "OUTSIDE tolerance" not in result.stdout


def test_diff_of_two_model_versions_shows_their_own_and_their_evaluations_metrics(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("dvclive")
    run(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "lr 0.1")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.1", "lr: 0.2"))
    run(root)
    result = cli("diff", "models:/churn-model/1", "models:/churn-model/2", "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert "metric   train.loss  0.59049 -> 0.32768 (-0.26281)" in result.stdout
    assert "metrics of evaluate (consumed this model): run " in result.stdout
    assert "metric   evaluate: acc  0.9 -> 0.8 (-0.1)" in result.stdout
    data = json.loads(
        cli(
            "diff", "models:/churn-model/1", "models:/churn-model/2", "--json", "-C", str(root)
        ).stdout
    )
    [evaluate] = data["consumers"]
    runs = stage_runs(root)
    assert evaluate["stage"] == "evaluate" and evaluate["b_run"] == runs["evaluate"]
    assert evaluate["metrics"]["acc"]["old"] == 0.9 and evaluate["metrics"]["acc"]["new"] == 0.8


def test_a_history_is_keyed_like_its_final_value_when_a_stage_has_several_metrics_files() -> None:
    from dvflow.core._declared import history_key

    tsv = "results/train/plots/metrics/eval/acc.tsv"
    assert history_key(tsv, ["results/train/metrics.json"]) == "eval.acc"
    several = ["results/train/metrics.json", "scores.json"]
    assert history_key(tsv, several) == "results/train/metrics.json:eval.acc"
    assert history_key("results/train/plots/images/x.tsv", several) is None
    # In a 'dvc init --subdir' project, files are named from the Git root.
    assert history_key(tsv, several, "sub") == "sub/results/train/metrics.json:eval.acc"


def test_a_final_value_that_ends_its_history_is_not_logged_twice() -> None:
    from dvflow.core._declared import MetricPoint, metric_points

    history = [MetricPoint("loss", 0.5, 1000, 0), MetricPoint("loss", 0.25, 2000, 1)]
    points = metric_points({"loss": 0.25, "step": 1.0}, history, now_ms=5000)
    assert points == [*history, MetricPoint("step", 1.0, 5000, 0)]
    # A final value the history does not end with wins at the last step.
    assert metric_points({"loss": 0.2}, history, now_ms=5000)[-1] == MetricPoint(
        "loss", 0.2, 5000, 1
    )
