"""A local sequence-classification model (a reward model) as a scorer: (context, reply) text pairs → raw outputs.

Reward models follow trl's ``RewardTrainer`` convention: ``AutoModelForSequenceClassification`` with one output, the
reward. A model with exactly three outputs named cognitive / affective / compassionate (``config.id2label``) scores
the rubric dimensions too. Anything else — a multi-class head of another size, or no classification head at all
(an instruction LLM) — is refused with the fix, from the config alone, before any weights load.

Each pair is encoded as the tokenizer's text pair (context, reply), truncated to the model's length, batched on
the device by length (bf16 on a GPU, fp32 on a CPU); the outputs are returned as float32 numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from harness.core.errors import HarnessError
from harness.core.prompts import DIMENSIONS
from harness.core.records import ModelIdentity
from harness.core.settings import JudgeSettings
from harness.llm.base import JudgeRequest, local_dtype, resolve_device

#: Tokens of one (context, reply) pair at most, whatever longer length the model allows (longest part cut first).
MAX_INPUT_TOKENS = 4096
#: Pairs per forward pass on a CPU; on a GPU, as many as fit :data:`GPU_TOKENS_PER_BATCH` padded tokens.
CPU_BATCH_SIZE = 8
GPU_TOKENS_PER_BATCH = 32_768
GPU_MAX_BATCH = 256
FIX = ("--judge-mode reward needs a reward model: a transformers sequence-classification model with one output (as "
       "trl's RewardTrainer saves), or three named cognitive/affective/compassionate for rubric scores; for an "
       "instruction LLM use --judge-mode logits or generate")


def has_classification_head(architectures: Any) -> bool:
    """Whether a config's ``architectures`` name a sequence-classification model (a reward model's shape)."""
    return any(str(a).endswith("ForSequenceClassification") for a in architectures or [])


def head_labels(config: Any, model: str) -> tuple[str, ...]:
    """The output names of a reward model's head (``config.id2label`` in order), checked.

    Raises:
        HarnessError: no classification head, or a head that is neither one output nor the three dimensions.
    """
    archs = list(getattr(config, "architectures", None) or [])
    if archs and not has_classification_head(archs):
        raise HarnessError(f"judge {model} has no sequence-classification head (it is {', '.join(archs)}): {FIX}")
    n = int(config.num_labels)
    labels = tuple(str(config.id2label[i]) for i in range(n))
    if n == 1 or (n == 3 and sorted(lab.lower() for lab in labels) == sorted(DIMENSIONS)):
        return labels
    if n == 3:
        raise HarnessError(f"judge {model} has three outputs named {', '.join(labels)}: name them {', '.join(DIMENSIONS)} "
                           "in config.id2label for rubric scores, or give a reward model with one output")
    raise HarnessError(f"judge {model} has a classification head with {n} outputs ({', '.join(labels)}), not a "
                       f"reward: {FIX}")


class RewardModel:
    """A reward model on the hf backend, loaded on first use (a fully cached run never loads it).

    It stands where an LLM backend would (:class:`~harness.llm.client.LLMClient` holds it for its identity, dtype,
    statistics and ``close``), but answers no prompts: :meth:`score` is its only way in.
    """

    name = "hf"

    def __init__(self, settings: JudgeSettings) -> None:
        if settings.backend != "hf":
            raise HarnessError(f"--judge-mode reward runs the reward model here (--judge-backend hf), not through "
                               f"--judge-backend {settings.backend}: a chat server returns no classification outputs")
        self.settings = settings
        self.model_id = settings.model
        self.revision = settings.revision
        self._identity: ModelIdentity | None = None
        self._labels: tuple[str, ...] | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self.pairs_scored = self.tokens = 0

    @property
    def identity(self) -> ModelIdentity:
        """The model's identity (computed once; a Hub id is pinned to its resolved commit)."""
        if self._identity is None:
            from harness.core.fingerprint import model_identity

            s = self.settings
            self._identity = model_identity(s.model, revision=s.revision, backend=s.backend,
                                            cache_dir=s.fingerprint_dir())
        return self._identity

    @property
    def dtype(self) -> str:
        """The precision the model runs in: bf16 on a GPU, fp32 on a CPU (outputs are float32 either way)."""
        return local_dtype(self.settings.device)

    def _source(self) -> tuple[str, str | None]:
        if self.identity.kind == "hub":  # exactly the commit that was fingerprinted (offline when cached)
            from harness.core.hub import load_source

            return load_source(self.settings.model, self.identity.revision)
        return self.settings.model, self.settings.revision

    def _cannot_load(self, exc: Exception) -> HarnessError:
        return HarnessError(f"cannot load reward model {self.model_id!r}: {str(exc).splitlines()[0]}. Give a local "
                            "model folder, or a Hub id with internet access (HF_HUB_OFFLINE must be unset)")

    @property
    def labels(self) -> tuple[str, ...]:
        """The head's output names, checked from the config alone (see :func:`head_labels`)."""
        if self._labels is None:
            from transformers import AutoConfig

            source, revision = self._source()
            try:
                config = AutoConfig.from_pretrained(source, revision=revision)
            except (OSError, ValueError) as exc:
                raise self._cannot_load(exc) from exc
            self._labels = head_labels(config, self.model_id)
        return self._labels

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            _ = self.labels
            source, revision = self._source()
            device = resolve_device(self.settings.device)
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    source, revision=revision, dtype=getattr(torch, local_dtype(device)), output_loading_info=True)
            except (OSError, ValueError) as exc:
                raise self._cannot_load(exc) from exc
            prefix = str(getattr(model, "base_model_prefix", ""))
            fresh = [k for k in info.get("missing_keys", ()) if not (prefix and k.startswith(prefix + "."))]
            if fresh:
                raise HarnessError(f"judge {self.model_id} has no trained classification head (its weights lack "
                                   f"{', '.join(sorted(fresh)[:3])}): {FIX}")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            tokenizer.padding_side = "right"
            if model.config.pad_token_id is None:  # the head reads the last token that is not padding
                model.config.pad_token_id = tokenizer.pad_token_id
            model.to(device)
            model.eval()
            self._model, self._tokenizer = model, tokenizer
        return self._model, self._tokenizer

    def max_length(self) -> int:
        """Tokens of one pair at most: the least of the tokenizer's, the model's and :data:`MAX_INPUT_TOKENS`."""
        model, tokenizer = self._load()
        limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
        return min([int(x) for x in limits if isinstance(x, int) and 0 < x < 10**6] + [MAX_INPUT_TOKENS])

    def rows_per_batch(self, longest: int) -> int:
        """Pairs per forward pass: as set, else 8 on a CPU and as many as fit the token budget on a GPU."""
        if self.settings.batch_size:
            return self.settings.batch_size
        if resolve_device(self.settings.device) == "cpu":
            return CPU_BATCH_SIZE
        return max(1, min(GPU_MAX_BATCH, GPU_TOKENS_PER_BATCH // max(1, longest)))

    def score(self, pairs: Sequence[tuple[str, str]]) -> Iterator[tuple[list[int], list[list[float]]]]:
        """Yield (pair indices, raw outputs of each pair) batch by batch, shortest pairs first."""
        import torch

        if not pairs:
            return
        model, tokenizer = self._load()
        limit = self.max_length()
        contexts, replies = [p[0] for p in pairs], [p[1] for p in pairs]
        lengths = [len(ids) for ids in tokenizer(contexts, replies, truncation=True, max_length=limit)["input_ids"]]
        order = sorted(range(len(pairs)), key=lambda i: lengths[i])
        start = 0
        while start < len(order):
            stop = start + 1  # grow the batch while it holds the next (longest so far) pair
            while stop < len(order) and stop - start < self.rows_per_batch(lengths[order[stop]]):
                stop += 1
            idx = order[start:stop]
            batch = tokenizer([contexts[i] for i in idx], [replies[i] for i in idx], truncation=True,
                              max_length=limit, padding=True, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                logits = model(**batch).logits.float().cpu()
            self.pairs_scored += len(idx)
            self.tokens += sum(lengths[i] for i in idx)
            yield idx, [[float(x) for x in row] for row in logits.tolist()]
            start = stop

    def stats(self) -> dict[str, Any]:
        """What the model computed, for the manifest (``judge.compute``)."""
        return {"pairs_scored": self.pairs_scored, "tokens": self.tokens} if self.pairs_scored else {}

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[Any]]]:
        """A reward model reads no prompt: always an error (use :meth:`score`)."""
        raise HarnessError(f"{self.model_id} is a reward model: it scores replies, it does not answer prompts")

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[Any]]]:
        """A reward model writes nothing: always an error (use :meth:`score`)."""
        raise HarnessError(f"{self.model_id} is a reward model: it scores replies, it does not write")

    def close(self) -> None:
        """Free the model (and GPU memory) if it was loaded."""
        if self._model is None:
            return
        import gc

        import torch

        self._model = self._tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
