"""``empathy check`` through the CLI: a judge that prefers longer replies, candidates that differ only in length.

The judge is a mock backend (registered like any plugin backend): no model that runs here can be made to prefer
longer replies on purpose. Everything else is real: replies files as candidates, the judge cache, the run folders,
lm-eval is not needed (the replies backend generates nothing).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from harness.cli.main import main
from harness.data.selection import run_dialogues
from harness.llm.registry import BACKENDS, register_backend

N = 6
FILLER = " I am really sorry, that sounds so hard, and I am here for you whenever you need to talk about it."


class LongerJudge:
    """Prefers the longer reply (ties on equal length); rubric score grows with length."""

    name = "longer"

    def __init__(self, settings):
        self.model_id, self.revision = settings.model, None

    def label_probs(self, requests):
        out = []
        for r in requests:
            if "<<<RESPONSE A>>>" in r.user:
                a = r.user.split("<<<RESPONSE A>>>")[1].split("<<<END OF RESPONSE A>>>")[0]
                b = r.user.split("<<<RESPONSE B>>>")[1].split("<<<END OF RESPONSE B>>>")[0]
                la, lb = len(a.split()), len(b.split())
                probs = {"A": 0.9, "B": 0.05, "C": 0.05} if la > lb else (
                    {"A": 0.05, "B": 0.9, "C": 0.05} if lb > la else {"A": 0.05, "B": 0.05, "C": 0.9})
            else:
                reply = r.user.split("<<<REPLY>>>")[1].split("<<<END OF REPLY>>>")[0]
                score = str(min(5, 1 + len(reply.split()) // 8))
                probs = {k: (0.96 if k == score else 0.01) for k in r.labels}
            out.append({**probs, "_mass": 0.99})
        yield list(range(len(requests))), out

    def generate(self, requests, max_new_tokens):
        raise AssertionError("logits mode only")

    def close(self):
        pass


if "longer" not in BACKENDS:
    register_backend("longer")(LongerJudge)


@pytest.fixture(scope="module")
def replies(tmp_path_factory):
    root = tmp_path_factory.mktemp("replies")
    dialogues, _ = run_dialogues("bundled", N)
    files = {}
    for name, extra in (("short", ""), ("long", FILLER)):
        files[name] = root / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"dialogue_id": d.id, "response": f"Oh no, {d.emotion} is hard."
                                                   + extra}) + "\n" for d in dialogues))
    return files


def check(tiny_models, small_refs, tmp_path, old, new, out, *extra):
    return main(["check", "--baseline-model", str(old), "--model", str(new), "--model-backend", "replies",
                 "--reference", f"base={small_refs['base']}", "--judge", str(tiny_models["judge"]),
                 "--judge-backend", "longer", "--limit", str(N), "--cache-dir", str(tmp_path / "cache"),
                 "--n-boot", "500", "--output", str(out), *extra])


def test_shorter_replies_are_a_regression_and_identical_ones_are_not(tiny_models, small_refs, replies, tmp_path,
                                                                      capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    junit = tmp_path / "junit.xml"
    code = check(tiny_models, small_refs, tmp_path, replies["long"], replies["short"], tmp_path / "drop",
                 "--junit", str(junit), "--json", str(tmp_path / "verdict.json"))
    out = capsys.readouterr().out
    assert code == 1, out
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    by = {m["name"]: m for m in verdict["metrics"]}
    assert by["head_to_head"]["outcome"] == "regression" and by["head_to_head"]["losses"] == N
    assert by["rubric:cognitive"]["outcome"] == "regression" and by["rubric:cognitive"]["delta"] < -2
    assert by["win_rate:vs_base"]["delta"] <= 0  # both may beat the base's short replies: never a gain
    assert "::error" in out and "head_to_head" in out
    cases = ET.parse(junit).getroot().iter("testcase")
    names = [c.get("name") for c in cases]
    assert sorted(names) == sorted(by) and len(names) == len(by)  # one testcase per metric
    assert "REGRESSION" in summary.read_text().upper()

    # the same checkpoint twice: no regression
    capsys.readouterr()
    code = check(tiny_models, small_refs, tmp_path, replies["long"], replies["long"], tmp_path / "same")
    out = capsys.readouterr().out
    assert code == 0, out
    verdict_same = re.search(r"\*\*(\w+)\*\*", out)
    assert verdict_same and verdict_same.group(1).upper() in ("PASS", "INCONCLUSIVE")

    # the second run of the same check: the baseline run is reused and no verdict is asked again
    assert check(tiny_models, small_refs, tmp_path, replies["long"], replies["long"], tmp_path / "same") == 0
    assert "reusing" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "same" / "candidate" / "manifest.json").read_text())
    assert manifest["judge"]["model_calls"] == 0 and manifest["judge"]["misses"] == 0
    assert len(summary.read_text().split("\n# ")) >= 1 and summary.read_text().count("empathy check") >= 3


def test_mismatched_runs_are_invalid_and_name_the_field(tiny_models, small_refs, replies, tmp_path, capsys):
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    def run(name, limit=N, mass=0.5):
        run_eval(EvalConfig(candidate=ModelSpec(str(replies["long"]), backend="replies"),
                            judge=JudgeSettings(model=str(tiny_models["judge"]), backend="longer",
                                                cache_dir=str(tmp_path / "c"), min_label_mass=mass),
                            output=tmp_path / name, references={"base": small_refs["base"]}, limit=limit))
        return str(tmp_path / name)

    a, other_judge, fewer = run("a"), run("judge", mass=0.4), run("fewer", limit=N - 1)
    assert main(["check", "--baseline", a, "--candidate", other_judge]) == 3
    assert "judge fingerprint" in capsys.readouterr().out
    assert main(["check", "--baseline", a, "--candidate", fewer]) == 3
    assert "dialogue ids (hash)" in capsys.readouterr().out
    assert main(["check", "--baseline", a, "--candidate", str(tmp_path / "missing")]) == 3
    assert main(["check", "--baseline", a]) == 2  # usage
    assert main(["check", "--baseline", a, "--candidate", a]) == 0
