"""The style profile of a reply and of a run: what a judge may reward besides empathy, counted in one place.

Empathy judges, LLMs and people alike, are moved by style — length, stock sympathy ("I'm so sorry to hear that"),
a question at the end, advice lists, exclamation marks, emoji. Each reply gets one number per feature of
:data:`FEATURES` (counts per reply, except ``echo``, a share, and ``grade``, a reading grade):

- ``words``, ``sentences``; ``questions`` / ``exclamations``: runs of "?" / "!"; ``emoji``: pictographic
  characters; markdown: ``list_items`` (lines opening with -, *, • or "1." / "1)"), ``bold`` (``**x**`` /
  ``__x__``), ``headers`` (lines opening with #);
- ``second_person``: you, your, yours, yourself, you're, you've, you'll, you'd;
- phrase counts from ``prompts/style/phrases.yaml`` (data, versioned): ``sympathy`` (stock sympathy), ``validation``,
  ``advice``, ``apology``, ``ai_disclaimer`` ("as an AI …"); ``imperatives``: sentences that open with one of its
  imperative verbs;
- ``echo``: the share of the speaker's content words (letters only, ≥ 4 characters, not a stop word) that the reply
  repeats (0 when the speaker has none);
- ``grade``: Flesch–Kincaid grade level, 0.39·words/sentence + 11.8·syllables/word − 15.59 (syllables: vowel
  groups, a final silent "e" dropped, at least one per word); 0 for an empty reply.

Phrases match case-insensitively on word boundaries after curly quotes are straightened. The profile's
:attr:`StyleCounter.fingerprint` hashes :data:`STYLE_VERSION` (this code) and the phrase file: style numbers are
comparable only under one fingerprint. Per run, :func:`summarise` gives each feature's mean with a 95 % percentile
bootstrap CI over dialogues (the run's seed; the same resamples as every other CI of the run).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from harness.core.io import load_config, short_hash
from harness.core.resources import prompts_dir
from harness.core.style_record import FeatureStats, RunStyle, StyleDifference, StyleRow
from harness.score.resample import resample_counts

#: The counting code's version (bump when a feature's definition changes).
STYLE_VERSION = "style-v1"
FEATURES: tuple[str, ...] = (
    "words", "sentences", "questions", "exclamations", "emoji", "list_items", "bold", "headers", "second_person",
    "sympathy", "validation", "advice", "imperatives", "apology", "ai_disclaimer", "echo", "grade",
)
N_STYLE_BOOTSTRAP = 2000
#: The features style control holds equal by default (the board's style-controlled column, ``empathy check``):
#: length, markdown, exclamations, emoji and stock sympathy — what a judge may reward in place of empathy.
CONTROL_FEATURES: tuple[str, ...] = ("words", "list_items", "bold", "headers", "exclamations", "emoji", "sympathy")
#: Features compared as a plain difference (they can be negative); every other is a relative difference.
PLAIN_DIFFERENCE = frozenset({"grade"})

_STOP = frozenset("""that this with have from they them their there what when were will would about your just been
    into than then because could should really feel feels felt like also even much very some more most only over
    after before again being does doing down every here other same such these those through under until while who
    whom which where why how know""".split())
_SECOND = re.compile(r"\b(?:you|your|yours|yourself|yourselves|you're|you've|you'll|you'd)\b", re.I)
_QUESTION, _EXCLAIM = re.compile(r"\?+"), re.compile(r"!+")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_LIST = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_HEADER = re.compile(r"^\s*#{1,6}\s", re.M)
_EMOJI = re.compile("[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f2ff\U0001f900-\U0001f9ff]")
_WORD = re.compile(r"[a-z]+")
_VOWELS = re.compile(r"[aeiouy]+")
_TOKEN = re.compile(r"[\w']+")


class Phrases(BaseModel):
    """``prompts/style/phrases.yaml``: the phrase lists, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    stock_sympathy: tuple[str, ...] = Field(min_length=1)
    validation: tuple[str, ...] = Field(min_length=1)
    advice: tuple[str, ...] = Field(min_length=1)
    apology: tuple[str, ...] = Field(min_length=1)
    ai_disclaimer: tuple[str, ...] = Field(min_length=1)
    imperatives: tuple[str, ...] = Field(min_length=1)


def _alternation(phrases: Sequence[str]) -> re.Pattern[str]:
    # longest first, so that "as an ai language model" is one match, not "as an ai" + more
    body = "|".join(re.escape(p.lower()) for p in sorted(set(phrases), key=len, reverse=True))
    return re.compile(rf"(?<![\w'])(?:{body})(?![\w'])")


class StyleCounter:
    """Counts the features of replies with one phrase file; :attr:`fingerprint` names what the numbers mean."""

    def __init__(self, phrases: Phrases) -> None:
        self.phrases = phrases
        self._patterns = {name: _alternation(getattr(phrases, key)) for name, key in (
            ("sympathy", "stock_sympathy"), ("validation", "validation"), ("advice", "advice"),
            ("apology", "apology"), ("ai_disclaimer", "ai_disclaimer"))}
        self._imperatives = frozenset(p.lower() for p in phrases.imperatives)
        # a phrase can match only where its first word stands as a token of the reply: skip lists none can match
        self._first = {name: frozenset(_TOKEN.findall(p.lower())[0] for p in getattr(phrases, key) if _TOKEN.search(p))
                       for name, key in (("sympathy", "stock_sympathy"), ("validation", "validation"),
                                         ("advice", "advice"), ("apology", "apology"), ("ai_disclaimer", "ai_disclaimer"))}
        self.fingerprint = short_hash(STYLE_VERSION, json.dumps(phrases.model_dump(mode="json"), sort_keys=True))

    def profile(self, reply: str, utterance: str = "") -> dict[str, float]:
        """The features of one reply (``utterance``: what the speaker said, for ``echo``)."""
        text = reply.replace("\u2019", "'").replace("\u2018", "'") if not reply.isascii() else reply
        low = text.lower()
        words = text.split()
        sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
        n_sent = max(len(sentences), 1 if words else 0)
        # (a pattern is run only when the character it needs is in the reply: the same counts, fewer scans)
        out = {
            "words": float(len(words)), "sentences": float(n_sent),
            "questions": float(len(_QUESTION.findall(text))) if "?" in text else 0.0,
            "exclamations": float(len(_EXCLAIM.findall(text))) if "!" in text else 0.0,
            "emoji": 0.0 if text.isascii() else float(len(_EMOJI.findall(text))),
            "list_items": float(len(_LIST.findall(text))),
            "bold": float(len(_BOLD.findall(text))) if "**" in text or "__" in text else 0.0,
            "headers": float(len(_HEADER.findall(text))) if "#" in text else 0.0,
            "second_person": float(len(_SECOND.findall(text))) if "you" in low else 0.0,
        }
        tokens = set(_TOKEN.findall(low))
        for name, pattern in self._patterns.items():
            out[name] = float(len(pattern.findall(low))) if self._first[name] & tokens else 0.0
        out["imperatives"] = float(sum(1 for s in sentences if _first_word(s) in self._imperatives))
        letters = _WORD.findall(low)
        out["echo"] = _echo(letters, utterance)
        out["grade"] = _grade(letters, len(words), n_sent)
        return {f: out[f] for f in FEATURES}

    def matrix(self, replies: Sequence[tuple[str, str]]) -> NDArray[np.float64]:
        """(replies × features) of (reply, utterance) pairs."""
        rows = [[p[f] for f in FEATURES] for p in (self.profile(r, u) for r, u in replies)]
        return np.asarray(rows, dtype=float).reshape(len(rows), len(FEATURES))


def _first_word(sentence: str) -> str:
    m = re.match(r"\s*([A-Za-z']+)", sentence)
    return m.group(1).lower() if m else ""


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in _STOP}


def _echo(reply_words: list[str], utterance: str) -> float:
    said = _content_words(utterance)
    return len(said.intersection(reply_words)) / len(said) if said else 0.0


@lru_cache(maxsize=1 << 16)  # words repeat: a run's replies have a few thousand distinct ones
def _syllables(word: str) -> int:
    groups = len(_VOWELS.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(groups, 1)


def _grade(tokens: list[str], n_words: int, n_sent: int) -> float:
    if not tokens or not n_sent:
        return 0.0
    syllables = sum(map(_syllables, tokens))
    return 0.39 * n_words / n_sent + 11.8 * syllables / len(tokens) - 15.59


@lru_cache(maxsize=4)
def load_counter(path: str | None = None) -> StyleCounter:
    """The counter of a phrase file (default ``prompts/style/phrases.yaml``); errors name the file and the key."""
    return StyleCounter(load_config(Path(path) if path else prompts_dir() / "style" / "phrases.yaml", Phrases,
                                    "style phrase file"))


def summarise(values: NDArray[np.float64], *, seed: int, n_boot: int = N_STYLE_BOOTSTRAP) -> dict[str, dict[str, Any]]:
    """Per feature: mean and 95 % bootstrap CI over the rows (dialogues) of ``values`` (dialogues × features)."""
    n = values.shape[0]
    if n == 0:
        return {f: {"mean": None, "ci_low": None, "ci_high": None, "n": 0} for f in FEATURES}
    means = values.mean(axis=0)
    boots = resample_counts(seed, n, n_boot) @ values / n  # (n_boot × features): every resample's means at once
    low, high = np.percentile(boots, [2.5, 97.5], axis=0)
    return {f: {"mean": float(means[k]), "ci_low": float(low[k]), "ci_high": float(high[k]), "n": n}
            for k, f in enumerate(FEATURES)}


def largest_differences(candidate: NDArray[np.float64], reference: NDArray[np.float64], k: int = 3
                        ) -> list[dict[str, Any]]:
    """The ``k`` features whose means differ most, in pooled standard deviations (features that vary)."""
    out: list[dict[str, Any]] = []
    for j, f in enumerate(FEATURES):
        a, b = candidate[:, j], reference[:, j]
        sd = math.sqrt((float(a.var()) + float(b.var())) / 2)
        if sd > 0:
            out.append({"feature": f, "candidate": float(a.mean()), "reference": float(b.mean()),
                        "difference_sd": (float(a.mean()) - float(b.mean())) / sd})
    return sorted(out, key=lambda d: -abs(float(d["difference_sd"])))[:k]


def profile_replies(counter: StyleCounter, replies: Mapping[str, str], utterances: Mapping[str, str],
                    ids: Sequence[str]) -> NDArray[np.float64]:
    """(dialogues × features) of ``replies`` by dialogue id, in the order of ``ids``."""
    return counter.matrix([(replies[i], utterances.get(i, "")) for i in ids])


def style_rows(counter: StyleCounter, dialogues: Sequence[Any], replies: Mapping[str, Mapping[str, str]]
               ) -> list[StyleRow]:
    """The ``style.jsonl`` rows of a run: every system's reply (``replies``: system → dialogue id → reply) profiled."""
    out = []
    for system, by_id in replies.items():
        for d in dialogues:
            if d.id in by_id:
                out.append(StyleRow(dialogue_id=d.id, system=system, features=counter.profile(by_id[d.id], d.utterance),
                                    fingerprint=counter.fingerprint))
    return out


def run_style(rows: Sequence[StyleRow], comparisons: Sequence[str], *, seed: int) -> RunStyle:
    """The run's style profile from its rows.

    Per system, each feature's mean and CI (dialogues in id order, the same resamples for every system); per
    comparison, the largest differences from that reference.
    """
    by_system: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        by_system.setdefault(r.system, {})[r.dialogue_id] = r.features
    matrices = {s: np.asarray([[f[k] for k in FEATURES] for _, f in sorted(rows_.items())], dtype=float)
                .reshape(len(rows_), len(FEATURES)) for s, rows_ in by_system.items()}
    fingerprints = sorted({r.fingerprint for r in rows})
    systems = {s: {f: FeatureStats(**v) for f, v in summarise(m, seed=seed).items()} for s, m in matrices.items()}
    cand = matrices.get("candidate")
    diffs = {c: [StyleDifference(**d) for d in largest_differences(cand, matrices[c.removeprefix("vs_")])]
             for c in comparisons if cand is not None and c.removeprefix("vs_") in matrices}
    return RunStyle(fingerprint=",".join(fingerprints), features=FEATURES,
                    systems=systems, largest_differences=diffs)


def style_difference(a: NDArray[np.float64], b: NDArray[np.float64], features: Sequence[str]) -> NDArray[np.float64]:
    """Normalised differences (rows × features) between a's and b's feature values (same shape, same order).

    Relative, (a − b) / (a + b), for counts (0 when both are 0: Arena's length term); plain a − b for
    :data:`PLAIN_DIFFERENCE` (the reading grade, which can be negative).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    plain = np.array([f in PLAIN_DIFFERENCE for f in features], dtype=bool)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(total > 0, (a - b) / np.where(total > 0, total, 1.0), 0.0)
    return np.where(plain, a - b, relative)
