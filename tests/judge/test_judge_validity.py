"""A judge's validity figures travel with its numbers: judge train → training.json → results.json, and never to
another judge (a tiny BERT reward model trained on ratings the test writes; an expert folder the test writes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.fingerprint import model_identity
from harness.evaluate.runs import RunError, load_run
from harness.llm.tiny import build_tiny_reward_model
from tests.judge.test_reward import CARING, by_dialogue
from tests.score.test_experts import write_experts
from tests.train.test_judge_train import ratings_csv, tiny_bert


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A reward model from `empathy judge train --experts`, and the replies to judge with it."""
    root = tmp_path_factory.mktemp("validity")
    experts = write_experts(root / "experts")
    rm = root / "rm"
    assert main(["judge", "train", "--ratings", str(ratings_csv(root / "ratings.csv", 48)), "--output", str(rm),
                 "--backbone", str(tiny_bert(root / "bert")), "--epochs", "2", "--lr", "3e-3", "--batch-size", "4",
                 "--experts", str(experts), "--cache-dir", str(root / "cache")]) == 0
    replies = root / "replies.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": i, "response": r}) + "\n"
                               for i, r in by_dialogue(CARING).items()))
    return {"rm": rm, "replies": replies, "experts": experts, "root": root}


def evaluate(trained, refs, judge: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--model", str(trained["replies"]), "--model-backend", "replies", "--reference",
                 f"base={refs['base']}", "--judge", str(judge), "--judge-mode", "reward", "--judge-device", "cpu",
                 "--limit", "6", "--cache-dir", str(trained["root"] / "cache"), "--output", str(out), *extra])


def test_judge_train_records_what_its_figures_belong_to_and_the_expert_table(trained):
    record = json.loads((trained["rm"] / "training.json").read_text())
    assert record["model_fingerprint"] == model_identity(str(trained["rm"])).fingerprint
    experts = record["experts"]
    assert experts["n_conversations"] == 25 and experts["judge_rating"]["kind"] == "score_texts"
    assert [(r["a"], r["b"]) for r in experts["judge_rows"]] == [
        ("judge", "expert1"), ("judge", "expert2"), ("judge", "expert3"), ("judge", "experts")]
    card = (trained["rm"] / "README.md").read_text()
    assert "## Agreement with experts" in card and experts["verdict"]["line"] in card
    assert card.count("| expert") >= 3  # the paper's expert–expert rows, recomputed


def test_a_run_carries_the_judges_held_out_figures(trained, small_refs, tmp_path, capsys):
    assert evaluate(trained, small_refs, trained["rm"], tmp_path / "run") == 0
    out = capsys.readouterr().out
    r = load_run(tmp_path / "run").result
    v = r.judge_validity
    record = json.loads((trained["rm"] / "training.json").read_text())
    assert v is not None and v.origin == "judge train" and v.matches == "model weights"
    assert v.fingerprint == r.judge.model.fingerprint == record["model_fingerprint"]
    assert v.agreement is not None and v.agreement.value == pytest.approx(record["validity"]["agreement"]["value"])
    assert v.length_baseline is not None and v.experts_verdict == record["experts"]["verdict"]["label"]
    assert "judge validity (judge train, ratings.csv, 12 held-out dialogues)" in out
    # a results.json whose figures are moved to another judge is refused, naming the field
    path = tmp_path / "run" / "results.json"
    data = json.loads(path.read_text())
    data["judge_validity"]["fingerprint"] = "0" * 16
    path.write_text(json.dumps(data))
    with pytest.raises(RunError, match=r"judge_validity\.fingerprint differs"):
        load_run(tmp_path / "run")


def test_figures_of_other_weights_are_not_shown(trained, small_refs, tmp_path, capsys):
    other = build_tiny_reward_model(tmp_path / "other")
    shutil.copy(trained["rm"] / "training.json", other / "training.json")  # a record copied beside other weights
    assert evaluate(trained, small_refs, other, tmp_path / "run") == 0
    r = load_run(tmp_path / "run").result
    assert r.judge_validity is None
    assert any("written for other weights" in w and "not shown" in w for w in r.warnings)
    assert "judge validity: not measured" in capsys.readouterr().out


def test_judge_validity_file_must_be_of_this_judge(trained, small_refs, tmp_path, capsys):
    # validate-judge of the trained reward model (experts only), then an eval with its validity.json
    assert main(["validate-judge", "--experts", str(trained["experts"]), "--judge", str(trained["rm"]), "--judge-mode",
                 "reward", "--judge-device", "cpu", "--cache-dir", str(trained["root"] / "cache"), "--output",
                 str(tmp_path / "v")]) == 0
    validity = tmp_path / "v" / "validity.json"
    assert evaluate(trained, small_refs, trained["rm"], tmp_path / "run", "--judge-validity", str(validity)) == 0
    v = load_run(tmp_path / "run").result.judge_validity
    assert v is not None and v.origin == "validate-judge" and v.matches == "judge fingerprint"
    assert v.experts_kappa is not None and v.agreement is None and v.data == "expert ratings only"
    capsys.readouterr()
    # the same file for another judge (another tie band: another fingerprint) is refused before any work
    code = evaluate(trained, small_refs, trained["rm"], tmp_path / "run2", "--judge-validity", str(validity),
                    "--judge-tie-band", "0.3")
    err = capsys.readouterr().err
    assert code == 2 and "judge.fingerprint differs" in err and "Traceback" not in err
    assert not (tmp_path / "run2").exists()
    code = evaluate(trained, small_refs, trained["rm"], tmp_path / "run3", "--judge-validity", str(tmp_path / "no.json"))
    assert code == 2 and "--judge-validity" in capsys.readouterr().err


def test_demo_with_a_reward_judge(tmp_path, capsys):
    assert main(["demo", "--judge-mode", "reward", "--limit", "4", "--output", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    r = load_run(tmp_path / "d").result
    assert r.demo and r.judge.mode == "reward" and r.health.order_free and r.comparisons["vs_base"].n_scored == 4
    assert "rubric (1–5" not in out and "flips" in out and "n/a" in out  # no table of dashes: the warning says why
    assert any(w.startswith("rubric: not scored") for w in r.warnings)
    # --real with reward mode needs a reward model: one line, before SmolLM2 is converted or a folder made
    code = main(["demo", "--real", "--judge-mode", "reward", "--output", str(tmp_path / "real")])
    err = capsys.readouterr().err
    assert code == 2 and "needs --judge DIR" in err and "empathy judge train" in err
    assert not (tmp_path / "real").exists()
    assert main(["demo", "--real", "--judge", str(tmp_path / "none"), "--output", str(tmp_path / "real")]) == 2
    assert "--judge" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_real_with_a_trained_judge_shows_its_validity(trained, smollm2, tmp_path, capsys):
    """`empathy demo --real --judge DIR`: real replies judged by a reward model, its held-out figures beside them."""
    out = tmp_path / "demo"
    assert main(["demo", "--real", "--limit", "2", "--judge", str(trained["rm"]), "--output", str(out),
                 "--cache-dir", str(smollm2.parent.parent)]) == 0
    printed = capsys.readouterr().out
    r = load_run(out).result
    assert not r.demo and r.judge.mode == "reward" and r.judge_validity is not None
    assert r.judge_validity.origin == "judge train" and "judge validity (judge train" in printed
    assert "DEMO" not in printed and "real replies, side by side" in printed


def test_a_malformed_validity_file_is_one_clear_error(trained, small_refs, tmp_path, capsys):
    from harness.core.settings import JudgeSettings
    from harness.judge.judge import open_judge

    judge = open_judge(JudgeSettings(model=str(trained["rm"]), mode="reward", device="cpu",
                                     cache_dir=str(trained["root"] / "cache")))
    fp = judge.fingerprint.fingerprint
    judge.client.close()
    bad = tmp_path / "validity.json"
    bad.write_text(json.dumps({"judge": {"fingerprint": fp}, "at_a_glance": {"agreement": {"value": "high"}}}))
    code = evaluate(trained, small_refs, trained["rm"], tmp_path / "run", "--judge-validity", str(bad))
    err = capsys.readouterr().err
    assert code == 2 and "not the figures of 'empathy validate-judge'" in err and "Traceback" not in err
