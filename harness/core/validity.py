"""A judge's validity figures where its numbers are shown: results.json, the console, the board and the judge card.

The figures are measured elsewhere — by ``empathy judge train`` on the dialogues it held out (``training.json`` in
the reward model's folder) or by ``empathy validate-judge`` (``validity.json``) — and carried here, with what they
were measured for, so that no figure is shown beside a judge it does not belong to:

- ``training.json``: for the model *weights* (``model_fingerprint``, the content hash of the saved folder's model
  files). It holds for any tie band or device, since the held-out agreement compares raw scores.
- ``validity.json``: for the judge's full fingerprint (model, mode, prompts, labels, tie band, …).

A file for other weights or another judge is refused with both fingerprints named.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.core.errors import HarnessError
from harness.core.io import file_hash

#: The file ``empathy judge train`` writes into the reward model's folder.
TRAINING_FILE = "training.json"


class Figure(BaseModel):
    """A rate or coefficient with its 95 % CI and the number of items it rests on (None: not defined)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0


class JudgeValidity(BaseModel):
    """How far the judge's preferences were found to agree with people, and on what."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    origin: Literal["judge train", "validate-judge"]
    file: str
    """The file the figures were read from (its folder and name); ``file_sha256`` is its content hash."""
    file_sha256: str
    matches: Literal["model weights", "judge fingerprint"]
    fingerprint: str
    """The model (``judge train``) or judge (``validate-judge``) fingerprint the figures were measured for."""
    data: str
    """The human ratings: file name and which dialogues (e.g. the held-out split)."""
    agreement: Figure | None = None
    """Agreement with the better-rated reply on non-tied pairs (see :mod:`harness.score.validity_figures`)."""
    length_baseline: Figure | None = None
    source_prior_baseline: Figure | None = None
    per_source_spearman: dict[str, float | None] = {}
    source_kendall_tau: float | None = None
    experts_kappa: Figure | None = None
    """Quadratic-weighted κ against the expert median (``validate-judge --experts`` or ``judge train --experts``)."""
    experts_verdict: str | None = None
    summary: str

    def line(self) -> str:
        """One line for a console or a page: the summary, the expert verdict, where it comes from."""
        experts = f"; experts: {self.experts_verdict}" if self.experts_verdict else ""
        return f"judge validity ({self.origin}, {self.data}): {self.summary}{experts}"


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _figure(entry: Any, key: str = "value") -> Figure | None:
    if not isinstance(entry, dict) or _num(entry.get(key)) is None:
        return None
    return Figure(value=_num(entry.get(key)), ci_low=_num(entry.get("ci_low")), ci_high=_num(entry.get("ci_high")),
                  n=int(entry.get("n") or 0))


def from_figures(figures: dict[str, Any], experts: dict[str, Any] | None, **fields: Any) -> JudgeValidity:
    """A :class:`JudgeValidity` from :func:`~harness.score.validity_figures.validity_figures` output (+ expert table).

    Raises:
        HarnessError: figures of the wrong shape (a hand-edited or foreign file), naming the file.
    """
    try:
        return _from_figures(figures, experts, **fields)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise HarnessError(f"{fields.get('file', 'validity figures')}: not the figures of 'empathy validate-judge' or "
                           f"'empathy judge train' ({type(exc).__name__}: {exc})") from exc


def _from_figures(figures: dict[str, Any], experts: dict[str, Any] | None, **fields: Any) -> JudgeValidity:
    kappa = verdict = None
    if experts:
        kappa = _figure(experts["judge_rows"][-1], "kappa")
        verdict = str(experts["verdict"]["label"])
    return JudgeValidity(
        agreement=_figure(figures.get("agreement")), length_baseline=_figure(figures.get("length_baseline")),
        source_prior_baseline=_figure(figures.get("source_prior_baseline")),
        per_source_spearman={s: _num(e.get("rho")) for s, e in (figures.get("per_source_spearman") or {}).items()},
        source_kendall_tau=_num(figures.get("source_kendall_tau")), experts_kappa=kappa, experts_verdict=verdict,
        summary=str(figures.get("summary", "")), **fields)


def _public(path: Path) -> str:
    """The file as a board may show it: its folder and name, never the local path above them."""
    return f"{path.parent.name}/{path.name}"


def _read(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{what} {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"{what} {path}: not a JSON object")
    return data


def from_validity_file(path: Path, judge_fingerprint: str) -> JudgeValidity:
    """The figures of a ``validate-judge`` validity.json, refused unless measured for this very judge."""
    data = _read(path, "--judge-validity")
    measured = str((data.get("judge") or {}).get("fingerprint", ""))
    if measured != judge_fingerprint:
        raise HarnessError(f"--judge-validity {path}: measured for judge fingerprint {measured or '(none)'}, this run's "
                           f"judge is {judge_fingerprint} (judge.fingerprint differs): run 'empathy validate-judge' "
                           "with this judge's settings")
    glance = data.get("at_a_glance")
    if not isinstance(glance, dict) and "experts" not in data:
        raise HarnessError(f"--judge-validity {path}: no figures (neither at_a_glance nor experts): run "
                           "'empathy validate-judge --human-ratings FILE' and/or '--experts DIR'")
    ratings = data.get("human_ratings")
    what = f"{Path(str(ratings)).name}, split {data.get('split', 'all')}" if ratings else "expert ratings only"
    return from_figures(glance or {}, data.get("experts"), origin="validate-judge", file=_public(path),
                        file_sha256=file_hash(path), matches="judge fingerprint", fingerprint=measured, data=what)


def from_training_file(folder: Path, model_fingerprint: str) -> tuple[JudgeValidity | None, str | None]:
    """The held-out figures ``judge train`` left in a reward model's folder, or None and why (None: no file)."""
    path = folder / TRAINING_FILE
    if not path.is_file():
        return None, None
    try:
        data = _read(path, "judge training record")
    except HarnessError as exc:
        return None, f"{exc}: the judge's validity is not shown"
    measured = str(data.get("model_fingerprint", ""))
    if measured != model_fingerprint:
        return None, (f"{path} was written for other weights (model_fingerprint {measured or '(none)'}, the judge's "
                      f"is {model_fingerprint}): its validity figures are not shown")
    try:
        split = (data.get("split") or {}).get("validation") or {}
        what = (f"{Path(str((data.get('data') or {}).get('path', '?'))).name}, {split.get('dialogues', '?')} "
                "held-out dialogues")
        return from_figures(data.get("validity") or {}, data.get("experts"), origin="judge train", file=_public(path),
                            file_sha256=file_hash(path), matches="model weights", fingerprint=measured,
                            data=what), None
    except (HarnessError, AttributeError) as exc:
        return None, f"{exc}: the judge's validity is not shown"


def judge_validity_for(judge_fingerprint: str, model_kind: str, model_name: str, model_fingerprint: str,
                       explicit: Path | None) -> tuple[JudgeValidity | None, str | None]:
    """The figures to carry with a run's judge, and a note when some were found but do not belong to it.

    ``explicit`` (``--judge-validity``): a validity.json, which must be for this judge (else an error). Otherwise a
    local judge folder's ``training.json``, if its weights are these.
    """
    if explicit is not None:
        return from_validity_file(explicit, judge_fingerprint), None
    if model_kind == "local":
        return from_training_file(Path(model_name), model_fingerprint)
    return None, None
