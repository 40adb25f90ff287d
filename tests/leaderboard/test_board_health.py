"""One health rule on the board side: init, controls and build refuse a judge that failed its health check unless
the board was made with --allow-unhealthy-judge — and then every report says so first. ``init`` also refuses a
protocol that would refuse its own run, and a bad --output before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.evaluate.runs import load_run
from harness.score.health import judge_problem, unhealthy_banner, unhealthy_refusal
from leaderboard.card import md_text
from leaderboard.protocol import load_protocol, protocol_from_run, save_protocol

LENIENT = ["--min-scored", "3", "--max-flip-rate", "1", "--min-label-mass", "0"]


def init(run: Path, out: Path, *extra: str) -> int:
    return main(["leaderboard", "init", "--run", str(run), "--name", "B", *extra, "--output", str(out)])


def one_error_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_init_refuses_a_run_whose_judge_failed_its_health_check(board_runs, tmp_path, capsys):
    health = load_run(board_runs["a"]).result.health
    assert not health.judge_ok and health.judge_problem  # the tiny random judge
    out = tmp_path / "board.yaml"
    assert init(board_runs["a"], out, *LENIENT) == 2
    assert one_error_line(capsys.readouterr().err) == "error: " + unhealthy_refusal(
        f"leaderboard init --run {board_runs['a']}", health.judge_problem)
    assert not out.exists()
    # with the opt-out the board is written, and the console says so on its first line
    assert init(board_runs["a"], out, *LENIENT, "--allow-unhealthy-judge") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == unhealthy_banner(health.judge_problem) and err[1].startswith("board protocol ")
    assert load_protocol(out).require_judge_ok is False


def test_init_refuses_a_protocol_that_would_refuse_its_own_run_naming_each_field(board_runs, tmp_path, capsys):
    health = load_run(board_runs["a"]).result.health
    flips, mass = health.position_flip_rate, health.label_mass_mean
    assert flips is not None and flips > 0 and mass is not None and mass < 1
    out = tmp_path / "board.yaml"
    code = init(board_runs["a"], out, "--allow-unhealthy-judge", "--min-scored", "500", "--max-flip-rate", "0",
                "--min-label-mass", "1")
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and not out.exists()
    assert err.startswith(f"error: board protocol not written: it would refuse its own run {board_runs['a']} — ")
    assert "scored dialogues: 6 vs the anchor, the board requires at least 500 (set by --min-scored)" in err
    assert f"judge health: position-flip rate {flips:.3f}, the board allows at most 0 (set by --max-flip-rate)" in err
    assert f"judge health: label mass {mass:.3f}, the board requires at least 1 (set by --min-label-mass)" in err
    assert init(board_runs["a"], out, "--allow-unhealthy-judge", "--min-scored", "6", "--max-flip-rate", "1",
                "--min-label-mass", "0") == 0  # exactly what the run has: admitted


@pytest.mark.parametrize(("output", "message"), [
    ("DIR", "--output {out} is a folder: give the file to write, e.g. {out}/board.yaml"),
    ("FILE/board.yaml", "--output {out}: {tmp}/FILE is a file, not a folder, so nothing can be made under it — give a path in a folder"),
    pytest.param("/proc/empathy-harness-test/board.yaml", "--output {out}: cannot write in /proc (",
                 marks=pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")),
])  # (/proc: not writable even by root, who passes every permission check)
@pytest.mark.parametrize("run_exists", [True, False])
def test_init_refuses_an_output_it_cannot_write_before_any_work(board_runs, tmp_path, capsys, output, message,
                                                                run_exists):
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("x")
    out = output if output.startswith("/") else str(tmp_path / output)
    run = board_runs["a"] if run_exists else tmp_path / "no-such-run"  # the output is checked before the run is read
    assert init(run, Path(out), *LENIENT, "--allow-unhealthy-judge") == 2
    err = one_error_line(capsys.readouterr().err)
    assert err.startswith("error: " + message.format(out=out, tmp=tmp_path)), err
    assert list((tmp_path / "DIR").iterdir()) == []


def test_a_board_built_with_the_opt_out_says_so_first_everywhere(board_runs, tmp_path, capsys):
    board_file = tmp_path / "board.yaml"
    assert init(board_runs["a"], board_file, *LENIENT, "--allow-unhealthy-judge") == 0
    site = tmp_path / "site"
    capsys.readouterr()
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(board_runs["a"]),
                 str(board_runs["b"]), "--n-boot", "50", "--output", str(site)]) == 0
    problems = {load_run(board_runs[k]).result.health.judge_problem for k in "ab"}
    board = json.loads((site / "leaderboard.json").read_text())
    assert board["banner"] in {unhealthy_banner(f"{p} (in 2 of 2 runs on this board)") for p in problems}
    banner = board["banner"]
    assert board["warnings"][0] == banner  # (a board built with the opt-out had warnings: [])
    assert capsys.readouterr().out.splitlines()[0] == banner  # the console
    html = (site / "index.html").read_text()
    body = html[html.index("<body>") + len("<body>"):].lstrip()
    assert body.startswith('<div class="banner" id="unhealthy-judge" role="alert">UNHEALTHY JUDGE')
    assert html.count("UNHEALTHY JUDGE") == 1  # on top, not again in the warnings box
    card = (site / "README.md").read_text()
    front, text = card.split("\n---\n", 1)
    assert front.startswith("---\nconfigs:") and text.lstrip("\n").splitlines()[0] == f"> **{md_text(banner)}**"


def test_controls_refuse_another_judge_than_the_boards_before_judging(board_runs, tiny_models, small_refs, tmp_path,
                                                                      capsys):
    from harness.core.settings import JudgeSettings
    from harness.judge.judge import open_judge
    from harness.llm.cache import JudgeCache

    board_file = tmp_path / "board.yaml"
    assert init(board_runs["a"], board_file, *LENIENT, "--allow-unhealthy-judge") == 0
    board = load_protocol(board_file)
    judge = open_judge(JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(tmp_path / "c"),
                                     min_label_mass=0.5))
    given = judge.fingerprint.fingerprint
    judge.client.close()
    assert given != board.judge_fingerprint
    out = tmp_path / "controls"
    capsys.readouterr()
    code = main(["leaderboard", "controls", "--board", str(board_file), "--reference", str(small_refs["base"]),
                 "--judge", str(tiny_models["judge"]), "--judge-device", "cpu", "--judge-min-label-mass", "0.5",
                 "--cache-dir", str(tmp_path / "cache"), "--output", str(out)])
    err = one_error_line(capsys.readouterr().err)
    assert code == 2 and err.startswith(f"error: the judge given has fingerprint {given}, the board's is "
                                        f"{board.judge_fingerprint}: nothing was judged")
    assert not out.exists()  # no control written ...
    cache = JudgeCache(tmp_path / "cache" / "judge-cache.sqlite")
    assert len(cache) == 0  # ... and not one verdict asked
    cache.close()


def test_controls_refuse_an_unhealthy_judge_when_the_board_requires_a_healthy_one(board_runs, tiny_models,
                                                                                  small_refs, tmp_path, capsys):
    result = load_run(board_runs["a"]).result
    strict = protocol_from_run(result, name="strict", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0)
    assert strict.require_judge_ok
    save_protocol(strict, tmp_path / "board.yaml")
    out = tmp_path / "controls"
    capsys.readouterr()
    code = main(["leaderboard", "controls", "--board", str(tmp_path / "board.yaml"), "--reference",
                 str(small_refs["base"]), "--judge", str(tiny_models["judge"]), "--judge-device", "cpu",
                 "--judge-min-label-mass", "0", "--cache-dir", str(board_runs["cache"]), "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (after the probe's progress line)
    problem = judge_problem(probe_accuracy=result.health.probe_accuracy, position_bias=None, tie_rate=None)
    assert code == 2 and err == "error: " + unhealthy_refusal(
        "leaderboard controls (board 'strict' was made without --allow-unhealthy-judge)", problem)
    assert not out.exists()  # not one control judged
