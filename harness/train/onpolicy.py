"""The on-policy round: DPO on the SFT policy's own replies, ranked by a judge (RLAIF / iterative DPO).

Beside the paper's teacher-rewrite pairs: after step 1 (LoRA SFT) the SFT policy samples N replies to every
training prompt (the SFT row's own prompt, with the chat template), a judge ranks them, and DPO from the SFT policy
trains on best-vs-worst pairs; the adapter is merged into ``OUTPUT/onpolicy/candidate`` with its own model card.

- **Samples**: ``onpolicy.samples`` per dialogue at ``temperature`` / ``top_p``, cut at the end of the first
  answer as evaluation replies are. Empty replies, and replies that ran into ``max_new_tokens`` without ending
  (``drop_unfinished``), are left out.
- **Ranking**: every two distinct replies of a dialogue are judged (both orders for an LLM judge; a reward model
  scores each reply once, cached, so N scores for N(N−1)/2 verdicts). A win counts 1, a tie ½; the best has the
  most points, the worst the fewest (equal points: the higher mean P(win), then the earlier sample).
- **A pair is kept** only when the judge's own best-vs-worst verdict prefers the best in both orders, saw both
  replies whole, and — for judges that give a probability — P(best) ≥ ``min_p``. Every dialogue dropped is counted
  under its rule (:data:`RULES`); the counts go to the step record, the manifest and the model card.
- **Resumable**: sampling + judging is one step (``OUTPUT/onpolicy/pairs/step.json``, inputs: the SFT data, the
  SFT step's identity, the settings, the judge fingerprint). Samples are appended per batch to
  ``samples.partial.jsonl``; an interrupted round resumes after the last batch written, and the judge's cache holds
  every verdict already given. DPO is :func:`harness.train.steps.run_dpo` (its own record and checkpoints).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.io import file_hash, write_jsonl
from harness.core.records import JudgeFingerprint, Judgment
from harness.core.settings import JudgeSettings
from harness.train.config import OnPolicySettings, TrainConfig
from harness.train.hardware import Hardware
from harness.train.sampling import PARTIAL, Prompt, Sample, read_prompts, sample_replies

#: Why a training dialogue gives no pair (the order in reports).
RULES = ("too_few_replies", "identical", "unscored", "truncated", "no_agreement", "below_margin")
SAMPLES, PAIRS = "samples.jsonl", "pairs.jsonl"


# -- ranking ----------------------------------------------------------------------------------------------


def usable(samples: Sequence[Sample], s: OnPolicySettings) -> tuple[list[str], Counter[str]]:
    """The distinct replies a judge ranks (first occurrence order), and how many were left out and why."""
    from harness.train.clean import normalise

    left_out: Counter[str] = Counter()
    kept: dict[str, str] = {}
    for x in samples:
        if not x.text.strip():
            left_out["empty"] += 1
        elif s.drop_unfinished and not x.finished:
            left_out["unfinished"] += 1
        else:
            kept.setdefault(normalise(x.text), x.text)
    return list(kept.values()), left_out


def best_and_worst(n: int, judgments: Sequence[Judgment]) -> tuple[int, int]:
    """Indices of the best and worst of ``n`` replies from their round robin (``candidate``/``reference`` = 'i'/'j')."""
    points, p_sum, p_n = [0.0] * n, [0.0] * n, [0] * n
    for j in judgments:
        a, b = int(j.candidate), int(j.reference)
        if j.outcome is not None:
            points[a] += {"candidate": 1.0, "tie": 0.5}.get(j.outcome, 0.0)
            points[b] += {"reference": 1.0, "tie": 0.5}.get(j.outcome, 0.0)
        p = mean_p(j)
        if p is not None:
            p_sum[a], p_sum[b], p_n[a], p_n[b] = p_sum[a] + p, p_sum[b] + 1 - p, p_n[a] + 1, p_n[b] + 1
    key = [(points[i], p_sum[i] / p_n[i] if p_n[i] else 0.5, -i) for i in range(n)]
    return max(range(n), key=key.__getitem__), min(range(n), key=key.__getitem__)


def mean_p(j: Judgment) -> float | None:
    """P(candidate) averaged over the orders that give one (None: a judge that gives no probability)."""
    ps = [v.p_candidate for v in j.verdicts if v.p_candidate is not None]
    return sum(ps) / len(ps) if ps else None


def choose(n: int, judgments: Sequence[Judgment], min_p: float) -> tuple[tuple[int, int, float | None] | None, str]:
    """(best, worst, P(best)) of one dialogue's round robin, or None and the rule that dropped it."""
    if all(j.outcome is None for j in judgments):
        return None, "unscored"
    best, worst = best_and_worst(n, judgments)
    direct = next(j for j in judgments if {int(j.candidate), int(j.reference)} == {best, worst})
    flipped = int(direct.candidate) != best
    if direct.outcome is None:
        return None, "unscored"
    if any(f.endswith("truncated") for f in direct.flags):
        return None, "truncated"
    if direct.outcome != ("reference" if flipped else "candidate"):
        return None, "no_agreement"
    p = mean_p(direct)
    p_best = None if p is None else (1 - p if flipped else p)
    if p_best is not None and p_best < min_p:
        return None, "below_margin"
    return (best, worst, p_best), "kept"


def label_pairs(prompts: Sequence[Prompt], samples: dict[str, list[Sample]], judge: Any,
                s: OnPolicySettings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DPO rows (trl conversational, with provenance) and the counts of what was left out, per rule."""
    from harness.judge.judge import PairItem

    replies: dict[str, list[str]] = {}
    dropped: Counter[str] = Counter()
    left_out: Counter[str] = Counter()
    items = []
    for p in prompts:
        texts, out = usable(samples[p.id], s)
        left_out.update(out)
        if len(texts) < 2:
            dropped["identical" if len(samples[p.id]) - sum(out.values()) >= 2 else "too_few_replies"] += 1
            continue
        replies[p.id] = texts
        items += [PairItem(p.dialogue, "onpolicy", str(i), str(j), texts[i], texts[j])
                  for i in range(len(texts)) for j in range(i + 1, len(texts))]
    judgments = judge.judge_pairs(items, "on-policy replies") if items else []
    by_dialogue: dict[str, list[Judgment]] = {}
    for jd in judgments:
        by_dialogue.setdefault(jd.dialogue_id, []).append(jd)
    fingerprint = judge.fingerprint.fingerprint
    rows = []
    for p in prompts:
        if p.id not in replies:
            continue
        texts = replies[p.id]
        picked, rule = choose(len(texts), by_dialogue[p.id], s.min_p)
        if picked is None:
            dropped[rule] += 1
            continue
        best, worst, p_best = picked
        rows.append({"dialogue_id": p.id, "prompt": p.messages,
                     "chosen": [{"role": "assistant", "content": texts[best]}],
                     "rejected": [{"role": "assistant", "content": texts[worst]}],
                     "p_chosen": None if p_best is None else round(p_best, 6), "n_replies": len(texts),
                     "judge_fingerprint": fingerprint})
    counts = {"dialogues": len(prompts), "pairs": len(rows), "dropped": {r: dropped[r] for r in RULES if dropped[r]},
              "replies_left_out": dict(left_out), "judgments": len(judgments)}
    return rows, counts


def preflight(sft: Path | None, judge_settings: JudgeSettings) -> JudgeFingerprint:
    """Before any training: the SFT rows (if given) carry their dialogues and the judge resolves; its fingerprint."""
    from harness.judge.judge import open_judge

    if sft is not None:
        read_prompts(sft / "train.jsonl" if sft.is_dir() else sft)
    judge = open_judge(judge_settings)
    try:
        return judge.fingerprint
    finally:
        judge.client.close()


# -- the round --------------------------------------------------------------------------------------------


def pairs_step(policy: Path, sft_file: Path, sft_record: dict[str, Any], out: Path, cfg: TrainConfig, hw: Hardware,
               judge_settings: JudgeSettings) -> dict[str, Any]:
    """Sample from the SFT ``policy`` (made by the step ``sft_record``), judge, write ``out/pairs.jsonl``."""
    from harness.core.ui import console
    from harness.judge.judge import open_judge
    from harness.train.resume import begin_step, finish_step, step_identity

    s = cfg.onpolicy
    prompts = read_prompts(sft_file)
    judge = open_judge(judge_settings)
    try:
        fp = judge.fingerprint
        inputs = {"data_sha256": file_hash(sft_file), "base": step_identity(sft_record),
                  "config": {"onpolicy": s.model_dump(mode="json"), "judge": fp.fingerprint}}
        start = begin_step(out, "onpolicy_pairs", inputs, outputs=(SAMPLES, PAIRS))
        if start.done is not None:
            return start.done
        samples = sample_replies(policy, prompts, s, hw, out / PARTIAL)
        rows, counts = label_pairs(prompts, samples, judge, s)
        judge_info = {"model": judge_settings.model, "mode": fp.mode, "fingerprint": fp.fingerprint,
                      "order_free": fp.mode == "reward", "calls": judge.calls}
    finally:
        judge.client.close()
    if not rows:
        shown = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items())
        raise HarnessError(f"the on-policy round kept no pair of {counts['dialogues']} training dialogues ({shown}); "
                           "sample more replies (onpolicy.samples), lower onpolicy.min_p, or use a judge that "
                           "separates the policy's replies")
    write_jsonl(out / SAMPLES, [{"dialogue_id": i, "replies": [[x.text, x.finished] for x in v]}
                                for i, v in samples.items()])
    write_jsonl(out / PAIRS, rows)
    (out / PARTIAL).unlink(missing_ok=True)
    console.print(f"on-policy round: {counts['pairs']} pairs of {counts['dialogues']} dialogues"
                  + "".join(f"; {k} {v}" for k, v in counts["dropped"].items()))
    return finish_step(out, "onpolicy_pairs", start, {
        "data": str(out / PAIRS), "data_sha256": file_hash(out / PAIRS), "sft_data": str(sft_file),
        "settings": s.model_dump(mode="json"), "judge": judge_info, **counts})


def run_onpolicy(base: str, sft: Path, output: Path, cfg: TrainConfig, judge_settings: JudgeSettings, *,
                 revision: str | None = None, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """LoRA SFT (shared with ``run_train``: skipped when done) → on-policy pairs → DPO from the SFT policy → merge.

    Writes ``output/onpolicy/candidate`` (model, tokenizer, model card with an on-policy section); its manifest.
    """
    from harness.core.ui import console
    from harness.train.datasets import sft_dataset
    from harness.train.hardware import detect_hardware
    from harness.train.resume import step_identity
    from harness.train.steps import run_dpo, run_sft, write_candidate

    hw = detect_hardware(cfg)
    if hw.world_size > 1:
        raise HarnessError(f"the on-policy round samples in one process ({hw.world_size} were launched): run "
                           "'empathy train --dpo-pairs onpolicy' without torchrun/accelerate, or use --dpo-pairs teacher")
    sft_file = sft / "train.jsonl" if sft.is_dir() else sft
    sft_dataset(sft_file)  # read and checked before any training starts
    read_prompts(sft_file)
    console.print(f"[bold]on-policy round[/]: {base} on {hw.device}, judged by {judge_settings.model} "
                  f"({judge_settings.mode})")
    step1 = run_sft(base, sft_file, output / "sft", cfg, hw, revision)
    policy, here = output / "sft" / "merged", output / "onpolicy"
    pairs = pairs_step(policy, sft_file, step1, here / "pairs", cfg, hw, judge_settings)
    data = here / "pairs" / PAIRS
    step2 = run_dpo(policy, data, here / "dpo", cfg, hw, policy_identity=step_identity(step1),
                    title="on-policy round: DPO")
    return write_candidate(here / "candidate", base, policy, here / "dpo", data, cfg, hw,
                           {"sft": step1, "onpolicy": pairs, "dpo": step2}, provenance or {})
