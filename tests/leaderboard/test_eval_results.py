"""Hub eval results: `empathy submit --model-repo` opens a pull request on the model repo adding
.eval_results/empathy.yaml in huggingface_hub's own format (loopback Hub); a missing repo or a read-only token is
refused before anything is written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, parse_eval_result_entries

from harness.cli.main import main
from harness.evaluate.runs import load_run
from leaderboard.admit import run_id
from leaderboard.eval_results import EVAL_RESULTS_FILE, eval_entries, run_fingerprint
from tests.hub_server import LoopbackHub, serve_online
from tests.leaderboard.test_submit import demo_run  # noqa: F401 (fixture)

BOARD = "org/empathy-board"
MODEL = "org/tiny-candidate"
TOKEN = "hf_loopbackWriteToken0123456789"
READ_ONLY = "hf_loopbackReadToken0123456789"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    yield from serve_online(monkeypatch)


@pytest.fixture
def repos(hub: LoopbackHub) -> LoopbackHub:
    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo(BOARD, repo_type="dataset")
    api.create_commit(BOARD, [CommitOperationAdd("leaderboard.json", b'{"rows": []}')], commit_message="publish",
                      repo_type="dataset")
    api.create_repo(MODEL, repo_type="model")
    api.create_commit(MODEL, [CommitOperationAdd("config.json", b"{}")], commit_message="weights", repo_type="model")
    hub.read_only(READ_ONLY)
    return hub


def test_the_entries_are_the_runs_numbers_with_the_board_as_benchmark(demo_run):  # noqa: F811
    run = load_run(demo_run)
    r = run.result
    entries = eval_entries(run, board_repo=BOARD, run_id="org__m/run-1", board_revision="abc123")
    by_task = {e.task_id: e for e in entries}
    expected = {f"empathy_winrate_{c}" for c in r.comparisons} | {f"empathy_rubric_{d}" for d, s in r.rubric.items()
                                                                   if s.mean is not None}
    assert set(by_task) == expected
    for name, stats in r.comparisons.items():
        e = by_task[f"empathy_winrate_{name}"]
        assert e.value == round(stats.win_rate, 4) and e.dataset_id == BOARD and e.dataset_revision == "abc123"
        assert f"over {stats.n_scored} dialogues" in e.notes and r.judge.fingerprint in e.notes
    for dim, s in r.rubric.items():
        if s.mean is not None:
            assert by_task[f"empathy_rubric_{dim}"].value == round(s.mean, 4)
    fp = hashlib.sha256((demo_run / "results.json").read_bytes()).hexdigest()[:16]
    assert run_fingerprint(run) == fp
    assert {e.source_name for e in entries} == {f"empathy-harness run {fp}"}
    assert {e.source_url for e in entries} == {f"https://huggingface.co/datasets/{BOARD}/tree/main/submissions/"
                                               "org__m/run-1"}
    assert {e.date for e in entries} == {r.provenance.time}


def test_submit_with_model_repo_opens_an_eval_results_pull_request(repos: LoopbackHub, demo_run: Path,  # noqa: F811
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model_main = repos.repo(MODEL, "model").main
    code = main(["submit", str(demo_run), "--repo", BOARD, "--endpoint", repos.url, "--model-repo", MODEL,
                 "--allow-unhealthy-judge"])
    out = capsys.readouterr().out
    assert code == 0, out
    model = repos.repo(MODEL, "model")
    assert model.main is model_main and model.pull_requests == ["refs/pr/1"]  # a pull request: the owner decides
    pr = model.commits[model.refs["refs/pr/1"]]
    assert set(pr.files) - set(model_main.files) == {EVAL_RESULTS_FILE}  # one file, one commit
    data = yaml.safe_load(pr.files[EVAL_RESULTS_FILE])
    parsed = parse_eval_result_entries(data)  # huggingface_hub reads back what it would show
    run = load_run(demo_run)
    board_sha = repos.repo(BOARD).main.sha
    assert [(e.task_id, e.value) for e in parsed] == [(e.task_id, e.value) for e in eval_entries(
        run, board_repo=BOARD, run_id=run_id(run), board_revision=board_sha, endpoint=repos.url)]
    assert {e.dataset_revision for e in parsed} == {board_sha}
    assert f"eval results pull request opened on {MODEL}: {repos.url}/{MODEL}/discussions/1" in out
    assert repos.repo(BOARD).pull_requests == ["refs/pr/1"]  # and the board submission
    for request in repos.requests:
        assert TOKEN not in request.path


@pytest.mark.parametrize("problem", ["missing repo", "read-only token"])
def test_a_missing_repo_or_a_read_only_token_writes_nothing(repos: LoopbackHub, demo_run: Path,  # noqa: F811
                                                             problem: str, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HF_TOKEN", READ_ONLY if problem == "read-only token" else TOKEN)
    target = "org/no-such-model" if problem == "missing repo" else MODEL
    code = main(["submit", str(demo_run), "--repo", BOARD, "--endpoint", repos.url, "--model-repo", target,
                 "--allow-unhealthy-judge"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    what = f"error: publishing the run's eval results to model repo '{target}': "
    if problem == "missing repo":
        assert err.startswith(what + "the repo does not exist or this token cannot see it"), err
    else:
        assert err.startswith(what + f"the Hub refused the token (403): it may not open pull requests on {MODEL} "
                                     "— use a token with write access"), err
        assert err.rstrip().endswith("nothing was written")
    assert repos.repo(MODEL, "model").pull_requests == [] and repos.repo(BOARD).pull_requests == []
