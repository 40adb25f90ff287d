"""``empathy check`` through the CLI: a judge that prefers longer replies, candidates that differ only in length.

The judge is a mock backend (registered like any plugin backend): no model that runs here can be made to prefer
longer replies on purpose. Everything else is real: replies files as candidates, the judge cache, the run folders,
lm-eval is not needed (the replies backend generates nothing).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from harness.cli.main import main
from harness.data.selection import run_dialogues
from tests.judge_backends import register_judge, score

N = 6
FILLER = " I am really sorry, that sounds so hard, and I am here for you whenever you need to talk about it."
MUTE = "(muted)"
"""A reply holding this gets no cognitive rubric score from the judge below."""


def _longer(a: str, b: str) -> dict[str, float]:
    """Prefers the longer reply (ties on equal length)."""
    la, lb = len(a.split()), len(b.split())
    return ({"A": 0.9, "B": 0.05, "C": 0.05} if la > lb else
            {"A": 0.05, "B": 0.9, "C": 0.05} if lb > la else {"A": 0.05, "B": 0.05, "C": 0.9})


def _by_length(reply: str, request) -> dict[str, float]:
    """Rubric score grows with length; a muted reply gets no cognitive score (no label mass)."""
    if MUTE in reply and "reply's cognitive empathy" in request.user:
        return {k: 0.0 for k in request.labels} | {"_mass": 0.0}
    return score(str(min(5, 1 + len(reply.split()) // 8)), request.labels)


register_judge("longer", _longer, _by_length)


@pytest.fixture(scope="module")
def replies(tmp_path_factory):
    root = tmp_path_factory.mktemp("replies")
    dialogues, _ = run_dialogues("bundled", N)
    files = {}
    for name, extra in (("short", ""), ("long", FILLER), ("mute", FILLER + " " + MUTE)):
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
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    names = [c.get("name") for c in cases if c.get("classname") != "empathy-check.style-control"]
    assert sorted(names) == sorted(by) and len(names) == len(by)  # one testcase per metric
    styled = [c.get("name") for c in cases if c.get("classname") == "empathy-check.style-control"]
    assert styled == [c["comparison"] for c in verdict["style_control"]]  # and one per style-controlled comparison
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
    # one verdict appended per check: the regression, then the identical checkpoint twice
    text = summary.read_text()
    headlines = re.findall(r"^[✓✗?⊘] \*\*([A-Z]+)\*\* — .* \(exit (\d)\)$", text, flags=re.MULTILINE)
    assert len(headlines) == 3 and text.count("## empathy check\n") == 3, text
    assert headlines[0] == ("REGRESSION", "1")
    assert all(h in (("PASS", "0"), ("INCONCLUSIVE", "0")) for h in headlines[1:])


def _eval(tiny_models, cache, out, replies_file, references, *, limit=N, mass=0.5, dataset="bundled"):
    from harness.core.settings import JudgeSettings
    from harness.evaluate.run import EvalConfig, run_eval
    from harness.generate.replies import ModelSpec

    run_eval(EvalConfig(candidate=ModelSpec(str(replies_file), backend="replies"),
                        judge=JudgeSettings(model=str(tiny_models["judge"]), backend="longer", cache_dir=str(cache),
                                            min_label_mass=mass),
                        output=out, references=references, limit=limit, dataset=dataset))
    return str(out)


def _edited_reference(source, target, *, dataset=None):
    """A copy of a reference set with one reply changed (same model fingerprint), optionally for another dataset."""
    from harness.data.references import load_reference, save_reference

    ref = load_reference(source, name="base")
    first = next(iter(ref.generations))
    gens = {**ref.generations, first: ref.generations[first].model_copy(update={"response": "A rebuilt reply."})}
    manifest = ref.manifest if dataset is None else ref.manifest.model_copy(update=dataset)
    save_reference(target, ref.model_copy(update={"manifest": manifest, "generations": gens}))
    return target


@pytest.fixture(scope="module")
def runs(tiny_models, small_refs, replies, tmp_path_factory):
    """Run folders made once for this module's runs-mode checks."""
    from harness.core.resources import bundled_dialogues_path
    from harness.data.selection import select_dialogues
    from harness.evaluate.runs import load_run
    from harness.gate.checkpoints import baseline_reference

    root = tmp_path_factory.mktemp("runs")
    base = {"base": small_refs["base"]}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMPATHY_HARNESS_CACHE", str(root / "harness-cache"))
        out = {name: _eval(tiny_models, root / "c", root / name, replies[name], base)
               for name in ("long", "short", "mute")}
        # the short replies judged head to head against the LONG ones' replies
        vs_long = baseline_reference(load_run(out["long"]), root / "long-replies.json")
        out["short_vs_long"] = _eval(tiny_models, root / "c", root / "short_vs_long", replies["short"],
                                     {**base, "baseline": vs_long})
        # the same reference model, its file rebuilt with one reply changed
        out["rebuilt_ref"] = _eval(tiny_models, root / "c", root / "rebuilt_ref", replies["long"],
                                   {"base": _edited_reference(small_refs["base"], root / "base-rebuilt.json")})
        # the same dialogue ids from a .jsonl file in which one dialogue (not among the first N) says something else
        rows = [json.loads(line) for line in bundled_dialogues_path().read_text().splitlines() if line.strip()]
        first = {d.id for d in run_dialogues("bundled", N)[0]}
        changed = next(r for r in rows if r["id"] not in first)
        changed["utterance"] += " And one more thing."
        data = root / "dialogues.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        _, digest = select_dialogues(str(data))
        ref = _edited_reference(small_refs["base"], root / "base-jsonl.json",
                                dataset={"dataset_hash": digest, "dataset": str(data)})
        out["jsonl"] = _eval(tiny_models, root / "c", root / "jsonl", replies["long"], {"base": ref},
                             dataset=str(data))
    return out


def _fingerprint(run_dir, system):
    from harness.evaluate.runs import load_run

    run = load_run(run_dir)
    if system == "candidate":
        return run.result.provenance.systems["candidate"].model.fingerprint
    return run.result.comparisons[system].reference_model.fingerprint


def test_mismatched_runs_are_invalid_and_name_the_field(tiny_models, small_refs, replies, runs, tmp_path, capsys):
    def run(name, limit=N, mass=0.5):
        return _eval(tiny_models, tmp_path / "c", tmp_path / name, replies["long"], {"base": small_refs["base"]},
                     limit=limit, mass=mass)

    a, other_judge, fewer = runs["long"], run("judge", mass=0.4), run("fewer", limit=N - 1)
    assert main(["check", "--baseline", a, "--candidate", other_judge]) == 3
    assert "judge fingerprint" in capsys.readouterr().out
    assert main(["check", "--baseline", a, "--candidate", fewer]) == 3
    assert "dialogue ids (hash)" in capsys.readouterr().out
    assert main(["check", "--baseline", a, "--candidate", runs["jsonl"]]) == 3
    out = capsys.readouterr().out
    assert "- dataset hash: baseline '" in out and "dialogue ids" not in out  # same ids, other content
    # a folder that is not there is a usage error naming the option, before any run is read
    assert main(["check", "--baseline", a, "--candidate", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert f"--candidate {tmp_path / 'missing'} does not exist (no such folder)" in err
    assert main(["check", "--baseline", str(tmp_path / "nope"), "--candidate", a]) == 2
    assert "--baseline" in capsys.readouterr().err
    assert main(["check", "--baseline", a]) == 2  # usage
    assert main(["check", "--baseline", a, "--candidate", a]) == 0


def test_a_rebuilt_reference_file_is_an_invalid_comparison(runs, capsys):
    from harness.evaluate.runs import load_run

    hashes = [load_run(runs[r]).result.provenance.systems["base"].reference_file_hash for r in ("long", "rebuilt_ref")]
    assert hashes[0] != hashes[1] and _fingerprint(runs["long"], "vs_base") == _fingerprint(runs["rebuilt_ref"],
                                                                                            "vs_base")
    assert main(["check", "--baseline", runs["long"], "--candidate", runs["rebuilt_ref"]]) == 3
    out = capsys.readouterr().out
    assert f"- base reference file hash: baseline {hashes[0]!r}, candidate {hashes[1]!r}" in out


def test_a_rubric_dimension_scored_in_neither_run_is_inconclusive_never_a_pass(runs, capsys, tmp_path):
    # the candidate's cognitive rubric score is unreadable on every dialogue: the rubric parse rate (of the
    # candidate's replies: 12 of 18 scores read) breaks its floor — an invalid comparison
    args = ["check", "--baseline", runs["long"], "--candidate", runs["mute"]]
    assert main(args) == 3
    out = capsys.readouterr().out
    assert "- candidate rubric_parse_rate 0.6667 breaks the floor 0.9" in out
    # with the floor lowered, the dimension has no reply to compare: inconclusive, exit 4 even without
    # --fail-on-inconclusive (today's main: an invalid comparison naming it as a problem)
    verdict = tmp_path / "verdict.json"
    assert main([*args, "--min-rubric-parse-rate", "0.6", "--metrics", "rubric", "--json", str(verdict)]) == 4
    out = capsys.readouterr().out
    assert "breaks the floor" not in out and "INCONCLUSIVE" in out
    by = {m["name"]: m for m in json.loads(verdict.read_text())["metrics"]}
    cognitive = by["rubric:cognitive"]
    assert cognitive["outcome"] == "inconclusive" and cognitive["n"] == 0 and cognitive["ci_low"] is None
    assert cognitive["reason"] == "no dialogue is scored in both runs (6 baseline, 0 candidate)"
    assert by["rubric:affective"]["reason"] is None and by["rubric:affective"]["n"] == 6
    assert "rubric:cognitive: no dialogue is scored in both runs (6 baseline, 0 candidate); it cannot pass" in out
    # the dimensions that were scored still gate normally
    assert main([*args, "--min-rubric-parse-rate", "0.6", "--metrics", "win_rate", "rubric:affective"]) == 0


def test_head_to_head_against_another_system_is_not_gated(runs, capsys):
    # the candidate was judged head to head against the LONG replies: against the short baseline run it would be a
    # false regression (it loses every dialogue to replies the baseline never wrote)
    judged, short = _fingerprint(runs["short_vs_long"], "vs_baseline"), _fingerprint(runs["short"], "candidate")
    assert judged != short and judged == _fingerprint(runs["long"], "candidate")
    assert main(["check", "--baseline", runs["short"], "--candidate", runs["short_vs_long"]]) == 0
    out = capsys.readouterr().out
    assert "`head_to_head`" not in out and judged in out and short in out
    assert "head to head" in out.split("### Warnings")[1]
    # against the run it was judged against, the head to head is gated (and the loss is real)
    assert main(["check", "--baseline", runs["long"], "--candidate", runs["short_vs_long"]]) == 1
    assert "`head_to_head` |" in capsys.readouterr().out
    # asked for by name while it cannot be gated: nothing is left to decide from, not a silent pass
    assert main(["check", "--baseline", runs["short"], "--candidate", runs["short_vs_long"],
                 "--metrics", "head_to_head"]) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--alpha", "0.7"], "--alpha 0.7 must lie in (0, 0.5)"),
    (["--alpha", "0"], "--alpha 0 must lie in (0, 0.5)"),
    (["--n-boot", "10"], "--n-boot 10 is too small"),
    (["--n-boot", "0"], "--n-boot 0 is too small"),
    (["--n-boot", "40"], "--n-boot 40 is too small for 5 gated metrics"),  # enough for one metric, not for all
    (["--margin", "-0.1"], "--margin -0.1: a margin must be a finite number ≥ 0"),
    (["--margin", "rubric=nan"], "--margin rubric=nan: a margin must be a finite number ≥ 0"),
    (["--margin", "winrate=0.5"], "did you mean 'win_rate'?"),
    (["--margin", "rubirc=3"], "did you mean 'rubric'?"),
    (["--margin", "rubric:cognitiv=0.2"], "did you mean 'rubric:cognitive'?"),
    (["--margin", "win_rate:vs_direct=0.02"], "--margin win_rate:vs_direct=0.02: no such metric"),
    (["--seed", "-1"], "--seed -1 must be ≥ 0"),
    (["--junit", "{tmp}"], "is a folder"),
    (["--json", "{tmp}/file.txt/verdict.json"], "not a folder"),
])
def test_usage_errors_exit_2_with_one_line(runs, tmp_path, capsys, args, message):
    (tmp_path / "file.txt").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["check", "--baseline", runs["long"], "--candidate", runs["long"], *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_margins_for_present_metrics_are_accepted(runs, capsys):
    assert main(["check", "--baseline", runs["long"], "--candidate", runs["long"], "--margin", "0.03", "--margin",
                 "win_rate=0.05", "--margin", "rubric:cognitive=0.3", "--margin", "lc_win_rate:vs_base=0"]) == 0
    out = capsys.readouterr().out
    assert "| `rubric:cognitive` |" in out and "| 0.30 |" in out and "| 5.0 pp |" in out


def test_checkpoint_baseline_reused_by_reference_content_not_path(tiny_models, small_refs, replies, tmp_path, capsys):
    import shutil

    ref = shutil.copy(small_refs["base"], tmp_path / "base.json")

    def run_check(reference):
        code = main(["check", "--baseline-model", str(replies["long"]), "--model", str(replies["long"]),
                     "--model-backend", "replies", "--reference", f"base={reference}", "--judge",
                     str(tiny_models["judge"]), "--judge-backend", "longer", "--limit", str(N), "--cache-dir",
                     str(tmp_path / "cache"), "--n-boot", "500", "--output", str(tmp_path / "out")])
        return code, capsys.readouterr()

    assert run_check(ref)[0] == 0
    # the same content at another path: the kept baseline run is still the right one
    moved = shutil.copy(ref, tmp_path / "moved.json")
    code, captured = run_check(moved)
    assert code == 0 and "reusing" in captured.err
    # the file rebuilt in place (same path, other replies): the kept run was judged against the old content
    _edited_reference(small_refs["base"], moved)
    code, captured = run_check(moved)
    assert code == 0 and "reusing" not in captured.err, captured.out


def test_ci_caches_are_keyed_by_the_reference_file():
    # a rebuilt reference must not restore a baseline run (and judge answers) made against the old one
    docs = Path(__file__).resolve().parents[2] / "docs" / "ci"
    gitlab = yaml.safe_load((docs / "gitlab-ci.yml").read_text())["empathy-check"]["cache"]["key"]
    assert gitlab["files"] == ["refs/base.json"] and gitlab["prefix"].startswith("empathy-")
    github = yaml.safe_load((docs / "github-actions.yml").read_text())["jobs"]["check"]["steps"]
    [cache] = [s["with"] for s in github if s.get("uses", "").startswith("actions/cache")]
    assert all("hashFiles('refs/base.json')" in cache[k] for k in ("key", "restore-keys"))


def test_checkpoint_mode_names_the_option_before_any_work(small_refs, tmp_path, capsys):
    # a folder that holds no model as --judge, a dead server as --base-url: one line naming the option, nothing made
    (tmp_path / "notes").mkdir()
    base = ["check", "--baseline-model", "old", "--model", "new", "--reference", f"base={small_refs['base']}",
            "--output", str(tmp_path / "out")]
    assert main([*base, "--model-backend", "replies", "--judge", str(tmp_path / "notes")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--judge" in err and str(tmp_path / "notes") in err, err
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    assert main([*base, "--model-backend", "openai-chat", "--base-url", url]) == 2
    err = capsys.readouterr().err
    assert f"--base-url {url}: no server answers" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_results_file_is_accepted_as_a_run(runs, capsys):
    # load_run reads a folder or its results.json; the gate's own check said "no such folder" for the file
    assert main(["check", "--baseline", f"{runs['long']}/results.json", "--candidate", runs["long"]]) == 0


def test_fail_on_inconclusive_turns_an_undecided_gate_into_exit_4(tiny_models, small_refs, tmp_path, capsys):
    # Two systems as good as each other on average: the baseline ('even') writes the long reply on even dialogues
    # and the short one on odd ones, the candidate ('odd') the other way round. Each rubric difference is about
    # ±3 points (sd 3.1), so on 6 dialogues the CI of Δ (mean 0) straddles the margin: undecided for an ordinary
    # reason (too few dialogues), not a metric without information. One metric is gated, so the headline is exact.
    dialogues, _ = run_dialogues("bundled", N)
    runs = {}
    for name, long_on in (("even", 0), ("odd", 1)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"dialogue_id": d.id, "response": f"Oh no, {d.emotion} is hard."
                                            + (FILLER if k % 2 == long_on else "")}) + "\n"
                                for k, d in enumerate(dialogues)))
        runs[name] = _eval(tiny_models, tmp_path / "c", tmp_path / name, path, {"base": small_refs["base"]})
    args = ["check", "--baseline", runs["even"], "--candidate", runs["odd"], "--metrics", "rubric:affective"]

    assert main([*args, "--json", str(tmp_path / "plain.json")]) == 0
    out = capsys.readouterr().out
    [metric] = json.loads((tmp_path / "plain.json").read_text())["metrics"]
    assert metric["outcome"] == "inconclusive" and metric["reason"] is None and metric["n"] == N
    assert metric["delta"] == pytest.approx(0.0, abs=0.05)
    assert metric["ci_low"] < -metric["margin"] < metric["ci_high"]  # the CI straddles the margin
    assert "**INCONCLUSIVE** — 1 of 1 metrics undecided (exit 0)" in out
    assert "use --fail-on-inconclusive to fail instead" in out

    assert main([*args, "--fail-on-inconclusive", "--json", str(tmp_path / "strict.json")]) == 4
    out = capsys.readouterr().out
    strict = json.loads((tmp_path / "strict.json").read_text())
    assert strict["outcome"] == "inconclusive" and strict["exit_code"] == 4
    assert strict["metrics"] == [metric]  # the same verdict on the metric: only the exit code changed
    assert "**INCONCLUSIVE** — 1 of 1 metrics undecided (exit 4)" in out
    assert "inconclusive: rubric:affective: to flag a drop of" in out and f"(this run has {N})" in out
    assert "use --fail-on-inconclusive" not in out
