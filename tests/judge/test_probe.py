"""The judge sanity probe: its file, and health that flags a useless judge and passes one that reads the replies.

``CaringBackend`` is a mock (no model): it prefers whichever shown reply is one of the probe's caring replies, the
way any working judge would — the test of "a judge that answers the probe correctly passes" needs one that does
so by construction. The failing judges are real tiny models: random weights, and a bigram model that always
answers "Verdict: A".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from harness.core.errors import HarnessError
from harness.core.records import ModelIdentity
from harness.core.settings import JudgeSettings
from harness.data.sources import load_dialogues
from harness.judge.judge import Judge, PairItem, open_judge
from harness.judge.probe import load_probe, run_probe
from harness.llm.base import JudgeRequest
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient
from harness.score.health import MIN_PROBE_ACCURACY, judge_problem, probe_accuracy, run_health


class CaringBackend:
    """Mock backend: prefers the reply that is one of the probe's caring replies (tie when neither is)."""

    name, model_id, revision = "scripted", "caring-judge", None
    identity = ModelIdentity(kind="local", name="caring-judge", fingerprint="00112233445566aa")

    def __init__(self) -> None:
        self.caring = {p.caring for p in load_probe().pairs}
        self.seen = 0

    def label_probs(self, requests: Sequence[JudgeRequest]) -> Iterator[tuple[list[int], list[dict[str, float]]]]:
        out = []
        for r in requests:
            a = r.user.split("<<<RESPONSE A>>>")[1].split("<<<END OF RESPONSE A>>>")[0].strip()
            b = r.user.split("<<<RESPONSE B>>>")[1].split("<<<END OF RESPONSE B>>>")[0].strip()
            label = "A" if a in self.caring else "B" if b in self.caring else "C"
            out.append({"A": 0.05, "B": 0.05, "C": 0.05, label: 0.9, "_mass": 0.95})
        self.seen += len(requests)
        yield list(range(len(requests))), out

    def generate(self, requests: Sequence[JudgeRequest], max_new_tokens: int) -> Iterator[tuple[list[int], list[str]]]:
        raise AssertionError("logits mode only")

    def close(self) -> None:
        pass


def bundled_pairs(n: int = 4) -> list[PairItem]:
    """Run-like pairs on bundled dialogues (two different replies each), for position bias and the tie rate."""
    return [PairItem(d, "vs_base", "candidate", "base", f"I'm sorry about {d.emotion} feelings.", "That happens.")
            for d in load_dialogues("bundled")[:n]]


def test_probe_file_is_typed_and_obvious():
    probe = load_probe()
    assert 6 <= len(probe.pairs) <= 8 and probe.version == "probe-v1"
    assert any(p.poor == "ok. anyway, what's for lunch?" for p in probe.pairs)
    assert all(len(p.caring.split()) > 2 * len(p.poor.split()) for p in probe.pairs)


def test_bad_probe_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "probe.yaml"
    bad.write_text("version: x\npairs: []\nextra: 1\n")
    with pytest.raises(HarnessError, match=r"invalid judge probe file .*probe.yaml: pairs: .*at least 4 pairs.*; extra: Extra inputs"):
        load_probe(str(bad))


def test_judge_that_reads_the_replies_passes_and_rerun_is_free(tmp_path):
    backend = CaringBackend()
    judge = Judge(client=LLMClient(backend=backend, mode="logits", cache=JudgeCache(tmp_path / "c.sqlite")))
    probe = run_probe(judge)
    n = len(load_probe().pairs)
    assert len(probe) == n and backend.seen == 2 * n
    assert {v.order for p in probe for v in p.verdicts} == {"cand_first", "ref_first"}
    assert all(p.judge_fingerprint == judge.fingerprint.fingerprint for p in probe)
    health = run_health([], [], min_label_mass=0.5, probe=probe)
    assert health.probe_accuracy == 1.0 and health.probe_n == n
    assert health.judge_ok and health.judge_problem is None
    again = Judge(client=LLMClient(backend=(fresh := CaringBackend()), mode="logits",
                                   cache=JudgeCache(tmp_path / "c.sqlite")))
    assert run_probe(again) == [p.model_copy(update={"verdicts": tuple(v.model_copy(update={"cached": True})
                                                                      for v in p.verdicts)}) for p in probe]
    assert fresh.seen == 0  # cached like every verdict


def test_random_judge_is_flagged(tiny_models, tmp_path):
    judge = open_judge(JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(tmp_path),
                                     min_label_mass=0.0))
    try:
        probe = run_probe(judge)
        health = run_health(judge.judge_pairs(bundled_pairs()), [], min_label_mass=0.0, probe=probe)
    finally:
        judge.client.close()
    assert health.probe_accuracy is not None and health.probe_accuracy < MIN_PROBE_ACCURACY
    assert not health.judge_ok
    assert "caring reply" in (health.judge_problem or "")


def test_always_a_judge_is_flagged_as_position_bound(scripted_judge, tmp_path):
    judge = open_judge(JudgeSettings(model=str(scripted_judge), device="cpu", cache_dir=str(tmp_path),
                                     mode="generate"))
    try:
        probe = run_probe(judge)
        health = run_health(judge.judge_pairs(bundled_pairs()), [], min_label_mass=0.0, probe=probe)
    finally:
        judge.client.close()
    assert health.parse_rate == 1.0  # it answers readably ...
    assert health.position_bias == 1.0 and health.probe_accuracy == 0.5  # ... but always names the first reply
    assert not health.judge_ok
    assert "position bias +1.00: it mostly picks the first-shown reply" in (health.judge_problem or "")


@pytest.mark.parametrize(
    ("accuracy", "bias", "ties", "problem"),
    [
        (0.75, 0.49, 0.89, None),  # each just inside its threshold
        (None, None, None, None),  # nothing measured (no probe, no decisive verdict): nothing to flag
        (0.74, 0.0, 0.0, "preferred the caring reply in 74%"),
        (1.0, -0.5, 0.0, "position bias -0.50: it mostly picks the second-shown reply"),
        (1.0, None, 0.9, "90% of its verdicts are the tie label"),
    ],
)
def test_judge_problem_thresholds(accuracy, bias, ties, problem):
    found = judge_problem(probe_accuracy=accuracy, position_bias=bias, tie_rate=ties)
    assert found == problem if problem is None else problem in (found or "")


def test_all_ties_judge_fails_on_every_count():
    from harness.core.records import JudgeProbe, PairVerdict

    ties = tuple(PairVerdict(order=o, winner="tie") for o in ("cand_first", "ref_first"))
    probe = [JudgeProbe(probe_id=str(i), probe_version="v", verdicts=ties) for i in range(6)]
    assert probe_accuracy(probe) == 0.0 and probe_accuracy([]) is None
    problem = judge_problem(probe_accuracy=0.0, position_bias=None, tie_rate=1.0) or ""
    assert "0% of the sanity probe" in problem and "100% of its verdicts are the tie label" in problem
