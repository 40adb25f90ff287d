"""The rubric's own health: an all-unscored rubric is said in the console, in results.json and in its warnings.

The judge is a mock backend (registered like any plugin backend) whose rubric answers carry no label mass — what
a judge that cannot follow the rubric prompt gives; its pairwise verdicts are readable. The rest is real: the
`empathy eval` CLI on a replies file, the reference set, the run folder.
"""

from __future__ import annotations

import json

from harness.cli.main import main
from harness.data.selection import run_dialogues
from tests.judge_backends import register_judge

N = 6


# pairwise: always the first-shown reply (readable verdicts); rubric: no label mass, so nothing can be read
register_judge("no-rubric", lambda a, b: {"A": 0.8, "B": 0.1, "C": 0.1},
               lambda reply, r: {k: 0.0 for k in r.labels} | {"_mass": 0.0})


def test_an_all_unscored_rubric_is_a_warning_and_shown_beside_the_pairwise_health(tiny_models, small_refs, tmp_path,
                                                                                  capsys):
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": d.id, "response": f"That sounds {d.emotion}; I'm here."})
                               + "\n" for d in run_dialogues("bundled", N)[0]))
    out = tmp_path / "run"
    code = main(["eval", "--model", str(replies), "--model-backend", "replies", "--reference",
                 f"base={small_refs['base']}", "--judge", str(tiny_models["judge"]), "--judge-backend", "no-rubric",
                 "--limit", str(N), "--cache-dir", str(tmp_path / "cache"), "--output", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    result = json.loads((out / "results.json").read_text())
    assert result["health"]["parse_rate"] == 1.0 and result["health"]["rubric_parse_rate"] == 0.0
    assert all(d["n_scored"] == 0 and d["n_unscored"] == N for d in result["rubric"].values())
    warning = ("rubric: all 18 scores are unscored (rubric parse rate 0%) — the judge's rubric answers could not be "
               "read, so the rubric says nothing about this model")
    assert any(w.startswith(warning) for w in result["warnings"]), result["warnings"]
    # the console: the rubric's parse rate beside the pairwise one (before: only the pairwise 100.0 %)
    health = next(line for line in stdout.splitlines() if line.startswith("judge health:"))
    assert "parse rate 100.0%" in health and "rubric parse rate 0.0% (18 of 18 scores unscored)" in health
    assert "rubric: all 18 scores are unscored" in stdout
