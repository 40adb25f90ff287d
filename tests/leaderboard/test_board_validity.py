"""The board shows its judge's validity figures when the runs it judged carry them — never a submission's claim."""

from __future__ import annotations

import json
import shutil

from harness.cli.main import main
from harness.core.validity import from_figures
from harness.evaluate.runs import load_run
from tests.judge.test_judge_validity import trained  # noqa: F401 (a fixture)

FIGURES = {"agreement": {"value": 0.61, "ci_low": 0.58, "ci_high": 0.64, "n": 900},
           "length_baseline": {"value": 0.51, "ci_low": 0.48, "ci_high": 0.54, "n": 900},
           "source_prior_baseline": {"value": 0.55, "ci_low": 0.52, "ci_high": 0.58, "n": 900},
           "per_source_spearman": {"human": {"rho": 0.1}}, "source_kendall_tau": 0.6,
           "summary": "agrees with people on 61.0 % of 900 non-tied pairs"}


def with_validity(run, out, summary: str):
    """A copy of a run whose results.json carries validity figures measured for its judge."""
    shutil.copytree(run, out)
    result = load_run(out).result
    v = from_figures({**FIGURES, "summary": summary}, None, origin="validate-judge", file="validity.json",
                     file_sha256="0" * 64, matches="judge fingerprint", fingerprint=result.judge.fingerprint,
                     data="ratings.csv, split test")
    data = json.loads((out / "results.json").read_text())
    data["judge_validity"] = v.model_dump(mode="json")
    (out / "results.json").write_text(json.dumps(data))
    assert load_run(out).result.judge_validity == v  # figures of this very judge are accepted
    return out


def build(board_runs, tmp_path, runs, submissions=()):
    board_file = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "Tiny board", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge", "--output",
                 str(board_file)]) == 0
    out = tmp_path / "site"
    args = ["leaderboard", "build", "--board", str(board_file), "--runs", *map(str, runs), "--output", str(out),
            "--n-boot", "20"]
    if submissions:
        args += ["--submissions", *map(str, submissions)]
    assert main(args) == 0
    return json.loads((out / "leaderboard.json").read_text()), (out / "index.html").read_text(), \
        (out / "README.md").read_text()


def test_the_board_shows_the_validity_its_own_runs_carry(board_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("EMPATHY_BOARD_KEY", "k" * 32)
    a = with_validity(board_runs["a"], tmp_path / "runs" / "a", "agrees with people on 61.0 % of 900 non-tied pairs")
    board, page, card = build(board_runs, tmp_path / "one", [a, board_runs["b"]])
    assert board["judge_validity"]["agreement"]["value"] == 0.61
    assert 'id="judge-validity"' in page and "Judge validity (validate-judge, ratings.csv, split test): agrees with " \
        "people on 61.0 % of 900 non-tied pairs" in page
    assert "Judge validity (validate-judge, ratings.csv, split test)" in card
    # a submission's figures are its own claim: not shown as the board's
    sub = with_validity(board_runs["c"], tmp_path / "subs" / "c", "agrees with people on 99.0 % (claimed)")
    board, page, _ = build(board_runs, tmp_path / "two", [board_runs["a"], board_runs["b"]], [sub])
    assert board["judge_validity"] is None and "99.0 %" not in page
    assert "Judge validity: not measured" in page


def test_a_board_judged_by_a_trained_reward_model(trained, tiny_models, small_refs, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A reward judge end to end on the board: protocol, controls, build; its held-out figures on the page."""
    monkeypatch.setenv("EMPATHY_BOARD_KEY", "k" * 32)
    runs = {}
    for name in ("candidate", "direct"):
        runs[name] = tmp_path / "runs" / name
        assert main(["eval", "--model", str(tiny_models[name]), "--device", "cpu", "--reference",
                     f"base={small_refs['base']}", "--judge", str(trained["rm"]), "--judge-mode", "reward",
                     "--judge-device", "cpu", "--limit", "6", "--cache-dir", str(trained["root"] / "cache"),
                     "--output", str(runs[name])]) == 0
    board_file = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(runs["candidate"]), "--name", "RM board", "--min-scored", "3",
                 "--allow-unhealthy-judge", "--output", str(board_file)]) == 0
    assert main(["leaderboard", "controls", "--board", str(board_file), "--reference", str(small_refs["base"]),
                 "--judge", str(trained["rm"]), "--judge-mode", "reward", "--judge-device", "cpu",
                 "--cache-dir", str(trained["root"] / "cache"), "--output", str(tmp_path / "controls")]) == 0
    out = tmp_path / "site"
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(runs["candidate"]), str(runs["direct"]),
                 str(tmp_path / "controls"), "--output", str(out), "--n-boot", "20"]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert len([r for r in board["rows"] if not r["control"]]) == 2 and len(board["rows"]) == 5
    v = board["judge_validity"]
    assert v["origin"] == "judge train" and v["matches"] == "model weights" and v["experts_verdict"]
    page = (out / "index.html").read_text()
    assert "Judge validity (judge train, ratings.csv, 12 held-out dialogues)" in page
