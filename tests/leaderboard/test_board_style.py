"""The board's style-controlled column end to end: real tiny runs → build → leaderboard.json / CSV / page / card;
schema-2 runs refuse the column (not filled), unknown features in a protocol are errors."""

from __future__ import annotations

import csv
import html
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
    assert sc.refused.startswith(f"1 of the board's own run(s) carry no style profile (results schema 2, made before "
                                 f"style profiles): {old_id} — evaluate them again")
    for row in built.board.rows:  # the raw column is there, the style column empty for every row (not filled)
        assert row.bt.value is not None and row.bt_style.value is None and row.rank_style_low is None
    assert next(r for r in built.board.rows if r.run_id == old_id).style == {}
    site = tmp_path / "site"
    write_site(built, _protocol(board_runs["a"]), site, key=board_key())
    assert "Style-controlled ratings not computed: 1 of the board's own run(s) carry no style profile" in \
        html.unescape((site / "index.html").read_text())
    # a board without style control says so, and keeps the protocol hash it had before the field existed
    plain = _protocol(board_runs["a"], style_control=None)
    assert build_board([board_runs["a"]], plain, key=board_key(), n_boot=0).board.style_control is None
    assert plain.hash == __import__("harness.core.io", fromlist=["short_hash"]).short_hash(
        plain.model_dump_json(exclude={"style_control"}))
    assert plain.hash != _protocol(board_runs["a"]).hash != _protocol(board_runs["a"], style_control=("words",)).hash


def test_a_self_reported_run_without_style_is_left_out_not_able_to_switch_the_column_off(board_runs, tmp_path):
    subs = tmp_path / "subs"
    _schema_2(board_runs["c"], subs / "old-c")
    protocol = _protocol(board_runs["a"])
    built = build_board([board_runs["a"], board_runs["b"]], protocol, untrusted=[subs], key=board_key(create=True),
                        n_boot=50)
    sc = built.board.style_control
    old = next(e for e in built.entries if e.trust == "self-reported")
    assert sc is not None and sc.refused is None and len(sc.coefficients) == len(protocol.style_control)
    assert sc.excluded == {old.run_id: "carry no style profile (results schema 2, made before style profiles)"}
    rows = {r.run_id: r for r in built.board.rows}
    assert rows[old.run_id].bt.value is not None and rows[old.run_id].bt_style.value is None
    assert all(r.bt_style.value is not None for rid, r in rows.items() if rid != old.run_id and r.control is None)
    site = tmp_path / "site"
    write_site(built, protocol, site, key=board_key())
    assert f"Not in the style-controlled column: {old.run_id}" in (site / "index.html").read_text()


def test_style_differences_enter_the_fit_candidate_minus_reference(board_runs):
    """Orientation through rate(): with verdicts where the longer reply always wins, the length coefficient is
    positive, and a run whose replies are far longer loses rating points under style control."""
    import dataclasses

    import numpy as np

    from leaderboard.battles import rate

    protocol = _protocol(board_runs["a"], style_control=("words",))
    built = build_board([board_runs[k] for k in "abc"], protocol, key=board_key(create=True), n_boot=0)
    rng = np.random.default_rng(0)
    words = FEATURES.index("words")
    entries = []
    for k, entry in enumerate(built.entries):
        name = protocol.anchor.comparison
        style = {c: a.copy() for c, a in entry.run.style.items()}
        anchor_words = style[name][:, 1, words]
        factor = 2.5 + rng.random(len(anchor_words)) if k == 0 else 0.5 + rng.random(len(anchor_words))
        style[name][:, 0, words] = np.round(anchor_words * factor)
        outcomes = {**entry.run.outcomes, name: tuple(
            (d, 1.0 if mine > theirs else 0.0) for (d, _), mine, theirs in
            zip(entry.run.outcomes[name], style[name][:, 0, words], anchor_words, strict=True))}
        entries.append(dataclasses.replace(entry, run=dataclasses.replace(entry.run, style=style, outcomes=outcomes)))
    ranked = [e.run_id for e in entries]
    rated = rate(entries, protocol, n_boot=0, seed=0, ranked=ranked)
    (coefficient,) = rated.style_control.coefficients
    assert coefficient.feature == "words" and coefficient.points > 0
    padder = entries[0].run_id
    assert rated.style[padder].score < rated.raw[padder].score - 100


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
    one file: a difference means an edit), refuse the column when the run is the board's own, naming it."""
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
    assert sc.refused.startswith(f"1 of the board's own run(s) were profiled with another style phrase file or code "
                                 f"(this harness's fingerprint: "
                                 f"{load_run(board_runs['a']).result.style.fingerprint}): {first.run_id} — ")

    last = rest[-1]
    edited = {name: arr.copy() for name, arr in last.run.style.items()}
    edited[protocol.anchor.comparison][0, 1, FEATURES.index("words")] += 40  # the anchor's first reply, longer
    forged = dataclasses.replace(last, run=dataclasses.replace(last.run, style=edited))
    rated = rate([first, *rest[:-1], forged], protocol, n_boot=0, seed=0, ranked=ranked)
    assert rated.style == {} and rated.raw  # the raw column stands
    assert rated.style_control.refused.startswith(
        "1 of the board's own run(s) carry style features of the anchor's replies that differ from the board's (one "
        f"anchor reference file gives one set of features: edited?): {last.run_id} — ")
    # the same edit in a self-reported run only leaves that run out
    reported = dataclasses.replace(forged, trust="self-reported")
    rated = rate([first, *rest[:-1], reported], protocol, n_boot=0, seed=0, ranked=ranked)
    assert rated.style_control.refused is None and set(rated.style_control.excluded) == {last.run_id}
    assert last.run_id not in rated.style and first.run_id in rated.style


def test_echo_is_refused_where_it_cannot_be_recounted(board_runs):
    protocol = _protocol(board_runs["a"])
    assert protocol.dataset.spec == "bundled"
    assert protocol.model_copy(update={"style_control": ("words", "echo")}).style_control == ("words", "echo")
    data = json.loads(protocol.model_dump_json())
    data["dataset"]["spec"] = "ed:test"
    data["style_control"] = ["words", "echo"]
    with pytest.raises(ValueError, match=r"'echo' is recounted from a run's replies only on the bundled dialogues "
                                         r"\(this board's are 'ed:test'\)"):
        type(protocol).model_validate(data)
