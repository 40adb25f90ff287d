"""A run folder: writing it so that ``results.json`` means "completed", and reading it back validated.

A run folder holds ``results.json`` (a :class:`~harness.core.records.RunResult`), ``judgments.jsonl``,
``rubric.jsonl``, ``generations.jsonl``, ``manifest.json`` and ``probe.jsonl`` (the judge's sanity-probe verdicts,
one :class:`~harness.core.records.JudgeProbe` per pair; absent in runs made before the probe, which read as no
probe). ``results.json`` is written last, and removed when
a run starts, so a crashed re-run never leaves new files beside an old result. :func:`load_run` is the one way the
leaderboard and the regression gate read runs: it checks every file against the result and refuses, with the
reason, anything that does not match.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from harness.core.errors import HarnessError, validation_problems
from harness.core.io import write_json, write_jsonl
from harness.core.records import Generation, JudgeProbe, Judgment, RubricScore, RunHealth, RunResult
from harness.core.style_record import StyleRow
from harness.data.selection import ids_hash
from harness.evaluate.result import computed_parts
from harness.evaluate.style_check import STYLE, check_style
from harness.judge.parse import combine_orders
from harness.score.health import order_free_judge

RESULTS = "results.json"
FILES = ("generations.jsonl", "judgments.jsonl", "rubric.jsonl", "manifest.json")
#: The judge's sanity-probe verdicts: optional on load (older runs have none), always written.
PROBE = "probe.jsonl"
#: Every system's reply profiled (harness.score.style); schema 3 runs.
#: The JSON Schema of results.json, shipped in the package (tests keep it equal to :class:`RunResult`'s).
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "core" / "results.schema.json"


class RunError(HarnessError):
    """A run folder that cannot be used, and why."""


@dataclass(frozen=True)
class Run:
    """A validated run folder."""

    path: Path
    result: RunResult
    generations: list[Generation]
    judgments: list[Judgment]
    rubric: list[RubricScore]
    manifest: dict[str, Any]
    probe: list[JudgeProbe] = field(default_factory=list)
    style: list[StyleRow] | None = None
    """``style.jsonl``: every system's reply profiled (None: the run has none — schema 2, or no style)."""


def run_fingerprint(run: Run) -> str:
    """The run's fingerprint: the first 16 hex digits of the sha256 of its results.json."""
    return hashlib.sha256((run.path / "results.json").read_bytes()).hexdigest()[:16]


def results_schema() -> dict[str, Any]:
    """The JSON Schema of results.json (schema version 2)."""
    schema = RunResult.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def start_run(out: Path) -> None:
    """Prepare a run folder: an old results.json goes first, so its presence always means this run completed."""
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--output {out} is a file; give a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).unlink(missing_ok=True)


def write_run(out: Path, result: RunResult, generations: Sequence[Generation], judgments: Sequence[Judgment],
              rubric: Sequence[RubricScore], manifest: dict[str, Any], probe: Sequence[JudgeProbe] = (),
              style: Sequence[StyleRow] | None = None) -> None:
    """Write a run folder atomically, file by file, results.json last."""
    write_jsonl(out / "generations.jsonl", generations)
    if style is not None:
        write_jsonl(out / STYLE, style)
    else:
        (out / STYLE).unlink(missing_ok=True)  # an earlier run's profile in this folder must go
    write_jsonl(out / PROBE, probe)  # even when empty: a probe left by an earlier run in this folder must go
    write_jsonl(out / "judgments.jsonl", judgments)
    write_jsonl(out / "rubric.jsonl", rubric)
    write_json(out / "manifest.json", manifest)
    # no judge_validity key when there is none: a results.json without figures stays readable by older harnesses
    write_json(out / RESULTS, result.model_dump(mode="json", exclude={"judge_validity"} if result.judge_validity is None
                                                else None))


def load_run(path: Path | str) -> Run:
    """Read and validate a run folder (or its results.json); raises :class:`RunError` naming what is wrong."""
    folder = Path(path)
    if folder.name == RESULTS:
        folder = folder.parent
    results = folder / RESULTS
    if not results.is_file():
        partial = [f for f in FILES if (folder / f).is_file()]
        why = " (the run did not complete: it has " + ", ".join(partial) + ")" if partial else ""
        raise RunError(f"{folder}: no {RESULTS}{why} — run 'empathy eval … --output {folder}' (cached verdicts make "
                       "a re-run cheap)")
    raw = _read_json(results)
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version == 1:
        raise RunError(f"{results}: schema 1 (written before model and judge fingerprints existed): its numbers "
                       "cannot be traced to what produced them, so it is not upgraded — re-run 'empathy eval' with "
                       "the same options (verdicts still in the cache are not asked again)")
    if version not in (2, 3):
        raise RunError(f"{results}: unknown schema_version {version!r}; this harness reads schemas 2 and 3")
    try:
        result = RunResult.model_validate(raw)
    except ValidationError as exc:
        raise RunError(f"{results}: not a valid results file: {validation_problems(exc, 3)}") from exc
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise RunError(f"{folder}: {', '.join(missing)} missing beside {RESULTS}; the folder is incomplete")
    run = Run(
        path=folder,
        result=result,
        generations=_records(folder / "generations.jsonl", Generation),
        judgments=_records(folder / "judgments.jsonl", Judgment),
        rubric=_records(folder / "rubric.jsonl", RubricScore),
        manifest=_read_json(folder / "manifest.json"),
        probe=_records(folder / PROBE, JudgeProbe) if (folder / PROBE).is_file() else [],
        style=_records(folder / STYLE, StyleRow) if (folder / STYLE).is_file() else None,
    )
    health = _check_consistent(run)
    # the verdict on the judge is always today's rule applied to the run's own numbers (never what results.json
    # says: a run written under older rules, or edited, is judged like any other)
    return dataclasses.replace(run, result=result.model_copy(update={"health": health}))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc


def _records(path: Path, model: Any) -> list[Any]:
    """The records of a JSONL file, each parsed and validated by pydantic in one step (the fast path of load_run)."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    out = []
    for n, line in enumerate(lines, start=1):
        try:
            record = model.model_validate_json(line)
        except ValidationError as exc:
            _record_problem(path, n, line, exc)
        if record.schema_version != 2:
            raise RunError(f"{path}:{n}: schema_version {record.schema_version!r}, expected 2")
        out.append(record)
    return out


def _record_problem(path: Path, n: int, line: str, exc: ValidationError) -> NoReturn:
    """The error for line ``n`` that did not validate: unreadable JSON, an old schema, or the fields at fault."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as bad:
        raise RunError(f"{path}: unreadable (JSONDecodeError: {bad})") from exc
    if isinstance(row, dict) and row.get("schema_version") != 2:
        raise RunError(f"{path}:{n}: schema_version {row.get('schema_version')!r}, expected 2") from exc
    raise RunError(f"{path}:{n}: {validation_problems(exc, 3)}") from exc


#: Health fields that are a judgement of the numbers, not numbers: recomputed by today's rules on load, not compared.
JUDGEMENT_FIELDS = ("judge_ok", "judge_problem")


def _check_consistent(run: Run) -> RunHealth:
    """The JSONL files are the ones this results.json was computed from, and every number follows from them.

    Returns:
        The run's health recomputed from its verdicts, with today's ``judge_ok`` / ``judge_problem``.
    """
    r = run.result
    where = run.path
    if not r.comparisons:
        raise RunError(f"{where}: results.json holds no comparison")
    if not isinstance(run.manifest, dict) or (run.manifest.get("judge") or {}).get("fingerprint") != r.judge.fingerprint:
        raise RunError(f"{where}: manifest.json does not name judge {r.judge.fingerprint}; the files come from "
                       "different runs")
    fp = r.judge.fingerprint
    stale = ({j.judge_fingerprint for j in run.judgments} | {s.judge_fingerprint for s in run.rubric}
             | {p.judge_fingerprint for p in run.probe})
    if stale - {fp}:
        raise RunError(f"{where}: judgments by judge fingerprint(s) {sorted(stale - {fp})}, but results.json "
                       f"names judge {fp}: the files come from different runs")
    ids = [g.dialogue_id for g in run.generations]
    _same_ids(where, "generations.jsonl", ids, ids, r.provenance.n_dialogues)
    if ids_hash(ids) != r.provenance.dialogue_ids_hash:
        raise RunError(f"{where}: the dialogue ids of generations.jsonl hash to {ids_hash(ids)}, results.json says "
                       f"{r.provenance.dialogue_ids_hash}")
    if {g.system for g in run.generations} != {"candidate"}:
        raise RunError(f"{where}: generations.jsonl must hold the candidate's replies only")
    judgments: dict[str, list[Judgment]] = {}
    for j in run.judgments:
        judgments.setdefault(j.comparison, []).append(j)
        if j.outcome != combine_orders(j.verdicts):
            raise RunError(f"{where}: {j.comparison} {j.dialogue_id}: outcome {j.outcome!r} does not follow from its "
                           "verdicts")
    if set(judgments) != set(r.comparisons):
        raise RunError(f"{where}: judgments.jsonl holds comparisons {sorted(judgments)}, results.json "
                       f"{sorted(r.comparisons)}")
    words = {g.dialogue_id: len(g.response.split()) for g in run.generations}
    for name, js in judgments.items():
        _same_ids(where, f"judgments.jsonl ({name})", [j.dialogue_id for j in js], ids, len(ids))
        edited = [j.dialogue_id for j in js if j.candidate_words != words[j.dialogue_id]]
        if edited:
            raise RunError(f"{where}: the candidate replies in generations.jsonl are not the ones judged in {name} "
                           f"(e.g. {edited[0]})")
    for system in {s.system for s in run.rubric}:
        _same_ids(where, f"rubric.jsonl ({system})", [s.dialogue_id for s in run.rubric if s.system == system], ids,
                  len(ids))
    references = {n: s for n, s in r.provenance.systems.items() if n != "candidate"}
    listed = run.manifest.get("systems") or {}
    if {n: s.model.model_dump(mode="json") for n, s in r.provenance.systems.items()} != listed:
        raise RunError(f"{where}: the systems in manifest.json and results.json differ (identities edited, or the "
                       "files come from different runs)")
    missing = {c.removeprefix("vs_") for c in r.comparisons} - set(references)
    if missing or "candidate" not in r.provenance.systems:
        raise RunError(f"{where}: provenance.systems lacks {sorted(missing) or ['candidate']}")
    v = r.judge_validity
    if v is not None and v.fingerprint != (r.judge.fingerprint if v.matches == "judge fingerprint" else
                                           r.judge.model.fingerprint):
        raise RunError(f"{where}: judge_validity was measured for {v.matches} {v.fingerprint}, not this run's judge "
                       f"({r.judge.fingerprint}, model {r.judge.model.fingerprint}): judge_validity.fingerprint differs")
    probe_ids = [p.probe_id for p in run.probe]
    if len(probe_ids) != len(set(probe_ids)):
        raise RunError(f"{where}: {PROBE} repeats a probe pair")
    check_style(run)
    parts = computed_parts(judgments, run.rubric, run.generations, references, r.judge.min_label_mass,
                           r.provenance.seed, run.probe, order_free=order_free_judge(r.judge), style=run.style)
    recorded = r.model_dump(mode="json")
    for field_name in JUDGEMENT_FIELDS:
        recorded["health"].pop(field_name, None)
    for key, value in parts.items():
        expected = value.model_dump(mode="json") if hasattr(value, "model_dump") else _dump(value)
        if key == "health":
            expected = {k: v for k, v in expected.items() if k not in JUDGEMENT_FIELDS}
        found = _first_difference(expected, recorded[key], key)
        if found is not None:
            path, should, says = found
            raise RunError(f"{where}: {path} is {says!r} in results.json, but the verdicts in the JSONL files give "
                           f"{should!r} (edited, or the files come from another run)")
    health: RunHealth = parts["health"]
    return health


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


#: How far a recomputed number may be from the recorded one (see :func:`_first_difference`).
FLOAT_TOLERANCE = 1e-6


def _first_difference(expected: Any, recorded: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first (path, expected, recorded) at which two JSON values differ (floats within FLOAT_TOLERANCE), or None."""
    if isinstance(expected, dict) and isinstance(recorded, dict):
        for key in sorted(set(expected) | set(recorded)):
            found = _first_difference(expected.get(key), recorded.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, float) and isinstance(recorded, int | float) and not isinstance(recorded, bool):
        # 1e-6: a refit (the LC model) by another solver agrees to ~1e-7, not to the last digit; an edit is larger
        return None if abs(expected - recorded) <= FLOAT_TOLERANCE else (path, expected, recorded)
    return None if expected == recorded else (path, expected, recorded)


def _same_ids(where: Path, what: str, found: Sequence[str], ids: Sequence[str], n: int) -> None:
    if len(found) != len(set(found)):
        raise RunError(f"{where}: {what} repeats a dialogue id")
    if len(found) != n or set(found) != set(ids):
        raise RunError(f"{where}: {what} holds {len(found)} dialogues, not the run's {n} (ids differ)")
