"""Reward-model judges (``--judge-mode reward``): verdict math, order-freedom, caching, fingerprints, runs, errors.

The reward models are tiny Qwen2 sequence-classification models built in-process and loaded with the real
``from_pretrained``; :func:`harness.llm.tiny.build_tiny_reward_model` makes bag-of-words ones whose rewards
favour the sanity probe's caring words, so the verdicts asserted here are real.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.records import JudgeFingerprint
from harness.core.settings import JudgeSettings, task_settings_from_metadata
from harness.data.selection import run_dialogues
from harness.evaluate.runs import load_run
from harness.judge.judge import PairItem, RubricItem, open_judge
from harness.judge.probe import load_probe, run_probe
from harness.judge.reward import (
    RewardJudge,
    RubricUnavailable,
    context_text,
    reward_verdict,
    rubric_value,
    sigmoid,
)
from harness.llm.tiny import build_tiny_reward_model
from harness.score.health import ORDER_FREE_NOTE, probe_accuracy, run_health

N = 6
CARING = "I'm so sorry, that sounds really hard. It makes sense you feel this way. What do you miss most?"
POOR = "ok. anyway, what's for lunch? Whatever."


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def probe_favour() -> dict[str, float]:
    """Words only the probe's caring replies use weigh +1, words only its poor replies use −1."""
    pairs = load_probe().pairs
    caring = set().union(*(_words(p.caring) for p in pairs))
    poor = set().union(*(_words(p.poor) for p in pairs))
    return {w: 1.0 for w in sorted(caring - poor)} | {w: -1.0 for w in sorted(poor - caring)}


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reward-models")
    favour = probe_favour()
    return {
        "caring": build_tiny_reward_model(root / "caring", favour=favour),
        "rubric": build_tiny_reward_model(root / "rubric", num_labels=3, favour=favour, head=(1.0, 0.5, -1.0)),
        "random": build_tiny_reward_model(root / "random", seed=3),
        "two": build_tiny_reward_model(root / "two", num_labels=2),
        "unnamed3": build_tiny_reward_model(root / "unnamed3", num_labels=3, labels=("a", "b", "c")),
    }


def judge_for(model: Path, cache: Path, **settings) -> RewardJudge:
    judge = open_judge(JudgeSettings(model=str(model), mode="reward", device="cpu", cache_dir=str(cache), **settings))
    assert isinstance(judge, RewardJudge)
    return judge


def items(replies: dict[str, str], reference: dict[str, str], comparison: str = "vs_base") -> list[PairItem]:
    dialogues, _ = run_dialogues("bundled", N)
    return [PairItem(dialogue=d, comparison=comparison, candidate="candidate", reference="base",
                     candidate_response=replies[d.id], reference_response=reference[d.id]) for d in dialogues]


def by_dialogue(fmt: str) -> dict[str, str]:
    dialogues, _ = run_dialogues("bundled", N)
    return {d.id: fmt.format(emotion=d.emotion) for d in dialogues}


# -- verdict math ---------------------------------------------------------------------------------------------


def test_sigmoid_and_rubric_mapping():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(math.log(3)) == pytest.approx(0.75)
    assert sigmoid(1000.0) == 1.0 and sigmoid(-1000.0) == 0.0  # no overflow
    assert rubric_value(0.0) == 3.0
    assert rubric_value(math.log(3)) == pytest.approx(4.0)
    assert rubric_value(-50.0) == pytest.approx(1.0) and rubric_value(50.0) == pytest.approx(5.0)


def test_verdict_is_sigmoid_of_the_difference_with_a_tie_band():
    edge = math.log(0.55 / 0.45)  # σ(edge) = 0.55: |P − ½| = 0.05 = tie_band / 2 for the band 0.1
    assert reward_verdict(2.0, 0.0, 0.1) == ("candidate", pytest.approx(sigmoid(2.0)))
    assert reward_verdict(0.0, 2.0, 0.1) == ("reference", pytest.approx(sigmoid(-2.0)))
    assert reward_verdict(1.0 + edge - 1e-6, 1.0, 0.1)[0] == "tie"  # strictly inside the band
    assert reward_verdict(1.0 + edge + 1e-6, 1.0, 0.1)[0] == "candidate"  # just outside
    assert reward_verdict(1.0, 1.0 + edge - 1e-6, 0.1)[0] == "tie"
    assert reward_verdict(1.0, 1.0 + edge + 1e-6, 0.1)[0] == "reference"
    assert reward_verdict(0.3, 0.3, 0.0) == ("tie", 0.5)  # band 0: only equal rewards tie
    assert reward_verdict(0.3 + 1e-12, 0.3, 0.0)[0] == "candidate"
    assert reward_verdict(5.0, 0.0, 0.98)[0] == "candidate"  # σ(5) = 0.9933 lies outside ½ ± 0.49
    assert reward_verdict(3.0, 0.0, 0.98)[0] == "tie"  # σ(3) = 0.9526 lies inside


def test_tie_band_is_checked_in_settings_and_on_the_command_line(tmp_path, capsys):
    with pytest.raises(ValidationError):
        JudgeSettings(mode="reward", tie_band=1.0)
    with pytest.raises(ValidationError):
        JudgeSettings(mode="reward", tie_band=-0.1)
    assert main(["eval", "--model", "m", "--judge", "j", "--judge-mode", "reward", "--judge-tie-band", "2",
                 "--output", str(tmp_path / "o")]) == 2
    assert "--judge-tie-band" in capsys.readouterr().err
    settings = task_settings_from_metadata({"judge_mode": "reward", "judge_tie_band": 0.2}, env={})
    assert settings.judge.mode == "reward" and settings.judge.tie_band == 0.2


# -- fingerprints ---------------------------------------------------------------------------------------------

#: A logits-mode and a served generate-mode fingerprint, hashed by the code before reward judges existed.
OLD = {"model": {"kind": "local", "name": "/models/judge", "fingerprint": "0123456789abcdef"}, "backend": "hf",
       "mode": "logits", "requested_mode": "logits", "pairwise_prompt_version": "pairwise-v1",
       "pairwise_prompt_hash": "aaaaaaaaaaaaaaaa", "rubric_prompt_version": "rubric-v1",
       "rubric_prompt_hash": "bbbbbbbbbbbbbbbb", "pairwise_labels": ["A", "B", "C"],
       "rubric_labels": ["1", "2", "3", "4", "5"], "max_new_tokens": 1, "temperature": 0.0, "dtype": "float32",
       "parser_version": "2", "min_label_mass": 0.5, "logprobs_probe": None}
OLD_SERVED = OLD | {"mode": "generate", "mode_note": "note", "max_new_tokens": 96, "logprobs_probe": False,
                    "backend": "openai", "dtype": "server"}


def test_fingerprints_without_a_tie_band_hash_as_before():
    for fields, pinned in ((OLD, "4928e2f680bc166d"), (OLD_SERVED, "9e1b6378872a49d3")):
        fp = JudgeFingerprint(**fields, fingerprint="").with_hash()
        assert fp.fingerprint == pinned
        stored = {**fields, "fingerprint": pinned}  # a results.json written before: no tie_band key
        assert JudgeFingerprint.model_validate(stored).tie_band is None
        # dumped (with tie_band: null) and loaded again, it still checks
        assert JudgeFingerprint.model_validate(fp.model_dump(mode="json")).fingerprint == pinned
    banded = JudgeFingerprint(**OLD, tie_band=0.1, fingerprint="").with_hash()
    assert banded.fingerprint != "4928e2f680bc166d"
    with pytest.raises(ValidationError, match="does not match its fields"):
        JudgeFingerprint(**OLD, tie_band=0.2, fingerprint=banded.fingerprint)


def test_reward_fingerprint_holds_the_tie_band_but_scores_do_not(reward_models, tmp_path):
    a = judge_for(reward_models["caring"], tmp_path / "c")
    b = judge_for(reward_models["caring"], tmp_path / "c", tie_band=0.3)
    fa, fb = a.fingerprint, b.fingerprint
    assert (fa.mode, fa.requested_mode, fa.tie_band, fb.tie_band) == ("reward", "reward", 0.1, 0.3)
    assert fa.fingerprint != fb.fingerprint
    assert a.score_fingerprint == b.score_fingerprint  # the band shapes verdicts, not scores: one cache entry
    assert fa.rubric_labels == ("LABEL_0",) and fa.max_new_tokens == 0 and fa.dtype == "float32"
    assert JudgeFingerprint.model_validate(fa.model_dump(mode="json")) == fa
    other = judge_for(reward_models["random"], tmp_path / "c")
    assert other.fingerprint.fingerprint != fa.fingerprint and other.score_fingerprint != a.score_fingerprint
    for j in (a, b, other):
        j.client.close()


# -- order-freedom and caching --------------------------------------------------------------------------------


def test_both_orders_get_one_verdict_and_position_bias_is_not_applicable(reward_models, tmp_path):
    judge = judge_for(reward_models["caring"], tmp_path / "cache")
    caring, poor = by_dialogue(CARING), by_dialogue(POOR)
    judgments = judge.judge_pairs(items(caring, poor)) + judge.judge_pairs(items(poor, caring))
    for j in judgments:
        first, second = j.verdicts
        assert (first.order, second.order) == ("cand_first", "ref_first")
        assert first.winner == second.winner == j.outcome and first.p_candidate == second.p_candidate
        assert first.label_mass is None and j.judge_fingerprint == judge.fingerprint.fingerprint
    assert [j.outcome for j in judgments] == ["candidate"] * N + ["reference"] * N
    r_caring, r_poor = judge.score_texts([(context_text(items(caring, poor)[0].dialogue), CARING),
                                          (context_text(items(caring, poor)[0].dialogue), POOR)])
    assert judgments[0].verdicts[0].p_candidate == pytest.approx(sigmoid(r_caring - r_poor))
    assert judgments[0].verdicts[0].raw == f"r_candidate={r_caring:.4f} r_reference={r_poor:.4f}"
    health = run_health(judgments, [], min_label_mass=0.0, order_free=True)
    assert health.order_free and health.position_bias is None and health.position_flip_rate is None
    assert health.judge_problem is None and health.parse_rate == 1.0
    measured = run_health(judgments, [], min_label_mass=0.0)  # what an LLM judge's numbers would claim
    assert measured.position_flip_rate == 0.0 and measured.position_bias == 0.0 and not measured.order_free
    shown = [(items(caring, poor)[0].dialogue, CARING, POOR), (items(caring, poor)[0].dialogue, POOR, CARING)]
    assert [v.winner for v in judge.position_verdicts(shown)] == ["candidate", "reference"]  # positional
    judge.client.close()


def test_reference_replies_are_scored_once_for_every_candidate(reward_models, tmp_path):
    cache = tmp_path / "cache"
    reference = by_dialogue("Oh, {emotion}. I see.")
    first, second = by_dialogue(CARING + " ({emotion})"), by_dialogue(POOR + " ({emotion})")
    judge = judge_for(reward_models["caring"], cache)
    judge.judge_pairs(items(first, reference))
    assert judge.calls == 2 * N  # every reply once: N candidate replies, N reference replies
    judge.judge_pairs(items(second, reference))
    assert judge.calls == 3 * N  # the second candidate costs its own N replies only, not 2 orders × N pairs
    judge.judge_pairs(items(second, reference, comparison="vs_again"))
    assert judge.calls == 3 * N  # asked again (another comparison name): all cached
    assert judge.score_texts([("ctx", "a reply"), ("ctx", "a reply"), ("ctx", "another")])[0] is not None
    assert judge.calls == 3 * N + 2  # duplicates in one call are scored once
    judge.client.close()
    warm = judge_for(reward_models["caring"], cache)
    again = warm.judge_pairs(items(second, reference))
    assert warm.calls == 0 and all(v.cached for j in again for v in j.verdicts)
    warm.client.close()
    banded = judge_for(reward_models["caring"], cache, tie_band=0.5)
    banded.judge_pairs(items(second, reference))
    assert banded.calls == 0  # another tie band: new verdicts from the same cached scores
    assert not banded.runner._model  # the model was never loaded
    banded.client.close()


def test_sanity_probe_works_with_a_reward_judge(reward_models, tmp_path):
    judge = judge_for(reward_models["caring"], tmp_path / "cache")
    probe = run_probe(judge)
    assert probe_accuracy(probe) == 1.0 and judge.calls == 2 * len(load_probe().pairs)
    assert all(len(p.verdicts) == 2 and p.verdicts[0].winner == "candidate" for p in probe)
    health = run_health([], [], min_label_mass=0.0, probe=probe, order_free=True)
    assert health.judge_ok and health.probe_accuracy == 1.0
    judge.client.close()
    random = judge_for(reward_models["random"], tmp_path / "cache")
    assert probe_accuracy(run_probe(random)) is not None  # noise, but read: every verdict decided or tied
    random.client.close()


# -- rubric ---------------------------------------------------------------------------------------------------


def test_three_output_model_scores_each_dimension(reward_models, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    judge = judge_for(reward_models["rubric"], tmp_path / "cache")
    dialogues, _ = run_dialogues("bundled", 2)
    scores = judge.score_rubric([RubricItem(dialogue=d, system="candidate", response=CARING) for d in dialogues]
                                + [RubricItem(dialogue=dialogues[0], system="base", response="")])
    tok = AutoTokenizer.from_pretrained(reward_models["rubric"])
    model = AutoModelForSequenceClassification.from_pretrained(reward_models["rubric"])
    texts = [(context_text(d), CARING) for d in dialogues] + [(context_text(dialogues[0]), "(empty reply)")]
    with torch.no_grad():
        raw = model(**tok([c for c, _ in texts], [r for _, r in texts], padding=True, return_tensors="pt")).logits
    for score, row in zip(scores, raw.tolist(), strict=True):
        assert set(score.scores) == {"cognitive", "affective", "compassionate"}
        assert [score.scores[d] for d in ("cognitive", "affective", "compassionate")] == pytest.approx(
            [1 + 4 * sigmoid(r) for r in row], abs=1e-5)
        assert row[1:] == pytest.approx([0.5 * row[0], -row[0]], abs=1e-5)  # the head factors 1, 0.5, −1
    assert raw[0, 0] > 0 and raw[1, 0] > 0  # caring words raise the first output
    assert scores[2].flags == ("empty",) and scores[0].judge_fingerprint == judge.fingerprint.fingerprint
    assert judge.fingerprint.rubric_labels == ("cognitive", "affective", "compassionate")
    # its pairwise reward is the mean of the three outputs, from the same cached scores
    assert judge.score_texts(texts[:1]) == [pytest.approx(sum(raw[0].tolist()) / 3, abs=1e-5)]
    judge.client.close()


def test_one_output_model_has_no_rubric(reward_models, tmp_path):
    judge = judge_for(reward_models["caring"], tmp_path / "cache")
    dialogues, _ = run_dialogues("bundled", 1)
    with pytest.raises(RubricUnavailable, match="needs an LLM judge .* or a reward model with 3 outputs"):
        judge.score_rubric([RubricItem(dialogue=dialogues[0], system="candidate", response=CARING)])
    assert isinstance(RubricUnavailable("x"), HarnessError)
    judge.client.close()


# -- clear errors ---------------------------------------------------------------------------------------------


def test_heads_that_are_not_reward_models_are_refused(reward_models, tiny_models, tmp_path):
    with pytest.raises(HarnessError, match=r"classification head with 2 outputs .*one output"):
        _ = judge_for(reward_models["two"], tmp_path / "c").fingerprint
    with pytest.raises(HarnessError, match="three outputs named a, b, c: name them cognitive"):
        _ = judge_for(reward_models["unnamed3"], tmp_path / "c").fingerprint
    with pytest.raises(HarnessError, match=r"no sequence-classification head \(it is Qwen2ForCausalLM\).*--judge-mode "
                                           "logits or generate"):
        _ = judge_for(tiny_models["judge"], tmp_path / "c").fingerprint
    # a config that names no architecture: the weights show the head was never trained
    headless = tmp_path / "headless"
    shutil.copytree(tiny_models["judge"], headless)
    config = json.loads((headless / "config.json").read_text())
    config.pop("architectures", None)
    config.update(id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    (headless / "config.json").write_text(json.dumps(config))
    judge = judge_for(headless, tmp_path / "c")
    with pytest.raises(HarnessError, match="no trained classification head .*score.weight"):
        judge.score_texts([("context", "reply")])
    with pytest.raises(HarnessError, match="--judge-backend hf"):
        open_judge(JudgeSettings(model="m", mode="reward", backend="openai", cache_dir=str(tmp_path / "c")))


def test_eval_with_a_causal_lm_as_reward_judge_fails_before_any_work(tiny_models, small_refs, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["eval", "--model", str(tiny_models["candidate"]), "--device", "cpu", "--reference",
                 f"base={small_refs['base']}", "--judge", str(tiny_models["judge"]), "--judge-mode", "reward",
                 "--judge-device", "cpu", "--limit", str(N), "--cache-dir", str(tmp_path / "c"), "--output", str(out)])
    assert code == 2
    assert "no sequence-classification head" in capsys.readouterr().err
    assert not out.exists()


# -- whole runs -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reward_runs(reward_models, small_refs, tmp_path_factory):
    """`empathy eval --judge-mode reward` of caring and of poor replies (one judge cache), and a warm re-run."""
    root = tmp_path_factory.mktemp("reward-runs")
    runs, codes = {}, {}
    for name, text in (("caring", CARING), ("poor", POOR), ("caring_again", CARING)):
        replies = root / f"{name}.jsonl"
        replies.write_text("".join(json.dumps({"dialogue_id": i, "response": r}) + "\n"
                                   for i, r in by_dialogue(text + " ({emotion})").items()))
        runs[name] = root / name
        codes[name] = main(["eval", "--model", str(replies), "--model-backend", "replies", "--reference",
                            f"base={small_refs['base']}", "--judge", str(reward_models["caring"]), "--judge-mode",
                            "reward", "--judge-device", "cpu", "--limit", str(N), "--cache-dir", str(root / "cache"),
                            "--output", str(runs[name])])
    return runs, codes


def test_eval_run_with_a_reward_judge_is_valid_and_order_free(reward_runs, capsys):
    runs, codes = reward_runs
    assert codes == {"caring": 0, "poor": 0, "caring_again": 0}
    run = load_run(runs["caring"])  # the loader recomputes every number (order-free health included)
    r = run.result
    assert r.judge.mode == "reward" and r.judge.tie_band == 0.1
    assert r.health.order_free and r.health.position_bias is None and r.health.position_flip_rate is None
    assert r.health.judge_ok and r.health.probe_accuracy == 1.0
    vs_base = r.comparisons["vs_base"]
    assert vs_base.position_flip_rate is None and vs_base.wins == N and vs_base.win_rate == 1.0
    assert vs_base.preference is not None and vs_base.preference > 0.5
    assert "position_flip,judge" not in r.results["empathy_winrate_vs_base"]
    assert all(d.n_scored == 0 and d.mean is None for d in r.rubric.values()) and run.rubric == []
    assert any(w.startswith("rubric: not scored") and "3 outputs" in w for w in r.warnings)
    stored = json.loads((runs["caring"] / "results.json").read_text())
    assert stored["health"]["order_free"] is True and stored["health"]["position_bias"] is None
    assert load_run(runs["poor"]).result.comparisons["vs_base"].losses == N
    # the probe and the reference replies were scored once, in the first run: later runs score their own replies
    calls = {name: load_run(path).manifest["judge"]["model_calls"] for name, path in runs.items()}
    assert calls == {"caring": 2 * N + 2 * len(load_probe().pairs), "poor": N, "caring_again": 0}


def test_console_summary_says_position_bias_is_not_applicable(reward_runs, capsys):
    from harness.core.ui import print_summary

    runs, _ = reward_runs
    print_summary(load_run(runs["caring"]).result)
    out = capsys.readouterr().out
    assert f"position bias {ORDER_FREE_NOTE}" in out and "rubric: not scored" in out


def test_check_gates_two_reward_runs(reward_runs, tmp_path):
    runs, _ = reward_runs
    verdict = tmp_path / "verdict.json"
    assert main(["check", "--baseline", str(runs["caring"]), "--candidate", str(runs["poor"]), "--metrics",
                 "win_rate", "--n-boot", "500", "--json", str(verdict)]) == 1
    found = json.loads(verdict.read_text())
    assert {m["name"]: m["outcome"] for m in found["metrics"]} == {"win_rate:vs_base": "regression"}
    assert "position_flip_rate" not in {c["name"] for c in found["health"]}
    # every metric (no rubric: the judge has none, so none is gated): the same replies pass
    assert main(["check", "--baseline", str(runs["caring"]), "--candidate", str(runs["caring_again"]),
                 "--n-boot", "500", "--json", str(verdict)]) == 0
    found = json.loads(verdict.read_text())
    assert {m["name"] for m in found["metrics"]} == {"win_rate:vs_base", "lc_win_rate:vs_base"}


def test_eval_with_a_three_output_reward_judge_scores_the_rubric(reward_models, small_refs, tmp_path):
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": i, "response": r}) + "\n"
                               for i, r in by_dialogue(CARING).items()))
    cfg = EvalConfig(candidate=ModelSpec(str(replies), backend="replies"),
                     judge=JudgeSettings(model=str(reward_models["rubric"]), mode="reward", device="cpu",
                                         cache_dir=str(tmp_path / "cache")),
                     output=tmp_path / "run", references={"base": small_refs["base"]}, limit=N)
    result = run_eval(cfg)
    assert all(d.n_scored == N and d.mean is not None and 1 < d.mean < 5 for d in result.rubric.values())
    assert result.rubric["cognitive"].mean > 3 > result.rubric["compassionate"].mean  # head factors 1 and −1
    assert result.rubric_references["base"]["affective"].n_scored == N
    assert not any(w.startswith("rubric") for w in result.warnings)
    assert load_run(tmp_path / "run").result.health.rubric_parse_rate == 1.0
