"""A run folder: writing it so that ``results.json`` means "completed", and reading it back validated.

A run folder holds ``results.json`` (a :class:`~harness.core.records.RunResult`), ``judgments.jsonl``,
``rubric.jsonl``, ``generations.jsonl`` and ``manifest.json``. ``results.json`` is written last, and removed when
a run starts, so a crashed re-run never leaves new files beside an old result. :func:`load_run` is the one way the
leaderboard and the regression gate read runs: it checks every file against the result and refuses, with the
reason, anything that does not match.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.core.errors import HarnessError
from harness.core.io import read_jsonl, write_json, write_jsonl
from harness.core.records import Generation, Judgment, RubricScore, RunResult

RESULTS = "results.json"
FILES = ("generations.jsonl", "judgments.jsonl", "rubric.jsonl", "manifest.json")
#: The JSON Schema of results.json, shipped in the package (tests keep it equal to :class:`RunResult`'s).
SCHEMA_PATH = Path(__file__).resolve().parent / "results.schema.json"


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
              rubric: Sequence[RubricScore], manifest: dict[str, Any]) -> None:
    """Write a run folder atomically, file by file, results.json last."""
    write_jsonl(out / "generations.jsonl", generations)
    write_jsonl(out / "judgments.jsonl", judgments)
    write_jsonl(out / "rubric.jsonl", rubric)
    write_json(out / "manifest.json", manifest)
    write_json(out / RESULTS, result.model_dump(mode="json"))


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
    if version != 2:
        raise RunError(f"{results}: unknown schema_version {version!r}; this harness reads schema 2")
    try:
        result = RunResult.model_validate(raw)
    except ValidationError as exc:
        raise RunError(f"{results}: not a valid results file: {_first_errors(exc)}") from exc
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
    )
    _check_consistent(run)
    return run


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc


def _first_errors(exc: ValidationError, n: int = 3) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:n])


def _records(path: Path, model: Any) -> list[Any]:
    try:
        rows = read_jsonl(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    out = []
    for n, row in enumerate(rows, start=1):
        if isinstance(row, dict) and row.get("schema_version") != 2:
            raise RunError(f"{path}:{n}: schema_version {row.get('schema_version')!r}, expected 2")
        try:
            out.append(model.model_validate(row))
        except ValidationError as exc:
            raise RunError(f"{path}:{n}: {_first_errors(exc)}") from exc
    return out


def _check_consistent(run: Run) -> None:
    """The JSONL files are the ones this results.json was computed from."""
    from harness.score.stats import OUTCOME_SCORE

    r = run.result
    fp = r.judge.fingerprint
    stale = {j.judge_fingerprint for j in run.judgments} | {s.judge_fingerprint for s in run.rubric}
    if stale - {fp}:
        raise RunError(f"{run.path}: judgments by judge fingerprint(s) {sorted(stale - {fp})}, but results.json "
                       f"names judge {fp}: the files come from different runs")
    n = r.provenance.n_dialogues
    if len(run.generations) != n:
        raise RunError(f"{run.path}: generations.jsonl has {len(run.generations)} replies, results.json says {n} "
                       "dialogues")
    for name, stats in r.comparisons.items():
        js = [j for j in run.judgments if j.comparison == name]
        scored = [OUTCOME_SCORE[j.outcome] for j in js if j.outcome is not None]
        if len(js) != stats.n_scored + stats.n_unscored or len(scored) != stats.n_scored:
            raise RunError(f"{run.path}: {name}: judgments.jsonl holds {len(js)} judgments ({len(scored)} scored), "
                           f"results.json counts {stats.n_scored} scored + {stats.n_unscored} unscored")
        if scored and stats.win_rate is not None and abs(sum(scored) / len(scored) - stats.win_rate) > 1e-9:
            raise RunError(f"{run.path}: {name}: win rate {stats.win_rate} in results.json, "
                           f"{sum(scored) / len(scored)} from judgments.jsonl")
    extra = {j.comparison for j in run.judgments} - set(r.comparisons)
    if extra:
        raise RunError(f"{run.path}: judgments.jsonl holds comparisons {sorted(extra)} that results.json lacks")
