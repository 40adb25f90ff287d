"""``empathy judge train``: an empathy reward model from human ratings, with its held-out validity figures.

Ratings → pairs within each dialogue (:mod:`harness.train.judge_data`) → evaluation dialogues refused → split by
dialogue → one recipe (:mod:`harness.train.judge_fast`, :mod:`harness.train.judge_lora`) → a folder that
``AutoModelForSequenceClassification.from_pretrained`` loads (one output, no remote code): model, tokenizer,
``README.md`` (model card) and ``training.json``. The folder is built beside the output and renamed into place when
complete; before that, the saved model is loaded back and must reproduce the validation scores it was judged by.

Validity figures (on the held-out dialogues only, :func:`harness.score.validity_figures.validity_figures`):
agreement with the better-rated reply on non-tied pairs (the reward model's verdict: the reply with the higher r)
with a bootstrap CI over dialogues, beside "the longer reply wins" and "the source rated higher on average in the
*training* ratings wins" on the same pairs; Spearman's ρ between r and the rating within each source.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, did_you_mean
from harness.train.judge_data import Group, guard, load_groups, split_by_dialogue, split_summary
from harness.train.judge_fast import FastSettings, Trained
from harness.train.judge_lora import LoraSettings

RECIPES = ("fast", "lora")
KIND = "empathy-reward-model"
#: The command-line option of each recipe setting.
OPTIONS = {"epochs": "--epochs", "learning_rate": "--lr", "batch_dialogues": "--batch-size", "batch_size": "--batch-size",
           "max_length": "--max-length", "train_layers": "--train-layers", "r": "--lora-r", "seed": "--seed"}
WELIVITA_TERMS = (
    "The Welivita & Pu ratings carry no licence; their dialogue text comes from EmpatheticDialogues (CC BY-NC 4.0). "
    "These weights are derived from that data: they are for your own evaluation — do not publish or sell them.")
OTHER_TERMS = "The terms of the ratings file trained on apply to these weights: check them before sharing the folder."


@dataclass(frozen=True)
class JudgeTrainConfig:
    """Everything ``empathy judge train`` needs."""

    ratings: Path
    output: Path
    recipe: str = "fast"
    backbone: Path | None = None
    """None: the all-MiniLM-L6-v2 folder of ``empathy models fetch minilm`` (fetched here if need be)."""
    val_fraction: float = 0.25
    seed: int = 0
    eval_dataset: str = "bundled"
    eval_limit: int | None = None
    device: str = "auto"
    cache_dir: Path | None = None
    experts: Path | None = None
    """A Kumar et al. 2025 folder: the trained model also rates its 50 conversations (the expert table)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Recipe hyper-parameters set on the command line (the rest: the recipe's defaults)."""


def check_output(output: Path) -> None:
    """The output is new, empty, or an earlier reward model of this command (replaced); anything else is refused."""
    if output.is_file():
        raise HarnessError(f"--output {output} is a file: give a folder for the reward model")
    if output.is_dir() and any(output.iterdir()) and not _ours(output):
        raise HarnessError(f"--output {output} holds something else (no training.json of a reward model made by "
                           "'empathy judge train'): give a new or empty folder, so that nothing is overwritten")


def _ours(folder: Path) -> bool:
    import json

    try:
        return json.loads((folder / "training.json").read_text(encoding="utf-8")).get("kind") == KIND  # type: ignore[no-any-return]
    except (OSError, ValueError, AttributeError):
        return False


def settings(recipe: str, overrides: dict[str, Any]) -> FastSettings | LoraSettings:
    """The recipe's hyper-parameters: its defaults, with the given ones set (unknown recipe: an error)."""
    if recipe not in RECIPES:
        raise HarnessError(f"unknown recipe {recipe!r}: {did_you_mean(recipe, RECIPES)} (fast: MiniLM's top layer "
                           "and head on a CPU; lora: trl's RewardTrainer with LoRA on any backbone, for a GPU)")
    kind = FastSettings if recipe == "fast" else LoraSettings
    known = set(kind.__dataclass_fields__)
    wrong = sorted(OPTIONS.get(k, k) for k, v in overrides.items() if v is not None and k not in known)
    if wrong:
        raise HarnessError(f"{', '.join(wrong)}: not a setting of --recipe {recipe} (its settings: "
                           f"{', '.join(sorted(OPTIONS[k] for k in known if k in OPTIONS))})")
    bad = sorted(OPTIONS.get(k, k) for k, v in overrides.items()
                 if v is not None and k not in ("seed", "train_layers") and not v > 0)
    if bad:
        raise HarnessError(f"{', '.join(bad)}: give a number above 0")
    return kind(**{k: v for k, v in overrides.items() if v is not None})


def resolve_backbone(cfg: JudgeTrainConfig) -> Path:
    """The backbone folder, checked to hold a model (default: the fetched MiniLM)."""
    from harness.llm.real import fetch_minilm
    from harness.train.judge_model import check_backbone

    backbone = cfg.backbone if cfg.backbone is not None else fetch_minilm(cfg.cache_dir)
    check_backbone(backbone)
    return backbone


def run_judge_train(cfg: JudgeTrainConfig) -> dict[str, Any]:
    """Train, measure on the held-out dialogues, save; returns the record written to ``training.json``."""
    from harness.core.fingerprint import model_identity
    from harness.core.io import file_hash
    from harness.core.ui import console
    from harness.llm.base import resolve_device
    from harness.train.judge_model import contract

    check_output(cfg.output)
    s = settings(cfg.recipe, cfg.overrides)
    backbone = resolve_backbone(cfg)
    device = resolve_device(cfg.device)
    groups = load_groups(cfg.ratings)
    if cfg.experts is not None:
        from harness.score.experts import load_experts

        load_experts(cfg.experts)  # a folder with missing raters or ids: an error before training, not after
    kept, guard_report = guard(groups, cfg.eval_dataset, cfg.eval_limit)
    train, val = split_by_dialogue(kept, cfg.val_fraction, cfg.seed)
    split = split_summary(train, val, cfg.seed, cfg.val_fraction)
    console.print(f"[bold]judge train[/]: recipe {cfg.recipe} on {device}, backbone {backbone}; "
                  f"{split['train']['pairs']} pairs from {len(train)} dialogues, validation {split['validation']['pairs']} "
                  f"pairs from {len(val)} ({guard_report['refused']} refused as evaluation dialogues)")
    t0 = time.perf_counter()
    if isinstance(s, FastSettings):
        from harness.train.judge_fast import train_fast

        trained = train_fast(backbone, train, val, s, device)
    else:
        from harness.train.judge_lora import train_lora

        trained = train_lora(backbone, train, val, s, device)
    seconds = time.perf_counter() - t0
    record = {
        "kind": KIND, "schema_version": 1, "recipe": cfg.recipe, "settings": s.as_json(),
        "backbone": {"path": str(backbone), "name": backbone_name(backbone),
                     "fingerprint": model_identity(str(backbone)).fingerprint},
        "data": {"path": str(cfg.ratings), "sha256": file_hash(cfg.ratings), "format": _format(cfg.ratings),
                 "dialogues": len(groups), "dialogues_without_pair": sum(1 for g in kept if not g.pairs),
                 "terms": WELIVITA_TERMS if _format(cfg.ratings) == "welivita" else OTHER_TERMS},
        "overlap_guard": {k: v for k, v in guard_report.items() if k != "refused_ids"} | {
            "refused_ids": guard_report["refused_ids"][:50]},
        "contract": contract(s.max_length), "split": split,
        "validity": figures(train, val, trained.val_scores, seed=cfg.seed), "history": trained.history,
        "seconds": {"total": round(seconds, 1), "encoding": round(trained.encoding_seconds, 1)}, "device": device,
        "software": _software(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save(trained, record, val, cfg.output, s.max_length, cfg.cache_dir)
    if cfg.experts is not None:
        add_expert_table(cfg, record)
    return record


def add_expert_table(cfg: JudgeTrainConfig, record: dict[str, Any]) -> None:
    """The saved model, as a reward judge, rates the experts' conversations; the table joins the record and card."""
    from harness.core.io import write_json
    from harness.core.settings import JudgeSettings
    from harness.judge.reward import open_reward_judge
    from harness.score.experts import expert_report
    from harness.train.judge_card import model_card

    assert cfg.experts is not None
    judge = open_reward_judge(JudgeSettings(model=str(cfg.output), mode="reward", device=cfg.device,
                                            cache_dir=str(cfg.cache_dir or "")))
    try:
        record["experts"], _ = expert_report(judge, cfg.experts, seed=cfg.seed)
    finally:
        judge.client.close()
    write_json(cfg.output / "training.json", record)
    (cfg.output / "README.md").write_text(model_card(record), encoding="utf-8")


def backbone_name(folder: Path) -> str:
    """A readable name: the wheel a fetched model came from, else the folder's name."""
    import json

    try:
        wheel = json.loads((folder / "conversion.json").read_text(encoding="utf-8")).get("wheel")
    except (OSError, ValueError, AttributeError):
        wheel = None
    if wheel and "minilm" in str(wheel):
        return f"sentence-transformers/all-MiniLM-L6-v2 (from the {wheel} wheel)"
    return str(wheel or folder.name)


def _format(path: Path) -> str:
    return "welivita" if path.suffix.lower() == ".csv" else "jsonl"


def _software() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for package in ("torch", "transformers", "trl", "peft"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = "not installed"
    return out


def figures(train: Sequence[Group], val: Sequence[Group], scores: Sequence[Sequence[float]], *,
            seed: int) -> dict[str, Any]:
    """The held-out validity figures: validity_figures on the validation pairs, + Spearman of r per source."""
    from harness.score.agreement import spearman_entry
    from harness.score.validity_figures import PairRecord, source_means, validity_figures

    prior = source_means((src, r) for g in train for src, r in zip(g.sources, g.ratings, strict=True)
                         if src is not None and r is not None)
    records = []
    for g, r in zip(val, scores, strict=True):
        rated = [i for i, x in enumerate(g.ratings) if x is not None]
        pairs = [(i, j, g.ratings[i], g.ratings[j]) for n, i in enumerate(rated) for j in rated[n + 1 :]]
        pairs += [(i, j, 1.0, 0.0) for i, j, _ in g.pairs if i not in rated or j not in rated]  # unrated: given pair
        for i, j, ra, rb in pairs:
            verdict = 1.0 if r[i] > r[j] else 0.0 if r[i] < r[j] else 0.5
            records.append(PairRecord(g.dialogue.id, g.sources[i] or f"reply {i}", g.sources[j] or f"reply {j}",
                                      float(ra or 0.0), float(rb or 0.0), verdict,
                                      len(g.texts[i].split()), len(g.texts[j].split())))
    out = validity_figures(records, prior, seed=seed)
    points: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for g, r in zip(val, scores, strict=True):
        for i, (src, rating) in enumerate(zip(g.sources, g.ratings, strict=True)):
            if rating is not None:
                points.setdefault(src or "all", {}).setdefault(g.dialogue.id, []).append((r[i], rating))
    out["score_spearman"] = {src: spearman_entry(p, seed) for src, p in sorted(points.items())}
    if not prior:
        out["source_prior_baseline"] = None  # the data names no sources: there is no prior to test
        out["per_source_spearman"] = {}
    return out


def save(trained: Trained, record: dict[str, Any], val: Sequence[Group], output: Path, max_length: int,
         cache_dir: Path | None = None) -> None:
    """Model, tokenizer, model card and training.json, built aside, checked by reloading, renamed into place."""
    from harness.core.fingerprint import model_identity
    from harness.core.io import write_json
    from harness.train.judge_card import model_card
    from harness.train.judge_model import contract, quiet_transformers

    aside = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir(parents=True)
    try:
        trained.model.config.empathy_reward = contract(max_length)
        trained.model.config.id2label = {0: "reward"}
        trained.model.config.label2id = {"reward": 0}
        with quiet_transformers():
            trained.model.save_pretrained(str(aside))
        trained.tokenizer.model_max_length = max_length  # the judge truncates where training did
        trained.tokenizer.save_pretrained(str(aside))
        record["reload_check"] = reload_check(aside, val, trained.val_scores, max_length)
        # what the validity figures belong to: the content hash of the model files (judges match it, see
        # harness.core.validity); the folder's name and path are not part of it
        record["model_fingerprint"] = model_identity(str(aside), cache_dir=cache_dir).fingerprint
        write_json(aside / "training.json", record)
        (aside / "README.md").write_text(model_card(record), encoding="utf-8")
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        if output.exists():
            os.replace(output, old)
        os.replace(aside, output)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(aside, ignore_errors=True)
        raise


def reload_check(folder: Path, val: Sequence[Group], scores: Sequence[Sequence[float]], max_length: int,
                 n: int = 8) -> dict[str, Any]:
    """The saved folder, loaded as a judge loads it, gives the validation scores the figures were computed from."""
    from harness.train.judge_model import encode, load_reward_model, score_encodings

    model, tokenizer = load_reward_model(folder)
    items = [(g, i, r[i]) for g, r in zip(val, scores, strict=True) for i in range(len(g.texts))][:n]
    fresh = score_encodings(model, tokenizer, [encode(tokenizer, g.dialogue, g.texts[i], max_length)
                                               for g, i, _ in items])
    worst = max(abs(a - b) for a, b in zip(fresh, (x for _, _, x in items), strict=True))
    if not math.isfinite(worst) or worst > 1e-3:
        raise HarnessError(f"the saved reward model does not reproduce its validation scores (largest difference "
                           f"{worst:.3g}): this is a bug in empathy judge train — please report it")
    return {"replies": len(items), "max_abs_difference": worst}
