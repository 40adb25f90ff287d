"""Training sidecar: cleaning, the overlap guard, every strategy, datasets, LoRA SFT → DPO, the pipeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.records import Dialogue
from harness.core.resources import bundled_dialogues_path
from harness.core.settings import JudgeSettings
from harness.data.sources import WELIVITA_SOURCES, load_jsonl
from harness.llm.base import register_backend
from harness.train.distill import DistillConfig, clean_reply, overlap_guard, run_distill
from harness.train.steps import load_train_config, preference_margins, run_train

MAX = 97


# -- cleaning -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "text", "repairs", "reason"), [
    ("Improved response: That sounds so hard.", "That sounds so hard.", ("echoed_label",), None),
    ('"I am so sorry, that is awful."', "I am so sorry, that is awful.", ("quotes",), None),
    ("The original reply lacks warmth and ignores the loss.\n\n**Improved reply:** I'm so sorry about Max.",
     "I'm so sorry about Max.", ("analysis_before_reply", "echoed_label"), None),
    ("Sure! Here is an improved reply:\nThat must have been scary.", "That must have been scary.",
     ("echoed_label",), None),
    ("That is wonderful news!\n\nThis reply shows affective empathy because…", "That is wonderful news!",
     ("trailing_text",), None),
    ("This response lacks cognitive empathy because it ignores the situation.", None, (), "analysis"),
    ("I'm sorry, but I can't help with that request.", None, (), "refusal"),
    ("As an AI language model, I do not have feelings.", None, (), "refusal"),
    ("   ", None, (), "empty"),
    ("Reply: ", None, ("echoed_label",), "empty"),
    ("word " * 120, None, (), "too_long"),
    ("I'm so sorry to hear that; I can't imagine how hard it is.", "I'm so sorry to hear that; I can't imagine how "
     "hard it is.", (), None),
])
def test_clean_reply(raw, text, repairs, reason):
    c = clean_reply(raw, max_words=MAX)
    assert (c.text, c.repairs, c.reason) == (text, repairs, reason)


# -- overlap guard ----------------------------------------------------------------------------------------------

def _dialogue(i: str, situation: str, utterance: str = "It happened today.") -> Dialogue:
    return Dialogue(id=i, emotion="sad", sentiment="negative", situation=situation, utterance=utterance)


def test_overlap_guard_by_id_and_by_normalised_text():
    evaluation = [_dialogue("e1", "My dog died."), _dialogue("e2", "I lost my job.")]
    train = [_dialogue("e1", "Something else."), _dialogue("t1", "  my DOG died!! "), _dialogue("t2", "I won.")]
    kept, report = overlap_guard(train, evaluation)
    assert [d.id for d in kept] == ["t2"]
    assert report["refused_by_id"] == 1 and report["refused_by_text"] == 1 and report["refused_ids"] == ["e1", "t1"]


def test_distill_refuses_when_everything_is_evaluation_data(tmp_path):
    with pytest.raises(HarnessError, match="all 224 dialogues of bundled are in the evaluation set"):
        run_distill(DistillConfig(strategy="direct", dataset="bundled", output=tmp_path,
                                  teacher=JudgeSettings(model="x")))


# -- direct from a Welivita & Pu CSV: no teacher ------------------------------------------------------------------

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


# -- every strategy, through a scripted teacher backend (a mock: no model can write sensible teacher text here) --

CALLS: list = []


class ScriptedTeacher:
    """Mock teacher backend: deterministic answers that exercise cleaning; records every request."""

    name, model_id, revision = "scripted-teacher", "scripted-teacher", None

    def generate(self, requests, max_new_tokens):
        out = []
        for r in requests:
            CALLS.append(r)
            if "Answer with one word" in r.user:
                out.append("Mostly affective, I think.")
            elif r.history:
                situation = r.history[0][0].split("Situation: ")[1].split("\n")[0]
                out.append(f"Turn {len(r.history) + 1} reply: I hear you, step {len(r.history) + 1} ({situation[:30]}).")
            elif "This is the listener's reply" in r.user:
                start = r.user.split("<<<REPLY>>>")[1].split("<<<END OF REPLY>>>")[0].strip()
                situation = r.user.split("Situation: ")[1].split("\n")[0]
                out.append(f'Improved response: "{start} I am here for you ({situation[:24]})."')
            else:  # the plain generation prompt (direct)
                situation = r.user.split("Context: ")[1].split("\n")[0]
                out.append(f"That sounds hard: {situation[:40]}")
        yield list(range(len(requests))), out

    def label_probs(self, requests):
        raise AssertionError("not used")

    def close(self):
        pass


register_backend("scripted-teacher")(lambda settings: ScriptedTeacher())


def train_jsonl(path: Path, n: int, with_reply: bool) -> Path:
    dialogues = load_jsonl(bundled_dialogues_path())[-n:]
    rows = [{**d.model_dump(mode="json"), "id": f"train-{k}", "situation": d.situation + " (train copy)",
             **({"reply": f"Oh no. ({k})"} if with_reply else {})} for k, d in enumerate(dialogues)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("strategy", ["direct", "naive", "all_three", "lacking", "cognitive", "affective",
                                      "compassionate", "sequential"])
def test_every_strategy(tmp_path, strategy):
    CALLS.clear()
    data = train_jsonl(tmp_path / "train.jsonl", 6, with_reply=True)
    teacher = JudgeSettings(model="scripted-teacher", backend="scripted-teacher", cache_dir=str(tmp_path / "c"))
    report = run_distill(DistillConfig(strategy=strategy, dataset=str(data), output=tmp_path / "out", teacher=teacher))
    assert report["n_accepted"] == 6 and report["overlap_guard"]["refused"] == 0
    records = {json.loads(x)["dialogue_id"]: json.loads(x) for x in (tmp_path / "out" / "records.jsonl").read_text().splitlines()}
    dpo = {json.loads(x)["dialogue_id"]: json.loads(x) for x in (tmp_path / "out" / "dpo" / "train.jsonl").read_text().splitlines()}
    k = 3
    rec = records[f"train-{k}"]
    if strategy == "direct":
        assert rec["reply"].startswith("That sounds hard:") and dpo[f"train-{k}"]["rejected"][0]["content"] == f"Oh no. ({k})"
    elif strategy == "sequential":
        assert len(rec["turns"]) == 3 and rec["reply"].startswith("I hear you, step 3 (")
        last_turn = [c for c in CALLS if len(c.history) == 2]
        assert len(last_turn) == 6 and "compassionate" in last_turn[0].user  # cognitive → affective → compassionate
        assert "affective" in [c for c in CALLS if len(c.history) == 1][0].user
    else:
        assert rec["start"] == f"Oh no. ({k})" and rec["start_source"] == "dataset"
        assert rec["reply"].startswith(f"Oh no. ({k}) I am here for you") and "echoed_label" in rec["repairs"]
        assert dpo[f"train-{k}"]["rejected"][0]["content"] == f"Oh no. ({k})"
        if strategy == "lacking":
            assert rec["target"] == "affective"
            assert any("weakest in affective empathy" in c.user for c in CALLS)
        elif strategy in ("cognitive", "affective", "compassionate"):
            assert f"Improve this reply's {strategy} empathy" in [c for c in CALLS if "<<<REPLY>>>" in c.user][0].user
    again = run_distill(DistillConfig(strategy=strategy, dataset=str(data), output=tmp_path / "out2", teacher=teacher))
    assert again["teacher"]["calls"] == 0  # every teacher answer came from the cache


def test_teacher_start_and_base_rejected(tmp_path, tiny_models):
    """No dataset replies: start from the teacher's own direct reply; DPO rejected = the base SLM's reply."""
    data = train_jsonl(tmp_path / "train.jsonl", 4, with_reply=False)
    teacher = JudgeSettings(model="scripted-teacher", backend="scripted-teacher", cache_dir=str(tmp_path / "c"))
    from harness.generate.replies import ModelSpec

    report = run_distill(DistillConfig(strategy="all_three", dataset=str(data), output=tmp_path / "o", teacher=teacher,
                                       rejected="base", base=ModelSpec(str(tiny_models["base"]), device="cpu")))
    assert report["start_sources"] == {"teacher": 4}
    dpo = [json.loads(x) for x in (tmp_path / "o" / "dpo" / "train.jsonl").read_text().splitlines()]
    records = {r["dialogue_id"]: r for r in map(json.loads, (tmp_path / "o" / "records.jsonl").read_text().splitlines())}
    assert len(dpo) + sum(report["dpo"]["skipped"].values()) == report["n_accepted"] == 4
    for row in dpo:  # rejected = the base SLM's own reply, not the teacher's starting reply
        rec = records[row["dialogue_id"]]
        assert row["rejected"][0]["content"] not in ("", rec["start"]) and row["chosen"][0]["content"] == rec["reply"]


def test_duplicates_are_rejected():
    from harness.train.distill import Record, _dedupe

    recs = [Record(_dialogue(f"d{i}", f"S {i}."), reply=r) for i, r in enumerate(["Same words!", "same words", "Other"])]
    _dedupe(recs)
    assert [(r.reply, r.reason) for r in recs] == [("Same words!", None), (None, "duplicate"), ("Other", None)]


# -- training ---------------------------------------------------------------------------------------------------

def test_train_config_rejects_unknown_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("sft:\n  learnin_rate: 0.1\n")
    with pytest.raises(HarnessError, match="unknown setting 'learnin_rate'.*did you mean 'learning_rate'"):
        load_train_config(f)
    cfg = load_train_config(None)
    assert (cfg.lora.r, cfg.sft.learning_rate, cfg.sft.num_train_epochs, cfg.sft.effective_batch_size,
            cfg.dpo.beta, cfg.dpo.loss_type) == (8, 5e-5, 3.0, 2, 0.1, "sigmoid")  # the paper's defaults


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models):
    """Distil all_three with the scripted teacher, then train the tiny base (DPO with a large lr to move it)."""
    root = tmp_path_factory.mktemp("train")
    data = train_jsonl(root / "train.jsonl", 8, with_reply=True)
    teacher = JudgeSettings(model="scripted-teacher", backend="scripted-teacher", cache_dir=str(root / "c"))
    run_distill(DistillConfig(strategy="all_three", dataset=str(data), output=root / "d", teacher=teacher))
    cfg = load_train_config(None, {"device": "cpu", "sft": {"num_train_epochs": 2, "learning_rate": 1e-3},
                                   "dpo": {"num_train_epochs": 4, "learning_rate": 5e-3, "save_steps": 4}})
    manifest = run_train(str(tiny_models["base"]), root / "d" / "sft", root / "d" / "dpo", root / "t", cfg)
    return root, manifest, cfg


def test_dpo_moves_the_policy_and_cpu_settings(trained):
    root, manifest, _ = trained
    dpo = manifest["steps"]["dpo"]
    assert dpo["margin_after"] > dpo["margin_before"] + 1.0  # chosen − rejected log-prob margin grew
    before = preference_margins(root / "t" / "sft" / "merged", root / "d" / "dpo" / "train.jsonl")
    after = preference_margins(root / "t" / "candidate", root / "d" / "dpo" / "train.jsonl")
    assert sum(a > b for a, b in zip(after, before, strict=True)) >= 6  # on most pairs, not just on average
    assert manifest["hardware"]["bf16"] is False and manifest["config"]["gradient_checkpointing"] is False
    card = (root / "t" / "candidate" / "README.md").read_text()
    assert f"base_model: {manifest['base']}" in card
    assert manifest["steps"]["sft"]["data_sha256"] in card and "LoRA: r 8" in card


def test_merged_logits_equal_adapter_logits(trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, _, _ = trained
    ids = torch.tensor([[5, 17, 42, 99, 7, 300, 12]])
    base = AutoModelForCausalLM.from_pretrained(root / "t" / "sft" / "merged", dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, root / "t" / "dpo" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(root / "t" / "candidate", dtype=torch.float32).eval()
    with torch.inference_mode():
        a, b = with_adapter(ids).logits, merged(ids).logits
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    with torch.inference_mode(), with_adapter.disable_adapter():
        sft_policy = with_adapter(ids).logits
    assert (a - sft_policy).abs().max() > 1e-3  # the DPO adapter is not a no-op


def test_rerun_skips_done_steps_and_resumes_from_checkpoint(trained, tiny_models):
    import shutil

    root, manifest, cfg = trained
    again = run_train(str(tiny_models["base"]), root / "d" / "sft", root / "d" / "dpo", root / "t", cfg)
    assert again["steps"]["sft"]["seconds"] == manifest["steps"]["sft"]["seconds"]  # not retrained
    shutil.rmtree(root / "t" / "dpo" / "adapter")  # as if DPO crashed after its last checkpoint
    resumed = run_train(str(tiny_models["base"]), root / "d" / "sft", root / "d" / "dpo", root / "t", cfg)
    assert resumed["steps"]["dpo"]["resumed_from"].endswith("checkpoint-16")
    assert resumed["steps"]["dpo"]["steps"] == manifest["steps"]["dpo"]["steps"]


def test_pipeline_end_to_end(tmp_path, tiny_models, capsys):
    out = tmp_path / "pipe"
    code = main(["pipeline", "--base", str(tiny_models["base"]), "--teacher", str(tiny_models["direct"]),
                 "--judge", str(tiny_models["judge"]), "--strategy", "all_three", "--limit", "24",
                 "--device", "cpu", "--teacher-device", "cpu", "--judge-device", "cpu", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "results.json").read_text())
    for name in ("vs_base", "vs_direct"):
        for key in ("win_rate", "ci_low", "ci_high", "tie_rate", "position_flip_rate", "n_scored", "n_unscored"):
            assert key in result[name]
        assert result[name]["n_scored"] + result[name]["n_unscored"] == 24
    assert set(result["rubric"]) == {"cognitive", "affective", "compassionate"}
    for strategy in ("direct", "all_three"):
        card = (out / "train" / strategy / "candidate" / "README.md").read_text()
        assert f"strategy: `{strategy}`" in card and "LoRA SFT" in card
    pipeline = json.loads((out / "pipeline.json").read_text())
    guard = pipeline["distill"]["all_three"]["overlap_guard"]
    assert guard["refused"] == 24 and guard["eval_dialogues"] == 24  # the evaluated dialogues were never trained on
    assert result["vs_direct"]["reference_model"] == str(out / "train" / "direct" / "candidate")


def test_micro_batch_and_learning_rate_scaling():
    from transformers import Qwen2Config

    from harness.train.steps import Hardware, StepSettings, micro_batch, scaled_learning_rate

    qwen05 = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2)
    step = StepSettings()
    assert micro_batch(step, Hardware("cpu", False, False, 0.0), qwen05) == 2  # the paper's batch on CPU
    h200, h100 = Hardware("cuda", True, False, 140.0), Hardware("cuda", True, False, 79.0)
    assert (micro_batch(step, h200, qwen05), micro_batch(step, h200, qwen05, pairs=True)) == (32, 16)
    assert micro_batch(step, h100, qwen05) == 32 and micro_batch(StepSettings(max_length=2048), h100, qwen05) == 8
    assert micro_batch(StepSettings(per_device_train_batch_size=3), h200, qwen05) == 3  # as given
    assert scaled_learning_rate(step, 2) == 5e-5  # batch = the configured effective batch: unchanged
    assert scaled_learning_rate(step, 32) == pytest.approx(5e-5 * 16)  # linear, capped at 16×
    assert scaled_learning_rate(StepSettings(lr_scaling="sqrt"), 8) == pytest.approx(1e-4)
    assert scaled_learning_rate(StepSettings(lr_scaling="none"), 64) == 5e-5
    with pytest.raises(HarnessError, match="lr_scaling 'cubic'"):
        scaled_learning_rate(StepSettings(lr_scaling="cubic"), 8)


def test_python_m_harness_is_the_cli():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, check=True)
    for command in ("distill", "train", "pipeline", "validate-judge"):
        assert command in out.stdout
