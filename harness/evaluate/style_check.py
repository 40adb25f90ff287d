"""load_run's check of a run's style rows (``style.jsonl``) against its replies and results.json."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from harness.score.style import FEATURES, load_counter

if TYPE_CHECKING:
    from harness.evaluate.runs import Run

STYLE = "style.jsonl"


def check_style(run: Run) -> None:
    """style.jsonl is there exactly when results.json has a style profile, and its candidate rows are the replies'.

    The candidate's features are recounted from generations.jsonl when the rows were counted with today's phrase
    file and code (another fingerprint: a run made with older lists stays valid; its rows are summarised as they
    are). The references' rows cannot be recounted without the reference files; their summary is recomputed.
    """
    from harness.evaluate.runs import RunError  # (runs imports this module)

    where, r = run.path, run.result
    if (r.style is None) != (run.style is None):
        missing = STYLE if run.style is None else "results.json's style"
        raise RunError(f"{where}: {missing} is missing while the other is there (the files come from different runs)")
    if run.style is None:
        return
    seen: set[tuple[str, str]] = set()
    for row in run.style:
        if set(row.features) != set(FEATURES) or (row.system, row.dialogue_id) in seen:
            what = "repeats" if (row.system, row.dialogue_id) in seen else "lacks or adds features for"
            raise RunError(f"{where}: {STYLE} {what} {row.system} {row.dialogue_id} (every reply once, with the "
                           f"features {', '.join(FEATURES)})")
        seen.add((row.system, row.dialogue_id))
    if len({row.fingerprint for row in run.style}) != 1:
        raise RunError(f"{where}: {STYLE} mixes style fingerprints: one run is counted with one phrase file")
    ids = {g.dialogue_id for g in run.generations}
    if {i for s, i in seen if s == "candidate"} != ids:
        raise RunError(f"{where}: {STYLE} does not profile the candidate's reply to every dialogue of the run")
    counter = load_counter()
    utterances = _utterances(run)
    replies = {g.dialogue_id: g.response for g in run.generations}
    for row in run.style:
        if row.system != "candidate" or row.fingerprint != counter.fingerprint:
            continue
        features = counter.profile(replies.get(row.dialogue_id, ""), (utterances or {}).get(row.dialogue_id, ""))
        if utterances is None:  # echo needs the speaker's words: recounted only where the dataset is on this disk
            features["echo"] = row.features.get("echo", 0.0)
        if row.dialogue_id not in replies or features != row.features:
            raise RunError(f"{where}: {STYLE}: the candidate's style features of {row.dialogue_id} are not those of its "
                           "reply in generations.jsonl (edited, or the files come from another run)")


def _utterances(run: Run) -> dict[str, str] | None:
    """The speaker's words per dialogue, for a run on the bundled dialogues whose hash is the run's.

    Never a path the run names (a board never reads one), never a set that changed since the run.
    """
    if run.result.provenance.dataset != "bundled":
        return None
    utterances, digest = _bundled_utterances(run.result.provenance.n_dialogues)
    return utterances if digest == run.result.provenance.dataset_hash else None


@lru_cache(maxsize=4)  # package data, the same for every run a process checks (a board checks thousands)
def _bundled_utterances(n: int) -> tuple[dict[str, str], str]:
    from harness.data.selection import run_dialogues

    dialogues, digest = run_dialogues("bundled", n)
    return {d.id: d.utterance for d in dialogues}, digest
