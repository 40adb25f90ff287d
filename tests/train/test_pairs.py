"""`empathy pairs export`: real runs (written replies, a tiny logits judge, real reference sets) → DPO rows whose
every field is checked against the run's own files; each drop rule counted; the evaluation set never exported;
mixed judges refused unless asked for; rows that trl's DPO data loader reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.prompts import load_generation_prompt
from harness.data.references import load_reference
from harness.data.selection import run_dialogues
from harness.evaluate.runs import load_run
from harness.train.datasets import dpo_dataset
from harness.train.pairs import RULES, ExportConfig, export_pairs, manifest_path
from tests.judge_backends import register_judge, score

N = 6


def _graded(a: str, b: str) -> dict[str, float]:
    """Mock judge (no model that runs here judges consistently): prefers the longer reply, surer the longer it is."""
    share = len(a.split()) / max(len(a.split()) + len(b.split()), 1)
    if abs(share - 0.5) < 0.02:
        return {"A": 0.05, "B": 0.05, "C": 0.9}
    return {"A": 0.95 * share, "B": 0.95 * (1 - share), "C": 0.05}


register_judge("graded", _graded, lambda reply, request: score("3", request.labels))
STYLES = {"warm": "I'm so sorry you're going through this ({emotion}). That sounds really hard — I'm here for you.",
          "flat": "ok ({emotion})"}


@pytest.fixture(scope="module")
def judged_runs(tiny_models, small_refs, tmp_path_factory):
    """Two runs of written replies judged by the tiny logits judge against base and direct; one by another judge."""
    root = tmp_path_factory.mktemp("pairs-runs")
    dialogues, _ = run_dialogues("bundled", N)
    runs = {}
    for name, text in (*STYLES.items(), ("other_judge", STYLES["warm"])):
        replies = root / f"{name}.jsonl"
        replies.write_text("".join(json.dumps({"dialogue_id": d.id, "response": text.format(emotion=d.emotion)})
                                   + "\n" for d in dialogues))
        judge = tiny_models["direct" if name == "other_judge" else "judge"]
        runs[name] = root / name
        assert main(["eval", "--model", str(replies), "--model-backend", "replies", "--reference",
                     f"base={small_refs['base']}", "--reference", f"direct={small_refs['direct']}", "--judge",
                     str(judge), "--judge-backend", "graded", "--judge-min-label-mass", "0",
                     "--limit", str(N), "--cache-dir", str(root / "cache"), "--output", str(runs[name])]) == 0
    # an evaluation set holding two of the run's dialogues under other ids (the overlap guard matches the text too)
    held = root / "eval.jsonl"
    held.write_text("".join(json.dumps({"id": f"held-{k}", "emotion": d.emotion, "sentiment": d.sentiment,
                                        "situation": d.situation, "utterance": d.utterance}) + "\n"
                            for k, d in enumerate(dialogues[:2])))
    other = root / "other.jsonl"
    other.write_text(json.dumps({"id": "x-1", "emotion": "joyful", "sentiment": "positive",
                                 "situation": "I won a prize at work.", "utterance": "Guess what, I won!"}) + "\n")
    return runs, held, other


def _expected(run_dir: Path, min_p: float) -> dict[tuple[str, str], tuple[str, float]]:
    """From the run's judgments alone: (dialogue, comparison) → (winner system, P(winner)) of the pairs to keep."""
    out = {}
    for j in load_run(run_dir).judgments:
        if j.outcome in ("candidate", "reference"):
            p = sum(v.p_candidate for v in j.verdicts) / 2
            p = p if j.outcome == "candidate" else 1 - p
            if p >= min_p:
                out[(j.dialogue_id, j.comparison)] = (j.candidate if j.outcome == "candidate" else j.reference, p)
    return out


def test_rows_are_the_judges_agreed_verdicts_with_their_provenance(judged_runs, small_refs, tmp_path):
    runs, _, other = judged_runs
    out = tmp_path / "pairs.jsonl"
    manifest = export_pairs(ExportConfig(runs=[runs["warm"], runs["flat"]], output=out, min_p=0.5,
                                         eval_dataset=str(other)))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    judgments = {name: load_run(runs[name]).judgments for name in ("warm", "flat")}
    assert manifest["judgments"] == sum(len(js) for js in judgments.values()) == 2 * 2 * N
    assert manifest["pairs"] == len(rows) > 0
    assert manifest["pairs"] + sum(manifest["dropped"].values()) == manifest["judgments"]
    assert manifest["dropped"]["no_agreement"] == sum(j.outcome == "tie" for js in judgments.values() for j in js)
    assert manifest["dropped"]["unscored"] == sum(j.outcome is None for js in judgments.values() for j in js)
    expected = {name: _expected(runs[name], 0.5) for name in ("warm", "flat")}
    assert len(rows) == sum(len(e) for e in expected.values())  # (no duplicates: every reply differs)
    refs = {n: load_reference(small_refs[n]).generations for n in ("base", "direct")}
    dialogues = {d.id: d for d in run_dialogues("bundled", N)[0]}
    prompt = load_generation_prompt()
    for row in rows:
        name = "warm" if row["run_id"].startswith("warm@") else "flat"
        winner, p = expected[name][(row["dialogue_id"], row["comparison"])]
        replies = {"candidate": STYLES[name].format(emotion=dialogues[row["dialogue_id"]].emotion),
                   **{n: refs[n][row["dialogue_id"]].response for n in refs}}
        loser = row["comparison"].removeprefix("vs_") if winner == "candidate" else "candidate"
        assert (row["chosen_system"], row["rejected_system"]) == (winner, loser)
        assert row["chosen"] == [{"role": "assistant", "content": replies[winner]}]
        assert row["rejected"] == [{"role": "assistant", "content": replies[loser]}]
        assert row["prompt"] == [{"role": "user", "content": prompt.render(dialogues[row["dialogue_id"]])}]
        assert row["p_chosen"] == pytest.approx(p) and row["p_chosen"] >= 0.5
        assert {v["winner"] for v in row["verdicts"]} == {"candidate" if winner == "candidate" else "reference"}
        assert row["judge_fingerprint"] == load_run(runs[name]).result.judge.fingerprint
    assert json.loads(manifest_path(out).read_text()) == manifest
    data = dpo_dataset(out)  # what `empathy train` reads
    assert len(data) == len(rows) and set(data.column_names) == {"prompt", "chosen", "rejected"}

    # a stricter margin keeps a subset, and says how many it dropped
    strict = export_pairs(ExportConfig(runs=[runs["warm"], runs["flat"]], output=tmp_path / "strict.jsonl",
                                       min_p=0.9, eval_dataset=str(other)))
    kept = sum(len(_expected(runs[n], 0.9)) for n in ("warm", "flat"))
    assert strict["pairs"] == kept and strict["dropped"]["below_margin"] == len(rows) - kept


def test_the_evaluation_set_is_never_exported(judged_runs, tmp_path):
    runs, held, other = judged_runs
    out = tmp_path / "pairs.jsonl"
    free = export_pairs(ExportConfig(runs=[runs["warm"]], output=out, min_p=0.0, eval_dataset=str(other)))
    guarded = export_pairs(ExportConfig(runs=[runs["warm"]], output=out, min_p=0.0, eval_dataset=str(held)))
    first_two = {d.id for d in run_dialogues("bundled", N)[0][:2]}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert not {r["dialogue_id"] for r in rows} & first_two  # same text under other ids: still refused
    assert guarded["dropped"]["evaluation_set"] == free["pairs"] - guarded["pairs"] > 0
    # everything on the evaluation set: nothing written, the counts in the error
    with pytest.raises(HarnessError, match=r"no pair left of 12 judgments \(.*evaluation_set \d+.*\) — nothing "
                                           r"written\. Pairs on the evaluation set are never exported"):
        export_pairs(ExportConfig(runs=[runs["warm"]], output=tmp_path / "none.jsonl", min_p=0.0))
    assert not (tmp_path / "none.jsonl").exists()


def test_mixed_judges_are_refused_unless_asked_for(judged_runs, tmp_path, capsys):
    runs, _, other = judged_runs
    fingerprints = [load_run(runs[n]).result.judge.fingerprint for n in ("warm", "other_judge")]
    assert fingerprints[0] != fingerprints[1]
    out = tmp_path / "pairs.jsonl"
    args = ["pairs", "export", str(runs["warm"]), str(runs["other_judge"]), "--output", str(out), "--eval-dataset",
            str(other), "--min-p", "0.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"judged by different judges: {fingerprints[0]} ({runs['warm']}) and {fingerprints[1]}" in err
    assert not out.exists()
    assert main([*args, "--allow-mixed-judges"]) == 0
    printed = capsys.readouterr()
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["judges"] == sorted(fingerprints)
    assert {r["judge_fingerprint"] for r in map(json.loads, out.read_text().splitlines())} <= set(fingerprints)
    assert "below_margin" in printed.out and f"pairs written to {out}" in printed.err


def test_a_judge_without_probabilities_passes_only_with_min_p_0():
    """A generate-mode verdict carries no probability (the tiny models here cannot answer in generate mode, so the
    records are built directly)."""
    from harness.core.records import Judgment, PairVerdict
    from harness.train.pairs import _p_chosen

    def judgment(*ps: float | None) -> Judgment:
        return Judgment(dialogue_id="d", comparison="vs_base", candidate="candidate", reference="base",
                        verdicts=tuple(PairVerdict(order=o, winner="candidate", p_candidate=p)
                                       for o, p in zip(("cand_first", "ref_first"), ps, strict=True)),
                        outcome="candidate", candidate_words=3, reference_words=4)

    assert _p_chosen(judgment(None, None), "candidate") is None
    assert _p_chosen(judgment(0.9, 0.7), "candidate") == pytest.approx(0.8)
    assert _p_chosen(judgment(0.9, 0.7), "base") == pytest.approx(0.2)
    with pytest.raises(HarnessError, match=r"--min-p 1\.5: give a probability in \[0, 1\]"):
        ExportConfig(runs=[Path("x")], output=Path("y"), min_p=1.5)


def test_reference_replies_must_be_the_ones_judged(judged_runs, small_refs, tmp_path):
    runs, _, other = judged_runs
    wrong = tmp_path / "wrong.json"
    wrong.write_bytes(small_refs["direct"].read_bytes())
    with pytest.raises(HarnessError, match=r"--reference base=.*wrong\.json: hash [0-9a-f]+, the run .* was judged "
                                           r"against [0-9a-f]+"):
        export_pairs(ExportConfig(runs=[runs["warm"]], output=tmp_path / "p.jsonl", min_p=0.0,
                                  eval_dataset=str(other), references={"base": wrong}))
    # a run whose reference file is gone: that comparison gives no pairs, and the manifest says how to give it
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in runs["warm"].iterdir():
        (moved / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["references"]["direct"]["path"] = str(tmp_path / "gone.json")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    got = export_pairs(ExportConfig(runs=[moved], output=tmp_path / "p.jsonl", min_p=0.0, eval_dataset=str(other)))
    notes = got["runs"][0]["notes"]
    assert len(notes) == 1 and notes[0].startswith("vs_direct: the reference replies are not on this disk") \
        and "--reference direct=FILE" in notes[0]
    assert got["dropped"]["no_replies"] == sum(1 for j in load_run(moved).judgments
                                               if j.comparison == "vs_direct" and j.outcome in ("candidate", "reference"))
    assert set(RULES) == set(got["dropped"])


def test_the_same_pair_twice_is_exported_once(judged_runs, tmp_path):
    runs, _, other = judged_runs
    once = export_pairs(ExportConfig(runs=[runs["warm"]], output=tmp_path / "a.jsonl", min_p=0.5,
                                     eval_dataset=str(other)))
    twice = export_pairs(ExportConfig(runs=[runs["warm"], runs["warm"]], output=tmp_path / "b.jsonl", min_p=0.5,
                                      eval_dataset=str(other)))
    assert twice["pairs"] == once["pairs"] == twice["dropped"]["duplicate"] > 0
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_bad_reference_and_limit_options_are_errors(judged_runs, tmp_path):
    runs, _, other = judged_runs
    with pytest.raises(HarnessError, match=r"--reference bse=…: no run was compared with 'bse' \(they were with "
                                           r"base, baseline|--reference bse=…: no run was compared with 'bse'"):
        export_pairs(ExportConfig(runs=[runs["warm"]], output=tmp_path / "p.jsonl", eval_dataset=str(other),
                                  references={"bse": tmp_path / "x.json"}))
    with pytest.raises(HarnessError, match=r"--reference base=.*missing\.json: no such file"):
        export_pairs(ExportConfig(runs=[runs["warm"]], output=tmp_path / "p.jsonl", eval_dataset=str(other),
                                  references={"base": tmp_path / "missing.json"}))
    with pytest.raises(HarnessError, match=r"--eval-limit -1: give at least 1"):
        ExportConfig(runs=[runs["warm"]], output=tmp_path / "p.jsonl", eval_limit=-1)
    assert not (tmp_path / "p.jsonl").exists()


def test_the_manifest_names_the_file_it_describes(judged_runs, tmp_path):
    import hashlib

    runs, _, other = judged_runs
    out = tmp_path / "pairs.jsonl"
    manifest = export_pairs(ExportConfig(runs=[runs["warm"]], output=out, min_p=0.5, eval_dataset=str(other)))
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert {json.loads(x)["order_free"] for x in out.read_text().splitlines()} == {False}


def test_runs_read_in_worker_processes_give_the_same_file(judged_runs, tmp_path):
    """A fresh process (no threads: forking is allowed) reads 4 runs in 2 workers; the file is the in-process one's."""
    import os
    import subprocess
    import sys

    runs, _, other = judged_runs
    given = [runs["warm"], runs["flat"], runs["flat"], runs["warm"]]  # repeats: the merge order decides duplicates
    here = export_pairs(ExportConfig(runs=given, output=tmp_path / "here.jsonl", min_p=0.5, eval_dataset=str(other),
                                     workers=1))
    out = tmp_path / "workers.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # as a user runs it: numpy's BLAS pool up
    done = subprocess.run([sys.executable, "-m", "harness", "pairs", "export", *map(str, given), "--output", str(out),
                           "--min-p", "0.5", "--eval-dataset", str(other), "--workers", "2"],
                          capture_output=True, text=True, env={**env, "COLUMNS": "200"}, check=False)
    assert done.returncode == 0, done.stderr
    assert "4 runs read in 2 processes" in done.stdout + done.stderr
    assert out.read_bytes() == (tmp_path / "here.jsonl").read_bytes()
    there = json.loads(manifest_path(out).read_text())
    assert here["processes"] == 1 and there["processes"] == 2
    assert there["dropped"] == here["dropped"] and here["dropped"]["duplicate"] == here["pairs"] > 0
    assert [r["pairs"] for r in there["runs"]] == [r["pairs"] for r in here["runs"]]


def test_work_is_not_forked_where_it_is_unsafe():
    """With torch (an OpenMP runtime) loaded, the same work runs here, in order."""
    import threading

    import torch  # noqa: F401

    from harness.core.forks import fork_is_safe, fork_map

    assert not fork_is_safe()
    assert fork_map(divmod, [(7, 2), (9, 4), (5, 5)], 3) == ([(3, 1), (2, 1), (1, 0)], 1)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert threading.active_count() > 1 and not fork_is_safe()  # another Python thread: never
    finally:
        stop.set()
        worker.join()


register_judge("graded-short", lambda a, b: _graded(b, a), lambda reply, request: score("3", request.labels))


def test_a_later_run_that_contradicts_an_earlier_pair_gives_no_pair(judged_runs, tiny_models, small_refs, tmp_path):
    """The same replies judged the other way round (a mock judge that prefers the shorter reply): first run wins."""
    runs, _, other = judged_runs
    dialogues, _ = run_dialogues("bundled", N)
    replies = tmp_path / "warm.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": d.id, "response": STYLES["warm"].format(emotion=d.emotion)})
                               + "\n" for d in dialogues))
    opposite = tmp_path / "opposite"
    assert main(["eval", "--model", str(replies), "--model-backend", "replies", "--reference",
                 f"base={small_refs['base']}", "--reference", f"direct={small_refs['direct']}", "--judge",
                 str(tiny_models["judge"]), "--judge-backend", "graded-short", "--judge-min-label-mass", "0",
                 "--limit", str(N), "--cache-dir", str(tmp_path / "cache"), "--output", str(opposite)]) == 0
    alone = export_pairs(ExportConfig(runs=[opposite], output=tmp_path / "alone.jsonl", min_p=0.5,
                                      eval_dataset=str(other)))
    first = export_pairs(ExportConfig(runs=[runs["warm"]], output=tmp_path / "first.jsonl", min_p=0.5,
                                      eval_dataset=str(other)))
    both = export_pairs(ExportConfig(runs=[runs["warm"], opposite], output=tmp_path / "both.jsonl", min_p=0.5,
                                     eval_dataset=str(other), allow_mixed_judges=True))
    assert alone["pairs"] > 0 and first["pairs"] > 0
    assert both["dropped"]["contradicted"] == alone["pairs"] and both["pairs"] == first["pairs"]
    assert (tmp_path / "both.jsonl").read_text() == (tmp_path / "first.jsonl").read_text()
