"""Option groups shared by several commands, and the helpers that turn parsed options into settings."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError, did_you_mean
from harness.core.settings import (
    DEFAULT_JUDGE,
    DEFAULT_MIN_LABEL_MASS,
    DEFAULT_TIE_BAND,
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
    """Options of a model run through the judge backends: ``--judge …``, ``--teacher …`` or ``--onpolicy-judge …``.

    ``role`` is the options' destination prefix (``onpolicy_judge``); the flags spell it with dashes.
    """
    what = {"judge": "judge model", "teacher": "teacher model (writes the training replies)",
            "onpolicy_judge": "judge of the on-policy round (ranks the SFT policy's replies; a reward model is the "
                              "cheap choice)"}[role]
    flag = role.replace("_", "-")
    p.add_argument(f"--{flag}", dest=role, default=default, required=default is None,
                   help=f"{what}: Hub id, local folder or served name" + (f" (default {default})" if default else ""))
    p.add_argument(f"--{flag}-revision", default=None, help=f"{flag.replace('-', ' ')} revision to pin")
    p.add_argument(f"--{flag}-backend", default="hf",
                   help="hf (local transformers model) or openai (any OpenAI-compatible server: vLLM, TGI, …)")
    if role != "teacher":
        mode = "reward" if role == "onpolicy_judge" else "logits"
        p.add_argument(f"--{flag}-mode", dest=f"{role}_mode", default=mode,
                       help="logits (label probabilities), generate (written verdict), or reward (a sequence-"
                            f"classification reward model scores each reply once; hf backend); default {mode}")
        p.add_argument(f"--{flag}-tie-band", dest=f"{role}_tie_band", type=float, default=DEFAULT_TIE_BAND,
                       help="reward mode: a verdict is a tie when |sigmoid(r_cand - r_ref) - 0.5| < band/2 "
                            f"(default {DEFAULT_TIE_BAND}; 0: ties only on equal rewards)")
        p.add_argument(f"--{flag}-max-new-tokens", dest=f"{role}_max_new_tokens", type=int, default=GENERATE_MAX_NEW_TOKENS,
                       help=f"generate mode: tokens the judge may write (default {GENERATE_MAX_NEW_TOKENS})")
        p.add_argument(f"--{flag}-min-label-mass", dest=f"{role}_min_label_mass", type=float, default=DEFAULT_MIN_LABEL_MASS,
                       help="logits mode: a verdict whose labels hold less next-token probability than this is "
                            f"unscored, with the reason (default {DEFAULT_MIN_LABEL_MASS}; 0 turns the check off)")
    p.add_argument(f"--{flag}-device", default="auto", help=f"{flag.replace('-', ' ')} device (hf backend)")
    p.add_argument(f"--{flag}-batch-size", type=int, default=0,
                   help=f"{flag.replace('-', ' ')} prompts per forward pass (hf backend); 0 = auto: 8 on a CPU, from free memory on a GPU")
    p.add_argument(f"--{flag}-prefix-reuse", action=argparse.BooleanOptionalAction, default=True,
                   help="hf backend: compute each shared prompt prefix once (same results as without, checked at "
                        "first use)")
    p.add_argument(f"--{flag}-base-url", default=None,
                   help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1 (default: api.openai.com)")
    p.add_argument(f"--{flag}-api-key-env", default="OPENAI_API_KEY",
                   help="openai backend: environment variable holding the API key (keys never go on the command line)")
    p.add_argument(f"--{flag}-concurrency", type=int, default=8, help="openai backend: requests in flight")
    p.add_argument(f"--{flag}-timeout", type=float, default=120.0, help="openai backend: seconds per request")
    p.add_argument(f"--{flag}-max-retries", type=int, default=5,
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
                             **({"max_new_tokens": opt[f"{role}_max_new_tokens"],
                                 "min_label_mass": opt[f"{role}_min_label_mass"],
                                 "tie_band": opt[f"{role}_tie_band"]} if role != "teacher" else {}))
    except ValidationError as exc:
        flags = {"timeout_s": "timeout", "model": "", "retry_backoff_s": "retry-backoff"}
        problems = "; ".join(
            f"--{role.replace('_', '-')}{'-' if flags.get(str(e['loc'][0]), 'x') else ''}"
            f"{flags.get(str(e['loc'][0]), str(e['loc'][0])).replace('_', '-')}: {e['msg']}"
            for e in exc.errors())
        raise HarnessError(f"invalid --{role.replace('_', '-')} options: {problems}") from exc


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


def writable_folder(option: str, value: str) -> Path:
    """The folder an output option names; refused up front when it cannot be made or written.

    Nothing is created here (the command makes the folder when it writes), so a refused command leaves nothing
    behind. Writing is tried for real (a temporary file, removed at once): permission bits say nothing for root or
    on a read-only file system.
    """
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{option} {value} is a file; give a folder (it is created if missing)")
    check_writable_under(option, value, path)
    return path


def writable_file(option: str, value: str, *, example: str = "out") -> Path:
    """The file an output option names; refused up front when it cannot be written.

    A folder, a path under a file, or a place that cannot be written is a usage error before any work, so that a
    finished command never ends in a traceback (missing folders above it are created when it is written).
    """
    path = Path(value).expanduser()
    if path.is_dir():
        raise HarnessError(f"{option} {value} is a folder: give the file to write, e.g. {path / example}")
    check_writable_under(option, value, path.parent)
    return path


def check_writable_under(option: str, value: str, folder: Path) -> None:
    """``folder`` (the output itself, or the folder an output file goes in) can be made and written to."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HarnessError(f"{option} {value}: {existing} is a file, not a folder, so nothing can be made under "
                           "it — give a path in a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise HarnessError(f"{option} {value}: cannot write in {existing} ({exc.strerror or exc}); give a folder "
                           "you can write to") from exc


def check_model_option(option: str, model: str, *, backend: str = "hf", revision: str | None = None,
                       revision_option: str = "--revision") -> None:
    """A local model given to ``option`` is a model folder; a revision is taken by Hub ids only. Before any work.

    The same checks run again when the model is fingerprinted; here the errors name the option the user typed.
    """
    from harness.core.fingerprint import SERVED_BACKENDS, local_model_folder

    if backend in SERVED_BACKENDS and revision is not None:
        raise HarnessError(f"{revision_option} {revision}: {option} {model} is served, and its server decides which "
                           f"weights answer — drop {revision_option}, or serve that revision")
    if not model.strip() or backend in SERVED_BACKENDS or backend == "replies":
        return
    if local_model_folder(model, option=option) is not None and revision is not None:
        raise HarnessError(f"{revision_option} {revision}: {option} {model} is a local folder, which has no "
                           f"revisions (its files are its identity) — drop {revision_option}, or give a Hub id")


def check_model_spec(spec: ModelSpec, option: str, *, url_option: str) -> None:
    """A model that generates (``option``, served from ``url_option``): device, folder and server, before any work.

    A served model's server is asked once, without retries: a wrong port is one line, not minutes of retries.
    """
    from harness.core.fingerprint import SERVED_BACKENDS
    from harness.llm.base import resolve_device
    from harness.llm.reach import check_server

    if spec.backend in ("hf", "vllm") and spec.device != "auto":  # 'auto' always resolves
        resolve_device(spec.device)
    check_model_option(option, spec.model, backend=spec.backend, revision=spec.revision)
    if spec.backend in SERVED_BACKENDS and spec.base_url:
        check_server(spec.base_url, option=url_option, model=spec.model)


def check_judge_server(settings: JudgeSettings, role: str = "judge") -> None:
    """A judge (or teacher) behind ``--judge-base-url`` answers, before any work: one request, no retries.

    Without it a dead port costs every request its retries and ends in a run with every verdict unscored.
    """
    from harness.llm.reach import check_server

    if settings.backend == "openai" and settings.base_url:
        check_server(settings.base_url, option=f"--{role}-base-url", model=settings.model)
