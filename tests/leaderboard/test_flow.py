"""The whole flow through the CLI: 3 tiny-model runs → build → publish to a loopback Hub → submit → rebuild from it."""

from __future__ import annotations

import json

import pytest

from harness.cli.main import main
from harness.evaluate.runs import load_run
from harness.score.health import unhealthy_banner
from tests.hub_server import serve_online

REPO = "org/empathy-board"
TOKEN = "hf_test_0123456789abcdefghijklmnop"


@pytest.fixture
def hub(monkeypatch):
    yield from serve_online(monkeypatch)


def test_build_publish_submit_rebuild(board_runs, tiny_models, small_refs, hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    board = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "Flow board", "--min-scored", "3", "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--output", str(board)]) == 0
    site = tmp_path / "site"
    assert main(["leaderboard", "build", "--board", str(board), "--runs", str(board_runs["a"]), str(board_runs["b"]),
                 "--n-boot", "100", "--output", str(site)]) == 0
    assert main(["leaderboard", "publish", str(site), "--repo", REPO, "--push", "--endpoint", hub.url,
                 "--space", "org/empathy-page"]) == 0
    repo = hub.state.repo("dataset", REPO)
    on_hub = repo.main.files
    local = {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert {k: v for k, v in on_hub.items() if k in local} == local and set(local) <= set(on_hub)
    assert b"sdk: static" in hub.state.repo("space", "org/empathy-page").main.files["README.md"]
    commits = len(repo.history())

    # a submitter opens a pull request with run c; main does not change. Its judge failed its health check: the
    # submission needs the opt-out, and then says so first — on the console and in the pull request
    capsys.readouterr()
    problem = load_run(board_runs["c"]).result.health.judge_problem
    assert problem is not None
    assert main(["submit", str(board_runs["c"]), "--board", str(board), "--repo", REPO, "--endpoint", hub.url,
                 "--allow-unhealthy-judge"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == unhealthy_banner(problem) and out[1].startswith("pull request opened: ")
    assert repo.pull_requests and len(repo.history()) == commits
    pr = repo.commits[repo.refs[repo.pull_requests[-1]]]
    assert pr.message.splitlines()[0] == f"**{unhealthy_banner(problem)}**"

    # the maintainer rebuilds from the Hub board plus the new run: all three are on the board, nothing refused
    site2 = tmp_path / "site2"
    assert main(["leaderboard", "build", "--board", str(board), "--from-hub", REPO, "--endpoint", hub.url,
                 "--runs", str(board_runs["c"]), "--n-boot", "100", "--output", str(site2)]) == 0
    rebuilt = json.loads((site2 / "leaderboard.json").read_text())
    assert len(rebuilt["rows"]) == 3 and rebuilt["rejected"] == []
    assert main(["leaderboard", "publish", str(site2), "--repo", REPO, "--push", "--endpoint", hub.url]) == 0
    assert len(repo.history()) == commits + 1  # one commit for the new board
    # the token travelled in the Authorization header only, and is in no file written
    for folder in (site, site2):
        assert not any(TOKEN.encode() in p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert TOKEN not in capsys.readouterr().out
    # every row's trust comes from the board: a and b from its signed ledger on the Hub, c given by the maintainer
    models = {k: load_run(board_runs[k]).result.model for k in "abc"}
    trust = {r["model"]: r["trust"] for r in rebuilt["rows"]}
    assert trust == {models["a"]: "maintainer", models["b"]: "maintainer", models["c"]: "maintainer"}


def test_what_a_merged_pull_request_adds_is_not_the_boards_word(board_runs, tiny_models, small_refs, hub, tmp_path,
                                                               monkeypatch, capsys):
    """Finding 5: with --from-hub, everything under results/ was trusted, including what merged pull requests add;
    and duplicates went to the newest date a run gave itself. Rebuilt from the Hub, the board's own records hold:
    maintainer runs (its signed ledger), a verified run and the controls (their signed records)."""
    import hashlib

    from huggingface_hub import CommitOperationAdd, HfApi

    from leaderboard.admit import run_id
    from leaderboard.protocol import load_protocol
    from tests.leaderboard.test_trust import redate
    from tests.leaderboard.test_verify import judge_args

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    board = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "Flow board", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--output", str(board)]) == 0
    judge = judge_args(tiny_models, board_runs["cache"])
    assert main(["leaderboard", "controls", "--board", str(board), "--reference", str(small_refs["base"]), *judge,
                 "--output", str(tmp_path / "controls")]) == 0
    assert main(["leaderboard", "verify", str(board_runs["c"]), "--board", str(board), "--reference",
                 str(small_refs["base"]), *judge, "--output", str(tmp_path / "verified-c")]) == 0
    site = tmp_path / "site"
    assert main(["leaderboard", "build", "--board", str(board), "--runs", str(board_runs["a"]),
                 str(tmp_path / "controls"), str(tmp_path / "verified-c"), "--n-boot", "50", "--output", str(site)]) == 0
    assert main(["leaderboard", "publish", str(site), "--repo", REPO, "--push", "--endpoint", hub.url]) == 0
    api = HfApi(endpoint=hub.url, token=TOKEN)

    def merge(folder, files):  # a pull request, merged into main
        api.create_commit(REPO, [CommitOperationAdd(f"{folder}/{n}", b) for n, b in files.items()],
                          commit_message="merged pull request", repo_type="dataset")

    # run b twice: the honest run lands first; the other, dated later than it, lands second with an id that sorts
    # first (arrival was decided by the run's date, then by id: now by the commit that added it)
    honest = redate(board_runs["b"], tmp_path / "b-honest", "2025-01-01T00:00:00+00:00")
    late = next(x for i in range(1, 40) if run_id(load_run(x := redate(
        board_runs["b"], tmp_path / f"b-late{i}", f"2099-01-{i:02d}T00:00:00+00:00"))) < run_id(load_run(honest)))
    merge("submissions/b-honest", {p.name: p.read_bytes() for p in honest.iterdir()})
    merge("submissions/a-late", {p.name: p.read_bytes() for p in late.iterdir()})
    # and run c (redated) under results/, with a verification record computed by hand (every field right)
    forged = redate(board_runs["c"], tmp_path / "c", "2030-01-01T00:00:00+00:00")
    files = {p.name: p.read_bytes() for p in forged.iterdir() if p.is_file()}
    record = {"status": "verified", "protocol_hash": load_protocol(board).hash,
              "files_sha256": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}}
    merge("results/evil/c", {**files, "verification.json": json.dumps(record).encode()})
    capsys.readouterr()
    site2 = tmp_path / "site2"
    args = ["leaderboard", "build", "--board", str(board), "--from-hub", REPO, "--endpoint", hub.url, "--n-boot", "50"]
    assert main([*args, "--output", str(site2)]) == 0
    built = json.loads((site2 / "leaderboard.json").read_text())
    models = {k: load_run(board_runs[k]).result.model for k in "abc"}
    trust = {(r["model"], r["control"]): r["trust"] for r in built["rows"]}
    assert trust == {(models["a"], None): "maintainer", (models["c"], None): "verified",
                     (models["b"], None): "self-reported", **{(f"control: {k}", k): "control" for k in
                                                              ("anchor_self", "null_model", "verbose_padding")}}
    assert row_id(built, models["b"]) == run_id(load_run(honest))
    reasons = {r["run"].rsplit("/", 2)[-2] + "/" + r["run"].rsplit("/", 1)[-1]: r["reason"] for r in built["rejected"]}
    assert "both self-reported; the board saw it first" in reasons["submissions/a-late"]
    assert "its verification.json is not this board's record — key_id: the record was signed with key None" in \
        reasons["evil/c"]
    # a ledger that says something else, merged into main: not signed by the board, so the build is refused
    ledger = json.loads((site2 / "ledger.json").read_text())
    for arrival in ledger["runs"].values():
        arrival["seq"] = 100 - arrival["seq"]
    api.create_commit(REPO, [CommitOperationAdd("ledger.json", json.dumps(ledger).encode())],
                      commit_message="merged pull request", repo_type="dataset")
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "site3")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "ledger.json is not this board's record (signature: it does not match the record" in err
    assert "--reset-ledger" in err and not (tmp_path / "site3").exists()
    # the maintainer starts the record anew: the signed records still hold, the ledger's maintainer runs do not
    assert main([*args, "--reset-ledger", "--output", str(tmp_path / "site3")]) == 0
    built = json.loads((tmp_path / "site3" / "leaderboard.json").read_text())
    assert sorted(r["trust"] for r in built["rows"]) == ["control"] * 3 + ["self-reported", "self-reported",
                                                                           "verified"]


def row_id(board: dict, model: str) -> str:
    return next(r["run_id"] for r in board["rows"] if r["model"] == model)
