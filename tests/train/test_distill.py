"""Distillation: every strategy through a scripted teacher, direct from existing replies, datasets, rejections."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.settings import JudgeSettings
from harness.data.sources import WELIVITA_SOURCES
from harness.train.distill import STRATEGIES, DistillConfig, run_distill
from harness.train.strategies import Record, lacking_dimension
from tests.train.conftest import CALLS, DIAGNOSIS, train_jsonl
from tests.train.test_clean import dialogue


def test_distill_refuses_when_everything_is_evaluation_data(tmp_path):
    with pytest.raises(HarnessError, match="all 224 dialogues of bundled are in the evaluation set"):
        run_distill(DistillConfig(strategy="direct", dataset="bundled", output=tmp_path,
                                  teacher=JudgeSettings(model="x")))


def write_ratings_csv(path: Path, n: int) -> Path:
    fields = ["dialog_id", "emotion", "sentiment", "plutchik", "situation", "speaker_uttr"]
    fields += [f"response_{s}" for s in WELIVITA_SOURCES] + [f"rating_{s}" for s in WELIVITA_SOURCES]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for i in reversed(range(n)):  # rows out of order: records must be joined by id, never by position
            row = {"dialog_id": f"hit:{i}_conv:{i}", "emotion": "sad", "sentiment": "", "plutchik": "",
                   "situation": f"Training situation number {i} about a lost wallet.",
                   "speaker_uttr": f"I lost my wallet on day {i}."}
            for s in WELIVITA_SOURCES:
                row[f"response_{s}"] = f"{s} says sorry about wallet {i}."
                row[f"rating_{s}"] = "2"
            row["response_chatgpt_empathy"] = f'"Losing your wallet on day {i} must be so stressful."'
            w.writerow(row)
    return path


def test_direct_from_existing_replies_without_a_teacher(tmp_path, capsys):
    ratings = write_ratings_csv(tmp_path / "ratings.csv", 5)
    out = tmp_path / "direct"
    code = main(["distill", "--strategy", "direct", "--dataset", f"welivita:{ratings}",
                 "--replies-from", "chatgpt_empathy", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["teacher"] is None and report["n_accepted"] == 5 and report["repaired"] == {"quotes": 5}
    sft = [json.loads(x) for x in (out / "sft" / "train.jsonl").read_text().splitlines()]
    dpo = [json.loads(x) for x in (out / "dpo" / "train.jsonl").read_text().splitlines()]
    for row in sft:
        i = row["dialogue_id"].split(":")[-1]
        assert row["messages"][1] == {"role": "assistant",
                                      "content": f"Losing your wallet on day {i} must be so stressful."}
        assert f"I lost my wallet on day {i}." in row["messages"][0]["content"]  # the generation prompt, by id
    for row in dpo:
        i = row["dialogue_id"].split(":")[-1]
        assert row["rejected"][0]["content"] == f"human says sorry about wallet {i}."  # the dataset's human reply
    assert len(dpo) == 5


def _by_id(path: Path) -> dict[str, dict]:
    return {r["dialogue_id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy(tmp_path, teacher, strategy):
    CALLS.clear()
    data = train_jsonl(tmp_path / "train.jsonl", 6, with_reply=True)
    report = run_distill(DistillConfig(strategy=strategy, dataset=str(data), output=tmp_path / "out", teacher=teacher))
    assert report["n_accepted"] == 6 and report["overlap_guard"]["refused"] == 0
    records = _by_id(tmp_path / "out" / "records.jsonl")
    dpo = _by_id(tmp_path / "out" / "dpo" / "train.jsonl")
    k = 3
    rec = records[f"train-{k}"]
    if strategy == "direct":
        assert rec["reply"].startswith("That sounds hard:") and dpo[f"train-{k}"]["rejected"][0]["content"] == f"Oh no. ({k})"
    elif strategy == "sequential":
        assert len(rec["turns"]) == 3 and rec["reply"].startswith("I hear you, step 3 (")
        last_turn = [c for c in CALLS if len(c.history) == 2]
        assert len(last_turn) == 6 and "compassionate" in last_turn[0].user  # cognitive → affective → compassionate
        assert "affective" in [c for c in CALLS if len(c.history) == 1][0].user
        for c in last_turn:  # each chat carries its own dialogue's earlier turns
            situation = c.history[0][0].split("Situation: ")[1].split("\n")[0]
            assert f"({situation[:24]})" in c.history[0][1] and f"({situation[:30]})" in c.history[1][1]
    else:
        assert rec["start"] == f"Oh no. ({k})" and rec["start_source"] == "dataset"
        assert rec["reply"].startswith(f"Oh no. ({k}) I am here for you") and "echoed_label" in rec["repairs"]
        assert dpo[f"train-{k}"]["rejected"][0]["content"] == f"Oh no. ({k})"
        if strategy == "lacking":
            assert rec["target"] == "affective"  # the diagnosis's 'Lacking:' line, not the first dimension named
            assert any("weakest in affective empathy" in c.user for c in CALLS)
        elif strategy in ("cognitive", "affective", "compassionate"):
            assert f"Improve this reply's {strategy} empathy" in [c for c in CALLS if "<<<REPLY>>>" in c.user][0].user
    again = run_distill(DistillConfig(strategy=strategy, dataset=str(data), output=tmp_path / "out2", teacher=teacher))
    assert again["teacher"]["calls"] == 0  # every teacher answer came from the cache


@pytest.mark.parametrize(("diagnosis", "dimension"), [
    (DIAGNOSIS, "affective"),
    ("cognitive is fine but affective is lacking\nLacking: affective", "affective"),
    ("The reply says 'Lacking: cognitive' in its own words.\n\nLacking: **Compassionate**", "compassionate"),
    ("**Lacking:** Affective", "affective"),
    ("## Lacking: _cognitive_", "cognitive"),
    ("Lacking: affective\nOn reflection it is lacking compassion.\nLacking: (compassionate)", "compassionate"),
    ("Lacking: affective\nIt is not lacking cognitive insight.", "affective"),  # prose after the verdict line
    ("the reply is lacking cognitive depth and lacking affective warmth", None),  # prose only: no verdict line
    ("cognitive is fine but affective is lacking", None),  # no verdict line: unreadable, not 'cognitive'
    ("compassionate", None),  # a bare dimension is not a verdict line
    ("Lacking:\naffective", None),  # the verdict is on the line it labels
    ("Lacking: <cognitive|affective|compassionate>", None),  # the template echoed
])
def test_lacking_dimension_is_the_last_verdict_line(diagnosis, dimension):
    assert lacking_dimension(diagnosis) == dimension


def test_diagnose_prompt_asks_for_a_verdict_line():
    from harness.core.prompts import load_teacher_prompts

    prompts = load_teacher_prompts()
    text = prompts.render_diagnose(dialogue("d", "My dog died."), "Oh no.")
    assert text.rstrip().endswith("Lacking: <cognitive|affective|compassionate>") and prompts.version == "teacher-v2"


def test_sequential_keeps_request_and_record_together(tmp_path, teacher, monkeypatch):
    """No search for a record's request (an O(n²) list.index): records are never compared with each other."""
    compared = []
    monkeypatch.setattr(Record, "__eq__", lambda self, other: compared.append(1) or self is other)
    data = train_jsonl(tmp_path / "train.jsonl", 6, with_reply=True)
    report = run_distill(DistillConfig(strategy="sequential", dataset=str(data), output=tmp_path / "o", teacher=teacher))
    assert report["n_accepted"] == 6 and compared == []


def test_teacher_start_and_base_rejected(tmp_path, teacher, tiny_models):
    """No dataset replies: start from the teacher's own direct reply; DPO rejected = the base SLM's reply."""
    from harness.generate.replies import ModelSpec

    data = train_jsonl(tmp_path / "train.jsonl", 4, with_reply=False)
    report = run_distill(DistillConfig(strategy="all_three", dataset=str(data), output=tmp_path / "o", teacher=teacher,
                                       rejected="base", base=ModelSpec(str(tiny_models["base"]), device="cpu")))
    assert report["start_sources"] == {"teacher": 4}
    dpo = [json.loads(x) for x in (tmp_path / "o" / "dpo" / "train.jsonl").read_text().splitlines()]
    records = _by_id(tmp_path / "o" / "records.jsonl")
    assert len(dpo) + sum(report["dpo"]["skipped"].values()) == report["n_accepted"] == 4
    for row in dpo:  # rejected = the base SLM's own reply, not the teacher's starting reply
        rec = records[row["dialogue_id"]]
        assert row["rejected"][0]["content"] not in ("", rec["start"]) and row["chosen"][0]["content"] == rec["reply"]


def test_duplicates_are_rejected():
    from harness.train.distill import _dedupe

    recs = [Record(dialogue(f"d{i}", f"S {i}."), reply=r) for i, r in enumerate(["Same words!", "same words", "Other"])]
    _dedupe(recs)
    assert [(r.reply, r.reason) for r in recs] == [("Same words!", None), (None, "duplicate"), ("Other", None)]
