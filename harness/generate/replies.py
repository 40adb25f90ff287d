"""Phase 1 of an evaluation: generate replies through lm-eval, then free the model.

Candidates and references go through this same code (lm-eval's ``empathy_gen`` task), so every system in a
comparison gets the same prompt, chat-template rule, stop strings and decoding.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, did_you_mean
from harness.core.prompts import cut_reply
from harness.core.records import Decoding, Dialogue, Generation
from harness.core.resources import tasks_dir
from harness.core.urls import chat_completions_url, public_url, redact

#: lm-eval model types the harness drives (``--model-backend``); ``openai-chat`` is our name for lm-eval's
#: ``local-chat-completions`` (any OpenAI-compatible chat server: vLLM, TGI, ``transformers serve`` …).
MODEL_BACKENDS = ("hf", "vllm", "openai-chat", "local-chat-completions", "replies")
LMEVAL_MODEL = {"openai-chat": "local-chat-completions"}


@dataclass(frozen=True)
class ModelSpec:
    """A system to generate with."""

    model: str
    backend: str = "hf"
    revision: str | None = None
    device: str = "auto"
    batch_size: int = 8
    base_url: str | None = None
    chat_template: bool | None = None
    """None: decide from the tokenizer (chat template present → use it)."""

    def __post_init__(self) -> None:
        if self.backend not in MODEL_BACKENDS:
            raise HarnessError(f"unknown model backend {self.backend!r}: {did_you_mean(self.backend, MODEL_BACKENDS)}")
        if self.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise HarnessError("--model-backend vllm needs vLLM installed ('pip install vllm' on a GPU machine); or "
                               "serve the model with 'vllm serve' elsewhere and use --model-backend openai-chat")
        object.__setattr__(self, "backend", LMEVAL_MODEL.get(self.backend, self.backend))


def default_decoding() -> Decoding:
    """The decoding every system uses: ``generation_kwargs`` of tasks/empathy_gen.yaml, the one place it is set."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """Reads lm-eval task YAML, skipping its ``!function`` tags."""

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    raw = yaml.load((tasks_dir() / "empathy_gen.yaml").read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    kwargs = dict(raw["generation_kwargs"])
    return Decoding(max_gen_toks=int(kwargs["max_gen_toks"]), do_sample=bool(kwargs["do_sample"]),
                    temperature=float(kwargs["temperature"]), until=tuple(kwargs["until"]))


def generation_dtype(spec: ModelSpec) -> str:
    """The precision replies are generated in (part of a reference set's key): bf16 on a GPU, fp32 on CPU."""
    if spec.backend == "local-chat-completions":
        return "server"
    if spec.backend == "replies":
        return "none"
    if spec.backend == "vllm":
        return "auto"
    from harness.llm.base import local_dtype

    return local_dtype(spec.device)


def model_args(spec: ModelSpec, device: str) -> dict[str, Any]:
    """lm-eval ``model_args`` for a spec."""
    if spec.backend == "local-chat-completions":
        if not spec.base_url:
            raise HarnessError("--model-backend openai-chat needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        # lm-eval's client posts to this URL as given: it keeps the query string and user-info (never recorded)
        url = chat_completions_url(spec.base_url)
        return {"model": spec.model, "base_url": url, "num_concurrent": spec.batch_size, "tokenized_requests": False}
    from harness.core.hub import load_source

    pretrained, revision = load_source(spec.model, spec.revision)  # a fully cached Hub commit loads offline
    args: dict[str, Any] = {"pretrained": pretrained}
    if revision:
        args["revision"] = revision
    if spec.backend == "hf":
        args["dtype"] = generation_dtype(spec)
    return args


def resolve_chat_template(spec: ModelSpec) -> ModelSpec:
    """The spec with its chat-template decision made (so the tokenizer is read once per system)."""
    return spec if spec.chat_template is not None else dataclasses.replace(spec, chat_template=uses_chat_template(spec))


def uses_chat_template(spec: ModelSpec) -> bool:
    """Chat models get their chat template, base models the raw prompt."""
    if spec.chat_template is not None:
        return spec.chat_template
    if spec.backend == "local-chat-completions":
        return True
    if spec.backend == "replies":
        return False
    from transformers import AutoTokenizer

    from harness.core.hub import load_source

    try:
        source, revision = load_source(spec.model, spec.revision)
        tok = AutoTokenizer.from_pretrained(source, revision=revision)
    except OSError as exc:
        raise HarnessError(
            f"cannot load model {spec.model!r}: {str(exc).splitlines()[0]}. Give a local model folder, or a Hub id "
            "with internet access"
        ) from exc
    return bool(getattr(tok, "chat_template", None))


def generate(
    spec: ModelSpec,
    dialogues: Sequence[Dialogue],
    *,
    dataset: str,
    decoding: Decoding,
    system: str,
) -> list[Generation]:
    """Generate one reply per dialogue with lm-eval, cut it at the end of the first answer, free the model.

    Backend ``replies`` reads replies written beforehand instead (a JSONL file of ``{dialogue_id, response}``).
    """
    if spec.backend == "replies":
        return read_replies(spec.model, dialogues, system=system)
    import aiohttp
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    from harness.core.ui import short_name
    from harness.generate.bars import lm_eval_bars
    from harness.llm.base import resolve_device

    device = resolve_device(spec.device)
    chat = uses_chat_template(spec)
    ids = [d.id for d in dialogues]
    # include_defaults=False: indexing lm-eval's ~14k bundled YAMLs costs seconds and we need only ours
    manager = TaskManager(
        include_path=str(tasks_dir()), include_defaults=False, metadata={"dataset": dataset, "ids": ids}
    )
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-task chatter is not for our users
    redacted = _Redacted(spec.base_url or "")
    api_log = logging.getLogger("lm_eval.models.api_models")  # its errors print the request URL
    api_log.addFilter(redacted)
    try:
        _quiet_lm_eval()
        with lm_eval_bars(get_model(spec.backend), f"generating ({short_name(spec.model)}): {system} replies"):
            out = lm_eval.simple_evaluate(
                model=spec.backend,
                model_args=model_args(spec, device),
                tasks=["empathy_gen"],
                task_manager=manager,
                batch_size=spec.batch_size if spec.backend == "hf" else 1,
                device=device if spec.backend != "local-chat-completions" else None,
                apply_chat_template=chat,
                log_samples=True,
                # the decoding asked for, applied by lm-eval over the task YAML's (so a caller's decoding is enforced)
                gen_kwargs={"until": list(decoding.until), "max_gen_toks": decoding.max_gen_toks,
                            "do_sample": decoding.do_sample, "temperature": decoding.temperature},  # type: ignore[dict-item]
                bootstrap_iters=0,
                random_seed=0,
                numpy_random_seed=0,
                torch_random_seed=0,
                fewshot_random_seed=0,
            )
    except (OSError, aiohttp.ClientError) as exc:  # a served model's HTTP errors (aiohttp's are no OSError)
        first = redacted.text((str(exc).splitlines() or [type(exc).__name__])[0])
        if spec.backend == "local-chat-completions":
            raise HarnessError(f"the server at {public_url(spec.base_url or '')} failed while generating with "
                               f"{spec.model!r}: {first}. Check that it is up and serves that model name") from exc
        raise HarnessError(
            f"cannot load model {spec.model!r}: {first}. Give a local model folder, or a Hub id with internet access"
        ) from exc
    finally:
        api_log.removeFilter(redacted)
        gc.collect()
        _free_gpu()
    if out is None:
        raise HarnessError("lm-eval returned no results (non-zero rank?)")
    by_id: dict[str, Generation] = {}
    for sample in out["samples"]["empathy_gen"]:
        doc = sample["doc"]
        raw = sample["resps"][0][0] if sample["resps"] and sample["resps"][0] else ""
        reply = cut_reply(raw)
        flags = ("empty",) if not reply.strip() else ()
        by_id[doc["id"]] = Generation(
            dialogue_id=doc["id"],
            system=system,
            prompt=_prompt_text(sample["arguments"][0][0]),
            raw_response=raw,
            response=reply,
            flags=flags,
        )
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise HarnessError(f"lm-eval produced no reply for {len(missing)} dialogues (e.g. {missing[:3]})")
    return [by_id[i] for i in ids]


_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+")


class _Redacted(logging.Filter):
    """Cuts the server URL's query string and user-info (which may hold a key) out of lm-eval's log lines."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def text(self, text: str) -> str:
        """``text`` without the URL's secrets, nor an API key (lm-eval's error lines print the request headers)."""
        text = _BEARER.sub(r"\1…", text)
        return redact(text, self.url) if self.url else text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message; every record is kept."""
        message = record.getMessage()
        clean = self.text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _prompt_text(argument: Any) -> str:
    """lm-eval's request argument as text (chat-completion models get a JSON message list object)."""
    return str(getattr(argument, "prompt", argument))


def _free_gpu() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def read_replies(path: str, dialogues: Sequence[Dialogue], *, system: str) -> list[Generation]:
    """Replies written beforehand, joined to the run's dialogues by id (every dialogue needs one)."""
    import json

    file = Path(path).expanduser()
    replies: dict[str, str] = {}
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{file} is not valid UTF-8 (byte {exc.start}): re-save it as UTF-8") from exc
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = str(row["dialogue_id"])
            if key in replies:
                raise HarnessError(f"{file}:{n}: a second reply for dialogue {key!r}; keep one")
            replies[key] = str(row["response"])
        except (ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"{file}:{n}: expected a JSON object with dialogue_id and response") from exc
    missing = [d.id for d in dialogues if d.id not in replies]
    if missing:
        raise HarnessError(f"{file} has no reply for {len(missing)} of the run's dialogues (e.g. {missing[:3]})")
    return [Generation(dialogue_id=d.id, system=system, prompt="", raw_response=replies[d.id],
                       response=cut_reply(replies[d.id]) or replies[d.id].strip(),
                       flags=("empty",) if not replies[d.id].strip() else ()) for d in dialogues]


def _quiet_lm_eval() -> None:
    """Skip lm-eval's lookup of the current directory's git commit.

    lm-eval runs ``git describe``, which prints "fatal: not a git repository" outside a checkout; our runs record
    their own provenance.
    """
    import lm_eval.evaluator

    lm_eval.evaluator.get_git_commit_hash = lambda: None  # type: ignore[attr-defined]
