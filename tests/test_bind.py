"""dvflow bind: runs name the later commit that holds their results (DESIGN trap 2)."""

from __future__ import annotations

import pytest

import dvflow
from conftest import cli, git, tracking_client


def test_bind_tags_runs_with_the_commit_that_holds_their_outputs(make_project) -> None:
    root = make_project()
    first = dvflow.run_pipeline(root)
    assert first.commit == git(root, "rev-parse", "HEAD").strip()  # the code, not the result
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    result_commit = git(root, "rev-parse", "HEAD").strip()

    bound = cli("bind", cwd=root)
    assert bound.returncode == 0, bound.stderr
    assert f"bound 3 run(s) to commit {result_commit}" in bound.stdout
    client = tracking_client(root)
    for run_id in [first.run_id, *(s.run_id for s in first.stages)]:
        assert client.get_run(run_id).data.tags["dvflow.result_commit"] == result_commit
    shown = cli("show", first.stages[1].run_id, cwd=root)
    assert f"held by commit {result_commit}" in shown.stdout

    again = dvflow.bind_commit(root)
    assert again.bound == () and len(again.already_bound) == 2


def test_bind_leaves_runs_whose_outputs_the_commit_does_not_hold(make_project) -> None:
    root = make_project()
    dvflow.run_pipeline(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.1", "lr: 0.5"))
    second = dvflow.run_pipeline(root)  # not committed
    result = dvflow.bind_commit(root)
    assert second.stages[1].run_id not in result.bound
    assert second.stages[0].run_id in result.bound  # prepare's outputs did not change
    tags = tracking_client(root).get_run(second.stages[1].run_id).data.tags
    assert "dvflow.result_commit" not in tags


def test_bind_an_unknown_revision_is_a_clear_error(make_project) -> None:
    root = make_project()
    with pytest.raises(dvflow.GitError, match="no commit named 'nope'"):
        dvflow.bind_commit(root, "nope")
    result = cli("bind", "nope", cwd=root)
    assert result.returncode == 3 and "Traceback" not in result.stderr
