"""``empathy leaderboard verify``: re-judge a submitted run's replies with the board's judge.

The submitted replies are judged again — cache hits where the verdicts are identical — against the board's anchor
reference set, by the board's judge. The re-judged run keeps the submitted model's identity and goes on the board;
it is ``verified`` when the submitted numbers agree with the re-judged ones within their CIs. Optionally a sample of
dialogues is regenerated with the declared model and revision, and the share of identical replies is reported
(greedy decoding: an honest run reproduces its replies; a hand-edited one does not).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.io import write_atomic, write_json
from harness.core.records import ComparisonStats
from harness.core.settings import JudgeSettings
from harness.core.ui import print_banner
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import load_run
from harness.generate.replies import ModelSpec
from harness.score.health import unhealthy_refusal
from leaderboard.admit import VERIFICATION
from leaderboard.controls import check_judge
from leaderboard.protocol import BoardProtocol, mismatches


def _agree(a: ComparisonStats, b: ComparisonStats) -> bool:
    """Each win rate lies within the other's 95 % CI."""
    if None in (a.win_rate, b.win_rate, a.ci_low, a.ci_high, b.ci_low, b.ci_high):
        return False
    return bool(a.ci_low <= b.win_rate <= a.ci_high and b.ci_low <= a.win_rate <= b.ci_high)  # type: ignore[operator]


def verify_run(submitted: Path, *, protocol: BoardProtocol, judge: JudgeSettings, reference: Path, output: Path,
               regenerate: int = 0, device: str = "auto") -> dict[str, Any]:
    """Re-judge ``submitted`` into ``output`` and write ``output/verification.json``; returns that record."""
    run = load_run(submitted)
    problems = [p for p in mismatches(run.result, protocol) if not p.startswith("judge fingerprint")]
    if problems:
        raise HarnessError(f"{submitted} does not match the board's protocol: {'; '.join(problems)}")
    banner = check_judge(protocol, judge, what="leaderboard verify")  # the board's judge, healthy: before judging
    if banner:
        print_banner(banner)  # the first line of the report
    replies = output.parent / f"{output.name}.replies.jsonl"
    write_atomic(replies, "".join(json.dumps({"dialogue_id": g.dialogue_id, "response": g.response}) + "\n"
                                  for g in run.generations))
    anchor_name = protocol.anchor.comparison.removeprefix("vs_")
    declared = run.result.provenance.systems["candidate"]
    rejudged = run_eval(EvalConfig(candidate=ModelSpec(str(replies), backend="replies"), judge=judge, output=output,
                                   references={anchor_name: reference}, dataset=protocol.dataset.spec,
                                   limit=protocol.dataset.n, seed=run.result.provenance.seed, declared=declared))
    if protocol.require_judge_ok and not rejudged.health.judge_ok:  # (the run's own verdicts, not only the probe)
        raise HarnessError(unhealthy_refusal(f"leaderboard verify: the re-judged run {output}",
                                             rejudged.health.judge_problem) + " — nothing was verified")
    comparison = protocol.anchor.comparison
    agree = _agree(run.result.comparisons[comparison], rejudged.comparisons[comparison])
    record: dict[str, Any] = {
        "status": "verified" if agree else "disputed",
        "protocol_hash": protocol.hash,
        "judge_fingerprint": rejudged.judge.fingerprint,
        "submitted": str(submitted),
        "submitted_results_sha256": hashlib.sha256((submitted / "results.json").read_bytes()).hexdigest(),
        "results_sha256": hashlib.sha256((output / "results.json").read_bytes()).hexdigest(),
        "submitted_win_rate": run.result.comparisons[comparison].win_rate,
        "rejudged_win_rate": rejudged.comparisons[comparison].win_rate,
        "rejudged_ci": [rejudged.comparisons[comparison].ci_low, rejudged.comparisons[comparison].ci_high],
        "submission_checks": submission_checks(declared.model.name, declared.model.kind, declared.model.revision),
    }
    if banner:
        record = {"banner": banner, **record}  # the first key: made with an unhealthy judge the board admits
    if regenerate:
        record["regeneration"] = regeneration_check(run, regenerate, device=device)
    write_json(output / VERIFICATION, record)
    return record


def regeneration_check(run: Any, n: int, *, device: str) -> dict[str, Any]:
    """Regenerate the first ``n`` dialogues with the declared model and count identical replies."""
    from harness.data.selection import run_dialogues
    from harness.generate.replies import generate, resolve_chat_template

    info = run.result.provenance.systems["candidate"]
    if info.model.kind not in ("local", "hub"):
        return {"skipped": f"a {info.model.kind} model cannot be regenerated here"}
    dialogues, _ = run_dialogues(run.result.provenance.dataset, n)
    spec = resolve_chat_template(ModelSpec(info.model.name, revision=info.model.revision, device=device,
                                           chat_template=info.chat_template))
    fresh = generate(spec, dialogues, dataset=run.result.provenance.dataset, decoding=run.result.provenance.decoding,
                     system="candidate")
    submitted = {g.dialogue_id: g.response for g in run.generations}
    same = sum(g.response == submitted.get(g.dialogue_id) for g in fresh)
    return {"n": len(fresh), "identical": same, "match_rate": same / len(fresh) if fresh else None}


def submission_checks(model: str, kind: str, revision: str | None) -> dict[str, Any]:
    """The Open LLM Leaderboard's checks where the Hub is reachable: pinned sha, licence, safetensors, remote code.

    Offline (or for a model that is not on the Hub) they are skipped, and the record says so.
    """
    if kind != "hub":
        return {"skipped": f"not a Hub model ({kind})"}
    from harness.core.hub import _hub_offline

    if _hub_offline():
        return {"skipped": "offline"}
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(model, revision=revision, files_metadata=False)
    except Exception as exc:  # unreachable or gated: recorded, not fatal
        return {"skipped": f"Hub not reachable ({type(exc).__name__})"}
    files = [s.rfilename for s in (info.siblings or [])]
    card = info.card_data.to_dict() if info.card_data else {}  # type: ignore[no-untyped-call]
    config = getattr(info, "config", None) or {}
    return {
        "revision_is_commit": bool(revision and len(revision) == 40),
        "licence": card.get("license"),
        "safetensors": any(f.endswith(".safetensors") for f in files),
        "remote_code": bool(config.get("auto_map")),
    }
