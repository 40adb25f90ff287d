"""Option groups shared by several commands, and the helpers that turn parsed options into settings."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError, did_you_mean
from harness.core.settings import (
    DEFAULT_JUDGE,
    DEFAULT_MIN_LABEL_MASS,
    GENERATE_MAX_NEW_TOKENS,
    JUDGE_MODES,
    JudgeSettings,
    default_cache_dir,
)

if TYPE_CHECKING:
    from harness.generate.replies import ModelSpec

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]
"""A command: parsed options in, exit code out."""


def add_model_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Options of the model that generates: ``--model``, its backend, server, device and batch size."""
    p.add_argument("--model", required=required, help="model to generate with: Hub id or local folder (or served name)")
    p.add_argument("--revision", default=None, help="model revision (branch, tag or commit) to pin")
    p.add_argument("--model-backend", default="hf",
                   help="hf, vllm, or openai-chat (= lm-eval local-chat-completions: a model behind a server)")
    p.add_argument("--base-url", default=None,
                   help="OpenAI-compatible server for --model-backend openai-chat, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 …")
    p.add_argument("--batch-size", type=int, default=8, help="generation batch size")


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Options choosing the evaluation dialogues: ``--dataset`` and ``--limit``."""
    p.add_argument("--dataset", default="bundled",
                   help="bundled | ed:test[@REV] | welivita:FILE.csv[:paper_test] | FILE.jsonl (default: bundled)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N dialogues (emotion-interleaved)")


def add_judge_options(p: argparse.ArgumentParser, role: str = "judge", *, default: str | None = DEFAULT_JUDGE,
                      cache: bool = True) -> None:
    """Options of a model run through the judge backends: ``--judge …`` or ``--teacher …``."""
    what = {"judge": "judge model", "teacher": "teacher model (writes the training replies)"}[role]
    p.add_argument(f"--{role}", default=default, required=default is None,
                   help=f"{what}: Hub id, local folder or served name" + (f" (default {default})" if default else ""))
    p.add_argument(f"--{role}-revision", default=None, help=f"{role} revision to pin")
    p.add_argument(f"--{role}-backend", default="hf",
                   help="hf (local transformers model) or openai (any OpenAI-compatible server: vLLM, TGI, …)")
    if role == "judge":
        p.add_argument("--judge-mode", default="logits",
                       help="logits (label probabilities) or generate (written verdict)")
        p.add_argument("--judge-max-new-tokens", type=int, default=GENERATE_MAX_NEW_TOKENS,
                       help=f"generate mode: tokens the judge may write (default {GENERATE_MAX_NEW_TOKENS})")
        p.add_argument("--judge-min-label-mass", type=float, default=DEFAULT_MIN_LABEL_MASS,
                       help="logits mode: a verdict whose labels hold less next-token probability than this is "
                            f"unscored, with the reason (default {DEFAULT_MIN_LABEL_MASS}; 0 turns the check off)")
    p.add_argument(f"--{role}-device", default="auto", help=f"{role} device (hf backend)")
    p.add_argument(f"--{role}-batch-size", type=int, default=0,
                   help=f"{role} prompts per forward pass (hf backend); 0 = auto: 8 on a CPU, from free memory on a GPU")
    p.add_argument(f"--{role}-prefix-reuse", action=argparse.BooleanOptionalAction, default=True,
                   help="hf backend: compute each shared prompt prefix once (same results as without, checked at "
                        "first use)")
    p.add_argument(f"--{role}-base-url", default=None,
                   help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1 (default: api.openai.com)")
    p.add_argument(f"--{role}-api-key-env", default="OPENAI_API_KEY",
                   help="openai backend: environment variable holding the API key (keys never go on the command line)")
    p.add_argument(f"--{role}-concurrency", type=int, default=8, help="openai backend: requests in flight")
    p.add_argument(f"--{role}-timeout", type=float, default=120.0, help="openai backend: seconds per request")
    p.add_argument(f"--{role}-max-retries", type=int, default=5,
                   help="openai backend: retries on 429/5xx/timeouts before an item is left unscored")
    if cache:
        p.add_argument("--cache-dir", default=None,
                       help=f"judge/teacher cache folder (default: $EMPATHY_HARNESS_CACHE, else {default_cache_dir()})")


def check_judge_mode(mode: str) -> None:
    """Refuse an unknown ``--judge-mode`` with a "did you mean"."""
    if mode not in JUDGE_MODES:
        raise HarnessError(f"unknown judge mode {mode!r}: {did_you_mean(mode, JUDGE_MODES)}")


def cache_dir(args: argparse.Namespace) -> Path:
    """``--cache-dir``, else the default cache folder."""
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def judge_settings(args: argparse.Namespace, cache: Path, role: str = "judge") -> JudgeSettings:
    """The judge (or teacher, by ``role``) settings from the ``--judge-…`` (``--teacher-…``) options."""
    from pydantic import ValidationError

    from harness.llm.registry import check_backend_name

    opt = vars(args)
    mode = opt.get(f"{role}_mode", "generate")
    check_judge_mode(mode)
    check_backend_name(opt[f"{role}_backend"])
    try:
        return JudgeSettings(model=opt[role], revision=opt[f"{role}_revision"], backend=opt[f"{role}_backend"],
                             mode=mode, device=opt[f"{role}_device"], batch_size=opt[f"{role}_batch_size"],
                             prefix_reuse=opt[f"{role}_prefix_reuse"],
                             base_url=opt[f"{role}_base_url"], api_key_env=opt[f"{role}_api_key_env"],
                             concurrency=opt[f"{role}_concurrency"], timeout_s=opt[f"{role}_timeout"],
                             max_retries=opt[f"{role}_max_retries"], cache_dir=str(cache),
                             **({"max_new_tokens": opt["judge_max_new_tokens"],
                                 "min_label_mass": opt["judge_min_label_mass"]} if role == "judge" else {}))
    except ValidationError as exc:
        flags = {"timeout_s": "timeout", "model": "", "retry_backoff_s": "retry-backoff"}
        problems = "; ".join(
            f"--{role}{'-' if flags.get(str(e['loc'][0]), 'x') else ''}"
            f"{flags.get(str(e['loc'][0]), str(e['loc'][0])).replace('_', '-')}: {e['msg']}"
            for e in exc.errors())
        raise HarnessError(f"invalid {role} options: {problems}") from exc


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The ``--model`` system: its backend, server, revision, device and batch size."""
    from harness.generate.replies import ModelSpec

    return ModelSpec(model=args.model, backend=args.model_backend, revision=args.revision, device=args.device,
                     batch_size=args.batch_size, base_url=args.base_url)


def parse_references(items: Sequence[str]) -> dict[str, Path]:
    """``--reference NAME=FILE`` options as ``{name: file}``."""
    refs: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise HarnessError(f"--reference expects NAME=FILE (e.g. base=refs/base.json), got {item!r}")
        refs[name] = Path(path)
    return refs
