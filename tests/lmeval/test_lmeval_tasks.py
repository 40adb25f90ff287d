"""The tasks as lm-eval sees them: every YAML loads, and lm-eval itself runs them on a tiny model."""

import json
import subprocess
import sys

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.resources import tasks_dir
from harness.data.selection import select_dialogues
from harness.generate.replies import default_decoding
from harness.lmeval.check import GROUP_NAMES, TASK_NAMES, validate_tasks


def test_every_task_yaml_loads_through_lm_eval():
    from lm_eval.tasks import TaskManager

    assert validate_tasks() == []
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    assert set(TASK_NAMES) <= set(manager.all_tasks)
    assert set(GROUP_NAMES) <= set(manager.all_groups)
    yamls = {p.stem for p in tasks_dir().glob("*.yaml")}
    assert yamls == {*TASK_NAMES, *GROUP_NAMES}  # no YAML that lm-eval would skip unnoticed


def test_validate_reports_a_broken_yaml(tmp_path, monkeypatch):
    import shutil

    broken = tmp_path / "tasks"
    shutil.copytree(tasks_dir(), broken)
    text = (broken / "empathy_rubric.yaml").read_text()
    (broken / "empathy_rubric.yaml").write_text(text.replace("rubric_results", "no_such_function"))
    (broken / "empathy_winrate_vs_base.yaml").write_text("task: [unclosed\n")
    monkeypatch.setattr("harness.lmeval.check.tasks_dir", lambda: broken)
    problems = validate_tasks()
    assert any("empathy_winrate_vs_base: not found" in p for p in problems)
    assert any(p.startswith("empathy_rubric:") and "no_such_function" in p for p in problems)


def test_decoding_has_one_source_the_task_yaml():
    cfg = yaml.safe_load((tasks_dir() / "empathy_gen.yaml").read_text().replace("!function", ""))
    gk = cfg["generation_kwargs"]
    dec = default_decoding()
    assert tuple(gk["until"]) == dec.until
    assert gk["max_gen_toks"] == dec.max_gen_toks and gk["do_sample"] is dec.do_sample
    assert "stop" not in (tasks_dir().parent / "prompts" / "generation" / "default.yaml").read_text()


def test_missing_reference_names_the_build_command(tmp_path):
    from harness.core.errors import HarnessError
    from harness.lmeval.tasks import vs_base_docs

    with pytest.raises(HarnessError, match=r"empathy refs build --model MODEL --name base"):
        vs_base_docs(judge="x", reference_base=str(tmp_path / "missing.json"))
    with pytest.raises(HarnessError, match=r'reference_base'):
        vs_base_docs(judge="x")


def test_comparison_docs_join_reference_by_id(small_refs, tiny_models):
    from harness.data.references import load_reference
    from harness.lmeval.tasks import vs_base_docs

    ds = vs_base_docs(judge=str(tiny_models["judge"]), reference_base=str(small_refs["base"]), limit=6)["test"]
    ref = load_reference(small_refs["base"])
    assert len(ds) == 6
    for doc in ds:
        assert doc["reference_response"] == ref.generations[doc["id"]].response
        assert json.loads(doc["run"])["judge_fingerprint"]["fingerprint"]


def test_both_front_ends_refuse_a_reference_that_does_not_cover_the_run(small_refs, tiny_models, tmp_path):
    """One coverage policy: the lm-eval path used to narrow silently to the 6 dialogues the reference covers."""
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec
    from harness.lmeval.tasks import vs_base_docs

    with pytest.raises(HarnessError, match=r"has no reply for 218 of this run's dialogues") as lm:
        vs_base_docs(judge=str(tiny_models["judge"]), reference_base=str(small_refs["base"]))
    assert '--metadata \'{"limit": N}\'' in str(lm.value)
    cfg = EvalConfig(candidate=ModelSpec(str(tiny_models["candidate"]), device="cpu"),
                     judge=JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(tmp_path)),
                     output=tmp_path / "run", references={"base": small_refs["base"]})
    with pytest.raises(HarnessError, match=r"has no reply for 218 of this run's dialogues"):
        run_eval(cfg)


def test_lm_eval_cli_runs_the_empathy_group(tiny_models, small_refs, tmp_path):
    metadata = {
        "judge": str(tiny_models["judge"]), "judge_device": "cpu", "cache_dir": str(tmp_path / "cache"),
        "judge_min_label_mass": 0.0, "limit": 4,
        "reference_base": str(small_refs["base"]), "reference_direct": str(small_refs["direct"]),
    }
    cmd = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={tiny_models['candidate']},dtype=float32",
        "--include_path", str(tasks_dir()), "--tasks", "empathy", "--metadata", json.dumps(metadata),
        "--device", "cpu", "--limit", "4", "--output_path", str(tmp_path / "out"), "--log_samples",
        "--apply_chat_template",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = list((tmp_path / "out").rglob("results_*.json"))
    res = json.loads(results_file.read_text())["results"]
    for task in ("empathy_winrate_vs_base", "empathy_winrate_vs_direct"):
        r = res[task]
        assert 0.0 <= r["win_rate,judge"] <= 1.0
        assert r["scored,judge"] == 1.0  # logits mode never fails to read a verdict
        assert 0.0 <= r["position_flip,judge"] <= 1.0
        assert "win_rate_stderr,judge" in r
    for dim in ("cognitive", "affective", "compassionate"):
        assert 1.0 <= res["empathy_rubric"][f"{dim},judge"] <= 5.0
    samples = list((tmp_path / "out").rglob("samples_empathy_winrate_vs_base_*.jsonl"))
    rows = [json.loads(line) for line in samples[0].read_text().splitlines()]
    assert len(rows) == 4
    judgment = json.loads(rows[0]["filtered_resps"][0])
    assert [v["order"] for v in judgment["verdicts"]] == ["cand_first", "ref_first"]
    # same dialogues as the CLI's first 4
    ids, _ = select_dialogues("bundled")
    assert sorted(r["doc"]["id"] for r in rows) == sorted(d.id for d in ids[:4])

    # the lm-eval path's output becomes the same typed run folder as `empathy eval`'s
    from harness.evaluate.runs import load_run
    from harness.lmeval.importer import import_lmeval

    result = import_lmeval(tmp_path / "out", tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.result == result and result.provenance.front_end == "lm-eval"
    assert result.provenance.n_dialogues == 4 and set(result.comparisons) == {"vs_base", "vs_direct"}
    for task, name in (("empathy_winrate_vs_base", "vs_base"), ("empathy_winrate_vs_direct", "vs_direct")):
        s = result.comparisons[name]
        assert s.n_scored + s.n_unscored == 4
        assert s.win_rate == pytest.approx(res[task]["win_rate,judge"])  # lm-eval's own mean of the same verdicts
    candidate = result.provenance.systems["candidate"].model
    assert candidate.kind == "local" and candidate.name == str(tiny_models["candidate"])

    # `empathy eval` on the same inputs: the same dialogues, replies, verdicts and numbers
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    direct = run_eval(EvalConfig(
        candidate=ModelSpec(str(tiny_models["candidate"]), device="cpu"),
        judge=JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(tmp_path / "cache"),
                            min_label_mass=0.0),
        output=tmp_path / "eval", references={"base": small_refs["base"], "direct": small_refs["direct"]}, limit=4))
    assert direct.judge == result.judge and direct.provenance.dialogue_ids_hash == result.provenance.dialogue_ids_hash
    assert direct.comparisons == result.comparisons and direct.rubric == result.rubric
    assert result.style is not None and direct.style == result.style  # the same replies, the same style profile
    # the same health, sanity probe included (the lm-eval tasks run it while building their documents)
    assert direct.health == result.health and result.health.probe_n == len(run.probe) > 0
    def verdicts(probe):  # `cached` differs: the second front end reads the first one's verdicts from the cache
        return [(p.probe_id, [v.model_dump(exclude={"cached"}) for v in p.verdicts]) for p in probe]

    assert verdicts(run.probe) == verdicts(load_run(tmp_path / "eval").probe)

    # a run without the chat template the candidate has is refused (every system is prompted by one rule)
    import shutil

    shutil.copytree(tmp_path / "out", tmp_path / "out2")
    (lm_results,) = list((tmp_path / "out2").rglob("results_*.json"))
    edited = json.loads(lm_results.read_text())
    edited["chat_template"] = None
    lm_results.write_text(json.dumps(edited))
    with pytest.raises(HarnessError, match="without the chat template.*add --apply_chat_template"):
        import_lmeval(tmp_path / "out2", tmp_path / "run2")
    # samples without the judge's probe (an older harness) are refused with the fix
    shutil.copytree(tmp_path / "out", tmp_path / "out3")
    for f in (tmp_path / "out3").rglob("samples_empathy_winrate_vs_base_*.jsonl"):
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        for row in rows:
            row["doc"].pop("probe", None)
        f.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(HarnessError, match=r"sanity probe must be on exactly one document.*vs_base: 0.*re-run lm_eval"):
        import_lmeval(tmp_path / "out3", tmp_path / "run3")
    assert result.rubric["cognitive"].mean == pytest.approx(res["empathy_rubric"]["cognitive,judge"])


def test_lm_eval_cli_with_served_candidate_and_http_judge(tiny_models, small_refs, scripted_judge, model_server,
                                                          tmp_path):
    """lm_eval's own CLI: the candidate behind an OpenAI-compatible server (local-chat-completions) and the judge
    over HTTP, chosen in --metadata (both served by the real `transformers serve` fixture)."""
    metadata = {"judge": str(scripted_judge), "judge_backend": "openai", "judge_base_url": model_server.url,
                "judge_concurrency": 4, "cache_dir": str(tmp_path / "cache"), "reference_base": str(small_refs["base"]),
                "limit": 4}
    model_args = (f"model={tiny_models['candidate']},base_url={model_server.url}/chat/completions,"
                  "tokenized_requests=False,num_concurrent=2")
    cmd = [sys.executable, "-m", "lm_eval", "--model", "local-chat-completions", "--model_args", model_args,
           "--apply_chat_template", "--include_path", str(tasks_dir()), "--tasks", "empathy_winrate_vs_base",
           "--metadata", json.dumps(metadata), "--limit", "4", "--output_path", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = list((tmp_path / "out").rglob("results_*.json"))
    r = json.loads(results_file.read_text())["results"]["empathy_winrate_vs_base"]
    # the scripted judge always answers 'A': each dialogue is a tie (win rate ½), every verdict read
    assert r["scored,judge"] == 1.0 and r["win_rate,judge"] == 0.5 and r["tie,judge"] == 1.0


def test_lm_eval_path_judges_are_closed(small_refs, tiny_models, tmp_path):
    """The judges the task filters open are freed (and their caches closed) by close_judges, which runs at exit."""
    import atexit
    import sqlite3

    from harness.lmeval import tasks

    md = {"judge": str(tiny_models["judge"]), "judge_device": "cpu", "judge_min_label_mass": 0.0,
          "cache_dir": str(tmp_path), "reference_base": str(small_refs["base"]), "limit": 2}
    calls = []
    real_register = atexit.register
    atexit.register = lambda fn: calls.append(fn) or real_register(fn)
    try:
        tasks.close_judges()
        docs = list(tasks.vs_base_docs(**md)["test"])
        out = tasks.pairwise_filter([["I'm sorry."]] * len(docs), docs)
    finally:
        atexit.register = real_register
    assert len(out) == 2 and calls == [tasks.close_judges]
    (judge,) = tasks._JUDGES.values()
    assert judge.backend.loaded
    tasks.close_judges()
    assert not tasks._JUDGES and not judge.backend.loaded
    with pytest.raises(sqlite3.ProgrammingError):
        len(judge.cache)
