"""The model card (``README.md``) of a reward model made by ``empathy judge train``, from its training record."""

from __future__ import annotations

import math
from typing import Any

from harness.score.ratings import SOURCE_NAMES


def _pct(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None or math.isnan(entry["value"]):
        return "—"
    ci = "" if entry.get("ci_low") is None or math.isnan(entry["ci_low"]) else \
        f" [{entry['ci_low']:.1%}–{entry['ci_high']:.1%}]"
    return f"{entry['value']:.1%}{ci}"


def _rho(entry: dict[str, Any]) -> str:
    rho = entry.get("rho")
    if rho is None or math.isnan(rho):
        return "—"
    low, high = entry.get("ci_low"), entry.get("ci_high")
    ci = "" if low is None or math.isnan(low) else f" [{low:.2f}–{high:.2f}]"
    return f"{rho:.3f}{ci}"


def figure_rows(validity: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows of the held-out figures, for the card and the command's table."""
    agreement = validity["agreement"]
    rows = [
        (f"agreement with the better-rated reply ({agreement['n']} non-tied pairs, 95 % CI over dialogues)",
         _pct(agreement)),
        ("baseline: the longer reply wins", _pct(validity["length_baseline"])),
        ("baseline: the source rated higher on average in the training ratings wins",
         _pct(validity["source_prior_baseline"]) if validity.get("source_prior_baseline") else "— (no sources)"),
    ]
    for source, entry in validity.get("score_spearman", {}).items():
        rows.append((f"Spearman ρ of r vs rating: {SOURCE_NAMES.get(source, source)} (n={entry['n']})", _rho(entry)))
    return rows


def model_card(m: dict[str, Any]) -> str:
    """A Hugging Face model card: what the model is, how it reads its input, how it was trained, how valid it is."""
    split, data, backbone, contract_note = m["split"], m["data"], m["backbone"], m.get("contract", {})
    settings = ", ".join(f"{k} {v}" for k, v in m["settings"].items())
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "license: other",
        "tags: [reward-model, empathy, empathy-harness]",
        "---",
        "",
        "# Empathy reward model",
        "",
        "A sequence-classification model with **one output**, the reward r of a reply to a dialogue, trained with "
        "`empathy judge train` on human empathy ratings (pairs of replies to the same dialogue, Bradley–Terry loss "
        "−log σ(r_better − r_worse)). P(reply a is more empathetic than b) = σ(r_a − r_b).",
        "",
        "Use it as a judge: `empathy eval … --judge <this folder> --judge-mode reward`. It loads with "
        "`AutoModelForSequenceClassification.from_pretrained(folder)` (no remote code). Input: the tokenizer's text "
        "pair (context, reply) with context `Situation: {situation}\\nSpeaker: {utterance}`, truncated to "
        f"{contract_note.get('max_length', m['settings'].get('max_length'))} tokens (`empathy_reward` in config.json).",
        "",
        "## Backbone",
        f"- {backbone['name']} — folder `{backbone['path']}`, fingerprint `{backbone['fingerprint']}`",
        "",
        "## Training",
        f"- recipe `{m['recipe']}`: {settings}",
        f"- data: `{data['path']}` ({data['format']}, sha256 {data['sha256']}), {data['dialogues']} dialogues "
        f"({data['dialogues_without_pair']} without a pair of differently rated replies, unused)",
        f"- evaluation dialogues refused: {m['overlap_guard']['refused']} (evaluation set "
        f"`{m['overlap_guard']['eval_dataset']}`)",
        f"- split by dialogue (seed {split['seed']}, validation fraction {split['val_fraction']}): train "
        f"{split['train']['dialogues']} dialogues / {split['train']['pairs']} pairs, validation "
        f"{split['validation']['dialogues']} dialogues / {split['validation']['pairs']} pairs — no dialogue on both sides",
        f"- {m['seconds']['total']} s on {m['device']}; {', '.join(f'{k} {v}' for k, v in m['software'].items())}; "
        f"trained {m['time']}",
        "",
        "## Validity on the held-out dialogues",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {what} | {value} |" for what, value in figure_rows(m["validity"])),
        "",
        "Agreement: 1 when the reply with the higher r is the one people rated higher, ½ when r ties, 0 otherwise, "
        "on validation pairs whose ratings differ. The baselines know nothing of empathy: a judge should beat both.",
        "",
        *expert_section(m.get("experts")),
        "## Terms",
        data["terms"],
        "",
    ]
    return "\n".join(lines)


def expert_section(report: dict[str, Any] | None) -> list[str]:
    """The expert table (``--experts``): this model's rows beside the paper's, recomputed, and the verdict."""
    if not report:
        return []

    from harness.score.experts import fmt3 as num
    from harness.score.experts import rating_rule

    rows = [f"| {r['a']} – {r['b']} | {num(r['kappa'])} | {num(r['kappa_ci_low'])}–{num(r['kappa_ci_high'])} | "
            f"{num(r['spearman'])} | {r['n']} | {'' if r['paper_kappa'] is None else format(r['paper_kappa'], '.2f')} |"
            for r in [*report["judge_rows"], *report["paper_rows"]]]
    return [
        "## Agreement with experts (Kumar et al. 2025, EmpatheticDialogues)",
        "",
        f"The model rates the listener's empathy in each of the experts' conversations on 1–5 "
        f"({rating_rule(report['judge_rating'])}); quadratic-weighted κ and Spearman against each expert and the expert median, "
        "beside the paper's rows recomputed from the same files by the same code.",
        "",
        "| raters | κ (quadratic) | 95 % CI | Spearman | n | paper κ |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Verdict:** {report['verdict']['line']}",
        "",
    ]
