"""A local transformers model as a judge or teacher, batched by prompt length (bf16 on GPU, fp32 on CPU)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from harness.core.errors import HarnessError
from harness.llm.base import JudgeRequest, resolve_device


def label_token_ids(tokenizer: Any, label: str) -> list[int]:
    """Token ids that start ``label`` as the next token, with or without a leading space.

    Tokenizers differ: some encode " A" as one token, others as " " + "A". A variant counts only if its first
    token decodes to the label itself, so a bare-space token shared by all labels is never used.
    """
    ids: list[int] = []
    for variant in (label, " " + label):
        toks = tokenizer.encode(variant, add_special_tokens=False)
        if toks and tokenizer.decode([toks[0]]).strip() == label and toks[0] not in ids:
            ids.append(toks[0])
    if not ids:
        raise HarnessError(
            f"the judge tokenizer cannot read label {label!r} as one token; use single-token labels in "
            "prompts/judge/*.yaml or --judge-mode generate"
        )
    return ids


class HFBackend:
    """A local transformers model, batched by prompt length (bf16 on GPU, fp32 on CPU)."""

    name = "hf"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        device: str = "auto",
        batch_size: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = model
        self.revision = revision
        self.device = resolve_device(device)
        self.batch_size = max(1, batch_size)
        self.progress = progress
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            self.model = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=dtype)
        except OSError as exc:
            raise HarnessError(
                f"cannot load judge model {model!r}: {str(exc).splitlines()[0]}. Give a local model folder, or a "
                "Hub id with internet access (HF_HUB_OFFLINE must be unset)"
            ) from exc
        self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()  # type: ignore[no-untyped-call]
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._label_ids: dict[str, list[int]] = {}

    def render(self, request: JudgeRequest) -> str:
        """The full prompt text: chat template when the tokenizer has one, else plain text."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            messages = request.messages()
            try:
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # templates without a system role (e.g. Gemma) raise; merge it into the first user turn
                if not request.system:
                    raise
                merged = [{**messages[1], "content": f"{request.system}\n\n{messages[1]['content']}"}, *messages[2:]]
                text = tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
            return str(text) + request.prefill
        turns = "".join(f"{u}\n\n{a}\n\n" for u, a in request.history)
        system = f"{request.system}\n\n" if request.system else ""
        return f"{system}{turns}{request.user}\n\n{request.prefill}"

    def _batches(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """Length-bucketed batches: prompts tokenised once (one batched call), sorted by length, left-padded."""
        texts = [self.render(r) for r in requests]
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt")
            yield idx, dict(enc.to(self.device))

    def _ids_for(self, label: str) -> list[int]:
        if label not in self._label_ids:
            self._label_ids[label] = label_token_ids(self.tokenizer, label)
        return self._label_ids[label]

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[Any]]]:
        """One forward pass per batch; probabilities of the labels as the next token (renormalised).

        Each answer also holds ``_mass``: the labels' total probability before renormalising.

        The label columns of the whole batch are gathered on the device and copied to the host once per batch.
        """
        import torch

        label_sets = sorted({r.labels for r in requests})
        columns = {labels: [(lab, self._ids_for(lab)) for lab in labels] for labels in label_sets}
        flat = {labels: torch.tensor([t for _, ids in cols for t in ids], device=self.device)
                for labels, cols in columns.items()}
        for idx, enc in self._batches(requests):
            with torch.inference_mode():
                logits = self.model(**enc).logits[:, -1, :].float()
                probs = torch.softmax(logits, dim=-1)
                picked = {labels: probs[:, ids].cpu().tolist() for labels, ids in flat.items()}
            out = []
            for row, i in enumerate(idx):
                values, mass, k = picked[requests[i].labels][row], {}, 0
                for lab, ids in columns[requests[i].labels]:
                    mass[lab] = float(sum(values[k : k + len(ids)]))
                    k += len(ids)
                total = sum(mass.values()) or 1.0
                out.append({**{lab: p / total for lab, p in mass.items()}, "_mass": sum(mass.values())})
            if self.progress:
                self.progress(len(idx))
            yield idx, out

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """Greedy generation per batch; returns only the new text."""
        import torch

        for idx, enc in self._batches(requests):
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            if self.progress:
                self.progress(len(idx))
            yield idx, [str(t) for t in texts]

    def close(self) -> None:
        """Free the model (and GPU memory)."""
        import gc

        import torch

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
