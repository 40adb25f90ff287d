"""The on-policy round: DPO on the SFT policy's own replies ranked by a judge (RLAIF; one round of iterative DPO).

Beside the paper's teacher-rewrite pairs: after step 1 (LoRA SFT) the SFT policy samples N replies to every
training prompt (the SFT row's own prompt, with the chat template), a judge ranks them, and DPO from the SFT policy
trains on best-vs-worst pairs; the adapter is merged into ``OUTPUT/onpolicy/candidate`` with its own model card.

- **Samples**: ``onpolicy.samples`` per dialogue at ``temperature`` / ``top_p`` (top-k off, no repetition
  penalty: the decoding is set in full, not inherited from the model), cut at the end of the first answer as
  evaluation replies are. Empty replies, and replies that ran into ``max_new_tokens`` without ending
  (``drop_unfinished``), are left out.
- **Ranking**: every two distinct replies of a dialogue are judged (both orders for an LLM judge; a reward model
  scores each reply once, cached, so N scores for N(N−1)/2 verdicts). Replies are ranked by their win rate over the
  verdicts the judge gave (a win 1, a tie ½; equal: the higher mean P(win), then the earlier sample); the worst is
  the lowest-ranked reply whose verdict against the best was given.
- **A pair is kept** only when the judge's own best-vs-worst verdict prefers the best in both orders, saw both
  replies whole, and — for judges that give a probability — P(best) ≥ ``min_p``. Every dialogue dropped is counted
  under its rule (:data:`RULES`); the counts, and the mean words of chosen and rejected replies (a round that only
  rewards length shows there), go to the step record, the manifest and the model card.
- **Resumable**: sampling (:mod:`harness.train.sampling`, ``OUTPUT/onpolicy/samples``: inputs the SFT data, the SFT
  step, the decoding) and ranking (``OUTPUT/onpolicy/pairs``: inputs the samples' hash, the judge fingerprint,
  ``min_p`` and ``drop_unfinished``) are steps like the others, so a new ``min_p`` ranks the same replies again
  from the judge cache; DPO is :func:`harness.train.steps.run_dpo` (its own record and checkpoints).
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
from harness.score.stats import OUTCOME_SCORE
from harness.train.config import OnPolicySettings, TrainConfig
from harness.train.datasets import train_file
from harness.train.sampling import Prompt, Sample, read_prompts, read_samples, samples_step

#: Why a training dialogue gives no pair (the order in reports).
RULES = ("too_few_replies", "identical", "unscored", "truncated", "no_agreement", "below_margin")
PAIRS = "pairs.jsonl"


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


def mean_p(j: Judgment) -> float | None:
    """P(candidate) averaged over the orders that give one (None: a judge that gives no probability)."""
    ps = [v.p_candidate for v in j.verdicts if v.p_candidate is not None]
    return sum(ps) / len(ps) if ps else None


def ranking(n: int, judgments: Sequence[Judgment]) -> list[int]:
    """The replies with at least one scored verdict, best first (``candidate``/``reference`` = 'i'/'j').

    By win rate over their scored verdicts (a win 1, a tie ½: a reply is not ranked down for verdicts the judge
    could not give), then the mean P(win), then the earlier sample.
    """
    points, games, p_sum, p_n = [0.0] * n, [0] * n, [0.0] * n, [0] * n
    for j in judgments:
        if j.outcome is None:
            continue
        a, b = int(j.candidate), int(j.reference)
        points[a] += OUTCOME_SCORE[j.outcome]
        points[b] += 1.0 - OUTCOME_SCORE[j.outcome]
        games[a], games[b] = games[a] + 1, games[b] + 1
        p = mean_p(j)
        if p is not None:
            p_sum[a], p_sum[b], p_n[a], p_n[b] = p_sum[a] + p, p_sum[b] + 1 - p, p_n[a] + 1, p_n[b] + 1
    ranked = [i for i in range(n) if games[i]]
    return sorted(ranked, key=lambda i: (-points[i] / games[i], -(p_sum[i] / p_n[i] if p_n[i] else 0.5), i))


def choose(n: int, judgments: Sequence[Judgment], min_p: float) -> tuple[tuple[int, int, float | None] | None, str]:
    """(best, worst, P(best)) of one dialogue's round robin, or None and the rule that dropped it.

    The worst is the lowest-ranked reply whose verdict against the best was scored.
    """
    order = ranking(n, judgments)
    between = {frozenset((int(j.candidate), int(j.reference))): j for j in judgments}
    scored = [i for i in order[1:] if between[frozenset((order[0], i))].outcome is not None] if order else []
    if not scored:
        return None, "unscored"
    best, worst = order[0], scored[-1]
    direct = between[frozenset((best, worst))]
    flipped = int(direct.candidate) != best
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
    def words(side: str) -> float | None:
        return round(sum(len(r[side][0]["content"].split()) for r in rows) / len(rows), 1) if rows else None

    counts = {"dialogues": len(prompts), "pairs": len(rows), "dropped": {r: dropped[r] for r in RULES if dropped[r]},
              "replies_left_out": dict(left_out), "judgments": len(judgments),
              "mean_words": {"chosen": words("chosen"), "rejected": words("rejected")}}
    return rows, counts


#: What to try when the round keeps no pair, by the rule that dropped the most dialogues.
HINTS = {"too_few_replies": "raise onpolicy.max_new_tokens (replies ran into it: see 'replies left out') or set "
                            "onpolicy.drop_unfinished: false, or sample more (onpolicy.samples)",
         "identical": "sample more diverse replies (onpolicy.temperature, onpolicy.samples)",
         "unscored": "check the judge (empathy validate-judge): it gave no verdict on these replies",
         "truncated": "lower onpolicy.max_new_tokens: the judge was shown cut replies",
         "no_agreement": "use a judge that separates the policy's replies, or sample more (onpolicy.samples)",
         "below_margin": "lower onpolicy.min_p (default 0.6), or sample more replies (onpolicy.samples)"}


def preflight(sft: Path | None, judge_settings: JudgeSettings, *, role: str = "onpolicy_judge") -> JudgeFingerprint:
    """Before any training: one process, SFT rows (if given) with their dialogues, a judge that loads; its fingerprint.

    A judge error names this role's options (``--onpolicy-judge-mode``, not ``--judge-mode``).
    """
    import os

    from harness.judge.judge import open_judge

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        raise HarnessError(f"the on-policy round samples in one process ({world} were launched): run it without "
                           "torchrun/accelerate, or train the teacher pairs alone (--dpo-pairs teacher)")
    if sft is not None:
        read_prompts(train_file(sft))
    try:
        judge = open_judge(judge_settings)
        try:
            return judge.fingerprint
        finally:
            judge.client.close()
    except HarnessError as exc:
        flag = role.replace("_", "-")
        raise HarnessError(str(exc).replace("--judge-", f"--{flag}-").replace("--judge ", f"--{flag} ")) from exc


# -- the round --------------------------------------------------------------------------------------------


def pairs_step(prompts: Sequence[Prompt], samples_record: dict[str, Any], out: Path, s: OnPolicySettings,
               judge_settings: JudgeSettings) -> dict[str, Any]:
    """Rank the sampled replies with the judge and write ``out/pairs.jsonl``; the step record.

    Its inputs are the samples (their file's hash), the judge fingerprint and the ranking settings (``min_p``,
    ``drop_unfinished``): changing those ranks the same replies again, from the judge cache.
    """
    from harness.core.ui import console
    from harness.judge.judge import open_judge
    from harness.train.resume import begin_step, finish_step

    samples = read_samples(Path(samples_record["data"]))
    judge = open_judge(judge_settings)
    try:
        fp = judge.fingerprint
        ranking_settings = {"min_p": s.min_p, "drop_unfinished": s.drop_unfinished}
        inputs = {"data_sha256": samples_record["data_sha256"], "base": fp.fingerprint,
                  "config": {"ranking": ranking_settings}}
        start = begin_step(out, "onpolicy_pairs", inputs, outputs=(PAIRS,))
        if start.done is not None:
            return start.done
        rows, counts = label_pairs(prompts, samples, judge, s)
        judge_info = {"model": judge_settings.model, "mode": fp.mode, "fingerprint": fp.fingerprint,
                      "order_free": fp.mode == "reward", "calls": judge.calls}
    finally:
        judge.client.close()
    if not rows:
        shown = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items())
        left = ", ".join(f"{k} {v}" for k, v in counts["replies_left_out"].items())
        worst = max(counts["dropped"], key=counts["dropped"].__getitem__)
        raise HarnessError(f"the on-policy round kept no pair of {counts['dialogues']} training dialogues ({shown}"
                           f"{'; replies left out: ' + left if left else ''}): {HINTS[worst]}")
    write_jsonl(out / PAIRS, rows)
    console.print(f"on-policy round: {counts['pairs']} pairs of {counts['dialogues']} dialogues"
                  + "".join(f"; {k} {v}" for k, v in counts["dropped"].items()))
    return finish_step(out, "onpolicy_pairs", start, {
        "data": str(out / PAIRS), "data_sha256": file_hash(out / PAIRS), "samples": samples_record["data"],
        "decoding": samples_record["decoding"], "ranking": ranking_settings, "judge": judge_info, **counts})


def run_onpolicy(base: str, sft: Path, output: Path, cfg: TrainConfig, judge_settings: JudgeSettings, *,
                 revision: str | None = None, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """LoRA SFT (shared with ``run_train``: skipped when done) → samples → pairs → DPO from the SFT policy → merge.

    Writes ``output/onpolicy/candidate`` (model, tokenizer, model card with an on-policy section); its manifest.
    """
    from harness.core.ui import console
    from harness.train.datasets import sft_dataset
    from harness.train.hardware import detect_hardware
    from harness.train.resume import step_identity
    from harness.train.steps import run_dpo, run_sft, write_candidate

    sft_file = train_file(sft)
    prompts = read_prompts(sft_file)  # read and checked before any training starts, with the judge
    preflight(None, judge_settings)
    hw = detect_hardware(cfg)
    sft_dataset(sft_file)
    console.print(f"[bold]on-policy round[/]: {base} on {hw.device}, judged by {judge_settings.model} "
                  f"({judge_settings.mode})")
    step1 = run_sft(base, sft_file, output / "sft", cfg, hw, revision)
    policy, here = output / "sft" / "merged", output / "onpolicy"
    drawn = samples_step(policy, prompts, sft_file, step_identity(step1), here / "samples", cfg.onpolicy, hw)
    pairs = pairs_step(prompts, drawn, here / "pairs", cfg.onpolicy, judge_settings)
    data = here / "pairs" / PAIRS
    step2 = run_dpo(policy, data, here / "dpo", cfg, hw, policy_identity=step_identity(step1),
                    title="on-policy round: DPO")
    return write_candidate(here / "candidate", base, policy, here / "dpo", data, cfg, hw,
                           {"sft": step1, "samples": drawn, "onpolicy": pairs, "dpo": step2}, provenance or {})
