"""The board's style-controlled column end to end: real tiny runs → build → leaderboard.json / CSV / page / card;
schema-2 runs refuse the column (not filled), unknown features in a protocol are errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.evaluate.runs import load_run
from harness.score.style import FEATURES
from leaderboard.build import build_board, write_site
from leaderboard.models import Board
from leaderboard.protocol import DEFAULT_STYLE_CONTROL, load_protocol, protocol_from_run, save_protocol
from leaderboard.trust import board_key


def _protocol(run: Path, **kw):
    return protocol_from_run(load_run(run).result, name="style board", min_scored=3, max_flip_rate=1.0,
                             min_label_mass=0.0, require_judge_ok=False, **kw)


def _schema_2(run: Path, out: Path) -> Path:
    """A copy of ``run`` as a run made before style profiles (results.json schema 2, no style.jsonl)."""
    shutil.copytree(run, out)
    data = json.loads((out / "results.json").read_text())
    data["schema_version"] = 2
    del data["style"]
    (out / "results.json").write_text(json.dumps(data))
    (out / "style.jsonl").unlink()
    assert load_run(out).result.style is None
    return out


def test_a_board_carries_the_style_controlled_column(board_runs, tmp_path):
    protocol = _protocol(board_runs["a"])
    assert protocol.style_control == DEFAULT_STYLE_CONTROL
    built = build_board([board_runs[k] for k in "abc"], protocol, key=board_key(create=True), n_boot=200)
    board = built.board
    sc = board.style_control
    assert sc is not None and sc.refused is None and sc.features == DEFAULT_STYLE_CONTROL
    assert [c.feature for c in sc.coefficients] == list(DEFAULT_STYLE_CONTROL)
    assert sc.fingerprint == load_run(board_runs["a"]).result.style.fingerprint  # type: ignore[union-attr]
    words = next(c for c in sc.coefficients if c.feature == "words")
    assert words.varies and words.sd > 0 and words.low <= words.points <= words.high
    ranked = [r for r in board.rows if r.control is None]
    assert len(ranked) == 3
    for r in ranked:
        assert r.bt_style.value is not None and r.bt_style.low <= r.bt_style.value <= r.bt_style.high
        assert 1 <= (r.rank_style_low or 0) <= (r.rank_style_high or 0) <= 3
        assert set(r.style) == set(FEATURES)
    # each row's profile is its run's candidate profile
    for key in "abc":
        result = load_run(board_runs[key]).result
        row = next(r for r in board.rows if r.model_fingerprint ==
                   result.provenance.systems["candidate"].model.fingerprint)
        assert row.style["words"] == result.style.systems["candidate"]["words"].mean  # type: ignore[union-attr]

    site = tmp_path / "site"
    write_site(built, protocol, site, key=board_key())
    saved = Board.model_validate_json((site / "leaderboard.json").read_text())
    assert saved.schema_version == 3 and saved.style_control == sc
    with (site / "leaderboard.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"bt_style", "bt_style_ci_low", "rank_style_low", "style_words", "style_sympathy"} <= set(rows[0])
    assert float(rows[0]["bt_style"]) == pytest.approx(board.rows[0].bt_style.value)
    page = (site / "index.html").read_text()
    assert 'id="ranking"' in page and 'value="bt_style"' in page and 'data-key="bt_style"' in page
    assert 'id="style-coefficients"' in page and 'id="style-profile"' in page
    assert page.count('<th data-key="grade"') == 1  # every feature sortable in the profile table
    card = (site / "README.md").read_text()
    assert "| rank | model | BT | BT style-controlled |" in card
    assert "Style-controlled ratings hold words, list\\_items, bold" in card  # (markdown-escaped)


def test_schema_2_runs_refuse_the_style_column_with_a_clear_message(board_runs, tmp_path):
    old = _schema_2(board_runs["c"], tmp_path / "old-c")
    built = build_board([board_runs["a"], board_runs["b"], old], _protocol(board_runs["a"]),
                        key=board_key(create=True), n_boot=50)
    sc = built.board.style_control
    assert sc is not None and sc.coefficients == [] and sc.refused is not None
    old_id = next(e.run_id for e in built.entries if e.run.path == old)
    assert sc.refused.startswith(f"1 rated run(s) carry no style profile (results schema 2, made before style "
                                 f"profiles): {old_id} — evaluate them again")
    for row in built.board.rows:  # the raw column is there, the style column empty for every row (not filled)
        assert row.bt.value is not None and row.bt_style.value is None and row.rank_style_low is None
    assert next(r for r in built.board.rows if r.run_id == old_id).style == {}
    site = tmp_path / "site"
    write_site(built, _protocol(board_runs["a"]), site, key=board_key())
    assert "Style-controlled ratings not computed: 1 rated run(s) carry no style profile" in \
        (site / "index.html").read_text()
    # a board without style control says so, and keeps the protocol hash it had before the field existed
    plain = _protocol(board_runs["a"], style_control=None)
    assert build_board([board_runs["a"]], plain, key=board_key(), n_boot=0).board.style_control is None
    assert plain.hash == __import__("harness.core.io", fromlist=["short_hash"]).short_hash(
        plain.model_dump_json(exclude={"style_control"}))
    assert plain.hash != _protocol(board_runs["a"]).hash != _protocol(board_runs["a"], style_control=("words",)).hash


def test_unknown_style_features_are_errors(board_runs, tmp_path, capsys):
    protocol = _protocol(board_runs["a"])
    path = tmp_path / "board.yaml"
    save_protocol(protocol, path)
    path.write_text(path.read_text().replace("- sympathy", "- sympathie"))
    with pytest.raises(HarnessError, match=r"unknown style feature 'sympathie' \(did you mean 'sympathy'\?\)"):
        load_protocol(path)
    path.write_text(path.read_text().replace("- sympathie", "- words"))
    with pytest.raises(HarnessError, match="list each style feature once"):
        load_protocol(path)
    out = tmp_path / "new.yaml"
    code = main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "B", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--style-control", "words,lenght", "--output", str(out)])
    assert code == 2 and not out.exists()
    assert "unknown style feature 'lenght'" in capsys.readouterr().err
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "B", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--style-control", "words,questions", "--output", str(out)]) == 0
    assert load_protocol(out).style_control == ("words", "questions")
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "B", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--style-control", "none", "--output", str(out)]) == 0
    assert load_protocol(out).style_control is None


def test_the_style_column_uses_only_features_the_board_can_trust(board_runs):
    """Another phrase file's fingerprint, or anchor rows that differ from the other runs' (the anchor replies are
    one file: a difference means an edit), refuse the column, naming the runs."""
    import dataclasses

    from leaderboard.battles import rate

    protocol = _protocol(board_runs["a"])
    built = build_board([board_runs[k] for k in "abc"], protocol, key=board_key(create=True), n_boot=0)
    ranked = [e.run_id for e in built.entries if e.control is None]
    assert rate(built.entries, protocol, n_boot=0, seed=0, ranked=ranked).style_control.refused is None

    first, *rest = built.entries
    old_style = first.run.result.style.model_copy(update={"fingerprint": "0123456789abcdef"})
    older = dataclasses.replace(first, run=dataclasses.replace(
        first.run, result=first.run.result.model_copy(update={"style": old_style})))
    sc = rate([older, *rest], protocol, n_boot=0, seed=0, ranked=ranked).style_control
    assert sc.refused.startswith(f"1 rated run(s) were profiled with another style phrase file or code than this "
                                 f"harness's (fingerprint {load_run(board_runs['a']).result.style.fingerprint}): "
                                 f"{first.run_id} — ")

    last = rest[-1]
    edited = {name: arr.copy() for name, arr in last.run.style.items()}
    edited[protocol.anchor.comparison][0, 1, FEATURES.index("words")] += 40  # the anchor's first reply, longer
    forged = dataclasses.replace(last, run=dataclasses.replace(last.run, style=edited))
    rated = rate([first, *rest[:-1], forged], protocol, n_boot=0, seed=0, ranked=ranked)
    assert rated.style == {} and rated.raw  # the raw column stands
    assert rated.style_control.refused.startswith("1 rated run(s) carry style features of the anchor's replies that "
                                                  f"differ from the board's (one anchor reference file gives one set "
                                                  f"of features; edited?): {last.run_id} — ")
