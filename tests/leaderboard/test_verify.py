"""Verification: re-judging a submission with the board's judge, and regenerating a sample of its replies."""

from __future__ import annotations

import json

from harness.cli.main import main
from harness.evaluate.result import computed_parts
from harness.evaluate.runs import load_run, write_run
from leaderboard.admit import admit
from leaderboard.protocol import protocol_from_run


def judge_args(tiny_models, cache):
    return ["--judge", str(tiny_models["judge"]), "--judge-device", "cpu", "--judge-min-label-mass", "0",
            "--cache-dir", str(cache)]


def fabricate_wins(src, dest):
    """A consistent forgery: every verdict says the candidate won, and results.json is recomputed to match."""
    run = load_run(src)
    forged = []
    for j in run.judgments:
        verdicts = tuple(v.model_copy(update={"winner": "candidate"}) for v in j.verdicts)
        forged.append(j.model_copy(update={"verdicts": verdicts, "outcome": "candidate"}))
    by: dict[str, list] = {}
    for j in forged:
        by.setdefault(j.comparison, []).append(j)
    r = run.result
    refs = {n: s for n, s in r.provenance.systems.items() if n != "candidate"}
    parts = computed_parts(by, run.rubric, run.generations, refs, r.judge.min_label_mass, r.provenance.seed,
                           style=run.style)
    write_run(dest, r.model_copy(update=parts), run.generations, forged, run.rubric, run.manifest, style=run.style)


def test_verify_an_honest_and_a_forged_submission(board_runs, tiny_models, small_refs, tmp_path, capsys):
    protocol = protocol_from_run(load_run(board_runs["a"]).result, name="b", min_scored=3, max_flip_rate=1.0,
                                 min_label_mass=0.0, require_judge_ok=False)
    (tmp_path / "board.yaml").write_text(json.dumps(json.loads(protocol.model_dump_json())))
    board = str(tmp_path / "board.yaml")
    honest = tmp_path / "verified-a"
    code = main(["leaderboard", "verify", str(board_runs["a"]), "--board", board, "--reference",
                 str(small_refs["base"]), *judge_args(tiny_models, board_runs["cache"]), "--regenerate", "2",
                 "--model-dir", str(tiny_models["candidate"]),
                 "--device", "cpu", "--output", str(honest)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((honest / "verification.json").read_text())
    assert record["status"] == "verified" and record["reasons"] == []
    assert record["rejudged_win_rate"] == record["submitted_win_rate"]
    assert record["regeneration"] == {"n": 2, "identical": 2, "match_rate": 1.0,  # greedy replies reproduce
                                      "rule": "at least 90% of the regenerated replies identical to the submitted ones"}
    assert record["submission_checks"] == {"skipped": "not a Hub model (local)"}
    assert record["protocol_hash"] == protocol.hash and len(record["signature"]) == 64  # bound to this board
    rejudged = load_run(honest).result
    submitted = load_run(board_runs["a"]).result
    assert rejudged.provenance.systems["candidate"] == submitted.provenance.systems["candidate"]  # same model
    assert load_run(honest).manifest["judge"]["model_calls"] == 0  # every verdict came from the cache
    # on the board, the verified run replaces the self-reported submission of the same model
    from leaderboard.trust import board_key

    entries, rejected, _ = admit([honest], protocol, untrusted=[board_runs["a"]], key=board_key())
    assert [e.trust for e in entries] == ["verified"] and "duplicate" in rejected[0].reason
    assert "(verified, above self-reported)" in rejected[0].reason
    # a verification record inside a submission is the submitter's word: ignored
    import shutil

    shutil.copytree(honest, tmp_path / "submissions" / "x")
    entries, _, _ = admit([], protocol, untrusted=[tmp_path / "submissions"], key=board_key())
    assert [e.trust for e in entries] == ["self-reported"]

    forged = tmp_path / "forged"
    fabricate_wins(board_runs["b"], forged)
    assert load_run(forged).result.comparisons["vs_base"].win_rate == 1.0  # it passes the file checks
    code = main(["leaderboard", "verify", str(forged), "--board", board, "--reference", str(small_refs["base"]),
                 *judge_args(tiny_models, board_runs["cache"]), "--output", str(tmp_path / "rejudged-b")])
    assert code == 1
    record = json.loads((tmp_path / "rejudged-b" / "verification.json").read_text())
    assert record["status"] == "disputed" and record["rejudged_win_rate"] < 1.0


def test_verify_refuses_an_unhealthy_judge_before_judging_and_says_so_when_the_board_admits_it(
        board_runs, tiny_models, small_refs, tmp_path, capsys):
    # a submission that looks healthy (forged verdicts, no probe) meets the board's real judge, which fails its
    # sanity probe: a strict board's verification is refused before any verdict (before: judged in full)
    forged = tmp_path / "forged"
    fabricate_wins(board_runs["b"], forged)
    assert load_run(forged).result.health.judge_ok
    result = load_run(board_runs["a"]).result
    strict = protocol_from_run(result, name="b", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0)
    (tmp_path / "strict.yaml").write_text(json.dumps(json.loads(strict.model_dump_json())))
    out = tmp_path / "v-strict"
    args = ["leaderboard", "verify", "--reference", str(small_refs["base"]), *judge_args(tiny_models, board_runs["cache"])]
    assert main([*args, str(forged), "--board", str(tmp_path / "strict.yaml"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: leaderboard verify (board 'b' was made without --allow-unhealthy-judge): this "
                          "judge cannot tell replies apart"), err
    assert not out.exists()
    # a board that admits it: verified, and the record and the console say so first
    lenient = protocol_from_run(result, name="b", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0,
                                require_judge_ok=False)
    (tmp_path / "lenient.yaml").write_text(json.dumps(json.loads(lenient.model_dump_json())))
    out = tmp_path / "v-lenient"
    assert main([*args, str(board_runs["a"]), "--board", str(tmp_path / "lenient.yaml"), "--output", str(out)]) == 0
    record = json.loads((out / "verification.json").read_text())
    assert next(iter(record)) == "banner" and record["banner"].startswith("UNHEALTHY JUDGE (--allow-unhealthy-judge)")
    assert capsys.readouterr().err.startswith(record["banner"][:40])
