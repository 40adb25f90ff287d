"""The typed result spine: a demo run validates against the shipped schema and loads; broken folders are refused."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.io import write_atomic, write_json
from harness.core.records import RunResult
from harness.evaluate.runs import SCHEMA_PATH, RunError, load_run, results_schema, start_run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    from harness.evaluate.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "run"
    run_demo(out, limit=6)
    return out


def test_shipped_schema_is_the_models_schema():
    assert json.loads(SCHEMA_PATH.read_text()) == json.loads(json.dumps(results_schema()))


def test_demo_results_validate_against_the_shipped_schema_and_load(demo_run):
    import jsonschema

    data = json.loads((demo_run / "results.json").read_text())
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    assert data["schema_version"] == 3
    assert data["demo"] is True and data["warnings"][0].startswith("demo: these numbers come from random weights")
    run = load_run(demo_run)
    assert isinstance(run.result, RunResult)
    assert run.result.vs_base == run.result.comparisons["vs_base"]
    assert len(run.generations) == 6 and len(run.judgments) == 12 and len(run.rubric) == 18
    fp = run.result.judge.fingerprint
    assert all(j.judge_fingerprint == fp for j in run.judgments)
    assert run.manifest["judge"]["fingerprint"] == fp
    # every system carries its identity: local folders by content
    systems = run.result.provenance.systems
    assert set(systems) == {"candidate", "base", "direct"}
    assert all(s.model.kind == "local" and len(s.model.fingerprint) == 16 for s in systems.values())
    # the same numbers as the schema-1 interface: per comparison at the top level
    for name in ("vs_base", "vs_direct"):
        for key in ("win_rate", "ci_low", "ci_high", "tie_rate", "position_flip_rate", "n_scored", "n_unscored"):
            assert key in data[name]


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_schema_1_is_refused_with_the_reason(demo_run, tmp_path):
    run = copy(demo_run, tmp_path / "old")
    data = json.loads((run / "results.json").read_text())
    write_json(run / "results.json", {**data, "schema_version": 1})
    with pytest.raises(RunError, match="schema 1 .* re-run 'empathy eval'"):
        load_run(run)


def test_incomplete_run_is_refused(demo_run, tmp_path):
    run = copy(demo_run, tmp_path / "crashed")
    (run / "results.json").unlink()
    with pytest.raises(RunError, match="no results.json .*did not complete"):
        load_run(run)
    run = copy(demo_run, tmp_path / "partial")
    (run / "rubric.jsonl").unlink()
    with pytest.raises(RunError, match="rubric.jsonl missing"):
        load_run(run)


def test_judgments_of_another_judge_are_refused(demo_run, tmp_path):
    run = copy(demo_run, tmp_path / "mixed")
    lines = (run / "judgments.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["judge_fingerprint"] = "ffffffffffffffff"
    write_atomic(run / "judgments.jsonl", "\n".join([json.dumps(row), *lines[1:]]) + "\n")
    with pytest.raises(RunError, match="judge fingerprint.*ffffffffffffffff.*different runs"):
        load_run(run)


def test_numbers_that_do_not_match_the_verdicts_are_refused(demo_run, tmp_path):
    run = copy(demo_run, tmp_path / "edited")
    data = json.loads((run / "results.json").read_text())
    for where in (data["comparisons"]["vs_base"], data["vs_base"]):
        where["win_rate"] = 0.99
    write_json(run / "results.json", data)
    with pytest.raises(RunError, match=r"comparisons.vs_base.win_rate is 0.99 in results.json, but the verdicts"):
        load_run(run)
    data["vs_base"]["win_rate"] = 0.5  # the headline copy disagrees with comparisons
    write_json(run / "results.json", data)
    with pytest.raises(RunError, match="vs_base differs from comparisons"):
        load_run(run)


def test_a_run_starts_by_removing_an_old_results_json(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "judgments.jsonl").write_text("")
    start_run(out)
    assert not (out / "results.json").exists() and (out / "judgments.jsonl").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarnessError, match="is a file"):
        start_run(tmp_path / "file")


def test_a_failed_rerun_leaves_no_stale_results(demo_run, tmp_path, tiny_models):
    """A re-run refused before any work leaves the completed run as it was; one that fails after it started must
    not leave the old results.json beside it; a folder made for a run that fails early is removed again."""
    from harness.core.errors import HarnessError
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    run = copy(demo_run, tmp_path / "rerun")
    before = (run / "results.json").read_bytes()
    judge = JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(tmp_path))
    cfg = EvalConfig(candidate=ModelSpec(str(tiny_models["candidate"]), device="cpu"), judge=judge, output=run,
                     references={"base": tmp_path / "missing.json"}, limit=6)
    with pytest.raises(HarnessError, match="not found"):
        run_eval(cfg)
    assert (run / "results.json").read_bytes() == before and load_run(run).result.model_dump()

    # a reference model that cannot be resolved (offline, not cached) fails once the run has started
    started = dataclasses.replace(cfg, references={}, build_references={"base": ModelSpec("org/none", device="cpu")})
    with pytest.raises(HarnessError, match="cannot resolve the commit of Hub model 'org/none'"):
        run_eval(started)
    assert not (run / "results.json").exists()
    with pytest.raises(RunError, match="did not complete"):
        load_run(run)
    with pytest.raises(HarnessError, match="cannot resolve the commit of Hub model 'org/none'"):
        run_eval(dataclasses.replace(started, output=tmp_path / "new"))
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_result_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_rows(path, rows):
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def _edit_results(run, fn):
    data = json.loads((run / "results.json").read_text())
    fn(data)
    write_json(run / "results.json", data)


def _both(data, name, fn):
    fn(data["comparisons"][name])
    fn(data[name])


TAMPERING = {
    "a reply edited after judging": lambda run: _write_rows(
        run / "generations.jsonl",
        [{**r, "response": r["response"] + " and more words"} if i == 0 else r
         for i, r in enumerate(_rows(run / "generations.jsonl"))]),
    "judgments of other dialogues": lambda run: _write_rows(
        run / "judgments.jsonl", [{**r, "dialogue_id": "zzz"} for r in _rows(run / "judgments.jsonl")]),
    "rubric rows removed": lambda run: _write_rows(run / "rubric.jsonl", []),
    "rubric mean edited": lambda run: _edit_results(run, lambda d: d["rubric"]["cognitive"].update(mean=4.99)),
    "LC edited": lambda run: _edit_results(run, lambda d: _both(d, "vs_base", lambda s: s.update(lc_win_rate=0.99))),
    "CI edited": lambda run: _edit_results(run, lambda d: _both(d, "vs_base", lambda s: s.update(ci_low=0.001))),
    "wins and ties edited": lambda run: _edit_results(
        run, lambda d: _both(d, "vs_base", lambda s: s.update(wins=s["wins"] + 1, ties=s["ties"] - 1))),
    "health edited": lambda run: _edit_results(run, lambda d: d["health"].update(parse_rate=0.1)),
    "lm-eval view edited": lambda run: _edit_results(
        run, lambda d: d["results"]["empathy_winrate_vs_base"].update({"win_rate,judge": 0.99})),
    "verdicts flipped, outcome kept": lambda run: _write_rows(
        run / "judgments.jsonl",
        [{**r, "verdicts": [{**v, "winner": "reference" if r["outcome"] != "reference" else "candidate"}
                            for v in r["verdicts"]]} if i == 0 else r
         for i, r in enumerate(_rows(run / "judgments.jsonl"))]),
    "a judgment duplicated": lambda run: _write_rows(
        run / "judgments.jsonl", [_rows(run / "judgments.jsonl")[0], *_rows(run / "judgments.jsonl")[:-1]]),
    "dialogue ids hash edited": lambda run: _edit_results(
        run, lambda d: d["provenance"].update(dialogue_ids_hash="0" * 16)),
    "candidate identity edited": lambda run: _edit_results(
        run, lambda d: d["provenance"]["systems"]["candidate"]["model"].update(fingerprint="1" * 16)),
    "judge description edited": lambda run: _edit_results(run, lambda d: d["judge"].update(max_new_tokens=999)),
    "manifest replaced": lambda run: (run / "manifest.json").write_text("[]"),
    "no fingerprints": lambda run: _edit_results(run, lambda d: d["judge"].update(fingerprint="")),
}


@pytest.mark.parametrize("edit", list(TAMPERING))
def test_tampered_runs_are_refused(demo_run, tmp_path, edit):
    run = copy(demo_run, tmp_path / "t")
    load_run(run)  # the copy itself is fine
    TAMPERING[edit](run)
    with pytest.raises(RunError):
        load_run(run)


def test_the_judge_health_verdict_is_recomputed_by_todays_rules_not_read(demo_run, tmp_path):
    # a run written when the health rules were looser (or edited to look healthy) is judged by today's rules:
    # load_run neither trusts the recorded judge_ok nor refuses the run as tampered
    run = copy(demo_run, tmp_path / "t")
    truth = load_run(run).result.health
    assert truth.judge_ok is False and truth.judge_problem
    _edit_results(run, lambda d: d["health"].update(judge_ok=True, judge_problem=None))
    loaded = load_run(run).result.health
    assert (loaded.judge_ok, loaded.judge_problem) == (False, truth.judge_problem)
