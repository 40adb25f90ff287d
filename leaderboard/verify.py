"""``empathy leaderboard verify``: re-judge a submitted run with the board's judge, for every comparison it needs.

The submitted replies are judged again — cache hits where the verdicts are identical — by the board's judge,
against the reference set of *every* comparison the board's protocol requires (the anchor and, e.g., ``vs_direct``),
each given with ``--reference`` and checked to be the set the submission was judged against. The re-judged run keeps
the submitted model's identity and goes on the board. It is ``verified`` when, for every comparison, the submitted
win rate and the re-judged one each lie within the other's 95 % CI, the re-judged run meets the protocol, and — with
``--regenerate N`` — at least ``--min-match`` of the first N dialogues, regenerated with the declared model and
revision (greedy; a local model from the maintainer's own copy, ``--model-dir``, checked by fingerprint), give
exactly the submitted reply. Anything else is ``disputed``, with the reasons.

The record (``verification.json``) is signed with the board's key and names the protocol hash and the sha256 of
every file of the re-judged run (:mod:`leaderboard.trust`): a copy of it anywhere else vouches for nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.io import file_hash, write_atomic, write_json
from harness.core.records import ComparisonStats, RunResult, SystemInfo
from harness.core.settings import JudgeSettings
from harness.core.ui import print_banner
from harness.evaluate.references import now
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import load_run
from harness.generate.replies import ModelSpec
from harness.score.health import unhealthy_refusal
from leaderboard.controls import check_judge
from leaderboard.protocol import BoardProtocol, mismatches
from leaderboard.trust import VERIFICATION, board_key, files_sha256, sign

#: The share of regenerated replies that must be identical to the submitted ones (``--min-match``'s default).
MIN_MATCH = 0.9


def _agree(a: ComparisonStats, b: ComparisonStats) -> bool:
    """Each win rate lies within the other's 95 % CI."""
    if None in (a.win_rate, b.win_rate, a.ci_low, a.ci_high, b.ci_low, b.ci_high):
        return False
    return bool(a.ci_low <= b.win_rate <= a.ci_high and b.ci_low <= a.win_rate <= b.ci_high)  # type: ignore[operator]


def required_references(protocol: BoardProtocol) -> list[str]:
    """The reference sets a verification needs: the anchor's, then every other comparison the board shows."""
    return [c.removeprefix("vs_") for c in (protocol.anchor.comparison, *protocol.comparisons)]


def check_references(submitted: RunResult, protocol: BoardProtocol, references: dict[str, Path]) -> None:
    """Every reference set the protocol requires, given, and the very one the submission was judged against.

    Raises:
        HarnessError: a missing reference (with the option to give), an unknown one, or a file that differs.
    """
    systems = submitted.provenance.systems
    missing = [n for n in required_references(protocol) if n not in references]
    if missing:
        given = ", ".join(f"--reference {n}=FILE (the submission used {systems[n].reference_file or 'a file'}, hash "
                          f"{systems[n].reference_file_hash})" if n in systems else f"--reference {n}=FILE"
                          for n in missing)
        raise HarnessError(f"the board requires {[f'vs_{n}' for n in missing]}: give {given} — every comparison "
                           "the board shows is re-judged, or the re-judged run would not be admitted")
    for name, path in references.items():
        if f"vs_{name}" not in submitted.comparisons:
            raise HarnessError(f"--reference {name}={path}: the submission has no comparison vs_{name} (it has "
                               f"{sorted(submitted.comparisons)})")
        if not path.is_file():
            raise HarnessError(f"--reference {name}={path}: no such file")
        want = systems[name].reference_file_hash
        if file_hash(path) != want:
            raise HarnessError(f"--reference {name}={path}: reference_file_hash {file_hash(path)}, the submission was "
                               f"judged against {want}: give the same reference set, or the comparison is another")


def verify_run(submitted: Path, *, protocol: BoardProtocol, judge: JudgeSettings, references: dict[str, Path],
               output: Path, regenerate: int = 0, min_match: float = MIN_MATCH, device: str = "auto",
               model_dir: Path | None = None) -> dict[str, Any]:
    """Re-judge ``submitted`` into ``output`` and write ``output/verification.json`` (signed); returns that record."""
    if not 0 <= min_match <= 1:
        raise HarnessError(f"--min-match must be between 0 and 1 (got {min_match})")
    run = load_run(submitted)
    problems = [p for p in mismatches(run.result, protocol) if not p.startswith("judge fingerprint")]
    if problems:
        raise HarnessError(f"{submitted} does not match the board's protocol: {'; '.join(problems)}")
    check_references(run.result, protocol, references)
    declared = run.result.provenance.systems["candidate"]
    if declared.model.kind == "replies":
        raise HarnessError(f"{submitted}: its replies come from a file ({declared.model.name}) and declare no model: "
                           "nothing to verify — the submitter should submit the model's own run")
    regenerator = regeneration_model(declared, model_dir) if regenerate else None
    banner = check_judge(protocol, judge, what="leaderboard verify")  # the board's judge, healthy: before judging
    if banner:
        print_banner(banner)  # the first line of the report
    key = board_key(create=True)  # before any judging: a bad key is said at once
    assert key is not None
    replies = output.parent / f"{output.name}.replies.jsonl"
    write_atomic(replies, "".join(json.dumps({"dialogue_id": g.dialogue_id, "response": g.response}) + "\n"
                                  for g in run.generations))
    rejudged = run_eval(EvalConfig(candidate=ModelSpec(str(replies), backend="replies"), judge=judge, output=output,
                                   references=dict(references), dataset=protocol.dataset.spec,
                                   limit=protocol.dataset.n, seed=run.result.provenance.seed, declared=declared))
    if protocol.require_judge_ok and not rejudged.health.judge_ok:  # (the run's own verdicts, not only the probe)
        raise HarnessError(unhealthy_refusal(f"leaderboard verify: the re-judged run {output}",
                                             rejudged.health.judge_problem) + " — nothing was verified")
    reasons = [f"the board would refuse the re-judged run: {p}" for p in mismatches(rejudged, protocol)]
    comparisons = {}
    for name in references:
        c = f"vs_{name}"
        a, b = run.result.comparisons[c], rejudged.comparisons[c]
        comparisons[c] = {"submitted_win_rate": a.win_rate, "rejudged_win_rate": b.win_rate,
                          "rejudged_ci": [b.ci_low, b.ci_high], "agree": _agree(a, b)}
        if not comparisons[c]["agree"]:
            reasons.append(f"{c}: the submitted win rate {a.win_rate} and the re-judged {b.win_rate} do not lie "
                           "within each other's 95 % CI")
    regeneration = regeneration_check(run, regenerate, model=regenerator, device=device) if regenerator else None
    if regeneration is not None:
        regeneration["rule"] = f"at least {min_match:.0%} of the regenerated replies identical to the submitted ones"
        if (regeneration["match_rate"] or 0.0) < min_match:
            reasons.append(f"regeneration: {regeneration['identical']} of {regeneration['n']} regenerated replies "
                           f"match the submitted ones, the rule needs {min_match:.0%} — the replies may not be the "
                           "declared model's")
    anchor = protocol.anchor.comparison
    record: dict[str, Any] = {
        "status": "disputed" if reasons else "verified",
        "reasons": reasons,
        "protocol_hash": protocol.hash,
        "judge_fingerprint": rejudged.judge.fingerprint,
        "verified_at": now(),
        "submitted": str(submitted),
        "submitted_results_sha256": hashlib.sha256((submitted / "results.json").read_bytes()).hexdigest(),
        "files_sha256": files_sha256(output),
        "comparisons": comparisons,
        "submitted_win_rate": comparisons[anchor]["submitted_win_rate"],
        "rejudged_win_rate": comparisons[anchor]["rejudged_win_rate"],
        "rejudged_ci": comparisons[anchor]["rejudged_ci"],
        "submission_checks": submission_checks(declared.model.name, declared.model.kind, declared.model.revision),
    }
    if banner:
        record = {"banner": banner, **record}  # the first key: made with an unhealthy judge the board admits
    if regeneration is not None:
        record["regeneration"] = regeneration
    record = sign(record, key)
    write_json(output / VERIFICATION, record)
    return record


def regeneration_model(declared: SystemInfo, model_dir: Path | None) -> str:
    """What regenerates the declared model: its Hub id, or the maintainer's own copy of a local model.

    A Hub model is loaded at the declared commit; a local one from ``--model-dir``, whose content fingerprint must
    be the declared one. A path named by the submission is never read.

    Raises:
        HarnessError: a model that cannot be regenerated here, no ``--model-dir`` for a local one, or a folder that
            is another model.
    """
    from harness.core.fingerprint import model_identity

    model = declared.model
    if model.kind == "hub":
        if model_dir is not None:
            raise HarnessError("--model-dir is for a submission declaring a local model: this one declares Hub model "
                               f"{model.name} (revision {model.revision}), which is loaded from the Hub")
        return model.name
    if model.kind != "local":
        raise HarnessError(f"--regenerate: the submission declares a {model.kind} model ({model.name}), which cannot "
                           "be regenerated here: verify without --regenerate")
    if model_dir is None:
        raise HarnessError(f"--regenerate: the submission declares a local model folder ({model.name}); the board "
                           "never reads a path a submission names — give your own copy of that model with --model-dir "
                           f"DIR (its content fingerprint must be {model.fingerprint})")
    found = model_identity(str(model_dir)).fingerprint
    if found != model.fingerprint:
        raise HarnessError(f"--model-dir {model_dir}: its fingerprint is {found}, the submission declares "
                           f"{model.fingerprint}: that folder is another model")
    return str(model_dir)


def regeneration_check(run: Any, n: int, *, model: str, device: str) -> dict[str, Any]:
    """Regenerate the first ``n`` dialogues with ``model`` (:func:`regeneration_model`), count identical replies."""
    from harness.data.selection import run_dialogues
    from harness.generate.replies import generate, resolve_chat_template

    info = run.result.provenance.systems["candidate"]
    dialogues, _ = run_dialogues(run.result.provenance.dataset, n)
    revision = info.model.revision if info.model.kind == "hub" else None
    spec = resolve_chat_template(ModelSpec(model, revision=revision, device=device, chat_template=info.chat_template))
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
