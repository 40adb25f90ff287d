"""empathy check reports how the candidate's replies changed in style (per feature, paired CI), never gating it."""

from __future__ import annotations

import json
import shutil

from harness.cli.main import main
from harness.evaluate.runs import load_run
from harness.gate.style_shift import style_shift
from harness.score.style import FEATURES
from tests.judge.test_reward import reward_models, reward_runs  # noqa: F401 (fixtures)


def test_the_paired_style_shift_names_what_changed(reward_runs, tmp_path, capsys):  # noqa: F811
    runs, _ = reward_runs
    poor, caring = load_run(runs["poor"]), load_run(runs["caring"])
    shift, note = style_shift(poor, caring, seed=0, n_boot=500)
    assert note is None and [s.feature for s in shift] == list(FEATURES)
    by = {s.feature: s for s in shift}
    # the caring replies are longer, say sorry, validate and speak to the person; the poor ones do none of it
    for feature in ("words", "sympathy", "validation", "second_person"):
        assert by[feature].shifted and by[feature].delta > 0 and by[feature].ci_low > 0, by[feature]
    assert not by["emoji"].shifted and by["emoji"].delta == 0
    assert by["words"].n == 6 and by["words"].candidate > by["words"].baseline
    # the same replies: nothing moved
    again, _ = style_shift(caring, load_run(runs["caring_again"]), seed=0, n_boot=500)
    assert not any(s.shifted for s in again)
    # end to end: the Markdown and the JSON carry it; the verdict itself is unchanged by it
    verdict = tmp_path / "verdict.json"
    code = main(["check", "--baseline", str(runs["poor"]), "--candidate", str(runs["caring"]), "--metrics", "win_rate",
                 "--n-boot", "500", "--json", str(verdict)])
    out = capsys.readouterr().out
    found = json.loads(verdict.read_text())
    assert code == 0 and found["outcome"] == "pass"
    assert "### Style shift" in out and "| `words` |" in out and "| `emoji` |" not in out
    assert {s["feature"] for s in found["style_shift"] if s["shifted"]} >= {"words", "sympathy"}


def test_a_run_without_style_gives_a_note_not_a_shift(reward_runs, tmp_path, capsys):  # noqa: F811
    runs, _ = reward_runs
    old = shutil.copytree(runs["caring"], tmp_path / "old")
    data = json.loads((old / "results.json").read_text())
    data["schema_version"] = 2
    del data["style"]
    (old / "results.json").write_text(json.dumps(data))
    (old / "style.jsonl").unlink()
    shift, note = style_shift(load_run(old), load_run(runs["caring"]), seed=0, n_boot=500)
    assert shift == [] and note is not None and "the baseline run has no style profile (schema 2" in note
    assert main(["check", "--baseline", str(old), "--candidate", str(runs["caring_again"]), "--n-boot", "500"]) == 0
    assert "style shift: not measured — the baseline run has no style profile" in capsys.readouterr().out
