"""Board loading: every run checked in full once, in parallel or not, and remembered by the content of its files."""

from __future__ import annotations

import re
import shutil

import pytest

import leaderboard.loading as loading
from harness.core.errors import HarnessError
from harness.evaluate.runs import load_run
from leaderboard.loading import BoardRun, load_board_runs
from leaderboard.protocol import protocol_from_run


@pytest.fixture
def runs(board_runs, tmp_path):
    out = {}
    for name in ("a", "b", "c"):
        shutil.copytree(board_runs[name], tmp_path / "runs" / name)
        out[name] = tmp_path / "runs" / name
    return out


@pytest.fixture
def spy(monkeypatch):
    """Counts the full checks (the real load_run runs: this only counts its calls)."""
    calls: list[str] = []
    real = loading.load_run

    def counted(path):
        calls.append(path.name)
        return real(path)

    monkeypatch.setattr(loading, "load_run", counted)
    return calls


def protocol_hash(run) -> str:
    return protocol_from_run(load_run(run).result, name="t", min_scored=1, max_flip_rate=1.0, min_label_mass=0.0,
                             require_judge_ok=False).hash


def test_a_rebuild_rereads_only_new_or_changed_runs(runs, spy, tmp_path):
    cache, ph = tmp_path / "cache", protocol_hash(runs["a"])
    paths = [runs["a"], runs["b"]]
    first = load_board_runs(paths, ph, cache)
    assert sorted(spy) == ["a", "b"] and all(isinstance(r, BoardRun) for r in first.values())
    spy.clear()
    again = load_board_runs([*paths, runs["c"]], ph, cache)
    assert spy == ["c"]  # a and b from the cache
    for p in paths:
        assert again[p].result == first[p].result and again[p].outcomes == first[p].outcomes
        assert again[p].files_sha256 == first[p].files_sha256
    a = again[runs["a"]]
    assert set(a.outcomes) == set(a.result.comparisons)
    assert sum(len(v) for v in a.outcomes.values()) == sum(s.n_scored for s in a.result.comparisons.values())
    # another protocol, or another copy of the same files elsewhere: the key is the content and the protocol
    spy.clear()
    load_board_runs(paths, "other-protocol", cache)
    assert sorted(spy) == ["a", "b"]
    spy.clear()
    shutil.copytree(runs["a"], tmp_path / "moved")
    moved = load_board_runs([tmp_path / "moved"], ph, cache)
    assert spy == [] and moved[tmp_path / "moved"].path == tmp_path / "moved"


def test_a_tampered_file_misses_the_cache_and_is_refused(runs, spy, tmp_path):
    cache, ph = tmp_path / "cache", protocol_hash(runs["a"])
    load_board_runs([runs["a"]], ph, cache)
    judgments = runs["a"] / "judgments.jsonl"
    text = judgments.read_text()
    edited = re.sub(r'"candidate_words": (\d+)', lambda m: f'"candidate_words": {int(m[1]) + 1}', text, count=1)
    assert edited != text
    judgments.write_text(edited)
    spy.clear()
    got = load_board_runs([runs["a"]], ph, cache)[runs["a"]]
    assert spy == ["a"] and isinstance(got, HarnessError) and "are not the ones judged" in str(got)
    # and a refused run is never cached: fixing the file brings back the cached check
    judgments.write_text(text)
    spy.clear()
    assert isinstance(load_board_runs([runs["a"]], ph, cache)[runs["a"]], BoardRun) and spy == []


def test_a_broken_cache_entry_is_checked_again(runs, spy, tmp_path):
    cache, ph = tmp_path / "cache", protocol_hash(runs["a"])
    load_board_runs([runs["a"]], ph, cache)
    (entry,) = list(cache.glob("*.pickle"))
    entry.write_bytes(b"not a pickle")
    spy.clear()
    assert isinstance(load_board_runs([runs["a"]], ph, cache)[runs["a"]], BoardRun) and spy == ["a"]


def test_worker_processes_give_the_same_runs(runs, tmp_path, monkeypatch):
    ph = protocol_hash(runs["a"])
    bad = tmp_path / "bad"
    shutil.copytree(runs["b"], bad)
    (bad / "generations.jsonl").write_text("")
    paths = [runs["a"], runs["b"], runs["c"], bad]
    serial = load_board_runs(paths, ph, None, workers=1)
    monkeypatch.setattr(loading, "PARALLEL_FROM", 2)
    parallel = load_board_runs(paths, ph, tmp_path / "cache", workers=2)
    for p in paths[:3]:
        assert isinstance(parallel[p], BoardRun) and parallel[p] == serial[p]
    assert isinstance(parallel[bad], HarnessError) and str(parallel[bad]) == str(serial[bad])
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 3  # written by the workers


def test_cache_entries_are_signed_with_the_board_key(runs, spy, tmp_path):
    cache, ph = tmp_path / "cache", protocol_hash(runs["a"])
    load_board_runs([runs["a"]], ph, cache, key=b"k" * 32)
    spy.clear()
    load_board_runs([runs["a"]], ph, cache, key=b"k" * 32)
    assert spy == []
    load_board_runs([runs["a"]], ph, cache, key=b"other key " * 4)  # another key: the entry does not hold
    assert spy == ["a"]
    (entry,) = [p for p in cache.glob("*.pickle")]
    raw = entry.read_bytes()
    entry.write_bytes(raw[:32] + raw[32:-1] + bytes([raw[-1] ^ 1]))  # a forged body under the old signature
    spy.clear()
    assert isinstance(load_board_runs([runs["a"]], ph, cache, key=b"other key " * 4)[runs["a"]], BoardRun)
    assert spy == ["a"]
