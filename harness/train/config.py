"""The training config (``empathy train --config YAML``): typed settings that reject unknown keys and wrong types.

Values are validated by pydantic in its lax mode, so a number written as a string is read as that number:
YAML 1.1 reads ``5e-5`` (no dot) as the *string* ``"5e-5"``, and it means the learning rate 0.00005. A string
that is not a number (``learning_rate: fast``), a fraction where an integer is needed, or ``true`` where a number
is needed is an error naming the key, the type expected and the value given. So is a number out of its range
(``lora.dropout: 1.0``, ``sft.learning_rate: 0``), and NaN or infinity where a real number is needed.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from harness.core.errors import HarnessError, did_you_mean

#: ``configured``: the configured effective batch and learning rate train, whatever the hardware (it only splits
#: the batch into micro-batch × gradient accumulation). ``fast-gpu``: on a GPU the micro-batch is sized to memory
#: and the learning rate scaled to the larger batch (each step's ``lr_scaling``) — a different recipe, so it is
#: named in the training manifest and the model card.
Recipe = Literal["configured", "fast-gpu"]
RECIPES: tuple[str, ...] = typing.get_args(Recipe)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads true as 1: 'learning_rate: yes' must not train at lr 1.0
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if bool not in _members(annotation):
                raise ValueError("a boolean is not allowed here")
        return value


class LoraSettings(_Settings):
    """LoRA adapter settings (both steps)."""

    r: int = Field(default=8, ge=1, description="LoRA rank (paper: 8)")
    alpha: int = Field(default=16, gt=0, description="LoRA alpha")
    dropout: float = Field(default=0.05, ge=0, lt=1, allow_inf_nan=False, description="LoRA dropout")
    target_modules: str | list[str] = Field(default="all-linear", description="modules to adapt")


class StepSettings(_Settings):
    """Optimisation settings of one step."""

    learning_rate: float = Field(default=5e-5, gt=0, allow_inf_nan=False,
                                 description="peak learning rate (paper: 5e-5)")
    num_train_epochs: float = Field(default=3.0, gt=0, allow_inf_nan=False, description="epochs (paper: 3)")
    effective_batch_size: int = Field(default=2, ge=1, description="samples per optimiser step (paper: 2)")
    per_device_train_batch_size: int | None = Field(
        default=None, ge=1, description="micro-batch; None: chosen for the hardware. With recipe 'configured' it "
                                        "must divide effective_batch_size (the rest is gradient accumulation)")
    max_length: int = Field(default=512, ge=16, description="tokens per sample (prompt + reply)")
    max_steps: int = Field(default=-1, description="stop after this many steps (-1: run the epochs)")
    warmup_steps: int = Field(default=0, description="linear warm-up steps")
    lr_scheduler_type: str = Field(default="linear", description="learning-rate schedule")
    logging_steps: int = Field(default=5, description="log every N steps")
    save_steps: int = Field(default=100, description="checkpoint every N steps (resume point)")
    seed: int = Field(default=0, description="seed")
    lr_scaling: Literal["linear", "sqrt", "none"] = Field(
        default="linear", description="recipe 'fast-gpu' only: scale the learning rate by the ratio of the batch "
                                      "used to effective_batch_size: linear, sqrt or none")


class SFTSettings(StepSettings):
    """Step 1: LoRA SFT."""

    padding_free: bool | None = Field(
        default=None, description="padding-free packed batches; None: on when flash attention is available")


class DPOSettings(StepSettings):
    """Step 2: DPO from the SFT policy."""

    beta: float = Field(default=0.1, gt=0, allow_inf_nan=False, description="DPO beta (paper: 0.1)")
    loss_type: str = Field(default="sigmoid", description="DPO loss (paper: sigmoid)")


class OnPolicySettings(_Settings):
    """The on-policy round (``empathy train --dpo-pairs onpolicy|both``): sample, judge, best vs worst, DPO."""

    samples: int = Field(default=4, ge=2, le=64, description="replies sampled per training dialogue")
    temperature: float = Field(default=0.8, gt=0, le=5, allow_inf_nan=False, description="sampling temperature")
    top_p: float = Field(default=0.95, gt=0, le=1, allow_inf_nan=False, description="nucleus sampling mass")
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="tokens per reply; None: the evaluation's (tasks/empathy_gen.yaml)")
    min_p: float = Field(default=0.6, ge=0.5, lt=1, allow_inf_nan=False,
                         description="keep a pair only when the judge's P(best beats worst) is at least this "
                                     "(judges that give a probability: reward models, logits mode)")
    drop_unfinished: bool = Field(
        default=True, description="leave out replies that ran into max_new_tokens without ending")
    batch_size: int = Field(default=8, ge=1, description="training dialogues per generate call")
    seed: int = Field(default=0, ge=0, lt=2**32, description="sampling seed")


class TrainConfig(_Settings):
    """Everything ``empathy train`` can be told in ``--config YAML`` (keys: lora, sft, dpo, onpolicy, and the fields below)."""

    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter settings")
    sft: SFTSettings = Field(default_factory=SFTSettings, description="step 1: LoRA SFT")
    dpo: DPOSettings = Field(default_factory=DPOSettings, description="step 2: DPO")
    onpolicy: OnPolicySettings = Field(default_factory=OnPolicySettings,
                                       description="the on-policy round (pairs sampled from the SFT policy)")
    recipe: Recipe = Field(
        default="configured", description="configured: the configured effective batch and learning rate, on any "
                                          "hardware; fast-gpu: micro-batch sized to GPU memory, learning rate scaled "
                                          "(recorded in the manifest and model card)")
    bf16: bool | None = Field(default=None, description="None: bf16 on GPUs that support it, fp32 on CPU")
    gradient_checkpointing: bool = Field(default=False, description="trade speed for memory")
    device: str = Field(default="auto", description="auto, cpu or cuda")


def load_train_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The training config: defaults, then the YAML file, then ``overrides`` (same nesting).

    Raises:
        HarnessError: the file cannot be read, a key is unknown (with a "did you mean"), or a value has the wrong
            type or is out of range (naming the key path, e.g. ``sft.learning_rate``, the type or range expected and
            the value given).
    """
    where = str(path) if path is not None else "training config"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise HarnessError(f"cannot read training config {path}: {exc}") from exc
        if not isinstance(loaded, dict | None):
            raise HarnessError(f"training config {path}: expected a mapping of settings, got {loaded!r}")
        raw = loaded or {}
    raw = _merge(raw, overrides or {})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise HarnessError(f"{where}: " + "; ".join(_messages(exc))) from None


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


#: Errors on a value of the right type out of its range: the message says the range (or "a finite number").
_CONSTRAINTS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def _messages(exc: ValidationError) -> list[str]:
    """One message per offending key (a union type reports each member's failure: keep the first)."""
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        model, names, info = _walk(err["loc"])
        path = ".".join(names)
        if path in seen:
            continue
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][len(names)])
            inside = f" in {path}" if path else ""
            seen[path + "." + key] = (f"unknown setting {key!r}{inside}: "
                                      f"{did_you_mean(key, model.model_fields)}")
        elif err["type"] in _CONSTRAINTS:
            seen[path] = f"{path}: {err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"
        elif info is not None:
            hint = f" ({info.description})" if info.description else ""
            seen[path] = (f"{path} must be {_describe(info.annotation)}{hint}, got {err['input']!r} "
                          f"({_describe(type(err['input']))})")
        else:
            seen[path] = f"{path or 'the config'}: {err['msg']}, got {err['input']!r}"
    return list(seen.values())


def _walk(loc: tuple[int | str, ...]) -> tuple[type[BaseModel], list[str], Any]:
    """The innermost settings model along ``loc``, the key names leading to the field, and the field's info."""
    model: type[BaseModel] = TrainConfig
    names: list[str] = []
    info = None
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            break
        names.append(part)
        info = model.model_fields[part]
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            model, info = sub, None
        else:
            break
    if info is None and names:  # the error is on a whole section ('sft: 5')
        info = _parent(names).model_fields[names[-1]]
    return model, names, info


def _parent(names: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = TrainConfig
    for name in names[:-1]:
        model = model.model_fields[name].annotation  # type: ignore[assignment]
    return model


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


_PLURALS = {int: "integers", float: "numbers", str: "strings"}


def _describe(annotation: Any) -> str:
    """A type in words: 'a number', 'an integer or null', 'a list of strings', "one of 'linear', 'sqrt', 'none'"."""
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    members = _members(annotation)
    if len(members) > 1:
        return " or ".join(_describe(m) for m in members)
    if typing.get_origin(annotation) is list:
        item = typing.get_args(annotation)
        return f"a list of {_PLURALS[item[0]]}" if item and item[0] in _PLURALS else "a list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping of settings"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null",
             dict: "a mapping", list: "a list"}
    return words.get(annotation, getattr(annotation, "__name__", str(annotation)))
