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
from tests.hub_server import LoopbackHub, free_port_url, serve_online
from tests.servers import silent_endpoint

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
    # one bounded question first (is the Hub there at all?), then the upload
    assert [(r.method, r.path.split("?")[0]) for r in hub.requests[sent:]] == [
        ("GET", f"/api/datasets/{board}"), ("POST", f"/api/datasets/{board}/preupload/main"),
        ("POST", f"/api/datasets/{board}/commit/main")]
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


# -- through the CLI: the health rule and an unreachable Hub -----------------------------------------------------


def test_submit_refuses_a_run_whose_judge_failed_its_health_check(hub: LoopbackHub, board: str, demo_run: Path,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from harness.cli.main import main
    from harness.evaluate.runs import load_run
    from harness.score.health import unhealthy_refusal
    from leaderboard.protocol import protocol_from_run, save_protocol

    result = load_run(demo_run).result
    assert not result.health.judge_ok  # the demo's random judge
    lenient = protocol_from_run(result, name="b", min_scored=1, max_flip_rate=1.0, min_label_mass=0.0,
                                require_judge_ok=False)  # a board that admits it: submit still wants the opt-out
    save_protocol(lenient, tmp_path / "board.yaml")
    sent = len(hub.requests)
    for extra in ([], ["--board", str(tmp_path / "board.yaml")]):
        assert main(["submit", str(demo_run), "--repo", board, "--endpoint", hub.url, *extra]) == 2
        err = capsys.readouterr().err
        assert err == f"error: {unhealthy_refusal(f'submitting {demo_run}', result.health.judge_problem)}\n"
    assert len(hub.requests) == sent and hub.repo(board).pull_requests == []


@pytest.mark.parametrize("hub_kind", ["silent", "refused"])
def test_submit_to_an_unreachable_hub_fails_within_3_s_in_one_line(demo_run: Path, hub_kind: str,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]):
    """A Hub that never answers, or refuses connections (huggingface_hub would retry for half a minute)."""
    import time

    from huggingface_hub import constants

    from harness.cli.main import main
    from harness.evaluate.runs import load_run
    from leaderboard.admit import run_id

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("EMPATHY_HUB_TIMEOUT_S", raising=False)
    with silent_endpoint() as silent:  # accepts connections, never answers
        url = silent if hub_kind == "silent" else free_port_url()
        start = time.perf_counter()
        code = main(["submit", str(demo_run), "--repo", BOARD, "--endpoint", url, "--allow-unhealthy-judge"])
        took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    what = f"error: submitting run '{run_id(load_run(demo_run))}' to board '{BOARD}': "
    expected = (f"the Hub at {url} did not answer within 2 s" if hub_kind == "silent" else
                "cannot reach the Hub (ConnectError")
    assert err.startswith(what + expected), err
    assert took < 3.0, took


def test_pull_board_from_a_silent_hub_fails_within_3_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("EMPATHY_HUB_TIMEOUT_S", "1")
    with silent_endpoint() as url:
        start = time.perf_counter()
        with pytest.raises(HarnessError, match=rf"^downloading board '{BOARD}': the Hub at {url} did not answer "
                                               r"within 1 s — check --endpoint"):
            pull_board(BOARD, tmp_path / "pulled", endpoint=url)
        assert time.perf_counter() - start < 2.0
