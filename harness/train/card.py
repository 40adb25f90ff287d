"""The candidate: the DPO adapter merged into the SFT policy, its model card, and preference margins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.train.datasets import read_rows
from harness.train.models import load_tokenizer


def preference_margins(model_dir: Path, data: Path, *, limit: int = 64) -> list[float]:
    """Log P(chosen) − log P(rejected) of the reply tokens, per DPO pair (first ``limit``), under a saved model."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()  # type: ignore[no-untyped-call]

    def logp(prompt: list[dict[str, str]], reply: list[dict[str, str]]) -> float:
        head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(prompt + reply, tokenize=False)
        ids = tok(full, return_tensors="pt", add_special_tokens=False)["input_ids"]
        n_head = len(tok(head, add_special_tokens=False)["input_ids"])
        with torch.inference_mode():
            logits = model(ids).logits[0, :-1].float()
        token_logp = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        return float(token_logp[n_head - 1 :].sum())

    return [logp(r["prompt"], r["chosen"]) - logp(r["prompt"], r["rejected"]) for r in read_rows(data)[:limit]]


def merge_adapter(policy: Path, adapter: Path, out: Path) -> None:
    """Merge a LoRA adapter into its base model and save model + tokenizer (fp32 on CPU)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(policy), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    load_tokenizer(policy).save_pretrained(str(out))


def recipe_line(recipe: dict[str, Any]) -> str:
    """The model card's recipe line: the recipe's name and, where it differs from the configured one, the numbers."""
    name = recipe["name"]
    changed = [(step, recipe[step]) for step in ("sft", "dpo") if recipe[step]["differs"]]
    if not changed:
        return f"- recipe: `{name}` — the configured effective batch and learning rate"
    numbers = "; ".join(
        f"{step.upper()} effective batch {p['effective_batch']} (configured {p['configured_effective_batch']}), "
        f"learning rate {p['learning_rate']:.3g} (configured {p['configured_learning_rate']:.3g})"
        for step, p in changed)
    return f"- recipe: `{name}` — **differs from the configured recipe**: {numbers}"


def _batch(step: dict[str, Any]) -> str:
    plan = step["plan"]
    processes = f" × {plan['world_size']} processes" if plan["world_size"] > 1 else ""
    return (f"effective batch {plan['effective_batch']} (micro-batch {plan['micro_batch']} × accumulation "
            f"{plan['gradient_accumulation_steps']}{processes})")


def onpolicy_section(r: dict[str, Any]) -> list[str]:
    """The model card's on-policy section: how the pairs were sampled and judged, and what was left out."""
    d, judge = r["decoding"], r["judge"]
    dropped = "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["dropped"].items()) or "none"
    left = "; ".join(f"{k} {v}" for k, v in r["replies_left_out"].items()) or "none"
    margin = (f"P(best) ≥ {r['ranking']['min_p']}" if judge["mode"] in ("reward", "logits")
              else "no probability (generate mode): agreement in both orders only")
    words = r["mean_words"]
    return [
        "## On-policy round",
        f"- samples: {d['samples']} replies per training dialogue from the SFT policy (temperature "
        f"{d['temperature']}, top-p {d['top_p']}, top-k off, no repetition penalty, at most {d['max_new_tokens']} "
        f"new tokens, seed {d['seed']}), cut as evaluation replies are"
        + ("; unfinished replies left out" if r["ranking"]["drop_unfinished"] else ""),
        f"- judge: `{judge['model']}` ({judge['mode']}{', order-free' if judge['order_free'] else ', both orders'}), "
        f"fingerprint `{judge['fingerprint']}`; {r['judgments']} pairwise judgments",
        f"- kept: {r['pairs']} best-vs-worst pairs of {r['dialogues']} dialogues (the judge's own verdict prefers "
        f"the best in both orders, both replies seen whole, {margin}); chosen replies {words['chosen']} words on "
        f"average, rejected {words['rejected']}",
        f"- dialogues dropped: {dropped}; replies left out: {left}",
        "",
    ]


def model_card(m: dict[str, Any]) -> str:
    """A Hugging Face model card for the candidate: what it is, how it was made, with hashes."""
    prov = m.get("provenance") or {}
    sft, dpo = m["steps"]["sft"], m["steps"]["dpo"]
    onpolicy = m["steps"].get("onpolicy")
    cfg = m["config"]
    what = ("then DPO from the SFT policy on its own sampled replies, best vs worst as a judge ranked them (the "
            "on-policy round)" if onpolicy else "then DPO from the SFT policy")
    lines = [
        "---",
        f"base_model: {m['base']}",
        "library_name: transformers",
        f"tags: [empathy, lora, sft, dpo, trl, empathy-harness{', on-policy' if onpolicy else ''}]",
        "---",
        "",
        f"# Empathy-distilled candidate of `{m['base']}`",
        "",
        "Trained with empathy-harness in the two steps of Xie et al. 2025 (*Distilling Empathy "
        f"from Large Language Models*, arXiv 2507.08151): LoRA SFT on teacher replies, {what} "
        "(reference = the SFT policy), both LoRA adapters merged.",
        "",
        f"Base model: `{m['base']}`" + (f" at Hub commit `{m['base_revision']}`" if m.get("base_revision") else "")
        + ".",
        "",
        "## Data",
        f"- strategy: `{prov.get('strategy', 'unknown')}`; teacher: `{(prov.get('teacher') or {}).get('model', '—')}`;"
        f" dataset: `{prov.get('dataset', '—')}`",
        f"- SFT: {sft['n']} rows, `{sft['data']}` (sha256 {sft['data_sha256']})",
        f"- DPO: {dpo['n']} pairs, `{dpo['data']}` (sha256 {dpo['data_sha256']}); "
        + ("chosen / rejected = the best / worst of the SFT policy's own replies" if onpolicy
           else f"rejected = {prov.get('rejected_from', '—')}"),
        "",
        *(onpolicy_section(onpolicy) if onpolicy else []),
        "## Hyper-parameters",
        recipe_line(m["recipe"]),
        f"- LoRA: r {cfg['lora']['r']}, alpha {cfg['lora']['alpha']}, dropout {cfg['lora']['dropout']}, "
        f"targets {cfg['lora']['target_modules']}",
        f"- SFT: lr {sft['learning_rate']}, epochs {cfg['sft']['num_train_epochs']}, {_batch(sft)}, max length "
        f"{cfg['sft']['max_length']}",
        f"- DPO: beta {cfg['dpo']['beta']}, loss {cfg['dpo']['loss_type']}, lr {dpo['learning_rate']}, epochs "
        f"{cfg['dpo']['num_train_epochs']}, {_batch(dpo)}",
        f"- precision: {'bf16' if m['hardware']['bf16'] else 'fp32'}; device: {m['hardware']['device']}",
        "",
        "## Training",
        f"- SFT: {sft['steps']} steps in {sft['seconds']} s, final train loss {sft['final_loss']}",
        f"- DPO: {dpo['steps']} steps in {dpo['seconds']} s, final train loss {dpo['final_loss']}; mean log-prob "
        f"margin chosen − rejected on the training pairs {dpo['margin_before']:.3f} (SFT policy) → "
        f"{dpo['margin_after']:.3f} (candidate)",
        f"- software: {', '.join(f'{k} {v}' for k, v in m['software'].items())}; trained {m['time']}",
        "",
        "Evaluate it with `empathy eval --model <this folder> --reference base=… --reference direct=…`.",
        "",
    ]
    return "\n".join(lines)
