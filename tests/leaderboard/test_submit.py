"""leaderboard.submit against a loopback Hub: a run becomes a pull request (main untouched); a board comes back down."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from harness.core.errors import HarnessError
from harness.evaluate.runs import RunError
from leaderboard.submit import SUBMISSION_FILES, pull_board, submit
from tests.hub_server import LoopbackHub, serve_online

BOARD = "org/empathy-board"
RUN_ID = "org__tiny-candidate/demo-1"
TOKEN = "hf_loopbackSubmitToken0123456789"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run folder from the offline demo (tiny random models, 4 dialogues)."""
    from harness.evaluate.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMPATHY_HARNESS_CACHE", str(out.parent / "harness-cache"))
        run_demo(out, limit=4)
    return out


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    yield from serve_online(monkeypatch)


@pytest.fixture
def board(hub: LoopbackHub) -> str:
    api = HfApi(endpoint=hub.url, token=False)
    api.create_repo(BOARD, repo_type="dataset")
    api.create_commit(BOARD, [CommitOperationAdd("index.html", b"<table></table>"),
                              CommitOperationAdd("leaderboard.json", b'{"rows": []}'),
                              CommitOperationAdd("results/org__a/run1/results.json", b"{}")],
                      commit_message="publish", repo_type="dataset")
    return BOARD


def copy_run(run: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in SUBMISSION_FILES:
        shutil.copy2(run / name, dest / name)
    return dest


def test_a_submission_is_a_pull_request_and_main_is_unchanged(hub: LoopbackHub, board: str, demo_run: Path):
    main_before = hub.repo(board).main
    sent = len(hub.requests)
    url = submit(demo_run, repo=board, run_id=RUN_ID, endpoint=hub.url, token=TOKEN)
    repo = hub.repo(board)
    assert url == f"{hub.url}/datasets/{board}/discussions/1"
    assert repo.pull_requests == ["refs/pr/1"]
    assert repo.main is main_before
    pr = repo.commits[repo.refs["refs/pr/1"]]
    assert pr.parent == main_before.sha
    added = {p: d for p, d in pr.files.items() if p not in main_before.files}
    assert added == {f"submissions/{RUN_ID}/{name}": (demo_run / name).read_bytes() for name in SUBMISSION_FILES}
    assert "Submit" in pr.title and RUN_ID in pr.title
    assert [r.path.split("/")[-2] for r in hub.requests[sent:]] == ["preupload", "commit"]
    for request in hub.requests[sent:]:
        assert request.headers.get("authorization") == f"Bearer {TOKEN}"
        assert TOKEN.encode() not in request.body and TOKEN not in request.path


def test_an_invalid_run_is_never_submitted(hub: LoopbackHub, board: str, demo_run: Path, tmp_path: Path):
    broken = copy_run(demo_run, tmp_path / "broken")
    results = json.loads((broken / "results.json").read_text())
    results["rubric"] = {}  # no longer what the rubric scores in rubric.jsonl give
    (broken / "results.json").write_text(json.dumps(results))
    sent = len(hub.requests)
    with pytest.raises(RunError):
        submit(broken, repo=board, run_id=RUN_ID, endpoint=hub.url)
    (broken / "judgments.jsonl").unlink()
    with pytest.raises(RunError, match="judgments.jsonl"):
        submit(broken, repo=board, run_id=RUN_ID, endpoint=hub.url)
    assert len(hub.requests) == sent
    assert hub.repo(board).pull_requests == []


@pytest.mark.parametrize("run_id", ["../main", "a/b/c", "", "/abs", "a/../b", "sp ace"])
def test_an_unsafe_run_id_is_refused(hub: LoopbackHub, board: str, demo_run: Path, run_id: str):
    sent = len(hub.requests)
    with pytest.raises(HarnessError, match="not usable as a folder"):
        submit(demo_run, repo=board, run_id=run_id, endpoint=hub.url)
    assert len(hub.requests) == sent


def test_a_missing_board_is_a_clear_error(hub: LoopbackHub, demo_run: Path):
    with pytest.raises(HarnessError, match="'org/nope'.*does not exist"):
        submit(demo_run, repo="org/nope", run_id=RUN_ID, endpoint=hub.url)


def test_resubmitting_files_already_on_the_board_opens_no_pull_request(hub: LoopbackHub, board: str,
                                                                       demo_run: Path):
    HfApi(endpoint=hub.url, token=False).create_commit(
        board, [CommitOperationAdd(f"submissions/{RUN_ID}/{name}", demo_run / name) for name in SUBMISSION_FILES],
        commit_message="merged", repo_type="dataset")
    with pytest.raises(HarnessError, match="already on the board"):
        submit(demo_run, repo=board, run_id=RUN_ID, endpoint=hub.url)
    assert hub.repo(board).pull_requests == []


def test_pull_board_downloads_main(hub: LoopbackHub, board: str, tmp_path: Path):
    dest, sha = pull_board(board, tmp_path / "pulled", endpoint=hub.url)
    assert dest == tmp_path / "pulled" and sha == hub.repo(board).main.sha
    for path, data in hub.repo(board).main.files.items():
        assert (dest / path).read_bytes() == data
    with pytest.raises(HarnessError, match="'org/nope'.*does not exist"):
        pull_board("org/nope", tmp_path / "nope", endpoint=hub.url)
