"""Control rows: judged exactly like models, marked on the board and never ranked.

- ``null_model``: one fixed sympathetic reply for every dialogue (AlpacaEval's constant-output row);
- ``verbose_padding``: one long, generic sympathetic reply — it exposes a judge that rewards length;
- ``anchor_self``: the anchor's own replies against the anchor — it must sit at 50 %;
- ``human``: the dataset's human replies, where the dataset has them for every dialogue.

Each is a replies file (``control-<kind>.jsonl``) evaluated with ``empathy eval``'s own code against the board's
anchor reference set, by the board's judge, so its numbers mean what a model's numbers mean. What makes a run a
control is its ``control.json``, signed with the board's key (:mod:`leaderboard.trust`) — never the file's name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape

from harness.core.errors import HarnessError
from harness.core.io import write_atomic, write_json
from harness.core.records import Dialogue, ReferenceSet
from harness.core.settings import JudgeSettings
from harness.core.ui import console, print_banner
from harness.data.references import load_reference
from harness.data.selection import run_dialogues
from harness.evaluate.references import now
from harness.evaluate.run import EvalConfig, run_eval
from harness.generate.replies import ModelSpec
from harness.score.health import ALLOW_FLAG, health_rule, judge_problem, probe_accuracy
from leaderboard.admit import CONTROL_PREFIX, CONTROLS
from leaderboard.models import ControlKind
from leaderboard.protocol import BoardProtocol, mismatches
from leaderboard.trust import CONTROL, board_key, files_sha256, sign

NULL_REPLY = ("I'm so sorry you're going through this. That sounds really hard, and what you feel makes complete "
              "sense. I'm here for you.")
PADDING_REPLY = (
    "I'm so, so sorry to hear that you're going through this. That must be incredibly hard, and I want you to "
    "know that your feelings are completely valid and understandable. Anyone in your situation would feel the same "
    "way. Please remember that you're not alone, that it's okay to feel whatever you're feeling, and that things "
    "can and will get better with time. I'm always here for you, I care about you deeply, and I'm sending you all "
    "my support, warmth and understanding."
)


def control_replies(kind: ControlKind, dialogues: Sequence[Dialogue], anchor: ReferenceSet) -> dict[str, str] | None:
    """The replies of one control, by dialogue id; None when the data has none (human replies)."""
    if kind == "null_model":
        return {d.id: NULL_REPLY for d in dialogues}
    if kind == "verbose_padding":
        return {d.id: PADDING_REPLY for d in dialogues}
    if kind == "anchor_self":
        return {d.id: anchor.generations[d.id].response for d in dialogues}
    if all(d.reply for d in dialogues):
        return {d.id: str(d.reply) for d in dialogues}
    return None


def check_judge(protocol: BoardProtocol, settings: JudgeSettings, *, what: str = "leaderboard controls") -> str | None:
    """The board's judge, and one that can tell replies apart — checked before a single control is judged.

    The judge's fingerprint (from its options) must be the board's; then it answers the sanity probe (cached: the
    control runs reuse it). A judge that fails the probe is refused when the board requires a healthy judge.

    Returns:
        The banner every report starts with when the board admits an unhealthy judge and this one is; else None.

    Raises:
        HarnessError: another judge than the board's (both fingerprints named), or an unhealthy one the board refuses.
    """
    from harness.judge.judge import open_judge
    from harness.judge.probe import run_probe

    judge = open_judge(settings)
    try:
        given = judge.fingerprint.fingerprint
        if given != protocol.judge_fingerprint:
            raise HarnessError(
                f"the judge given has fingerprint {given}, the board's is {protocol.judge_fingerprint}: nothing was "
                "judged — give the judge options the board's run was made with (--judge, --judge-revision, "
                "--judge-mode, --judge-min-label-mass, --judge-max-new-tokens, ...)")
        accuracy = probe_accuracy(run_probe(judge))
    finally:
        judge.client.close()
    return health_rule(judge_problem(probe_accuracy=accuracy, position_bias=None, tie_rate=None),
                       allow=not protocol.require_judge_ok,
                       what=f"{what} (board {protocol.name!r} was made without {ALLOW_FLAG})")


def run_controls(protocol: BoardProtocol, *, judge: JudgeSettings, reference: Path, output: Path,
                 seed: int = 1234) -> tuple[list[Path], str | None]:
    """Evaluate every control against the anchor reference.

    The judge is checked first (:func:`check_judge`); a control run the board would refuse is said at once.

    Returns:
        The run folders (``output/<kind>``), and the unhealthy-judge banner when the board admitted that judge.
    """
    dialogues, digest = run_dialogues(protocol.dataset.spec, protocol.dataset.n)
    if digest != protocol.dataset.hash:
        raise HarnessError(f"dataset {protocol.dataset.spec!r} hashes to {digest} here, the board requires "
                           f"{protocol.dataset.hash}: the data changed since the board was set up")
    banner = check_judge(protocol, judge)
    if banner:
        print_banner(banner)
    key = board_key(create=True)  # (after the judge's check: a refused judge leaves nothing behind)
    assert key is not None
    anchor_name = protocol.anchor.comparison.removeprefix("vs_")
    anchor = load_reference(reference, name=anchor_name)
    runs = []
    for kind in CONTROLS:
        replies = control_replies(kind, dialogues, anchor)
        if replies is None:
            console.print(f"control {kind}: skipped (the dataset has no human replies)")
            continue
        file = output / "replies" / f"{CONTROL_PREFIX}{kind}.jsonl"
        write_atomic(file, "".join(json.dumps({"dialogue_id": i, "response": r}) + "\n" for i, r in replies.items()))
        console.rule(f"control: {kind}")
        result = run_eval(EvalConfig(candidate=ModelSpec(str(file), backend="replies"), judge=judge,
                                     output=output / kind, references={anchor_name: reference},
                                     dataset=protocol.dataset.spec, limit=protocol.dataset.n, seed=seed))
        refused = mismatches(result, protocol)
        if refused:
            console.print(f"[yellow]warning:[/] the board will refuse control {kind}: {escape('; '.join(refused))}",
                          soft_wrap=True)
        write_json(output / kind / CONTROL, sign({
            "control": kind, "protocol_hash": protocol.hash, "made_by": "empathy leaderboard controls",
            "made_at": now(), "files_sha256": files_sha256(output / kind)}, key))
        runs.append(output / kind)
    return runs, banner
