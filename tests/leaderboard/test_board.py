"""Board protocol, admission and the built board folder, end to end through the CLI on tiny models."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.cli.main import main
from harness.evaluate.runs import load_run
from harness.score.health import judge_problem, unhealthy_banner
from leaderboard.protocol import load_protocol, mismatches, protocol_from_run
from tests.leaderboard.conftest import N, eval_run


def test_protocol_from_a_run_admits_it_and_names_each_difference(board_runs, tmp_path):
    result = load_run(board_runs["a"]).result
    protocol = protocol_from_run(result, name="test board", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0,
                                 require_judge_ok=False)
    assert mismatches(result, protocol) == []
    other = protocol.model_copy(update={
        "judge_fingerprint": "0" * 16, "min_scored": N + 1, "generation_prompt_hash": "x",
        "dataset": protocol.dataset.model_copy(update={"ids_hash": "f" * 16}),
        "anchor": protocol.anchor.model_copy(update={"reference_file_hash": "e" * 16}), "max_flip_rate": 0.0})
    problems = mismatches(result, other)
    assert any(p.startswith("judge fingerprint: the run has") for p in problems)
    assert any(p.startswith(f"scored dialogues: {N} vs the anchor, the board requires at least {N + 1}")
               for p in problems)
    assert any(p.startswith("generation prompt hash") for p in problems)
    assert any(p.startswith("dialogue ids (hash)") for p in problems)  # the same dialogues for every model
    assert any(p.startswith("anchor reference file hash") for p in problems)  # the same anchor replies
    assert any(p.startswith("judge health: position-flip rate") for p in problems)
    (tmp_path / "bad.yaml").write_text("name: x\nmin_scored: -1\n")
    with pytest.raises(Exception, match="invalid board protocol .*bad.yaml"):
        load_protocol(tmp_path / "bad.yaml")


def test_build_through_the_cli(board_runs, tiny_models, small_refs, tmp_path, capsys):
    board_file = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "Tiny board", "--min-scored", "3", "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--output", str(board_file)]) == 0
    protocol = load_protocol(board_file)
    # the controls, judged with the board's judge against the anchor reference
    controls = tmp_path / "controls"
    capsys.readouterr()
    assert main(["leaderboard", "controls", "--board", str(board_file), "--reference", str(small_refs["base"]),
                 "--judge", str(tiny_models["judge"]), "--judge-device", "cpu", "--judge-min-label-mass", "0",
                 "--cache-dir", str(board_runs["cache"]), "--output", str(controls)]) == 0
    assert sorted(p.name for p in controls.iterdir() if (p / "results.json").is_file()) == [
        "anchor_self", "null_model", "verbose_padding"]  # the bundled dialogues have no human replies
    # the board admits this judge although it failed the probe: the controls' report says so first
    probe = judge_problem(probe_accuracy=load_run(board_runs["a"]).result.health.probe_accuracy, position_bias=None,
                          tie_rate=None)
    assert probe is not None
    assert capsys.readouterr().err.splitlines()[-2:] == [unhealthy_banner(probe),
                                                         f"3 control runs written under {controls}"]
    # refused: another judge, a duplicate of run a, an incomplete folder
    other_judge = eval_run(tmp_path / "other-judge", tiny_models["candidate"], tiny_models, small_refs,
                           board_runs["cache"], max_new_tokens=50, mode="generate")
    # the same model run again (another run folder, same fingerprint): one of the two is refused as a duplicate;
    # the very same run given twice is simply the same run
    duplicate = eval_run(tmp_path / "dup", tiny_models["candidate"], tiny_models, small_refs, board_runs["cache"])
    same_again = tmp_path / "same-again"
    shutil.copytree(board_runs["b"], same_again)
    broken = tmp_path / "broken"
    shutil.copytree(board_runs["b"], broken)
    (broken / "results.json").unlink()
    site = tmp_path / "site"
    code = main(["leaderboard", "build", "--board", str(board_file), "--runs", str(board_runs["a"]),
                 str(board_runs["b"]), str(board_runs["c"]), str(controls), str(other_judge), str(duplicate),
                 str(broken), str(same_again), "--n-boot", "200", "--output", str(site)])
    assert code == 0, capsys.readouterr().err
    board = json.loads((site / "leaderboard.json").read_text())
    ranked = [r for r in board["rows"] if r["control"] is None]
    controls_rows = [r for r in board["rows"] if r["control"] is not None]
    assert len(ranked) == 3 and {r["control"] for r in controls_rows} == {"null_model", "verbose_padding",
                                                                           "anchor_self"}
    assert all(r["rank"] is None and r["trust"] == "control" and r["anchor_only"] for r in controls_rows)
    assert sorted(r["rank_low"] for r in ranked)[0] == 1
    assert [r["bt"]["value"] for r in ranked] == sorted((r["bt"]["value"] for r in ranked), reverse=True)
    for r in ranked:
        assert r["bt"]["low"] <= r["bt"]["value"] <= r["bt"]["high"] and r["judge"] == protocol.judge_fingerprint
        assert r["trust"] == "maintainer" and not r["anchor_only"] and r["n_scored"] == N  # given with --runs
        assert r["win_rate"]["low"] <= r["win_rate"]["value"] <= r["win_rate"]["high"]
        assert load_run(site / "results" / r["run_id"]).result.judge.fingerprint == protocol.judge_fingerprint
    # this random judge cannot tell replies apart: every control ties (or beats) every real model, and the board
    # says so after its banner (which verb a control earns depends on the random weights)
    assert board["warnings"][0] == board["banner"] and board["banner"].startswith("UNHEALTHY JUDGE")
    names = f"3 ranked model(s) ({', '.join(r['model'] for r in ranked)})"
    worry = "the judge rewards something other than empathy here, or the board has too few dialogues to tell"
    expected = [
        ("anchor_self", "(the anchor's own replies)", "those models are not told apart from the anchor itself"),
        ("null_model", "(one fixed reply to every dialogue)", f"{worry} — read the board with care"),
        ("verbose_padding", "(generic padded replies)", f"{worry} — read the board with care")]
    assert len(board["warnings"]) == 4
    for warning, (kind, what, why) in zip(board["warnings"][1:], expected, strict=True):
        assert warning in {f"control row {kind!r} {what} {verb} {names}: {why}" for verb in ("ties", "beats")}
    reasons = {json.dumps(x) for x in json.loads((site / "rejected.json").read_text())}
    assert any("other-judge" in r and "judge fingerprint" in r for r in reasons)
    assert sum("duplicate: the same model" in r for r in reasons) == 1
    assert not any("same-again" in r for r in reasons) and len(reasons) == 3
    assert any("broken" in r and "did not complete" in r for r in reasons)
    # the table in every format
    import pyarrow.parquet as pq

    table = pq.read_table(site / "leaderboard.parquet").to_pylist()
    assert [t["model"] for t in table] == [r["model"] for r in board["rows"]]
    assert (site / "leaderboard.csv").read_text().splitlines()[0].startswith("rank,rank_low,rank_high,model")
    card = (site / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: default") and "leaderboard.parquet" in card
    assert "<table" in (site / "index.html").read_text()
    # the dry run of publish lists the files and commits nothing
    capsys.readouterr()
    assert main(["leaderboard", "publish", str(site), "--repo", "org/board"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "leaderboard.parquet" in out and "results/" in out


def test_rebuild_in_place_keeps_every_run_and_other_folders_are_not_overwritten(board_runs, tmp_path):
    board_file = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "B", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge", "--output", str(board_file)]) == 0
    site = tmp_path / "site"
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(board_runs["a"]),
                 str(board_runs["b"]), "--n-boot", "50", "--output", str(site)]) == 0
    before = json.loads((site / "leaderboard.json").read_text())["rows"]
    # the site's own runs as input, the site as output: built aside, then swapped in
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(site / "results"),
                 "--n-boot", "50", "--output", str(site)]) == 0
    after = json.loads((site / "leaderboard.json").read_text())["rows"]
    assert [r["run_id"] for r in after] == [r["run_id"] for r in before]
    assert all(load_run(site / "results" / r["run_id"]) for r in after)
    assert (site / "board.yaml").is_file()  # submitters can check their runs against it
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(board_runs["a"]),
                 "--output", str(tmp_path / "notes")]) == 2
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_replies_files_are_not_ranked_and_an_empty_board_is_not_built(board_runs, tiny_models, small_refs,
                                                                      tmp_path, capsys):
    from harness.core.settings import JudgeSettings
    from harness.data.selection import run_dialogues
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    dialogues, _ = run_dialogues("bundled", N)
    replies = tmp_path / "great-model.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": d.id, "response": "I hear you."}) + "\n"
                               for d in dialogues))
    run_eval(EvalConfig(candidate=ModelSpec(str(replies), backend="replies"),
                        judge=JudgeSettings(model=str(tiny_models["judge"]), device="cpu",
                                            cache_dir=str(board_runs["cache"]), min_label_mass=0.0),
                        output=tmp_path / "replies-run", references={"base": small_refs["base"]}, limit=N))
    board_file = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "B", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge", "--output", str(board_file)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(tmp_path / "replies-run"),
                 "--output", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "no model run was admitted" in err and "replies from a file are not a model" in err
    assert not (tmp_path / "site").exists()
