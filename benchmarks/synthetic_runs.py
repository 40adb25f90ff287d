"""Run folders at scale for benchmarks: one real template run, then N copies of it for other models.

``template_run`` runs a real ``empathy eval`` (tiny random models built in-process, a real judge call per verdict)
on D dialogues written to a .jsonl dataset; ``clone_runs`` turns it into N runs of distinct models: each copy gets
its own candidate identity and fresh verdicts in both orders (a model strength sets P(win); ties occur, and the
two orders disagree), its numbers recomputed by the harness's own ``assemble_result`` and written with
``write_run`` — so every copy is a run that ``load_run`` accepts and a board admits.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TIE = 0.25  # share of verdicts that name the tie label


def write_dataset(path: Path, n: int) -> Path:
    """``n`` dialogues: the bundled ones, repeated with new ids as needed."""
    from harness.data.selection import select_dialogues

    bundled, _ = select_dialogues("bundled")
    rows = []
    for k in range(n):
        d = bundled[k % len(bundled)]
        rows.append({"id": f"syn-{k:05d}", "emotion": d.emotion, "sentiment": d.sentiment,
                     "situation": d.situation, "utterance": d.utterance})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def template_run(root: Path, dialogues: int) -> Path:
    """A real run of a tiny candidate vs base and direct (both orders, rubric), on ``dialogues`` dialogues."""
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec
    from harness.llm.tiny import build_tiny_model

    models = {name: build_tiny_model(root / "models" / name, seed=i)
              for i, name in enumerate(("base", "direct", "candidate", "judge"))}
    dataset = write_dataset(root / "dialogues.jsonl", dialogues)
    out = root / "template"
    run_eval(EvalConfig(
        candidate=ModelSpec(str(models["candidate"]), device="cpu"),
        judge=JudgeSettings(model=str(models["judge"]), device="cpu", cache_dir=str(root / "cache"),
                            min_label_mass=0.0),
        output=out, build_references={"base": ModelSpec(str(models["base"]), device="cpu"),
                                      "direct": ModelSpec(str(models["direct"]), device="cpu")},
        refs_dir=root / "references", dataset=str(dataset), limit=dialogues))
    return out


def clone_runs(template: Path, out: Path, n: int, *, seed: int = 0) -> list[Path]:
    """``n`` runs of distinct synthetic models, each written with the project's own ``write_run``."""
    from harness.core.records import Judgment, ModelIdentity, PairVerdict
    from harness.core.ui import new_progress
    from harness.data.selection import run_dialogues
    from harness.evaluate.result import RunInputs, assemble_result
    from harness.evaluate.runs import load_run, write_run
    from harness.judge.parse import combine_orders

    run = load_run(template)
    r = run.result
    p = r.provenance
    dialogues, _ = run_dialogues(p.dataset, p.n_dialogues)
    rng = random.Random(seed)
    paths = []
    with new_progress() as progress:
        task = progress.add_task(f"writing {n} run folders", total=n)
        for k in range(n):
            identity = ModelIdentity(kind="hub", name=f"synthetic-org/model-{k:05d}", revision=f"{k:040x}",
                                     fingerprint=f"{seed:04x}{k:012x}")
            candidate = p.systems["candidate"].model_copy(update={"model": identity})
            strength = rng.uniform(0.2, 0.8)
            judgments = [_fresh(j, strength, rng, PairVerdict, Judgment, combine_orders) for j in run.judgments]
            probe = [q.model_copy(update={"verdicts": tuple(v.model_copy(update={
                "winner": "candidate", "p_candidate": 0.9, "label_mass": 0.9}) for v in q.verdicts)}) for q in run.probe]
            by_comparison: dict[str, list[Any]] = {}
            for j in judgments:
                by_comparison.setdefault(j.comparison, []).append(j)
            inputs = RunInputs(front_end=p.front_end, dataset=p.dataset, dataset_hash=p.dataset_hash,
                               dialogues=dialogues, candidate=candidate,
                               references={name: s for name, s in p.systems.items() if name != "candidate"},
                               decoding=p.decoding, judge=r.judge, seed=p.seed)
            result = assemble_result(identity.name, by_comparison, run.rubric, run.generations, inputs, probe,
                                     run.style)
            manifest = {**run.manifest, "systems": {name: s.model.model_dump(mode="json")
                                                    for name, s in result.provenance.systems.items()},
                        "candidate": {**run.manifest["candidate"], "model": identity.name,
                                      "identity": identity.model_dump(), "parameters": 135_000_000}}
            dest = out / f"model-{k:05d}"
            write_run(dest, result, run.generations, judgments, run.rubric, manifest, probe, run.style)
            paths.append(dest)
            progress.advance(task)
    return paths


def _fresh(j: Any, strength: float, rng: random.Random, verdict: Any, judgment: Any, combine: Any) -> Any:
    """The template's judgment with new verdicts from a healthy judge: the first order a win with P = strength (a
    tie with P = TIE), the second order the same answer 85 % of the time; label mass 0.9."""
    u = rng.random()
    first = "tie" if u < TIE else "candidate" if u < TIE + (1 - TIE) * strength else "reference"
    second = first if rng.random() < 0.85 else rng.choice([w for w in ("candidate", "tie", "reference") if w != first])
    verdicts = [verdict(order=v.order, winner=w, p_candidate={"candidate": 0.8, "tie": 0.5, "reference": 0.2}[w],
                        raw=v.raw, label_mass=0.9) for v, w in zip(j.verdicts, (first, second), strict=True)]
    return judgment(**{**j.model_dump(), "verdicts": tuple(verdicts), "outcome": combine(verdicts),
                       "unscored_reason": None})
