"""Judge-labelled preference pairs from evaluation runs (``empathy pairs export``): DPO rows in trl's format.

Every scored judgment of a run compares the candidate's reply with a reference's on one dialogue, in both answer
orders. A judgment becomes a pair (chosen = the reply the judge preferred) only when, in this order of rules (the
report counts what each rule dropped):

1. ``unscored`` — the judge answered both orders (a verdict could not be read: no pair);
2. ``no_agreement`` — both orders named the same winner (a tie, or orders that disagree, give no pair);
3. ``no_replies`` — both replies are at hand: the candidate's from the run, the reference's from its reference set
   file (``--reference NAME=FILE``, else the path the run's manifest names), whose hash must be the run's;
4. ``truncated`` / ``identical`` — the judge saw both replies whole (a reply cut for the judge was judged on part of
   its text) and they differ;
5. ``no_probability`` / ``below_margin`` — P(chosen), the judge's probability that the chosen reply is the better
   one (the mean over the two orders of its probability for that reply; logits and reward judges), is at least
   ``min_p``. A judge that gives no probability (generate mode) passes only with ``min_p`` = 0;
6. ``evaluation_set`` — the dialogue is not in the evaluation set (the distillation's overlap guard: the same id
   or the same normalised situation + utterance), so a model trained on the pairs is not trained on its test;
7. ``duplicate`` / ``contradicted`` — no earlier pair has the same prompt, chosen and rejected, nor the same two
   replies the other way round (two runs' verdicts that disagree give no pair after the first).

A row: ``prompt`` — the user turn, the generation prompt rendered for the dialogue (the run's generation prompt must
be today's: its hash is checked); ``chosen`` / ``rejected`` — one assistant turn each; and its provenance:
``dialogue_id``, ``comparison``, ``chosen_system`` / ``rejected_system``, ``p_chosen``, both orders' ``verdicts``,
``judge_fingerprint``, ``order_free`` (a reward judge scores each reply once: its two "orders" are one verdict),
``run_id`` (the run's folder name and the sha256 of its results.json). Runs judged by
different judges are refused unless ``allow_mixed_judges``, naming both fingerprints. The JSONL file and a manifest
beside it (``<output>.manifest.json``: every run, the rules, the counts, the sha256 of the JSONL it describes) are
each written atomically, the manifest first. A validity run (``empathy validate-judge``) is not a source: its pairs
are human-rated, not judge-labelled replies of a model.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.errors import HarnessError
from harness.core.io import file_hash, write_atomic, write_json
from harness.evaluate.runs import Run, RunError, load_run, run_fingerprint

RULES = ("unscored", "no_agreement", "no_replies", "truncated", "identical", "no_probability", "below_margin",
         "evaluation_set", "duplicate", "contradicted")


@dataclass(frozen=True)
class ExportConfig:
    """What ``empathy pairs export`` reads and how strictly it keeps pairs."""

    runs: Sequence[Path]
    output: Path
    references: Mapping[str, Path] = field(default_factory=dict)
    min_p: float = 0.6
    eval_dataset: str = "bundled"
    eval_limit: int | None = None
    allow_mixed_judges: bool = False
    workers: int | None = None
    """Processes that read the runs: None = one per core (up to 8) when there are 4 runs or more; 1 = this one."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_p <= 1.0:
            raise HarnessError(f"--min-p {self.min_p}: give a probability in [0, 1] (e.g. 0.6; 0 keeps pairs of a "
                               "judge without probabilities)")
        if not self.runs:
            raise HarnessError("no runs: give one or more run folders (empathy eval … --output DIR)")
        if self.workers is not None and self.workers < 1:
            raise HarnessError(f"--workers {self.workers}: give at least 1 (1 reads the runs in this process)")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise HarnessError(f"--eval-limit {self.eval_limit}: give at least 1 (or leave it out for the whole "
                               "evaluation set)")


@dataclass
class _RunPart:
    """One run's share of an export (made in a worker process when there are several): its candidate pairs."""

    path: str
    run_id: str
    judge: str
    comparisons: list[str]
    judgments: int
    notes: list[str]
    rows: list[tuple[str, str, dict[str, Any]]]  # (key, key of the same pair the other way round, row)
    dropped: Counter[str]


def export_pairs(cfg: ExportConfig) -> dict[str, Any]:
    """Write the pairs and their manifest; returns the manifest (counts per rule, runs, judges)."""
    _precheck(cfg)  # the cheap refusals first, from each run's results.json alone
    evaluation = _evaluation_ids(cfg)
    parts, processes = _parts(cfg, evaluation)
    judges = _judges([(p.judge, p.path) for p in parts], cfg.allow_mixed_judges)  # (what the full check read)
    _check_references(cfg, {c for part in parts for c in part.comparisons})
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    per_run: list[dict[str, Any]] = []
    for part in parts:  # in the order the runs were given: the first of two repeated or opposite pairs is kept
        before = len(rows)
        dropped.update(part.dropped)
        for key, reverse, row in part.rows:
            if key in seen:
                dropped["duplicate"] += 1
            elif reverse in seen:
                dropped["contradicted"] += 1
            else:
                seen.add(key)
                rows.append(row)
        per_run.append({"path": part.path, "run_id": part.run_id, "judge_fingerprint": part.judge,
                        "judgments": part.judgments, "pairs": len(rows) - before, "notes": part.notes})
    manifest: dict[str, Any] = {
        "harness_version": __version__, "output": str(cfg.output), "pairs": len(rows),
        "judgments": sum(part.judgments for part in parts), "dropped": {rule: dropped[rule] for rule in RULES},
        "rules": {"min_p": cfg.min_p, "eval_dataset": cfg.eval_dataset, "eval_limit": cfg.eval_limit,
                  "allow_mixed_judges": cfg.allow_mixed_judges},
        "judges": sorted(judges), "runs": per_run, "processes": processes,
    }
    if not rows:
        counts = ", ".join(f"{rule} {dropped[rule]}" for rule in RULES if dropped[rule])
        said = "; ".join(str(n) for r in per_run for n in r["notes"])
        raise HarnessError(f"no pair left of {manifest['judgments']} judgments ({counts}){'; ' + said if said else ''}"
                           " — nothing written. Pairs on the evaluation set are never exported: judge runs on "
                           "training dialogues (empathy eval --dataset …), or lower --min-p")
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    manifest["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    write_json(manifest_path(cfg.output), manifest)
    write_atomic(cfg.output, text)
    return manifest


def _parts(cfg: ExportConfig, evaluation: tuple[set[str], set[str]]) -> tuple[list[_RunPart], int]:
    """Every run checked in full (``load_run``) and turned into candidate pairs, and the processes that did it.

    From 4 runs on they are read in forked worker processes (:func:`harness.core.forks.fork_map`: the same
    function; only the candidate pairs come back), else here, one after the other.
    """
    from harness.core.forks import cores, fork_map

    auto = min(cores(), 8) if len(cfg.runs) >= 4 else 1
    return fork_map(_part, [(path, cfg, evaluation) for path in cfg.runs], cfg.workers or auto)


def _part(path: Path, cfg: ExportConfig, evaluation: tuple[set[str], set[str]]) -> _RunPart:
    try:
        run = load_run(path)
    except RunError as exc:
        raise HarnessError(f"{path}: not a valid run ({exc})") from exc
    run_id = f"{run.path.name}@{run_fingerprint(run)}"
    rows: list[tuple[str, str, dict[str, Any]]] = []
    dropped: Counter[str] = Counter()
    notes = _export_run(run, run_id, cfg, evaluation, rows, dropped)
    return _RunPart(path=str(run.path), run_id=run_id, judge=run.result.judge.fingerprint,
                    comparisons=list(run.result.comparisons), judgments=len(run.judgments), notes=notes, rows=rows,
                    dropped=dropped)


def manifest_path(output: Path) -> Path:
    """Where the manifest of ``output`` goes: ``pairs.jsonl`` → ``pairs.manifest.json``."""
    return output.with_name(f"{output.stem}.manifest.json")


def _precheck(cfg: ExportConfig) -> None:
    """Mixed judges and unknown references, refused before any run is read in full.

    A run whose results.json cannot be read here is left to the full check, which says why.
    """
    seen: list[tuple[str, str]] = []
    comparisons: set[str] = set()
    for path in cfg.runs:
        try:
            results = json.loads((path / "results.json").read_text(encoding="utf-8"))
            seen.append((str(results["judge"]["fingerprint"]), str(path)))
            comparisons |= set(results["comparisons"])
        except (OSError, ValueError, KeyError, TypeError):
            return
    _judges(seen, cfg.allow_mixed_judges)
    _check_references(cfg, comparisons)


def _check_references(cfg: ExportConfig, comparisons: set[str]) -> None:
    compared = {c.removeprefix("vs_") for c in comparisons}
    unknown = sorted(set(cfg.references) - compared)
    if unknown:
        raise HarnessError(f"--reference {unknown[0]}=…: no run was compared with {unknown[0]!r} (they were with "
                           f"{', '.join(sorted(compared))})")


def _judges(runs: Sequence[tuple[str, str]], allow_mixed: bool) -> set[str]:
    """The judge fingerprints of (fingerprint, run path) pairs; more than one refused unless allowed."""
    by_judge: dict[str, list[str]] = {}
    for fingerprint, path in runs:
        by_judge.setdefault(fingerprint, []).append(path)
    if len(by_judge) > 1 and not allow_mixed:
        (a, a_runs), (b, b_runs) = list(by_judge.items())[:2]
        raise HarnessError(f"the runs were judged by different judges: {a} ({a_runs[0]}) and {b} ({b_runs[0]})"
                           f"{f' and {len(by_judge) - 2} more' if len(by_judge) > 2 else ''} — pairs of one judge "
                           "mean one thing; export each judge's runs apart, or give --allow-mixed-judges")
    return set(by_judge)


def _evaluation_ids(cfg: ExportConfig) -> tuple[set[str], set[str]]:
    """The evaluation set's dialogue ids and normalised texts (the overlap guard's two keys)."""
    from harness.data.sources import interleave_by_emotion, load_dialogues
    from harness.train.clean import dialogue_text_key

    evaluation = load_dialogues(cfg.eval_dataset)
    if cfg.eval_limit:
        evaluation = interleave_by_emotion(evaluation)[:cfg.eval_limit]
    return {d.id for d in evaluation}, {dialogue_text_key(d) for d in evaluation}


def _export_run(run: Run, run_id: str, cfg: ExportConfig, evaluation: tuple[set[str], set[str]],
                rows: list[tuple[str, str, dict[str, Any]]], dropped: Counter[str]) -> list[str]:
    """The run's candidate pairs (rules 1–6; ``duplicate`` / ``contradicted`` are decided over every run)."""
    from harness.core.prompts import load_generation_prompt
    from harness.train.clean import dialogue_text_key

    prompt = load_generation_prompt()
    p = run.result.provenance
    if p.generation_prompt_hash != prompt.hash:
        raise HarnessError(f"{run.path}: made with generation prompt {p.generation_prompt_hash}, this harness's is "
                           f"{prompt.hash}: its prompts cannot be rebuilt — export it with the harness that made it")
    dialogues = {d.id: d for d in _dialogues(run)}
    replies = {"candidate": {g.dialogue_id: g.response for g in run.generations}}
    notes = []
    for name in sorted({j.comparison.removeprefix("vs_") for j in run.judgments} - {"candidate"}):
        got, note = _reference_replies(run, name, cfg.references.get(name))
        if got is not None:
            replies[name] = got
        if note:
            notes.append(note)
    for j in run.judgments:
        winner = _agreed(j)
        if j.outcome is None:
            dropped["unscored"] += 1
            continue
        if winner is None:
            dropped["no_agreement"] += 1
            continue
        loser = j.reference if winner == j.candidate else j.candidate
        chosen, rejected = replies.get(winner, {}).get(j.dialogue_id), replies.get(loser, {}).get(j.dialogue_id)
        dialogue = dialogues.get(j.dialogue_id)
        if chosen is None or rejected is None or dialogue is None:
            dropped["no_replies"] += 1
            continue
        if "truncated" in j.flags:
            dropped["truncated"] += 1
            continue
        if chosen.strip() == rejected.strip():
            dropped["identical"] += 1
            continue
        p_chosen = _p_chosen(j, winner)
        if p_chosen is None and cfg.min_p > 0:
            dropped["no_probability"] += 1
            continue
        if p_chosen is not None and p_chosen < cfg.min_p:
            dropped["below_margin"] += 1
            continue
        if dialogue.id in evaluation[0] or dialogue_text_key(dialogue) in evaluation[1]:
            dropped["evaluation_set"] += 1
            continue
        user = prompt.render(dialogue)
        key = hashlib.sha256(json.dumps([user, chosen, rejected]).encode()).hexdigest()
        reverse = hashlib.sha256(json.dumps([user, rejected, chosen]).encode()).hexdigest()
        rows.append((key, reverse, {
            "prompt": [{"role": "user", "content": user}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "dialogue_id": j.dialogue_id,
            "comparison": j.comparison, "chosen_system": winner, "rejected_system": loser, "p_chosen": p_chosen,
            "verdicts": [{"order": v.order, "winner": v.winner, "p_candidate": v.p_candidate} for v in j.verdicts],
            "judge_fingerprint": j.judge_fingerprint or run.result.judge.fingerprint,
            "order_free": run.result.health.order_free, "run_id": run_id}))
    return notes


def _agreed(j: Any) -> str | None:
    """The system both orders preferred (by name), or None (a tie, split orders, or unscored)."""
    if j.outcome == "candidate":
        return str(j.candidate)
    if j.outcome == "reference":
        return str(j.reference)
    return None


def _p_chosen(j: Any, winner: str) -> float | None:
    """Mean over the orders of the judge's probability for the chosen reply; None without probabilities."""
    ps = [v.p_candidate for v in j.verdicts]
    if not ps or any(p is None for p in ps):
        return None
    p_candidate = float(sum(ps)) / len(ps)
    return p_candidate if winner == j.candidate else 1.0 - p_candidate


def _dialogues(run: Run) -> list[Any]:
    from harness.data.selection import run_dialogues

    p = run.result.provenance
    try:
        dialogues, digest = run_dialogues(p.dataset, p.n_dialogues)
    except HarnessError as exc:
        raise HarnessError(f"{run.path}: its dialogues ({p.dataset}) cannot be read here: {exc}") from exc
    if digest != p.dataset_hash:
        raise HarnessError(f"{run.path}: dataset {p.dataset} has hash {digest} here, the run's is {p.dataset_hash}: "
                           "the dialogues changed since the run, so its prompts cannot be rebuilt")
    return dialogues


def _reference_replies(run: Run, name: str, given: Path | None) -> tuple[dict[str, str] | None, str | None]:
    """The reference's replies by dialogue, or None and why (the comparison's judgments then give no pairs)."""
    from harness.data.references import load_reference

    system = run.result.provenance.systems.get(name)
    want = system.reference_file_hash if system else None
    listed = (run.manifest.get("references") or {}).get(name) or {}
    if given is not None and not given.is_file():
        raise HarnessError(f"--reference {name}={given}: no such file — give the reference set file the run "
                           f"{run.path} was judged against (hash {want})")
    path = given or (Path(listed["path"]) if isinstance(listed.get("path"), str) else None)
    if path is None or not path.is_file():
        return None, (f"vs_{name}: the reference replies are not on this disk ({path or 'no path recorded'}): give "
                      f"--reference {name}=FILE (hash {want}) to export its pairs")
    if not want:
        return None, (f"vs_{name}: the run records no hash of its reference set, so {path} cannot be checked "
                      "against it: its pairs are left out")
    if file_hash(path) != want:
        if given is None:  # the file at the manifest's path changed since the run: not the replies it judged
            return None, (f"vs_{name}: {path} is not the reference set the run was judged against (hash "
                          f"{file_hash(path)}, the run's {want}): give --reference {name}=FILE to export its pairs")
        raise HarnessError(f"--reference {name}={path}: hash {file_hash(path)}, the run {run.path} was judged "
                           f"against {want}: give the reference set file the run used")
    return {d: g.response for d, g in load_reference(path, name=name).generations.items()}, None
