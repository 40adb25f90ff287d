"""``empathy import-lmeval``: lm-eval's own output (``--output_path … --log_samples``) → a run folder.

The lm-eval path judges inside lm-eval; its samples files hold every verdict (as JSON) and every document carries
the run's settings and the judge's fingerprint. This turns them into exactly what ``empathy eval`` writes — the
same statistics code, the same typed results.json — so the leaderboard and the gate read either through
:func:`harness.evaluate.runs.load_run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.fingerprint import model_identity
from harness.core.io import read_jsonl
from harness.core.prompts import cut_reply
from harness.core.records import (
    Generation,
    JudgeFingerprint,
    JudgeProbe,
    Judgment,
    ModelIdentity,
    RubricScore,
    RunResult,
    SystemInfo,
)
from harness.data.selection import run_dialogues
from harness.evaluate.references import now
from harness.evaluate.result import RunInputs, assemble_result
from harness.evaluate.runs import start_run, write_run
from harness.generate.replies import LMEVAL_MODEL, ModelSpec, default_decoding, uses_chat_template
from harness.score.style import load_counter, style_rows

_ARG_ALIASES = {"pretrained": "model"}


def _latest(folder: Path) -> tuple[Path, str]:
    results = sorted(folder.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not results:
        raise HarnessError(f"{folder}: no lm-eval results_*.json — run lm_eval with --output_path {folder} "
                           "--log_samples")
    models = sorted({p.parent for p in results})
    if len(models) > 1:
        raise HarnessError(f"{folder} holds lm-eval runs of {len(models)} models ({', '.join(p.name for p in models)}): "
                           "give the folder of one of them")
    latest = results[-1]
    return latest, latest.stem.removeprefix("results_")


def _samples(folder: Path, stamp: str, task: str) -> list[dict[str, Any]]:
    files = list(folder.rglob(f"samples_{task}_{stamp}.jsonl"))
    return read_jsonl(files[0]) if files else []


def _model_args(config: dict[str, Any]) -> dict[str, str]:
    raw = config.get("model_args") or {}
    pairs: dict[str, str] = {}
    if isinstance(raw, str):
        for part in raw.split(","):
            key, sep, value = part.partition("=")
            if sep:
                pairs[key.strip()] = value.strip()
    else:
        pairs = {str(k): str(v) for k, v in dict(raw).items()}
    return {_ARG_ALIASES.get(k, k): v for k, v in pairs.items()}


def _prompt(arguments: Any) -> str:
    """The prompt of a logged sample (lm-eval logs ``{"gen_args_0": {"arg_0": prompt, …}}``)."""
    if isinstance(arguments, dict):
        first: Any = next(iter(arguments.values()), {})
        return str(first.get("arg_0", "")) if isinstance(first, dict) else str(first)
    return str(arguments[0][0]) if arguments and arguments[0] else ""


def _run_settings(rows: list[dict[str, Any]], where: str) -> dict[str, Any]:
    runs = {row["doc"]["run"] for row in rows}
    if len(runs) != 1:
        raise HarnessError(f"{where}: documents of one task carry different run settings; re-run lm_eval")
    return dict(json.loads(runs.pop()))


def import_lmeval(folder: Path, output: Path) -> RunResult:
    """Read the latest lm-eval run in ``folder`` and write it as a run folder in ``output``."""
    results_path, stamp = _latest(folder)
    lm = json.loads(results_path.read_text(encoding="utf-8"))
    tasks = {t: rows for t in lm.get("results", {}) if t.startswith("empathy_") and (rows := _samples(folder, stamp, t))}
    comparisons = {t: rows for t, rows in tasks.items() if t.startswith("empathy_winrate_")}
    if not comparisons:
        raise HarnessError(f"{results_path}: no empathy_winrate_* samples — run lm_eval with --tasks empathy (or a "
                           "win-rate task) and --log_samples")
    first = next(iter(comparisons.values()))
    run = _run_settings(first, str(results_path))
    dialogues, digest = run_dialogues(run["dataset"], run["limit"])
    judge = JudgeFingerprint.model_validate(run["judge_fingerprint"])
    _check_decoding(lm, list(tasks))
    by_id = {d.id: d for d in dialogues}
    judgments: dict[str, list[Judgment]] = {}
    references: dict[str, SystemInfo] = {}
    generations: dict[str, Generation] = {}
    reference_replies: dict[str, dict[str, str]] = {}
    for task, rows in comparisons.items():
        settings = _run_settings(rows, task)
        ids = [row["doc"]["id"] for row in rows]
        if sorted(ids) != sorted(by_id):
            raise HarnessError(
                f"{task}: lm-eval evaluated {len(ids)} of the run's {len(by_id)} dialogues — lm-eval's own --limit "
                "cuts after the reference check; give the number as --metadata '{\"limit\": N}' instead"
            )
        ref_name = settings["reference"]
        references[ref_name] = SystemInfo(
            model=ModelIdentity.model_validate_json(settings["reference_identity"]),
            backend=settings["reference_backend"], chat_template=settings["reference_chat_template"] == "True",
            reference_file=settings["reference_file"], reference_file_hash=settings["reference_file_hash"])
        judgments[f"vs_{ref_name}"] = [Judgment.model_validate_json(row["filtered_resps"][0]) for row in rows]
        reference_replies[ref_name] = {row["doc"]["id"]: row["doc"]["reference_response"] for row in rows}
        for row in rows:
            raw = row["resps"][0][0] if row["resps"] and row["resps"][0] else ""
            generations.setdefault(row["doc"]["id"], Generation(
                dialogue_id=row["doc"]["id"], system="candidate", prompt=_prompt(row["arguments"]),
                raw_response=raw, response=cut_reply(raw), flags=("empty",) if not cut_reply(raw).strip() else ()))
    rubric = [RubricScore.model_validate_json(row["filtered_resps"][0]) for row in tasks.get("empathy_rubric", [])]
    probe = _probe(comparisons, str(results_path))
    stale = ({j.judge_fingerprint for js in judgments.values() for j in js} | {r.judge_fingerprint for r in rubric}
             | {p.judge_fingerprint for p in probe})
    if stale != {judge.fingerprint}:
        raise HarnessError(f"{results_path}: verdicts by judge fingerprints {sorted(stale)}, but the documents name "
                           f"{judge.fingerprint}; the samples come from different runs")
    config = lm.get("config", {})
    args = _model_args(config)
    backend = LMEVAL_MODEL.get(str(config.get("model")), str(config.get("model")))
    candidate = model_identity(args.get("model", "?"), revision=args.get("revision"), backend=backend,
                               base_url=args.get("base_url"))
    chat = _check_prompting(lm, results_path, ModelSpec(candidate.name, backend=backend, revision=candidate.revision,
                                                        base_url=args.get("base_url")))
    _check_unchanged_since(candidate, results_path)
    inputs = RunInputs(front_end="lm-eval", dataset=run["dataset"], dataset_hash=digest, dialogues=dialogues,
                       candidate=SystemInfo(model=candidate, backend=backend, chat_template=chat), references=references,
                       decoding=default_decoding(), judge=judge, seed=int(run["seed"]))
    gens = [generations[d.id] for d in dialogues]
    style = style_rows(load_counter(), dialogues, {"candidate": {g.dialogue_id: g.response for g in gens},
                                                   **reference_replies})
    result = assemble_result(candidate.name, judgments, rubric, gens, inputs, probe, style)
    start_run(output)
    manifest_out = {"created_at": now(), "imported_from": str(results_path), "lm_eval_config": config,
                    "systems": {n: s.model.model_dump(mode="json") for n, s in result.provenance.systems.items()},
                    "dataset": {"spec": run["dataset"], "hash": digest, "n": len(dialogues),
                                "ids": [d.id for d in dialogues]}, "judge": judge.model_dump(mode="json")}
    write_run(output, result, gens, [j for js in judgments.values() for j in js], rubric, manifest_out, probe, style)
    return result


def _probe(comparisons: dict[str, list[dict[str, Any]]], where: str) -> list[JudgeProbe]:
    """The judge's sanity-probe verdicts, carried by one document of each win-rate task (the same in all)."""
    found = {task: [str(row["doc"]["probe"]) for row in rows if row["doc"].get("probe")]
             for task, rows in comparisons.items()}
    if any(len(texts) != 1 for texts in found.values()) or len({t[0] for t in found.values()}) != 1:
        counts = ", ".join(f"{task}: {len(texts)}" for task, texts in found.items())
        raise HarnessError(f"{where}: the judge's sanity probe must be on exactly one document of each win-rate task, "
                           f"the same in all ({counts}) — the samples come from an older harness or different runs; "
                           "re-run lm_eval (cached verdicts are free)")
    return [JudgeProbe.model_validate(p) for p in json.loads(next(iter(found.values()))[0])]


def _check_prompting(lm: dict[str, Any], where: Path, spec: ModelSpec) -> bool:
    """The candidate saw the prompt as ``empathy eval`` and the references did: chat template by the same rule."""
    applied = lm.get("chat_template") is not None
    expected = uses_chat_template(spec)
    if applied != expected:
        fix = "add --apply_chat_template" if expected else "drop --apply_chat_template"
        raise HarnessError(f"{where}: lm_eval ran {'with' if applied else 'without'} the chat template, but "
                           f"{spec.model} {'has' if expected else 'has no'} one and every system of a comparison is "
                           f"prompted by that rule — re-run lm_eval and {fix}")
    if lm.get("system_instruction"):
        raise HarnessError(f"{where}: lm_eval ran with --system_instruction; the references were generated without "
                           "one — re-run lm_eval without it")
    return applied


def _check_unchanged_since(identity: ModelIdentity, where: Path) -> None:
    """A local candidate must not have been re-saved after lm-eval generated with it (its fingerprint is taken now)."""
    if identity.kind != "local":
        return
    folder = Path(identity.name).expanduser()
    newest = max((f.stat().st_mtime for f in folder.iterdir() if f.is_file()), default=0.0)
    if newest > where.stat().st_mtime:
        raise HarnessError(f"{folder} changed after the lm-eval run ({where.name}): its replies came from an earlier "
                           "version, so the run cannot be fingerprinted — re-run lm_eval")


def _check_decoding(lm: dict[str, Any], tasks: list[str]) -> None:
    """The candidate decoded as the references did (a ``--gen_kwargs`` override would make them incomparable)."""
    want = default_decoding()
    for task in tasks:
        got = (lm.get("configs", {}).get(task) or {}).get("generation_kwargs") or {}
        if got and (tuple(got.get("until", ())) != want.until or int(got.get("max_gen_toks", -1)) != want.max_gen_toks
                    or bool(got.get("do_sample")) != want.do_sample
                    or float(got.get("temperature", 0.0)) != want.temperature):
            raise HarnessError(f"{task}: generated with {got}, but every system must decode as "
                               f"{want.model_dump(mode='json')} (drop --gen_kwargs)")
