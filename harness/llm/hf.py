"""A local transformers model as a judge or teacher, batched by prompt length (bf16 on GPU, fp32 on CPU)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from harness.core.errors import HarnessError
from harness.llm.base import JudgeRequest, local_dtype, resolve_device
from harness.llm.prefix import Plan, PrefixRunner, plan_prefixes, reuse_blocker


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


#: Prompts per forward pass on a CPU (more gains nothing there and costs memory).
CPU_BATCH_SIZE = 8
#: Tokens per forward pass that keep a data-centre GPU's prefill busy; more only adds memory.
GPU_TOKENS_PER_BATCH = 32_768
GPU_MAX_BATCH = 256


def bytes_per_token(config: Any, itemsize: int) -> int:
    """Memory one prompt token needs in a forward pass.

    Its keys/values in every layer plus the largest transient activations of one layer (the MLP's gate, up and
    product at intermediate width, a few hidden-width copies).
    """
    text = config.get_text_config()
    hidden = int(text.hidden_size)
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    layers = int(text.num_hidden_layers)
    inter = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    return itemsize * (2 * layers * kv_heads * head_dim + 3 * inter + 4 * hidden)


def auto_batch_size(longest: int, free_bytes: int, per_token: int, headroom: float = 0.7,
                    computed: int | None = None) -> int:
    """Prompts per batch on a GPU.

    What ``headroom`` of free memory holds at ``longest`` tokens each, at most :data:`GPU_TOKENS_PER_BATCH` tokens
    per pass of ``computed`` tokens a row (default ``longest``; less with prefix reuse, whose rows run only their
    own part) and :data:`GPU_MAX_BATCH` prompts, at least one.
    """
    longest = max(1, longest)
    by_memory = int(free_bytes * headroom) // (longest * per_token)
    by_compute = GPU_TOKENS_PER_BATCH // max(1, computed or longest)
    return max(1, min(by_memory, by_compute, GPU_MAX_BATCH))


class HFBackend:
    """A local transformers model, batched by prompt length (bf16 on GPU, fp32 on CPU)."""

    name = "hf"

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        device: str = "auto",
        batch_size: int = 0,
        progress: Callable[[int], None] | None = None,
        prefix_reuse: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = model
        self.revision = revision
        self.device = resolve_device(device)
        self.batch_size = batch_size  # 0: auto, per call (see rows_per_batch)
        self.progress = progress
        self.prefix_reuse = prefix_reuse
        #: tokens in the prompts asked, tokens that went through the model (shared parts once), and the positions
        #: run including pads
        self.prompt_tokens = self.computed_tokens = self.positions_run = 0
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            dtype = getattr(torch, local_dtype(self.device))
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
        self._runner = PrefixRunner(self.model, int(self.tokenizer.pad_token_id), self.device)
        self.reuse_note: str | None = None
        """Why prefix reuse was turned off for this model (it disagreed with the plain pass, or failed)."""

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

    def _encode(self, requests: Sequence[JudgeRequest]) -> list[list[int]]:
        """Every prompt rendered and tokenised (one batched tokenizer call)."""
        if not requests:
            return []
        encoded = self.tokenizer([self.render(r) for r in requests], add_special_tokens=False)["input_ids"]
        self.prompt_tokens += sum(len(e) for e in encoded)
        return [list(e) for e in encoded]

    def rows_per_batch(self, longest: int, computed: int | None = None) -> int:
        """The batch size: as set, else 8 on a CPU and, on a GPU, chosen by :func:`auto_batch_size`.

        On a GPU: what free memory and a prefill-saturating token budget allow for prompts of ``longest`` tokens.
        """
        if self.batch_size > 0:
            return self.batch_size
        if not self.device.startswith("cuda"):
            return CPU_BATCH_SIZE
        import torch

        device = torch.device(self.device)
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # held by torch, unused
        return auto_batch_size(longest, free, bytes_per_token(self.model.config, self.model.dtype.itemsize),
                               computed=computed)

    def _batches(self, encoded: Sequence[list[int]]) -> Iterator[tuple[list[int], dict[str, Any]]]:
        """The plain path: whole prompts, sorted by length, left-padded, in batches."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        size = self.rows_per_batch(max((len(e) for e in encoded), default=1))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            yield idx, self._padded(encoded, idx)

    def _padded(self, encoded: Sequence[list[int]], idx: Sequence[int]) -> dict[str, Any]:
        """Whole prompts ``idx``, left-padded on the device, counted as computed."""
        enc = self.tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt")
        self.computed_tokens += sum(len(encoded[i]) for i in idx)
        self.positions_run += int(enc["input_ids"].numel())
        return dict(enc.to(self.device))

    def _plain_logits(self, enc: dict[str, Any]) -> Any:
        """float32 next-token logits of a padded batch of whole prompts (only the last position is projected)."""
        return self.model(**enc, **self._runner.keep).logits[:, -1, :].float()

    def _plan(self, encoded: Sequence[list[int]]) -> tuple[Plan, Any, tuple[list[int], Any]] | None:
        """The shared-prefix plan of a call, its global prefix's cache and its first batch's logits (or None).

        None when reuse is off for this model. Every call checks itself: the first batch's most padded prompt (and
        its first) are also run the plain way, and if their next-token distributions differ by more than float
        error, or the architecture cannot take the padded layout (:func:`~harness.llm.prefix.reuse_blocker`), or
        the reuse path fails, reuse is turned off for this model, with the reason in :attr:`reuse_note`. Running
        out of memory is not such a failure.
        """
        import torch

        if not self.prefix_reuse or not encoded:
            return None
        longest = max(len(e) for e in encoded)
        with torch.inference_mode():
            try:
                size = self.rows_per_batch(longest)
                plan = plan_prefixes(encoded, size)
                # an automatic GPU batch is sized by compute on what each row runs beyond the global prefix (a set
                # size, or a CPU's, stays as it is)
                wider = self.rows_per_batch(longest, computed=plan.longest_row() - len(plan.global_prefix))
                plan = plan_prefixes(encoded, wider) if wider > size else plan
                if (why := reuse_blocker(self.model.config, plan)) is not None:
                    self.reuse_note = f"{why}; judging without prefix reuse"
                else:
                    shared = self._runner.global_cache(plan)
                    first = self._runner.last_logits(plan, shared, plan.batches[0])
                    self._verify(encoded, [*{plan.most_padded(plan.batches[0]): 0, first[0][0]: 0}], first)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as exc:
                self.reuse_note = f"prefix reuse failed ({type(exc).__name__}: {str(exc)[:160]}); judging without it"
            if self.reuse_note:
                self.prefix_reuse = False
                return None
        self.computed_tokens += plan.tokens_computed()
        self.positions_run += plan.positions_run()
        return plan, shared, first

    def _verify(self, encoded: Sequence[list[int]], rows: list[int], first: tuple[list[int], Any]) -> None:
        """Compare the reuse path's logits of ``rows`` (request indices) with the plain pass of the same prompts."""
        import torch

        where = [first[0].index(r) for r in rows]
        plain = self._plain_logits(self._padded(encoded, rows))
        diff = float((plain.softmax(-1) - first[1][where].softmax(-1)).abs().max())
        tolerance = 1e-3 if self.model.dtype == torch.float32 else 5e-2
        if diff > tolerance:
            self.reuse_note = (f"prefix reuse disagreed with the plain pass for this model (max probability difference "
                               f"{diff:.2g} > {tolerance:g}); judging without it")

    def stats(self) -> dict[str, Any]:
        """Tokens asked and computed, and whether shared prefixes were reused (manifest's judge.compute)."""
        return {"prefix_reuse": self.prefix_reuse, "reuse_note": self.reuse_note, "prompt_tokens": self.prompt_tokens,
                "computed_tokens": self.computed_tokens, "positions_run": self.positions_run}

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
        for idx, logits in self._last_logits(self._encode(requests)):
            with torch.inference_mode():
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

    def _last_logits(self, encoded: Sequence[list[int]]) -> Iterator[tuple[list[int], Any]]:
        """(request indices, float32 next-token logits) batch by batch: shared prefixes once, or whole prompts."""
        import torch

        if (planned := self._plan(encoded)) is not None:
            plan, shared, first = planned
            for k, batch in enumerate(plan.batches):
                if k == 0:  # computed by the call's check
                    yield first
                    continue
                with torch.inference_mode():
                    done = self._runner.last_logits(plan, shared, batch)
                yield done
            return
        for idx, enc in self._batches(encoded):
            with torch.inference_mode():
                logits = self._plain_logits(enc)
            yield idx, logits

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """Greedy generation per batch; returns only the new text."""
        for idx, new in self._generated(self._encode(requests), max_new_tokens):
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            if self.progress:
                self.progress(len(idx))
            yield idx, [str(t) for t in texts]

    def _generated(self, encoded: Sequence[list[int]], max_new_tokens: int) -> Iterator[tuple[list[int], Any]]:
        """(request indices, new token ids) batch by batch, greedy."""
        import torch

        kwargs = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if (planned := self._plan(encoded)) is not None:
            plan, shared, _ = planned
            for batch in plan.batches:
                with torch.inference_mode():
                    done = self._runner.generate(plan, shared, batch, **kwargs)
                yield done
            return
        for idx, enc in self._batches(encoded):
            with torch.inference_mode():
                out = self.model.generate(**enc, do_sample=False, **kwargs)
            yield idx, out[:, enc["input_ids"].shape[1] :]

    def close(self) -> None:
        """Free the model (and GPU memory)."""
        import gc

        import torch

        del self.model
        del self._runner  # it holds the model too
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
