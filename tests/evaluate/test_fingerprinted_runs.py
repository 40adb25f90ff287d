"""Identities that cannot go stale, through real runs: a model folder re-saved in place is a new model."""

import json

from harness.core.settings import JudgeSettings
from harness.evaluate.run import EvalConfig, run_eval
from harness.generate.replies import ModelSpec
from harness.judge.probe import load_probe
from harness.llm.tiny import build_tiny_model

#: Every run also asks the judge's sanity probe, each pair in both orders.
PROBE_CALLS = 2 * len(load_probe().pairs)


def run(tmp_path, models, name):
    cfg = EvalConfig(
        candidate=ModelSpec(str(models["candidate"]), device="cpu"),
        judge=JudgeSettings(model=str(models["judge"]), device="cpu", cache_dir=str(tmp_path / "cache"),
                            min_label_mass=0.0),
        output=tmp_path / name,
        build_references={"base": ModelSpec(str(models["base"]), device="cpu")},
        refs_dir=tmp_path / "refs",
        limit=3,
    )
    result = run_eval(cfg)
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    return result, manifest


def test_resaved_models_rebuild_references_and_miss_the_judge_cache(tmp_path):
    models = {n: build_tiny_model(tmp_path / "models" / n, seed=i) for i, n in enumerate(("base", "candidate", "judge"))}
    first, m1 = run(tmp_path, models, "run1")
    assert m1["references"]["base"]["reused"] is False and m1["judge"]["model_calls"] == 3 * 2 + 6 * 3 + PROBE_CALLS

    # unchanged: the reference is reused and the judge is not even loaded
    again, m2 = run(tmp_path, models, "run2")
    assert m2["references"]["base"]["reused"] is True
    assert m2["judge"]["model_calls"] == 0 and m2["judge"]["misses"] == 0 and not m2["judge"]["model_loaded"]
    assert again.judge == first.judge and again.provenance.systems == first.provenance.systems

    # the base model retrained in place (same path, new weights): a new reference set, new verdicts
    build_tiny_model(models["base"], seed=99)
    rebuilt, m3 = run(tmp_path, models, "run3")
    assert m3["references"]["base"]["reused"] is False
    assert m3["references"]["base"]["path"] != m2["references"]["base"]["path"]
    old_base = first.provenance.systems["base"].model
    new_base = rebuilt.provenance.systems["base"].model
    assert new_base.name == old_base.name and new_base.fingerprint != old_base.fingerprint
    assert rebuilt.comparisons["vs_base"].reference_model == new_base
    assert m3["judge"]["misses"] > 0  # the base replies changed, so their verdicts are new

    # the judge re-saved in place: another judge fingerprint, every verdict asked again
    build_tiny_model(models["judge"], seed=42)
    rejudged, m4 = run(tmp_path, models, "run4")
    assert rejudged.judge.fingerprint != rebuilt.judge.fingerprint
    assert rejudged.judge.model.fingerprint != rebuilt.judge.model.fingerprint
    assert m4["judge"]["hits"] == 0 and m4["judge"]["model_calls"] == 3 * 2 + 6 * 3 + PROBE_CALLS
    assert m4["references"]["base"]["reused"] is True  # the base did not change this time


def test_one_judge_and_one_reference_however_the_path_is_written(tmp_path, monkeypatch):
    """`judge`, `judge/`, `x/../judge`: the same folder is the same judge and the same reference set."""
    from harness.data.selection import run_dialogues
    from harness.evaluate.references import ensure_reference
    from harness.judge.judge import open_judge

    models = {n: build_tiny_model(tmp_path / "m" / n, seed=i) for i, n in enumerate(("base", "judge"))}
    monkeypatch.chdir(tmp_path / "m")
    spellings = [str(models["judge"]), str(models["judge"]) + "/", str(tmp_path / "m" / "base" / ".." / "judge"),
                 "./judge"]
    fps = {open_judge(JudgeSettings(model=s, device="cpu", cache_dir=str(tmp_path / "c"))).fingerprint.fingerprint
           for s in spellings}
    assert len(fps) == 1
    dialogues, digest = run_dialogues("bundled", 2)
    kw = {"dataset": "bundled", "digest": digest, "refs_dir": tmp_path / "refs", "cache_dir": tmp_path / "c"}
    _, first, reused = ensure_reference(ModelSpec(str(models["base"]), device="cpu"), "base", dialogues, **kw)
    _, again, reused_again = ensure_reference(ModelSpec(str(models["base"]) + "/", device="cpu"), "base", dialogues,
                                              **kw)
    assert not reused and reused_again and again == first
