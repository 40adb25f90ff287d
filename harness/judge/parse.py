"""Reading a judge's answer: the verdict label in written text (last match), and one outcome from both orders."""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.core.records import Outcome, PairVerdict

#: Changes whenever the way verdicts are read changes (part of the judge fingerprint).
PARSER_VERSION = "2"


def parse_verdict(text: str, labels: Sequence[str], prefix: str) -> str | None:
    """The verdict in a written answer: the *last* '<prefix> X' with X among ``labels``; else None.

    Taking the last match means a reply that quotes a verdict earlier (or an injected one) cannot decide it.
    A bare answer that is exactly one label is accepted too.
    """
    alternatives = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    word = re.escape(prefix.rstrip(": ").strip())
    pattern = re.compile(rf"{word}[\s*]*:?[\s*\[\(\"'`]*({alternatives})(?!\w)", re.IGNORECASE)
    matches = [m.group(1) for m in pattern.finditer(text)]
    matches = [m for m in matches if m in labels]  # labels are case-sensitive: 'a' is not 'A'
    if matches:
        return matches[-1]
    bare = text.strip().strip("*[]().'\"`").strip()
    return bare if bare in labels else None


def combine_orders(verdicts: Sequence[PairVerdict]) -> Outcome | None:
    """Win if both orders prefer the candidate, loss if both prefer the reference, tie otherwise."""
    winners = [v.winner for v in verdicts]
    if any(w is None for w in winners):
        return None
    if all(w == "candidate" for w in winners):
        return "candidate"
    if all(w == "reference" for w in winners):
        return "reference"
    return "tie"
