"""The on-policy round on tiny models: sampled replies ranked by a judge, DPO towards its choices, and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.prompts import prepare_for_judge
from harness.core.settings import JudgeSettings
from harness.judge.judge import open_judge
from harness.judge.reward import context_text
from harness.llm.tiny import build_tiny_reward_model
from harness.train import sampling
from harness.train.config import load_train_config
from harness.train.distill import DistillConfig, run_distill
from harness.train.hardware import detect_hardware
from harness.train.onpolicy import RULES, label_pairs, run_onpolicy, usable
from harness.train.resume import read_record
from harness.train.sampling import Sample, decoding, read_prompts, read_samples, sample_replies
from tests.judge_backends import register_judge, score
from tests.train.conftest import scripted_teacher, train_jsonl

SETTINGS = {"samples": 4, "max_new_tokens": 24, "drop_unfinished": False, "batch_size": 4}


def _cfg(**onpolicy_settings):
    return load_train_config(None, {"device": "cpu", "sft": {"num_train_epochs": 1, "learning_rate": 1e-3},
                                    "dpo": {"num_train_epochs": 4, "learning_rate": 5e-3},
                                    "onpolicy": SETTINGS | onpolicy_settings})


@pytest.fixture(scope="module")
def round_(tmp_path_factory, tiny_models):
    """8 distilled dialogues; the tiny base's SFT policy samples 4 replies each, a tiny reward model ranks them."""
    root = tmp_path_factory.mktemp("onpolicy")
    data = train_jsonl(root / "train.jsonl", 8, with_reply=True)
    run_distill(DistillConfig(strategy="all_three", dataset=str(data), output=root / "d",
                              teacher=scripted_teacher(root)))
    ranker = JudgeSettings(model=str(build_tiny_reward_model(root / "rm", seed=3)), mode="reward", device="cpu",
                           cache_dir=str(root / "cache"))
    manifest = run_onpolicy(str(tiny_models["base"]), root / "d" / "sft", root / "t", _cfg(), ranker,
                            provenance={"strategy": "all_three"})
    return root, ranker, manifest


def _rewards(ranker, texts_by_dialogue, prompts):
    judge = open_judge(ranker)
    try:
        by_id = {p.id: p.dialogue for p in prompts}
        # as the judge reads them (a reply that writes the prompt's fences gets look-alikes)
        pairs = [(context_text(by_id[i]), prepare_for_judge(t)[0]) for i, texts in texts_by_dialogue for t in texts]
        return judge.score_texts(pairs)
    finally:
        judge.client.close()


def test_pairs_are_the_judges_best_and_worst_and_dpo_moves_towards_them(round_):
    root, ranker, manifest = round_
    here = root / "t" / "onpolicy"
    prompts = read_prompts(root / "d" / "sft" / "train.jsonl")
    rows = [json.loads(line) for line in (here / "pairs" / "pairs.jsonl").read_text().splitlines()]
    samples = {r["dialogue_id"]: [t for t, _ in r["replies"]]
               for r in map(json.loads, (here / "samples" / "samples.jsonl").read_text().splitlines())}
    record = manifest["steps"]["onpolicy"]
    assert record["pairs"] == len(rows) >= 6 and record["pairs"] + sum(record["dropped"].values()) == 8
    assert set(record["dropped"]) <= set(RULES) and all(len(v) == 4 for v in samples.values())
    fingerprint = record["judge"]["fingerprint"]
    for row in rows:
        prompt = next(p for p in prompts if p.id == row["dialogue_id"])
        assert row["prompt"] == prompt.messages and row["judge_fingerprint"] == fingerprint
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        distinct, _ = usable([Sample(t, True) for t in samples[row["dialogue_id"]]], _cfg().onpolicy)
        rewards = _rewards(ranker, [(row["dialogue_id"], distinct)], prompts)
        # the round robin of a reward model is its reward order: chosen has the highest, rejected the lowest
        assert rewards[distinct.index(chosen)] == max(rewards) and rewards[distinct.index(rejected)] == min(rewards)
        p = 1 / (1 + math.exp(-(max(rewards) - min(rewards))))
        assert row["p_chosen"] == pytest.approx(p, abs=1e-5) and p >= 0.6
    dpo = manifest["steps"]["dpo"]
    assert dpo["n"] == len(rows) and dpo["margin_after"] > dpo["margin_before"] + 1.0
    # fresh samples (another seed) of the candidate are rated higher by the judge than the SFT policy's
    cfg = _cfg(samples=8, seed=99)
    hw = detect_hardware(cfg)
    means = {}
    for name, model in (("sft", root / "t" / "sft" / "merged"), ("candidate", here / "candidate")):
        fresh = sample_replies(model, prompts, decoding(cfg.onpolicy), hw, root / f"{name}.partial.jsonl")
        r = _rewards(ranker, [(i, [x.text for x in v]) for i, v in fresh.items()], prompts)
        means[name] = sum(r) / len(r)
    assert means["candidate"] > means["sft"], means
    card = (here / "candidate" / "README.md").read_text()
    assert "## On-policy round" in card and f"fingerprint `{fingerprint}`" in card
    assert f"kept: {len(rows)} best-vs-worst pairs of 8 dialogues" in card and "on-policy]" in card
    words = record["mean_words"]
    assert words["chosen"] == pytest.approx(sum(len(r["chosen"][0]["content"].split()) for r in rows) / len(rows), abs=0.051)
    assert f"chosen replies {words['chosen']} words on average, rejected {words['rejected']}" in card
    # the decoding is set in full (not the model's own generation config) and recorded as used
    assert manifest["steps"]["samples"]["decoding"] == {"samples": 4, "temperature": 0.8, "top_p": 0.95, "top_k": 0,
                                                        "repetition_penalty": 1.0, "max_new_tokens": 24,
                                                        "batch_size": 4, "seed": 0}
    assert "top-p 0.95, top-k off, no repetition penalty, at most 24 new tokens, seed 0" in card
    assert manifest["steps"]["sft"]["run_id"] == read_record(root / "t" / "sft")["run_id"]


def test_rerun_skips_and_an_interrupted_round_resumes_after_its_last_batch(round_, tiny_models, monkeypatch):
    root, ranker, manifest = round_
    here = root / "t" / "onpolicy"
    steps = ("samples", "pairs", "dpo")
    records = {s: read_record(here / s) for s in steps}
    again = run_onpolicy(str(tiny_models["base"]), root / "d" / "sft", root / "t", _cfg(), ranker)
    assert {s: read_record(here / s) for s in steps} == records  # nothing sampled, judged or trained
    assert again["steps"]["onpolicy"]["run_id"] == manifest["steps"]["onpolicy"]["run_id"]
    # a ranking setting: the same replies ranked again (no sampling), new pairs, DPO again
    reranked = run_onpolicy(str(tiny_models["base"]), root / "d" / "sft", root / "t", _cfg(min_p=0.9), ranker)
    assert read_record(here / "samples") == records["samples"]
    assert reranked["steps"]["onpolicy"]["run_id"] != records["pairs"]["run_id"]
    assert reranked["steps"]["onpolicy"]["ranking"]["min_p"] == 0.9
    assert all(r["p_chosen"] >= 0.9 for r in map(json.loads, (here / "pairs" / "pairs.jsonl").read_text().splitlines()))
    # another seed: new samples. The second batch of 4 dialogues crashes; the rerun samples only that batch
    real, calls = sampling._sample_batch, []

    def crash_on_second(*args, **kw):
        calls.append(kw["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(sampling, "_sample_batch", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_onpolicy(str(tiny_models["base"]), root / "d" / "sft", root / "t", _cfg(seed=5), ranker)
    partial_file = here / "samples" / "samples.partial.jsonl"
    partial = partial_file.read_text().splitlines()
    assert len(partial) == 4 and read_record(here / "samples")["status"] == "running"
    with partial_file.open("a") as f:  # and the crash tore the line being written
        f.write('{"dialogue_id": "torn", "repl')
    calls.clear()
    monkeypatch.setattr(sampling, "_sample_batch", lambda *a, **kw: calls.append(kw["seed"]) or real(*a, **kw))
    resumed = run_onpolicy(str(tiny_models["base"]), root / "d" / "sft", root / "t", _cfg(seed=5), ranker)
    assert calls == [5 * 1_000_003 + 1]  # only the second batch
    written = (here / "samples" / "samples.jsonl").read_text().splitlines()
    assert written[:4] == partial and len(written) == 8 and not partial_file.exists()
    assert resumed["steps"]["dpo"]["run_id"] != records["dpo"]["run_id"]  # new pairs: DPO trained again
    assert resumed["steps"]["sft"]["run_id"] == manifest["steps"]["sft"]["run_id"]  # the SFT step was reused


def _j(a: int, b: int, outcome, p=None):
    from harness.core.records import Judgment, PairVerdict

    side = {"candidate": "candidate", "reference": "reference", "tie": "tie", None: None}[outcome]
    verdicts = tuple(PairVerdict(order=o, winner=side, p_candidate=p) for o in ("cand_first", "ref_first"))
    return Judgment(dialogue_id="d", comparison="onpolicy", candidate=str(a), reference=str(b), verdicts=verdicts,
                    outcome=outcome, candidate_words=1, reference_words=1)


def test_ranking_counts_only_the_verdicts_the_judge_gave():
    from harness.train.onpolicy import choose, ranking

    # 0 > 1 > 2; reply 3 was never scored (a generate-mode judge: no probabilities): it is not "the worst"
    games = [_j(0, 1, "candidate"), _j(0, 2, "candidate"), _j(1, 2, "candidate"),
             _j(0, 3, None), _j(1, 3, None), _j(2, 3, None)]
    assert ranking(4, games) == [0, 1, 2] and choose(4, games, 0.6) == ((0, 2, None), "kept")
    # a reply with fewer verdicts is ranked by its win rate, not its count of wins
    games = [_j(0, 1, "reference"), _j(0, 2, None), _j(1, 2, "candidate"), _j(0, 3, "candidate"),
             _j(1, 3, "candidate"), _j(2, 3, "candidate")]
    assert ranking(4, games) == [1, 0, 2, 3]
    # the best's verdict against the lowest-ranked reply was not given: the next one up is the worst
    games = [_j(0, 1, "candidate", 0.9), _j(0, 2, None), _j(1, 2, "candidate", 0.8)]
    assert choose(3, games, 0.6) == ((0, 1, 0.9), "kept")
    # P is the best's, whichever side of the pair it sat on
    games = [_j(0, 1, "reference", 0.2)]
    assert choose(2, games, 0.6) == ((1, 0, pytest.approx(0.8)), "kept")
    assert choose(2, games, 0.85)[1] == "below_margin" and choose(2, [_j(0, 1, None)], 0.6) == (None, "unscored")


def _judged(a: str, b: str) -> dict[str, float]:
    """Mock LLM judge (no model that runs here judges consistently): the longer reply, surer the longer it is."""
    if "UNSCORABLE" in a + b:
        return {"_mass": 0.1, "A": 0.05, "B": 0.05, "C": 0.0}
    share = len(a.split()) / max(len(a.split()) + len(b.split()), 1)
    if abs(share - 0.5) < 0.02:
        return {"A": 0.05, "B": 0.05, "C": 0.9}
    return {"A": 0.95 * share, "B": 0.95 * (1 - share), "C": 0.05}


register_judge("onpolicy-graded", _judged, lambda reply, request: score("3", request.labels))


def test_every_rule_with_an_llm_judge_in_both_orders(round_, tmp_path):
    root, _, _ = round_
    prompts = read_prompts(root / "d" / "sft" / "train.jsonl")[:8]
    long = "word " * 1500  # past what the judge is shown: cut, flagged truncated
    texts = {
        0: ["short", "a little longer", "the longest of these three replies"],  # kept: longest over shortest
        1: ["same words here", "Same words here", "same  words here"],  # identical once normalised
        2: ["", "only one left", ""],  # too few replies
        3: ["one two three", "four five six"],  # the judge calls it a tie → no agreement
        4: ["one two three four five", "one two three four five six"],  # decisive, P below 0.6
        5: ["short", long],  # truncated
        6: ["UNSCORABLE one", "UNSCORABLE two words"],  # label mass below the floor: unscored
        7: ["ok", "I hear you, that sounds so hard", "I hear you"],  # kept
    }
    samples = {p.id: [Sample(t, True) for t in texts[k]] for k, p in enumerate(prompts)}
    judge = open_judge(JudgeSettings(model=str(root / "rm"), backend="onpolicy-graded", mode="logits",
                                     cache_dir=str(tmp_path)))
    rows, counts = label_pairs(prompts, samples, judge, _cfg().onpolicy)
    assert counts["dropped"] == {"identical": 1, "too_few_replies": 1, "unscored": 1, "truncated": 1,
                                 "no_agreement": 1, "below_margin": 1}
    assert counts["pairs"] == 2 and counts["replies_left_out"] == {"empty": 2}
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        ("the longest of these three replies", "short"), ("I hear you, that sounds so hard", "ok")]
    assert all(0.6 <= r["p_chosen"] < 1 for r in rows)
    assert counts["judgments"] == 3 + 1 + 1 + 1 + 1 + 3  # every two distinct replies, both orders in each
    # unfinished replies are left out unless asked
    unfinished = {p.id: [Sample(t, False) for t in texts[0]] for p in prompts[:1]}
    rows, counts = label_pairs(prompts[:1], unfinished, judge, _cfg(drop_unfinished=True).onpolicy)
    assert rows == [] and counts["dropped"] == {"too_few_replies": 1} and counts["replies_left_out"] == {"unfinished": 3}


def test_no_pair_kept_is_an_error_naming_the_rules(round_, tiny_models):
    root, ranker, _ = round_
    settings = ranker.model_copy(update={"tie_band": 1.0})  # every verdict a tie
    with pytest.raises(HarnessError, match=r"kept no pair of 8 training dialogues \(no_agreement 8\)"):
        run_onpolicy(str(tiny_models["base"]), root / "d" / "sft", root / "t2", _cfg(), settings)
    assert not (root / "t2" / "onpolicy" / "dpo").exists()


def test_cli_refusals_before_any_training(round_, tiny_models, tmp_path, capsys):
    root, ranker, _ = round_
    base = ["train", "--base", str(tiny_models["base"]), "--sft", str(root / "d" / "sft"), "--output", str(tmp_path / "o")]
    assert main([*base, "--dpo-pairs", "onpolicy"]) == 2
    assert "--dpo-pairs onpolicy needs --onpolicy-judge MODEL" in capsys.readouterr().err
    assert main(base) == 2
    assert "--dpo-pairs teacher needs --dpo DIR" in capsys.readouterr().err
    assert main([*base, "--dpo", str(root / "d" / "dpo"), "--onpolicy-judge", ranker.model]) == 2
    assert "--onpolicy-judge ranks the on-policy round's replies: add --dpo-pairs onpolicy" in capsys.readouterr().err
    assert main([*base, "--dpo-pairs", "onpolicy", "--dpo", str(root / "d" / "dpo"), "--onpolicy-judge", ranker.model]) == 2
    assert "is not used with --dpo-pairs onpolicy" in capsys.readouterr().err
    old = tmp_path / "old.jsonl"  # an SFT file from before rows carried their dialogue
    old.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "dialogue"}) + "\n"
                           for line in (root / "d" / "sft" / "train.jsonl").read_text().splitlines()))
    args = ["train", "--base", str(tiny_models["base"]), "--sft", str(old), "--output", str(tmp_path / "o"),
            "--dpo-pairs", "onpolicy", "--onpolicy-judge", ranker.model, "--onpolicy-judge-device", "cpu"]
    assert main(args) == 2
    assert "old.jsonl: row 1: the on-policy round needs each SFT row's 'dialogue'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*args[:4], str(root / "d" / "sft"), *args[5:], "--onpolicy-judge", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err and not (tmp_path / "o").exists()
    # a causal LM in this judge's default mode (reward): the fix names this judge's own option
    assert main([*args[:4], str(root / "d" / "sft"), *args[5:], "--onpolicy-judge", str(tiny_models["judge"])]) == 2
    err = capsys.readouterr().err
    assert "--onpolicy-judge-mode logits" in err and "--judge-mode" not in err, err
    broken = tmp_path / "broken.jsonl"  # a row whose dialogue lacks a field
    broken.write_text("".join(json.dumps({**row, "dialogue": {k: v for k, v in row["dialogue"].items() if k != "emotion"}})
                              + "\n" for row in map(json.loads, (root / "d" / "sft" / "train.jsonl").read_text().splitlines())))
    assert main([*args[:4], str(broken), *args[5:]]) == 2
    assert "broken.jsonl: row 1: its 'dialogue' is not a dialogue (emotion: Field required)" in capsys.readouterr().err
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("onpolicy:\n  samples: 1\n")
    assert main([*args[:4], str(root / "d" / "sft"), *args[5:], "--config", str(cfg)]) == 2
    assert "onpolicy.samples: input should be greater than or equal to 2, got 1" in capsys.readouterr().err


def test_an_llm_judge_ranks_the_round_in_both_orders(round_, tmp_path):
    """The ranking step with an LLM judge (mock logits backend: the longer reply) on the round's own samples."""
    from harness.train.onpolicy import pairs_step
    from harness.train.resume import read_record

    root, _, _ = round_
    prompts = read_prompts(root / "d" / "sft" / "train.jsonl")
    samples = read_record(root / "t" / "onpolicy" / "samples")
    judge = JudgeSettings(model=str(root / "rm"), backend="onpolicy-graded", mode="logits", cache_dir=str(tmp_path))
    record = pairs_step(prompts, samples, tmp_path / "pairs", _cfg(min_p=0.5).onpolicy, judge)
    assert record["judge"]["mode"] == "logits" and record["judge"]["order_free"] is False
    rows = [json.loads(x) for x in (tmp_path / "pairs" / "pairs.jsonl").read_text().splitlines()]
    distinct = [usable(v, _cfg().onpolicy)[0] for v in read_samples(Path(samples["data"])).values()]
    assert record["pairs"] == len(rows) > 0 and record["judgments"] == sum(len(v) * (len(v) - 1) // 2 for v in distinct)
    for row in rows:  # the longest reply over the shortest, both orders agreeing
        assert len(row["chosen"][0]["content"].split()) > len(row["rejected"][0]["content"].split())
        assert row["p_chosen"] >= 0.5

