"""The board's trust model: a submission speaks only for itself.

Each finding of the review of admission and verification is reproduced here and must stay fixed: battles from
self-reported runs, duplicates decided by a date the submitter writes, verification of only the anchor, regeneration
that did not gate the status, unsafe run ids, spoofed controls, paths read on the maintainer's disk, markup in the
dataset card, and verification records that were not bound to the board.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.settings import JudgeSettings
from harness.evaluate.run import EvalConfig, run_eval
from harness.evaluate.runs import load_run, write_run
from harness.generate.replies import ModelSpec
from leaderboard.protocol import BoardProtocol, protocol_from_run, save_protocol
from tests.leaderboard.conftest import N
from tests.leaderboard.test_verify import fabricate_wins, judge_args


def lenient(run: Path, name: str = "trust board") -> BoardProtocol:
    return protocol_from_run(load_run(run).result, name=name, min_scored=3, max_flip_rate=1.0, min_label_mass=0.0,
                             require_judge_ok=False)


def board_file(protocol: BoardProtocol, folder: Path) -> str:
    path = folder / f"{protocol.name.replace(' ', '-')}.yaml"
    save_protocol(protocol, path)
    return str(path)


def judge(tiny_models, cache) -> JudgeSettings:
    return JudgeSettings(model=str(tiny_models["judge"]), device="cpu", cache_dir=str(cache), min_label_mass=0.0)


def build(board: str, out: Path, *, runs=(), submissions=None, n_boot=50) -> dict:
    args = ["leaderboard", "build", "--board", board, "--n-boot", str(n_boot), "--output", str(out)]
    if runs:
        args += ["--runs", *map(str, runs)]
    if submissions:
        args += ["--submissions", str(submissions)]
    assert main(args) == 0
    return json.loads((out / "leaderboard.json").read_text())


def row_of(board: dict, model: str) -> dict:
    return next(r for r in board["rows"] if r["model"] == model)


@pytest.fixture(scope="module")
def two_refs(board_runs, tiny_models, small_refs, tmp_path_factory) -> Path:
    """A third model judged against base *and* direct (direct's replies are model b's: a model-vs-model battle)."""
    out = tmp_path_factory.mktemp("two-refs") / "run"
    run_eval(EvalConfig(candidate=ModelSpec(str(board_runs["root"] / "models" / "third"), device="cpu"),
                        judge=judge(tiny_models, board_runs["cache"]), output=out,
                        references={"base": small_refs["base"], "direct": small_refs["direct"]}, limit=N))
    return out


def test_a_self_reported_run_cannot_move_another_models_rating(board_runs, two_refs, tmp_path):
    """Finding 1: a submission whose reference is a rival on the board, with verdicts it wrote, moved the rival."""
    rival = load_run(board_runs["b"])
    forged = tmp_path / "subs" / "forged"
    fabricate_wins(two_refs, forged)  # it beats every reply of b, in both orders — and passes load_run
    assert load_run(forged).result.comparisons["vs_direct"].reference_model == \
        rival.result.provenance.systems["candidate"].model
    board = board_file(lenient(board_runs["a"]), tmp_path)
    before = build(board, tmp_path / "before", runs=[board_runs["a"], board_runs["b"]])
    submitted = build(board, tmp_path / "submitted", runs=[board_runs["a"], board_runs["b"]],
                      submissions=tmp_path / "subs")
    b = rival.result.model
    moved, kept = row_of(submitted, b)["bt"], row_of(before, b)["bt"]  # the rival's rating did not move (only the
    assert moved == pytest.approx(kept, abs=1e-6)  # optimiser's last digits, from the other model in the joint fit)
    me = row_of(submitted, load_run(forged).result.model)
    assert me["trust"] == "self-reported" and me["anchor_only"] and me["bt"]["value"] is not None
    # the same verdicts from a run the maintainer made are the board's own: then they do rate b
    own = build(board, tmp_path / "own", runs=[board_runs["a"], board_runs["b"], forged])
    assert row_of(own, load_run(forged).result.model)["trust"] == "maintainer"
    assert row_of(own, b)["bt"]["value"] < row_of(before, b)["bt"]["value"]


def redate(src: Path, dest: Path, time: str) -> Path:
    run = load_run(src)
    result = run.result.model_copy(update={"provenance": run.result.provenance.model_copy(update={"time": time})})
    write_run(dest, result, run.generations, run.judgments, run.rubric, run.manifest, run.probe, run.style)
    return dest


def test_duplicates_keep_the_most_trusted_run_then_the_first_the_board_saw_never_the_newest_date(board_runs,
                                                                                               tmp_path):
    """Finding 2: a forged run dated 2999 replaced an honest row; and a later run given first must not win."""
    board = board_file(lenient(board_runs["a"]), tmp_path)
    honest = redate(board_runs["a"], tmp_path / "subs1" / "z-honest", "2025-01-01T00:00:00+00:00")
    site = tmp_path / "site"
    first = build(board, site, runs=[board_runs["b"]], submissions=tmp_path / "subs1")
    model = load_run(honest).result.model
    honest_id = row_of(first, model)["run_id"]
    # the next build: the forgery (dated 2999, and first in path order) and the honest run, the board's ledger kept
    subs2 = tmp_path / "subs2"
    shutil.copytree(honest, subs2 / "z-honest")
    redate(board_runs["a"], subs2 / "a-forged", "2999-01-01T00:00:00+00:00")
    second = build(board, site, runs=[board_runs["b"]], submissions=subs2)
    assert row_of(second, model)["run_id"] == honest_id
    (reason,) = [r["reason"] for r in second["rejected"] if "a-forged" in r["run"]]
    assert reason.startswith("duplicate: the same model") and "both self-reported; the board saw it first: " \
        "arrival #1, this one #2" in reason
    ledger = json.loads((site / "ledger.json").read_text())
    assert [a["seq"] for a in ledger["runs"].values()] == [0, 1, 2] and ledger["signature"]
    # a maintainer run of the same model arrives last and still takes the row: trust comes before arrival
    third = build(board, site, runs=[board_runs["b"], board_runs["a"]], submissions=subs2)
    kept = row_of(third, model)
    assert kept["trust"] == "maintainer" and kept["run_id"] != honest_id


def verify(run: Path, board: str, out: Path, refs: list[str], tiny_models, cache, *extra: str) -> int:
    return main(["leaderboard", "verify", str(run), "--board", board, *(a for r in refs for a in ("--reference", r)),
                 *judge_args(tiny_models, cache), *extra, "--output", str(out)])


def test_verify_rejudges_every_comparison_the_board_requires(board_runs, two_refs, tiny_models, small_refs, tmp_path,
                                                             capsys):
    """Finding 3: a board requiring vs_direct was told "verified" for the anchor alone, then refused the run."""
    protocol = lenient(two_refs)
    assert protocol.comparisons == ("vs_direct",)
    board = board_file(protocol, tmp_path)
    cache = board_runs["cache"]
    out = tmp_path / "v"
    assert verify(two_refs, board, out, [str(small_refs["base"])], tiny_models, cache) == 2
    err = capsys.readouterr().err
    assert "the board requires ['vs_direct']: give --reference direct=FILE (the submission used" in err, err
    assert not out.exists()  # nothing judged
    # the wrong set for a comparison is another comparison: refused by its hash
    assert verify(two_refs, board, out, [str(small_refs["base"]), f"direct={small_refs['base']}"], tiny_models,
                  cache) == 2
    assert "--reference direct=" in (err := capsys.readouterr().err) and "reference_file_hash" in err
    assert verify(two_refs, board, out, [str(small_refs["base"]), f"direct={small_refs['direct']}"], tiny_models,
                  cache) == 0
    record = json.loads((out / "verification.json").read_text())
    assert record["status"] == "verified" and record["reasons"] == []
    assert sorted(record["comparisons"]) == ["vs_base", "vs_direct"]
    assert all(c["agree"] for c in record["comparisons"].values())
    # and the board admits the re-judged run as verified: no "lacks ['vs_direct']"
    built = build(board, tmp_path / "site", runs=[out])
    assert built["rejected"] == [] and [r["trust"] for r in built["rows"]] == ["verified"]
    assert not built["rows"][0]["anchor_only"]


def test_regeneration_gates_the_status(board_runs, tiny_models, small_refs, tmp_path, capsys):
    """Finding 4: replies written by another system, declared as model a, came out verified with 0 of 3 matching."""
    other = load_run(board_runs["b"])
    replies = tmp_path / "b-replies.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": g.dialogue_id, "response": g.response}) + "\n"
                               for g in other.generations))
    claimed = load_run(board_runs["a"]).result.provenance.systems["candidate"]
    impostor = tmp_path / "impostor"
    run_eval(EvalConfig(candidate=ModelSpec(str(replies), backend="replies"), declared=claimed,
                        judge=judge(tiny_models, board_runs["cache"]), output=impostor,
                        references={"base": small_refs["base"]}, limit=N))
    board = board_file(lenient(board_runs["a"]), tmp_path)
    out = tmp_path / "v"
    # a local model is regenerated from the maintainer's own copy, checked by fingerprint: never from the path the
    # submission names
    args = (impostor, board, out, [str(small_refs["base"])], tiny_models, board_runs["cache"], "--regenerate", "3",
            "--device", "cpu")
    assert verify(*args) == 2
    assert "give your own copy of that model with --model-dir DIR" in capsys.readouterr().err
    assert verify(*args, "--model-dir", str(tiny_models["direct"])) == 2
    assert "that folder is another model" in capsys.readouterr().err and not out.exists()
    code = verify(*args, "--model-dir", str(tiny_models["candidate"]))
    record = json.loads((out / "verification.json").read_text())
    regen = record["regeneration"]
    assert code == 1 and record["status"] == "disputed", record
    assert regen["n"] == 3 and regen["identical"] < 3 and regen["match_rate"] < 0.9
    assert regen["rule"] == "at least 90% of the regenerated replies identical to the submitted ones"
    assert record["comparisons"]["vs_base"]["agree"]  # the numbers alone agree: only regeneration disputes it
    assert any(r.startswith("regeneration: ") for r in record["reasons"])
    assert "disputed: regeneration" in capsys.readouterr().err
    # on the board a disputed run is not verified, says so, and shows the board's numbers rather than the submitter's
    redate(impostor, tmp_path / "subs" / "impostor", "2031-01-01T00:00:00+00:00")  # (another results.json)
    built = build(board, tmp_path / "site", runs=[out], submissions=tmp_path / "subs")
    (row,) = built["rows"]
    assert (row["trust"], row["disputed"], row["anchor_only"]) == ("self-reported", True, True)
    assert row["run_id"] == build_ids(out)  # the re-judged run, not the submission
    assert "the board re-judged it (disputed)" in refusal(built, tmp_path / "subs" / "impostor")
    assert "self-reported (disputed, vs anchor only)" in (tmp_path / "site" / "README.md").read_text()


def build_ids(folder: Path) -> str:
    from leaderboard.admit import run_id

    return run_id(load_run(folder))


@pytest.fixture
def verified(board_runs, tiny_models, small_refs, tmp_path) -> tuple[Path, str]:
    """Run a, re-judged and verified by the board (its record signed with this test's board key)."""
    board = board_file(lenient(board_runs["a"]), tmp_path)
    out = tmp_path / "verified"
    assert verify(board_runs["a"], board, out, [str(small_refs["base"])], tiny_models, board_runs["cache"]) == 0
    return out, board


def refusal(board: dict, folder: Path) -> str:
    (reason,) = [r["reason"] for r in board["rejected"] if r["run"] == str(folder)]
    return reason


def test_a_verification_record_is_bound_to_the_board_its_protocol_and_its_files(verified, board_runs, tmp_path,
                                                                              monkeypatch):
    """Finding 5: verification.json was an unsigned record anyone could compute, trusted by its folder alone."""
    out, board = verified
    assert build(board, tmp_path / "ok", runs=[out])["rows"][0]["trust"] == "verified"
    # made for another protocol (the same runs, another board): refused, naming the field
    other = lenient(board_runs["a"], name="another board")
    built = build(board_file(other, tmp_path), tmp_path / "other", runs=[board_runs["b"], out])
    assert refusal(built, out).startswith("its verification.json is not this board's record — protocol_hash: the "
                                          "record is for board protocol")
    # computed by hand (every field right, no signature)
    forged = tmp_path / "forged"
    shutil.copytree(out, forged)
    record = json.loads((forged / "verification.json").read_text())
    (forged / "verification.json").write_text(json.dumps({k: v for k, v in record.items() if k != "signature"}))
    assert "— signature: it does not match" in refusal(build(board, tmp_path / "f", runs=[board_runs["b"], forged]),
                                                      forged)
    # copied next to other files: they are not the files it was signed for
    copied = tmp_path / "copied"
    shutil.copytree(board_runs["c"], copied)
    shutil.copy(out / "verification.json", copied / "verification.json")
    assert "files_sha256: generations.jsonl, judgments.jsonl" in refusal(
        build(board, tmp_path / "c", runs=[board_runs["b"], copied]), copied)
    # inside a submission it is the submitter's word: not read at all
    shutil.copytree(out, tmp_path / "subs" / "x")
    sub = build(board, tmp_path / "s", submissions=tmp_path / "subs")
    assert [r["trust"] for r in sub["rows"]] == ["self-reported"]
    assert not (tmp_path / "s" / "results" / sub["rows"][0]["run_id"] / "verification.json").exists()
    # another key (another maintainer, or a CI job without the board's secret)
    monkeypatch.setenv("EMPATHY_BOARD_KEY", "k" * 40)
    assert "— key_id: the record was signed with key" in refusal(
        build(board, tmp_path / "k", runs=[board_runs["b"], out]), out)


def test_a_model_name_never_becomes_a_path_outside_the_board(board_runs, tmp_path):
    """Finding 5: a model named '..' gave run id '../<digest>', and the build wrote outside results/."""
    import dataclasses

    from harness.core.errors import HarnessError
    from leaderboard.admit import run_id, safe_run_id
    from leaderboard.build import build_board, write_site
    from leaderboard.trust import board_key

    run = load_run(board_runs["a"])
    hub = run.result.provenance.systems["candidate"].model.model_copy(update={"kind": "hub"})
    systems = {**run.result.provenance.systems,
               "candidate": run.result.provenance.systems["candidate"].model_copy(update={"model": hub})}
    for name in ("..", "../../etc", ".hidden", "a/../../b", "..a", "/abs", "", "-", "org/..", "C:\\x", "x" * 300,
                 "org/" + "y" * 300):
        result = run.result.model_copy(update={
            "model": name, "provenance": run.result.provenance.model_copy(update={"systems": systems})})
        rid = run_id(dataclasses.replace(run, result=result))
        assert safe_run_id(rid) and ".." not in rid and not rid.startswith((".", "/", "-")), (name, rid)
        assert all(len(part) <= 100 for part in rid.split("/"))  # a file name the file system takes
    # and the writer refuses an id that is not a folder under results/, writing nothing
    protocol = lenient(board_runs["a"])
    built = build_board([board_runs["a"]], protocol, key=board_key(create=True))
    evil = dataclasses.replace(built, entries=[dataclasses.replace(built.entries[0], run_id="../escape")])
    with pytest.raises(HarnessError, match="is not a folder under results/"):
        write_site(evil, protocol, tmp_path / "site", key=board_key())
    assert not (tmp_path / "escape").exists() and not (tmp_path / "site").exists()


def test_only_leaderboard_controls_makes_a_control(board_runs, tiny_models, small_refs, tmp_path):
    """Finding 5: any submitter could add an official-looking control row by naming a file control-<kind>.jsonl."""
    replies = tmp_path / "control-null_model.jsonl"
    replies.write_text("".join(json.dumps({"dialogue_id": g.dialogue_id, "response": "spoof"}) + "\n"
                               for g in load_run(board_runs["a"]).generations))
    spoof = tmp_path / "subs" / "spoof"
    run_eval(EvalConfig(candidate=ModelSpec(str(replies), backend="replies"), judge=judge(tiny_models,
                        board_runs["cache"]), output=spoof, references={"base": small_refs["base"]}, limit=N))
    board = board_file(lenient(board_runs["a"]), tmp_path)
    for how in ("submissions", "runs"):
        built = build(board, tmp_path / how, runs=[board_runs["a"], *([spoof] if how == "runs" else [])],
                      submissions=tmp_path / "subs" if how == "submissions" else None)
        assert [r["control"] for r in built["rows"]] == [None]
        assert "Control rows are made only by 'empathy leaderboard controls'" in refusal(built, spoof)
    # a real control's signed record, copied beside the spoof's files, vouches for nothing
    controls = tmp_path / "controls"
    assert main(["leaderboard", "controls", "--board", board, "--reference", str(small_refs["base"]),
                 *judge_args(tiny_models, board_runs["cache"]), "--output", str(controls)]) == 0
    # and a replies file declares no model: there is nothing to verify
    assert verify(spoof, board, tmp_path / "v", [str(small_refs["base"])], tiny_models, board_runs["cache"]) == 2
    assert not (tmp_path / "v").exists()
    shutil.copy(controls / "null_model" / "control.json", spoof / "control.json")
    built = build(board, tmp_path / "copied", runs=[board_runs["a"], spoof, controls / "null_model"])
    assert "its control.json is not this board's record — files_sha256" in refusal(built, spoof)
    assert [r["control"] for r in built["rows"]] == [None, "null_model"]


def test_the_build_reads_no_file_a_submission_names(board_runs, tiny_models, small_refs, tmp_path):
    """Finding 5: a submission declaring a local model made the build read that path (a bad file crashed it)."""
    from harness.core.io import safetensors_parameters

    folder = tmp_path / "model"
    shutil.copytree(board_runs["root"] / "models" / "third", folder)
    run = tmp_path / "subs" / "local"
    run_eval(EvalConfig(candidate=ModelSpec(str(folder), device="cpu"), judge=judge(tiny_models, board_runs["cache"]),
                        output=run, references={"base": small_refs["base"]}, limit=N))
    recorded = load_run(run).manifest["candidate"]["parameters"]
    assert recorded == safetensors_parameters(folder) and recorded > 0  # counted when the run was made
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)  # what is at that path now: not the board's business
    assert safetensors_parameters(folder) is None
    built = build(board_file(lenient(board_runs["a"]), tmp_path), tmp_path / "site", submissions=tmp_path / "subs")
    assert [r["parameters"] for r in built["rows"]] == [recorded]


def test_submitter_strings_are_text_in_the_dataset_card(board_runs, tmp_path):
    """Finding 5: model names went raw into the card (HTML, '|', newlines); the page was escaped, the card not."""
    from leaderboard.build import build_board
    from leaderboard.card import dataset_card
    from leaderboard.trust import board_key

    protocol = lenient(board_runs["a"])
    board = build_board([board_runs["a"]], protocol, key=board_key(create=True)).board
    evil = "<script>alert(1)</script> | x\n## [click](javascript:alert(2)) ![i](http://e/x.png) **b** `c`"
    rows = [board.rows[0].model_copy(update={"model": evil})]
    card = dataset_card(board.model_copy(update={"rows": rows, "warnings": [f"control row ties {evil}"]}), protocol)
    assert "<script" not in card and "](" not in card.replace("\\](", "") and "![" not in card
    line = next(x for x in card.splitlines() if "alert(1)" in x and x.startswith("|"))
    assert len(re.findall(r"(?<!\\)\|", line)) == 7  # rank, model, BT, BT style-controlled, win rate, trust: six cells
    assert "\n## " not in card.split("| rank |")[1]  # no heading injected by a newline


def test_a_rating_of_exactly_zero_is_not_sorted_last():
    from leaderboard.build import board_order
    from leaderboard.models import Interval, Row

    def row(name: str, bt: float | None) -> Row:
        return Row(model=name, model_fingerprint="0" * 16, bt=Interval(value=bt), judge="j", date="d",
                   harness_version="v", trust="maintainer", run_id=name)

    rows = [row("none", None), row("zero", 0.0), row("neg", -3.0), row("pos", 5.0)]
    assert [r.model for r in board_order(rows)] == ["pos", "zero", "neg", "none"]


def test_a_self_reported_model_is_never_linked_to_by_another_runs_reference(board_runs, two_refs, tmp_path):
    """Review of the fix: the maintainer's run whose reference is model b must not tie b's self-reported row (and its
    own verdicts) into the rating — the link would carry b's submitted numbers into the maintainer model's rating."""
    from leaderboard.build import battles, build_board
    from leaderboard.trust import board_key

    protocol = lenient(board_runs["a"])
    key = board_key(create=True)
    shutil.copytree(board_runs["b"], tmp_path / "subs" / "b")
    as_submission = build_board([board_runs["a"], two_refs], protocol, untrusted=[tmp_path / "subs"], key=key)
    b_id = next(e.run_id for e in as_submission.entries if e.trust == "self-reported")
    fights = battles(as_submission.entries, protocol)
    assert {(f.a, f.b) for f in fights if b_id in (f.a, f.b)} == {(b_id, "anchor")}
    # the same run b made by the maintainer: then the maintainer's third-vs-b verdicts are a battle
    own = build_board([board_runs["a"], two_refs, board_runs["b"]], protocol, key=key)
    third = next(e.run_id for e in own.entries if e.run.path == two_refs)
    assert (third, b_id) in {(f.a, f.b) for f in battles(own.entries, protocol)}


def test_a_copy_of_a_maintainer_run_among_the_submissions_does_not_lower_it(board_runs, tmp_path):
    """Review of the fix: a merged copy of a published run under submissions/ downgraded it in the ledger."""
    board = board_file(lenient(board_runs["a"]), tmp_path)
    site = tmp_path / "site"
    first = build(board, site, runs=[board_runs["a"], board_runs["b"]])
    a_id = row_of(first, load_run(board_runs["a"]).result.model)["run_id"]
    shutil.copytree(site / "results" / a_id, tmp_path / "subs" / "copy")  # byte for byte the board's own run
    for _ in range(2):  # and again from the ledger that build signed
        again = build(board, site, runs=[board_runs["b"]], submissions=tmp_path / "subs")
        assert row_of(again, load_run(board_runs["a"]).result.model)["trust"] == "maintainer"
        assert json.loads((site / "ledger.json").read_text())["runs"][a_id]["trust"] == "maintainer"


def test_a_malformed_manifest_or_a_long_name_is_a_refusal_or_a_safe_id_not_a_crash(board_runs, tmp_path):
    sub = tmp_path / "subs" / "odd"
    shutil.copytree(board_runs["c"], sub)
    manifest = json.loads((sub / "manifest.json").read_text())
    (sub / "manifest.json").write_text(json.dumps({**manifest, "candidate": "oops"}))
    built = build(board_file(lenient(board_runs["a"]), tmp_path), tmp_path / "site", runs=[board_runs["a"]],
                  submissions=tmp_path / "subs")
    odd = [r for r in built["rows"] if r["trust"] == "self-reported"]
    assert len(odd) == 1 and odd[0]["parameters"] is None


def test_a_build_without_the_boards_key_is_refused_and_a_ledger_not_signed_by_it_too(board_runs, tmp_path,
                                                                                   monkeypatch, capsys):
    """Review of the fix: a build on another machine (or CI without the secret) made a fresh key and signed a
    ledger nobody could check, turning every published maintainer run self-reported."""
    from leaderboard.trust import key_file

    board = board_file(lenient(board_runs["a"]), tmp_path)
    site = tmp_path / "site"
    build(board, site, runs=[board_runs["a"]])
    signed_with = json.loads((site / "ledger.json").read_text())["key_id"]
    key_file().unlink()
    args = ["leaderboard", "build", "--board", board, "--runs", str(board_runs["a"]), "--n-boot", "20", "--output",
            str(site)]
    capsys.readouterr()
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"is signed with board key {signed_with!r}, and this machine has no board key: set EMPATHY_BOARD_KEY" in err
    assert not key_file().exists()  # no key was made behind the maintainer's back
    monkeypatch.setenv("EMPATHY_BOARD_KEY", "another-key-" * 4)
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is not this board's record (key_id: the record was signed with key" in err and "--reset-ledger" in err
    assert main([*args, "--reset-ledger"]) == 0  # the maintainer's own word: a new record
    assert json.loads((site / "ledger.json").read_text())["key_id"] != signed_with
