"""Hub eval results: `empathy submit --model-repo` opens a pull request on the model repo adding
.eval_results/empathy.yaml in huggingface_hub's own format (loopback Hub); a missing repo or board, a read-only
token, a run of another model or a demo run is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, parse_eval_result_entries

from harness.cli.main import main
from harness.evaluate.runs import load_run
from leaderboard.admit import run_id
from leaderboard.eval_results import EVAL_RESULTS_FILE, eval_entries, run_fingerprint
from leaderboard.trust import RUN_FILES
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
def hub_run(board_runs, tmp_path: Path) -> Path:
    """A real (non-demo) run, its candidate stated as the Hub model MODEL (as a run of a Hub model records it)."""
    run = tmp_path / "hub-run"
    run.mkdir()
    for name in RUN_FILES:
        if (board_runs["a"] / name).is_file():
            shutil.copy2(board_runs["a"] / name, run / name)
    identity = {"kind": "hub", "name": MODEL, "revision": "a" * 40}
    results, manifest = (json.loads((run / f).read_text()) for f in ("results.json", "manifest.json"))
    results["provenance"]["systems"]["candidate"]["model"].update(identity)
    results["model"] = MODEL
    manifest["systems"]["candidate"].update(identity)
    (run / "results.json").write_text(json.dumps(results))
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert load_run(run).result.provenance.systems["candidate"].model.name == MODEL
    return run


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


def test_the_entries_are_the_runs_numbers_with_the_board_as_benchmark(hub_run):
    run = load_run(hub_run)
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
    fp = hashlib.sha256((hub_run / "results.json").read_bytes()).hexdigest()[:16]
    assert run_fingerprint(run) == fp
    assert {e.source_name for e in entries} == {f"empathy-harness run {fp}"}
    assert {e.source_url for e in entries} == {f"https://huggingface.co/datasets/{BOARD}/tree/main/submissions/"
                                               "org__m/run-1"}
    assert {e.date for e in entries} == {r.provenance.time}
    assert all(f"model revision {'a' * 40}" in e.notes for e in entries)


def test_submit_with_model_repo_opens_an_eval_results_pull_request(repos: LoopbackHub, hub_run: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model_main = repos.repo(MODEL, "model").main
    code = main(["submit", str(hub_run), "--repo", BOARD, "--endpoint", repos.url, "--model-repo", MODEL,
                 "--allow-unhealthy-judge"])  # (the tiny judge fails its health check: allowed, and said first)
    out = capsys.readouterr().out
    assert code == 0, out
    model = repos.repo(MODEL, "model")
    assert model.main is model_main and model.pull_requests == ["refs/pr/1"]  # a pull request: the owner decides
    pr = model.commits[model.refs["refs/pr/1"]]
    assert set(pr.files) - set(model_main.files) == {EVAL_RESULTS_FILE}  # one file, one commit
    data = yaml.safe_load(pr.files[EVAL_RESULTS_FILE])
    parsed = parse_eval_result_entries(data)  # huggingface_hub reads back what it would show
    run = load_run(hub_run)
    board_sha = repos.repo(BOARD).main.sha
    assert [(e.task_id, e.value) for e in parsed] == [(e.task_id, e.value) for e in eval_entries(
        run, board_repo=BOARD, run_id=run_id(run), board_revision=board_sha, endpoint=repos.url)]
    assert {e.dataset_revision for e in parsed} == {board_sha}
    assert f"eval results pull request opened on {MODEL}: {repos.url}/{MODEL}/discussions/1" in out
    assert repos.repo(BOARD).pull_requests == ["refs/pr/1"]  # and the board submission
    assert pr.message.startswith("**") and "health" in pr.message.split("\n")[0]  # the banner, first
    for request in repos.requests:
        assert TOKEN not in request.path


@pytest.mark.parametrize("problem", ["missing repo", "read-only token", "missing board", "another model", "demo run"])
def test_nothing_is_written_for_a_bad_repo_token_board_or_run(repos: LoopbackHub, hub_run: Path,
                                                               demo_run: Path, problem: str,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HF_TOKEN", READ_ONLY if problem == "read-only token" else TOKEN)
    target = "someone/famous-model" if problem == "another model" else MODEL
    if problem == "missing repo":
        del repos.state.repos[("model", MODEL)]
    board = "org/no-such-board" if problem == "missing board" else BOARD
    run = demo_run if problem == "demo run" else hub_run
    code = main(["submit", str(run), "--repo", board, "--endpoint", repos.url, "--model-repo", target,
                 "--allow-unhealthy-judge"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    what = f"error: publishing the run's eval results to model repo '{target}': "
    expected = {
        "missing repo": "the repo does not exist or this token cannot see it",
        "read-only token": f"the Hub refused the token (403): it may not open pull requests on {MODEL} — use a "
                           "token with write access",
        "missing board": "the board 'org/no-such-board' does not exist on the Hub",
        "another model": f"the run is of '{MODEL}' (hub model), not of 'someone/famous-model'",
        "demo run": f"{demo_run} is a demo run (random models): its numbers are never published",
    }[problem]
    assert err.startswith(what + expected), err
    assert repos.repo(BOARD).pull_requests == []
    assert not repos.has_repo(MODEL, "model") or repos.repo(MODEL, "model").pull_requests == []
