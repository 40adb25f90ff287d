"""Control rows: their replies, and the warning when one beats a real model."""

from __future__ import annotations

from harness.core.records import Decoding, Dialogue, ReferenceManifest, ReferenceSet
from leaderboard.build import control_warnings
from leaderboard.controls import NULL_REPLY, PADDING_REPLY, control_replies
from leaderboard.models import Interval, Row


def dialogues(with_reply: bool) -> list[Dialogue]:
    return [Dialogue(id=f"d{i}", emotion="sad", sentiment="negative", situation="s", utterance="u",
                     reply=f"human reply {i}" if with_reply else None) for i in range(3)]


def anchor() -> ReferenceSet:
    from harness.core.records import Generation

    manifest = ReferenceManifest(name="base", model="m", backend="hf", decoding=Decoding(), prompt_hash="p",
                                 dataset_hash="h", dataset="x", chat_template=True, n=3, created_at="t",
                                 harness_version="v")
    gens = {f"d{i}": Generation(dialogue_id=f"d{i}", system="base", prompt="", raw_response=f"a{i}",
                                response=f"anchor {i}") for i in range(3)}
    return ReferenceSet(manifest=manifest, generations=gens)


def test_control_replies():
    ds = dialogues(with_reply=True)
    assert set(control_replies("null_model", ds, anchor()).values()) == {NULL_REPLY}
    assert set(control_replies("verbose_padding", ds, anchor()).values()) == {PADDING_REPLY}
    assert len(PADDING_REPLY.split()) > 3 * len(NULL_REPLY.split())
    assert control_replies("anchor_self", ds, anchor()) == {f"d{i}": f"anchor {i}" for i in range(3)}
    assert control_replies("human", ds, anchor()) == {f"d{i}": f"human reply {i}" for i in range(3)}
    assert control_replies("human", dialogues(with_reply=False), anchor()) is None  # skipped, never invented


def row(model: str, bt: float, control=None, win=(0.5, 0.4, 0.6)) -> Row:
    return Row(model=model, model_fingerprint="0" * 16, bt=Interval(value=bt, low=bt - 10, high=bt + 10),
               win_rate=Interval(value=win[0], low=win[1], high=win[2]), judge="j", date="d", harness_version="v",
               trust="control" if control else "self-reported", control=control, run_id=model)


def test_a_control_that_beats_real_models_is_said_at_the_top():
    rows = [row("a", 1100), row("b", 950), row("pad", 1000, "verbose_padding"), row("null", 800, "null_model"),
            row("self", 1000, "anchor_self", win=(0.7, 0.62, 0.78))]
    warnings = control_warnings(rows)
    assert warnings == [
        "control row 'verbose_padding' (generic padded replies) beats 1 ranked model(s) (b): the judge rewards "
        "something other than empathy here, or the board has too few dialogues to tell — read the board with care",
        "control row 'anchor_self' (the anchor's own replies) beats 1 ranked model(s) (b): those models are not told "
        "apart from the anchor itself",
        "the anchor against itself wins 70% (CI 62%–78%), not 50 %: the judge is biased by position or wording",
    ]  # the null model (800) sits below both models' CIs: no warning
    assert control_warnings([row("a", 1100), row("self", 1000, "anchor_self")]) == []
    # biased either way: below 50 % as well as above (a CI that excludes 50 % in any direction)
    assert control_warnings([row("a", 1100), row("self", 1000, "anchor_self", win=(0.3, 0.22, 0.38))]) == [
        "the anchor against itself wins 30% (CI 22%–38%), not 50 %: the judge is biased by position or wording"]


def test_a_control_that_ties_real_models_is_said_too():
    """A control within a model's 95 % CI ties it — as every row does under a judge that answers "tie" to all."""
    human = row("h", 1095, "human")  # inside a's CI [1090, 1110], above b
    assert control_warnings([row("a", 1100), row("b", 950), human]) == [
        "control row 'human' (the dataset's human replies) beats 1 ranked model(s) (b) and ties 1 ranked model(s) "
        "(a): the judge rewards something other than empathy here, or the board has too few dialogues to tell — "
        "read the board with care"]
    flat = Interval(value=1000.0, low=1000.0, high=1000.0)  # an all-ties judge: every score at the anchor's
    rows = [r.model_copy(update={"bt": flat}) for r in (row("a", 0), row("b", 0), row("null", 0, "null_model"),
                                                        row("pad", 0, "verbose_padding"))]
    warnings = control_warnings(rows)
    assert [w.split(":")[0] for w in warnings] == [
        "control row 'null_model' (one fixed reply to every dialogue) ties 2 ranked model(s) (a, b)",
        "control row 'verbose_padding' (generic padded replies) ties 2 ranked model(s) (a, b)"]
    no_ci = [r.model_copy(update={"bt": Interval(value=r.bt.value)}) for r in (row("a", 1000), row("n", 1000, "human"))]
    assert len(control_warnings(no_ci)) == 1  # without a CI, an equal score is a tie


def test_a_run_against_its_own_replies_is_no_battle(board_runs):
    """An unchanged checkpoint's head to head (its reference is itself) must not reach the rating as x-vs-x."""
    from types import SimpleNamespace

    from harness.evaluate.runs import load_run
    from leaderboard.build import battles
    from leaderboard.protocol import protocol_from_run

    run = load_run(board_runs["a"])
    protocol = protocol_from_run(run.result, name="b", min_scored=3, max_flip_rate=1.0, min_label_mass=0.0,
                                 require_judge_ok=False)
    me = run.result.provenance.systems["candidate"].model
    self_cmp = run.result.comparisons["vs_base"].model_copy(update={"reference_model": me})
    result = run.result.model_copy(update={"comparisons": {**run.result.comparisons, "vs_self": self_cmp}})
    from harness.score.stats import OUTCOME_SCORE

    scored = tuple((j.dialogue_id, OUTCOME_SCORE[j.outcome]) for j in run.judgments if j.outcome is not None)
    entry = SimpleNamespace(run=SimpleNamespace(result=result, outcomes={"vs_base": scored, "vs_self": scored}),
                            run_id="me", trust="maintainer", control=None)
    fights = battles([entry], protocol)
    assert fights and all(b.b == "anchor" for b in fights)  # only the anchor comparison, no me-vs-me
