"""A run's style profile: style.jsonl beside results.json (schema 3), recomputed by load_run; schema 2 still read."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.core.ui import print_summary
from harness.data.selection import run_dialogues
from harness.evaluate.runs import RunError, load_run
from harness.score.style import FEATURES, load_counter
from tests.evaluate.test_runs import demo_run  # noqa: F401 (a fixture)


def copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def test_a_run_carries_every_systems_style_and_load_run_recomputes_it(demo_run, capsys):  # noqa: F811
    run = load_run(demo_run)
    r = run.result
    assert r.schema_version == 3 and r.style is not None and run.style is not None
    assert set(r.style.systems) == {"candidate", "base", "direct"} and r.style.features == FEATURES
    assert r.style.fingerprint == load_counter().fingerprint
    assert len(run.style) == 3 * 6  # every system's reply to each of the 6 dialogues
    cand = {row.dialogue_id: row.features for row in run.style if row.system == "candidate"}
    gens = {g.dialogue_id: g.response for g in run.generations}
    said = {d.id: d.utterance for d in run_dialogues("bundled", 6)[0]}
    assert cand == {i: load_counter().profile(gens[i], said[i]) for i in gens}
    words = r.style.systems["candidate"]["words"]
    assert words.mean == pytest.approx(sum(len(t.split()) for t in gens.values()) / 6)
    assert words.ci_low <= words.mean <= words.ci_high
    assert set(r.style.largest_differences) == {"vs_base", "vs_direct"}
    print_summary(r)
    assert "style vs base: " in capsys.readouterr().out


def test_edited_style_rows_are_refused(demo_run, tmp_path):  # noqa: F811
    folder = copy(demo_run, tmp_path)
    rows = [json.loads(x) for x in (folder / "style.jsonl").read_text().splitlines()]
    rows[0]["features"]["sympathy"] += 1  # the candidate's first reply
    (folder / "style.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    with pytest.raises(RunError, match=r"style\.jsonl: the candidate's style features of .* are not those"):
        load_run(folder)
    ref = next(i for i, x in enumerate(rows) if x["system"] == "base")
    rows[0]["features"]["sympathy"] -= 1
    rows[ref]["features"]["words"] += 50  # a reference row: its summary no longer follows
    (folder / "style.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    with pytest.raises(RunError, match=r"style\.(largest_differences\.vs_base|systems\.base\.words)"):
        load_run(folder)
    (folder / "style.jsonl").unlink()
    with pytest.raises(RunError, match=r"style\.jsonl is missing"):
        load_run(folder)


def test_a_schema_2_run_is_read_and_says_it_has_no_style(demo_run, tmp_path, capsys):  # noqa: F811
    folder = copy(demo_run, tmp_path)
    data = json.loads((folder / "results.json").read_text())
    data["schema_version"] = 2
    del data["style"]
    (folder / "results.json").write_text(json.dumps(data))
    (folder / "style.jsonl").unlink()
    run = load_run(folder)
    assert run.result.schema_version == 2 and run.result.style is None and run.style is None
    print_summary(run.result)
    assert "style: none recorded (a schema-2 run" in capsys.readouterr().out


def rewrite(folder, rows):
    (folder / "style.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))


def test_incomplete_repeated_or_mixed_rows_are_refused(demo_run, tmp_path):  # noqa: F811
    folder = copy(demo_run, tmp_path)
    rows = [json.loads(x) for x in (folder / "style.jsonl").read_text().splitlines()]
    broken = [dict(rows[0], features={k: v for k, v in rows[0]["features"].items() if k != "words"}), *rows[1:]]
    rewrite(folder, broken)
    with pytest.raises(RunError, match=r"lacks or adds features for candidate"):
        load_run(folder)
    rewrite(folder, [*rows, rows[-1]])
    with pytest.raises(RunError, match=r"repeats"):
        load_run(folder)
    rewrite(folder, rows[1:])  # the candidate's first reply not profiled
    with pytest.raises(RunError, match=r"does not profile the candidate's reply to every dialogue"):
        load_run(folder)
    rewrite(folder, [dict(rows[0], fingerprint="0" * 16), *rows[1:]])
    with pytest.raises(RunError, match=r"mixes style fingerprints"):
        load_run(folder)


def test_a_run_counted_with_another_phrase_file_stays_valid(demo_run, tmp_path):  # noqa: F811
    """Rows of another fingerprint (an older phrase file) are not recounted with today's lists, nor refused."""
    folder = copy(demo_run, tmp_path)
    rows = [dict(json.loads(x), fingerprint="0123456789abcdef")
            for x in (folder / "style.jsonl").read_text().splitlines()]
    rewrite(folder, rows)
    data = json.loads((folder / "results.json").read_text())
    data["style"]["fingerprint"] = "0123456789abcdef"
    (folder / "results.json").write_text(json.dumps(data))
    assert load_run(folder).result.style.fingerprint == "0123456789abcdef"
