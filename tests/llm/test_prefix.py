"""Shared-prefix reuse in the local judge: the plan, equality with the plain pass, and what is computed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.data.selection import run_dialogues
from harness.judge.judge import Judge, PairItem, RubricItem
from harness.judge.probe import load_probe
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient
from harness.llm.hf import CPU_BATCH_SIZE, HFBackend, auto_batch_size, bytes_per_token
from harness.llm.prefix import MIN_GROUP_TOKENS, plan_prefixes

# -- the plan ----------------------------------------------------------------------------------------------------


def _prompts(seed: int = 0) -> list[list[int]]:
    """Token lists shaped like judge prompts: a shared head, per-dialogue middles, per-prompt tails."""
    rng = random.Random(seed)
    head = [rng.randrange(1000) for _ in range(40)]
    out = []
    for _ in range(6):
        middle = [rng.randrange(1000) for _ in range(rng.randrange(12, 30))]
        for _ in range(rng.randrange(1, 5)):
            out.append(head + middle + [rng.randrange(1000) for _ in range(rng.randrange(1, 20))])
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_plan_covers_every_prompt_exactly_once(batch_size: int):
    prompts = _prompts()
    plan = plan_prefixes(prompts, batch_size)
    assert len(plan.global_prefix) == 40
    seen = []
    for batch in plan.batches:
        assert sum(len(g.members) for g in batch) <= batch_size
        for group in batch:
            for m in group.members:
                # global prefix + group prefix + suffix is the prompt, and each keeps a token of its own
                assert plan.global_prefix + group.prefix + plan.suffixes[m] == prompts[m]
                assert plan.suffixes[m]
                seen.append(m)
            if len(group.members) > 1:
                assert len(group.prefix) >= MIN_GROUP_TOKENS
    assert sorted(seen) == list(range(len(prompts)))
    total = sum(len(p) for p in prompts)
    assert plan.tokens_computed() < total / 2 if batch_size > 1 else plan.tokens_computed() < total


def test_plan_of_identical_and_prefix_prompts_keeps_a_token_each():
    plan = plan_prefixes([[1, 2, 3], [1, 2, 3], [1, 2]], 8)
    assert all(plan.suffixes[i] for i in range(3))
    assert plan.global_prefix == [1]
    with pytest.raises(ValueError, match="empty prompt"):
        plan_prefixes([[1], []], 8)
    assert plan_prefixes([], 8).batches == []


# -- equality with the plain pass ---------------------------------------------------------------------------------


def _workload(n: int) -> tuple[list[PairItem], list[RubricItem]]:
    """n dialogues × (2 comparisons in both orders + 3 dimensions × 3 systems), replies of real length."""
    dialogues, _ = run_dialogues("bundled", n)
    pairs = load_probe().pairs
    replies = [p.caring for p in pairs] + [p.poor for p in pairs]
    pick = lambda i: replies[i % len(replies)]  # noqa: E731
    items = [PairItem(d, f"vs_{ref}", "candidate", ref, pick(i), pick(i + k + 1))
             for i, d in enumerate(dialogues) for k, ref in enumerate(("base", "direct"))]
    rubric = [RubricItem(d, system, pick(i + k)) for i, d in enumerate(dialogues)
              for k, system in enumerate(("candidate", "base", "direct"))]
    return items, rubric


def _judge(model: Path, tmp: Path, mode: str, reuse: bool) -> Judge:
    backend = HFBackend(str(model), device="cpu", prefix_reuse=reuse)
    return Judge(client=LLMClient(backend=backend, mode=mode, cache=JudgeCache(tmp / f"{mode}-{reuse}.sqlite")),
                 min_label_mass=0.0)


def _logits_mode_outputs(model: Path, tmp: Path, n: int) -> dict[bool, tuple[list, list, HFBackend]]:
    items, rubric = _workload(n)
    out = {}
    for reuse in (False, True):
        judge = _judge(model, tmp, "logits", reuse)
        pairs = [v.p_candidate for j in judge.judge_pairs(items) for v in j.verdicts]
        scores = [s.scores[d] for s in judge.score_rubric(rubric) for d in s.scores]
        out[reuse] = (pairs, scores, judge.backend)
    return out


def _assert_equal(out: dict[bool, tuple[list, list, HFBackend]]) -> None:
    (plain_pairs, plain_scores, plain), (pairs, scores, reused) = out[False], out[True]
    assert pairs == pytest.approx(plain_pairs, abs=1e-4) and None not in pairs
    # expected rubric scores (1–5) are label probabilities times 1..5
    assert scores == pytest.approx(plain_scores, abs=5e-4) and None not in scores
    assert reused.reuse_note is None and reused.prefix_reuse
    assert reused.prompt_tokens == plain.prompt_tokens == plain.computed_tokens
    assert reused.computed_tokens < 0.6 * plain.computed_tokens, (reused.computed_tokens, plain.computed_tokens)


def test_reuse_equals_the_plain_pass_on_a_qwen2_shape(tiny_models, tmp_path):
    _assert_equal(_logits_mode_outputs(tiny_models["judge"], tmp_path, 6))


@pytest.mark.slow
def test_reuse_equals_the_plain_pass_on_real_smollm2(smollm2, tmp_path):
    """Real weights (Llama architecture, 49k vocabulary, chat template): label probabilities within 1e-4."""
    _assert_equal(_logits_mode_outputs(smollm2, tmp_path, 2))


def _generate_mode_texts(model: Path, tmp: Path, n: int) -> dict[bool, tuple[list, list, HFBackend]]:
    items, rubric = _workload(n)
    out = {}
    for reuse in (False, True):
        judge = _judge(model, tmp, "generate", reuse)
        judge.max_new_tokens = 12
        out[reuse] = ([v.raw for j in judge.judge_pairs(items) for v in j.verdicts],
                      [s.raw for s in judge.score_rubric(rubric)], judge.backend)
    return out


def _assert_same_text(out: dict[bool, tuple[list, list, HFBackend]]) -> None:
    assert out[True][:2] == out[False][:2] and all(out[True][0])
    backend = out[True][2]  # the reuse path really ran (no silent fallback to the plain one)
    assert backend.prefix_reuse and backend.reuse_note is None
    assert backend.computed_tokens < 0.9 * backend.prompt_tokens


def test_generate_mode_writes_the_same_text_with_reuse(tiny_models, tmp_path):
    _assert_same_text(_generate_mode_texts(tiny_models["judge"], tmp_path, 3))


@pytest.mark.slow
def test_generate_mode_on_real_smollm2_with_its_repetition_penalty(smollm2, tmp_path):
    """SmolLM2's generation config sets repetition_penalty 1.1, which reads the whole sequence: the reuse path
    hands generate() the real ids of the cached part, so the text is the same."""
    import json

    assert json.loads((smollm2 / "generation_config.json").read_text())["repetition_penalty"] == 1.1
    _assert_same_text(_generate_mode_texts(smollm2, tmp_path, 1))


def test_only_the_last_position_is_projected(tiny_models):
    """logits_to_keep=1 on both paths: the vocabulary projection sees one position per prompt."""
    from harness.llm.base import JudgeRequest

    seen: list[tuple[int, ...]] = []
    for reuse in (False, True):
        backend = HFBackend(str(tiny_models["judge"]), device="cpu", prefix_reuse=reuse)
        backend.model.lm_head.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
        requests = [JudgeRequest(system="s", user=f"tell me about item {i} " * (i + 3), prefill="Verdict:",
                                 labels=("A", "B", "C")) for i in range(5)]
        list(backend.label_probs(requests))
    assert seen and all(shape[1] == 1 for shape in seen), seen


def test_a_reuse_that_disagrees_with_the_plain_pass_is_turned_off(tiny_models, tmp_path, monkeypatch):
    """Stands in for an architecture whose cache does not fit the scheme: the first-use check catches it."""
    from harness.llm.prefix import PrefixRunner

    real_last_logits = PrefixRunner.last_logits

    def skewed(self, plan, shared, batch):  # noqa: ANN001, ANN202
        rows, logits = real_last_logits(self, plan, shared, batch)
        return rows, logits * 3.0

    monkeypatch.setattr(PrefixRunner, "last_logits", skewed)
    items, _ = _workload(2)
    plain = [v.p_candidate for j in _judge(tiny_models["judge"], tmp_path, "logits", False).judge_pairs(items)
             for v in j.verdicts]
    judge = _judge(tiny_models["judge"], tmp_path, "logits", True)
    checked = [v.p_candidate for j in judge.judge_pairs(items) for v in j.verdicts]
    assert checked == pytest.approx(plain, abs=1e-6)  # the skewed numbers never reached a verdict
    assert not judge.backend.prefix_reuse and "disagreed with the plain pass" in judge.backend.reuse_note
    assert judge.backend.stats()["reuse_note"] == judge.backend.reuse_note


def test_every_call_is_checked_not_only_the_first(tiny_models, tmp_path, monkeypatch):
    """A reuse path that goes wrong on a later call (longer prompts, another layout) is caught on that call."""
    from harness.llm.prefix import PrefixRunner

    items, rubric = _workload(2)
    judge = _judge(tiny_models["judge"], tmp_path, "logits", True)
    judge.judge_pairs(items)
    assert judge.backend.prefix_reuse
    real_last_logits = PrefixRunner.last_logits
    monkeypatch.setattr(PrefixRunner, "last_logits",
                        lambda self, plan, shared, batch: (lambda r: (r[0], r[1] * 3.0))(
                            real_last_logits(self, plan, shared, batch)))
    scores = judge.score_rubric(rubric)
    plain = _judge(tiny_models["judge"], tmp_path / "p", "logits", False).score_rubric(rubric)
    assert [s.scores for s in scores] == [pytest.approx(s.scores, abs=1e-5) for s in plain]
    assert not judge.backend.prefix_reuse and "disagreed" in judge.backend.reuse_note


def test_the_check_runs_the_most_padded_prompt_not_only_the_first(tiny_models, monkeypatch):
    """Stands in for a layout bug that only shows on rows padded between their shared part and their own tokens
    (e.g. wrong position ids after the pads): the first row of a batch has the longest suffix and no pads, so
    only the check of the most padded prompt can catch it."""
    import torch

    from harness.llm.base import JudgeRequest
    from harness.llm.prefix import PrefixRunner

    real_last_logits = PrefixRunner.last_logits
    layouts: list[tuple[int, int]] = []  # per batch: (pads of its first row, most pads of any row)

    def skewed_when_padded(self, plan, shared, batch):  # noqa: ANN001, ANN202
        rows, logits = real_last_logits(self, plan, shared, batch)
        g_width = max(len(g.prefix) for g in batch)
        s_width = max(len(plan.suffixes[m]) for g in batch for m in g.members)
        pads = {m: (g_width - len(g.prefix)) + (s_width - len(plan.suffixes[m])) for g in batch for m in g.members}
        layouts.append((pads[rows[0]], max(pads.values())))
        skew = torch.tensor([3.0 if pads[m] else 1.0 for m in rows], device=logits.device)
        return rows, logits * skew[:, None]

    monkeypatch.setattr(PrefixRunner, "last_logits", skewed_when_padded)
    # one batch of singleton groups whose suffixes differ in length: the longest prompt comes first, unpadded
    requests = [JudgeRequest(system="s", user=f"tell me about item {i} " * (i + 3), prefill="Verdict:",
                             labels=("A", "B", "C")) for i in range(5)]
    plain = HFBackend(str(tiny_models["judge"]), device="cpu", prefix_reuse=False)
    expected = {i: p for idx, out in plain.label_probs(requests) for i, p in zip(idx, out, strict=True)}
    backend = HFBackend(str(tiny_models["judge"]), device="cpu", prefix_reuse=True)
    got = {i: p for idx, out in backend.label_probs(requests) for i, p in zip(idx, out, strict=True)}
    assert layouts and layouts[0][0] == 0 < layouts[0][1]  # the case: the first row is clean, another is padded
    assert not backend.prefix_reuse and "disagreed with the plain pass" in (backend.reuse_note or "")
    assert sorted(got) == sorted(expected) == list(range(len(requests)))
    for i, probs in got.items():  # the skewed rows never reached an answer
        assert probs == pytest.approx(expected[i], abs=1e-6), i


def _sliding_window_model(tiny: Path, root: Path, window: int) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny)
    config.use_sliding_window, config.sliding_window, config.max_window_layers = True, window, 0
    config.layer_types = ["sliding_attention"] * config.num_hidden_layers
    out = root / f"swa-{window}"
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(out)
    return out


def test_a_sliding_window_shorter_than_a_padded_row_turns_reuse_off(tiny_models, tmp_path):
    """A sliding window counts pads: rows longer than the window are judged the plain way, with the reason."""
    items, _ = _workload(2)
    model = _sliding_window_model(tiny_models["judge"], tmp_path, 32)
    results = {}
    for reuse in (False, True):
        judge = _judge(model, tmp_path, "logits", reuse)
        results[reuse] = ([v.p_candidate for j in judge.judge_pairs(items) for v in j.verdicts], judge.backend)
    assert results[True][0] == pytest.approx(results[False][0], abs=1e-6)
    backend = results[True][1]
    assert not backend.prefix_reuse and "sliding attention window (32)" in backend.reuse_note


def test_a_sliding_window_longer_than_every_row_keeps_reuse(tiny_models, tmp_path):
    items, _ = _workload(2)
    judge = _judge(_sliding_window_model(tiny_models["judge"], tmp_path, 4096), tmp_path, "logits", True)
    judge.judge_pairs(items)
    assert judge.backend.prefix_reuse and judge.backend.reuse_note is None


def test_out_of_memory_is_not_taken_for_a_reuse_failure(tiny_models, monkeypatch):
    import torch

    from harness.llm.base import JudgeRequest
    from harness.llm.prefix import PrefixRunner

    def oom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise torch.OutOfMemoryError("CUDA out of memory (stand-in: no GPU here)")

    monkeypatch.setattr(PrefixRunner, "last_logits", oom)
    backend = HFBackend(str(tiny_models["judge"]), device="cpu")
    requests = [JudgeRequest(system="s", user=f"prompt {i} about the same thing", prefill="Verdict:",
                             labels=("A", "B", "C")) for i in range(3)]
    with pytest.raises(torch.OutOfMemoryError):
        list(backend.label_probs(requests))
    assert backend.prefix_reuse and backend.reuse_note is None


def test_close_frees_the_model_and_an_empty_call_is_fine(tiny_models):
    import gc
    import weakref

    backend = HFBackend(str(tiny_models["judge"]), device="cpu")
    assert list(backend.label_probs([])) == [] and backend.prefix_reuse
    model = weakref.ref(backend.model)
    backend.close()
    gc.collect()
    assert model() is None


# -- batch size ---------------------------------------------------------------------------------------------------


def test_gpu_batch_size_follows_memory_and_prompt_length():
    from transformers import Qwen2Config

    seven_b = Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                          num_key_value_heads=4)
    per_token = bytes_per_token(seven_b, 2)
    # keys+values: 2 × 28 layers × 4 heads × 128 dims; plus one layer's MLP and hidden transients; bf16
    assert per_token == 2 * (2 * 28 * 4 * 128 + 3 * 18944 + 4 * 3584)
    gib = 2**30
    assert auto_batch_size(512, 120 * gib, per_token) == 64  # compute-bound: 32k tokens per pass
    assert auto_batch_size(2048, 120 * gib, per_token) == 16
    assert auto_batch_size(512, 2 * gib, per_token) == 14  # memory-bound
    assert auto_batch_size(512, 10 * 2**20, per_token) == 1  # never 0
    assert auto_batch_size(8, 120 * gib, per_token) == 256  # capped
    # with prefix reuse a row runs only its own ~160 tokens: more rows fit the same compute per pass
    assert auto_batch_size(512, 120 * gib, per_token, computed=160) == 204


def test_cpu_batch_size_is_fixed_unless_set(tiny_models):
    assert HFBackend(str(tiny_models["judge"]), device="cpu").rows_per_batch(512) == CPU_BATCH_SIZE
    assert HFBackend(str(tiny_models["judge"]), device="cpu", batch_size=3).rows_per_batch(512) == 3
