"""validate-judge --experts: quadratic κ against sklearn and by hand, the paper's rows and the judge's by the same
code, the verdict, LLM and score_texts judges, and bad folders as one-line errors. Every file here is written by
the test (invented conversations in the layout of Kumar et al. 2025's EmpatheticDialogues data)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from harness.cli.main import main
from harness.judge.judge import Judge
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient
from harness.score.agreement import quadratic_kappa
from harness.score.experts import (
    RATERS,
    ExpertDataError,
    expert_median,
    expert_report,
    load_experts,
    paper_rows,
    print_experts,
    verdict,
)
from harness.score.listener_rating import quintile_ratings, round_half_up
from harness.score.validity import validate_judge

CONVERSATIONS = ["conv_id", "utterance_idx", "context", "prompt", "speaker_idx", "utterance", "selfeval", "tags"]


def care(i: int) -> int:
    """How caring conversation i's listener is, 1-5."""
    return 1 + (i * 7) % 5


def write_experts(root: Path, n: int = 25, seed: int = 0) -> Path:
    """Expert-folder layout: n conversations (4-5 turns, listener caring at level care(i)); experts = care ± 1,
    gpt/claude as '3.0' floats with an unnamed index column, gemini with a quoted multi-line conversation column,
    crowd as half-point means."""
    rng = np.random.default_rng(seed)
    ids = [f"dlg{i}-c{2 * i}" for i in range(n)]
    rows = []
    for i, cid in enumerate(ids):
        texts = [f"Something happened_comma_ day {i}.", f"Listener line {i}: care level {care(i)}.",
                 "It was a lot.", "I hear you."] + (["Thanks."] if i % 3 == 0 else [])
        for k in reversed(range(len(texts))):  # rows out of order: utterance_idx decides
            rows.append({"conv_id": cid, "utterance_idx": k + 1, "context": "sad", "prompt": f"Day {i}_comma_ a story.",
                         "speaker_idx": 100 + i if k % 2 == 0 else 900 + i, "utterance": texts[k], "selfeval": "",
                         "tags": ""})
    (root / "original_data").mkdir(parents=True)
    with (root / "original_data" / "sample_empatheticdialogues.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CONVERSATIONS)
        w.writeheader()
        w.writerows(rows)
    ann = root / "annotations" / "empatheticdialogues"
    ann.mkdir(parents=True)
    for rater in RATERS:
        noise = rng.integers(-1, 2, size=n)
        values = np.clip([care(i) for i in range(n)] + noise, 1, 5)
        with (ann / f"{rater}_ratings.csv").open("w", newline="") as f:
            w = csv.writer(f)
            if rater in ("gpt", "claude"):
                w.writerow(["", "conv_id", "empathy", "relevance", "fluency"])
                w.writerows([k, cid, f"{v:.1f}", "4.0", "4.0"] for k, (cid, v) in enumerate(zip(ids, values, strict=True)))
            elif rater == "gemini":
                w.writerow(["conv_id", "full_conversation", "empathy", "relevance", "fluency"])
                w.writerows([cid, "Seeker: a\n Supporter: b", int(v), 4, 4] for cid, v in zip(ids, values, strict=True))
            elif rater == "crowd":
                w.writerow(["conv_id", "empathy", "fluency", "relevance"])
                w.writerows([cid, f"{max(1.0, v - 0.5 * (k % 2)):.1f}", 4, 4] for k, (cid, v) in enumerate(zip(ids, values, strict=True)))
            else:
                w.writerow(["conv_id", "empathy", "relevance", "fluency"])
                w.writerows([cid, int(v), 4, 4] for cid, v in zip(ids, values, strict=True))
    return root


def test_quadratic_kappa_by_hand():
    assert quadratic_kappa([1, 2, 3], [1, 2, 3]) == 1.0
    assert quadratic_kappa([1, 5], [5, 1]) == -1.0
    assert quadratic_kappa([1, 2], [2, 2]) == 0.0
    assert quadratic_kappa([1, 2, 3], [1, 3, 3]) == pytest.approx(0.8)  # 1 − (1/48) / (5/48)
    assert math.isnan(quadratic_kappa([3, 3], [3, 3])) and math.isnan(quadratic_kappa([], []))
    with pytest.raises(ValueError, match="not one of"):
        quadratic_kappa([6], [1])
    with pytest.raises(ValueError, match="integers"):
        quadratic_kappa([2.5], [1])


def test_quadratic_kappa_matches_sklearn(tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    data = load_experts(write_experts(tmp_path, n=50, seed=4))
    rng = np.random.default_rng(1)
    columns = [[int(data.ratings[r][c.conv_id]) for c in data.conversations] for r in ("expert1", "expert2", "gemini")]
    columns += [list(rng.integers(1, 6, size=50)), list(rng.integers(2, 5, size=50))]
    for a in columns:
        for b in columns:
            expected = metrics.cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5])
            assert quadratic_kappa(a, b) == pytest.approx(expected, abs=1e-12)


def test_the_folder_is_read_as_laid_out(tmp_path):
    data = load_experts(write_experts(tmp_path))
    assert len(data.conversations) == 25 and set(data.ratings) == set(RATERS)
    c = data.conversations[3]
    assert c.situation == "Day 3, a story." and c.turns[0] == ("speaker", "Something happened, day 3.")
    assert [role for role, _ in c.turns] == ["speaker", "listener", "speaker", "listener", "speaker"]
    assert data.ratings["gpt"][c.conv_id] == float(int(data.ratings["gpt"][c.conv_id]))
    med = expert_median(data)
    assert med[c.conv_id] == sorted(data.ratings[e][c.conv_id] for e in ("expert1", "expert2", "expert3"))[1]
    assert round_half_up(2.5) == 3 and round_half_up(3.49) == 3 and round_half_up(4.5) == 5


def test_paper_rows_are_sklearns_numbers(tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    data = load_experts(write_experts(tmp_path, n=40))
    rows = {(r["a"], r["b"]): r for r in paper_rows(data, seed=0)}
    assert list(rows) == [("expert1", "expert2"), ("expert2", "expert3"), ("expert3", "expert1"),
                          ("experts", "gemini"), ("experts", "gpt"), ("experts", "claude"), ("experts", "crowd")]
    ids = [c.conv_id for c in data.conversations]
    med = expert_median(data)
    for (a, b), row in rows.items():
        x = [int(med[i]) if a == "experts" else int(data.ratings[a][i]) for i in ids]
        y = [math.floor(data.ratings[b][i] + 0.5) for i in ids]  # the crowd's halves round up
        assert row["kappa"] == pytest.approx(metrics.cohen_kappa_score(x, y, weights="quadratic", labels=[1, 2, 3, 4, 5]))
        assert row["kappa_ci_low"] <= row["kappa"] <= row["kappa_ci_high"] and row["n"] == 40
    assert rows[("expert1", "expert2")]["paper_kappa"] == 0.51 and rows[("experts", "gpt")]["paper_kappa"] is None


def test_verdict_thresholds():
    paper = [{"a": a, "b": b, "kappa": k} for a, b, k in (
        ("expert1", "expert2", 0.5), ("expert2", "expert3", 0.6), ("expert3", "expert1", 0.55),
        ("experts", "gemini", 0.35), ("experts", "gpt", 0.2), ("experts", "claude", 0.25), ("experts", "crowd", 0.1))]
    assert verdict(0.5, paper)["label"] == "like an expert"
    assert verdict(0.49, paper)["label"] == verdict(0.2, paper)["label"] == "like the paper's LLMs"
    assert verdict(0.1, paper)["label"] == "like the crowd"
    assert verdict(0.09, paper)["label"] == verdict(math.nan, paper)["label"] == "not at all"
    paper[-1]["kappa"] = -0.2
    assert verdict(0.0, paper)["label"] == "not at all"  # κ must be positive to agree at all
    line = verdict(0.3, paper)["line"]
    assert line.startswith("agrees with experts like the paper's LLMs: κ vs the expert median 0.300 (experts")


class CareJudge:
    """Mock backend (no model): reads 'care level N' from the conversation and answers it — or, in logits mode,
    puts half the mass on N and half on N + 1 (expected N + ½, rounded up to N + 1)."""

    name, model_id, revision = "scripted", "care-judge", None
    seen: list[str] = []

    def _level(self, user: str) -> int:
        CareJudge.seen.append(user)
        return int(re.search(r"care level (\d)", user.split("<<<CONVERSATION>>>")[1]).group(1))  # type: ignore[union-attr]

    def generate(self, requests, max_new_tokens):
        yield list(range(len(requests))), [f"Caring enough.\nScore: {self._level(r.user)}" for r in requests]

    def label_probs(self, requests):
        out = []
        for r in requests:
            n = self._level(r.user)
            out.append({str(n): 0.5, str(min(n + 1, 5)): 0.5, "_mass": 0.9} if n < 5 else {"5": 1.0, "_mass": 0.9})
        yield list(range(len(requests))), out

    def close(self):
        pass


def test_an_llm_judge_that_reads_the_conversation(tmp_path):
    folder = write_experts(tmp_path / "experts")
    judge = Judge(client=LLMClient(backend=CareJudge(), mode="generate", cache=JudgeCache(tmp_path / "c.sqlite")))
    report, rated = expert_report(judge, folder, seed=0)
    assert [r.rating for r in rated] == [care(i) for i in range(25)] and report["n_unscored"] == 0
    prompt = CareJudge.seen[-1]
    assert "Situation, in the speaker's words: Day 24, a story." in prompt
    assert f"Speaker: Something happened, day 24.\nListener: Listener line 24: care level {care(24)}." in prompt
    assert report["judge_rating"]["prompt_version"] == "listener-v1" and len(report["judge_rating"]["prompt_hash"]) == 16
    rows = {r["b"]: r for r in report["judge_rows"]}
    assert list(rows) == ["expert1", "expert2", "expert3", "experts"]
    data = load_experts(folder)
    assert rows["expert1"]["kappa"] == pytest.approx(
        quadratic_kappa([care(i) for i in range(25)], [int(data.ratings["expert1"][c.conv_id]) for c in data.conversations]))
    assert report["verdict"]["kappa"] == rows["experts"]["kappa"] > 0.5
    out = Console(file=io.StringIO(), width=200)
    print_experts(report, out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "judge – experts" in text and "expert1 – expert2" in text and report["verdict"]["line"] in text


def test_logits_mode_rounds_the_expected_score_half_up(tmp_path):
    folder = write_experts(tmp_path / "experts")
    judge = Judge(client=LLMClient(backend=CareJudge(), mode="logits", cache=JudgeCache(tmp_path / "c.sqlite")))
    _, rated = expert_report(judge, folder, seed=0)
    for i, r in enumerate(rated):
        assert r.score == (care(i) + 0.5 if care(i) < 5 else 5.0) and r.rating == min(care(i) + 1, 5)


class LengthScorer:
    """A score_texts judge (like a reward model): the score is the reply's length."""

    name = "length-scorer"

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def score_texts(self, pairs):
        self.pairs = list(pairs)
        return [None if i == 0 else float(len(reply) + i) for i, (_, reply) in enumerate(pairs)]


def test_a_score_texts_judge_is_mapped_by_its_own_quintiles(tmp_path):
    assert quintile_ratings([float(x) for x in range(10)]) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintile_ratings([1.0, 1.0, 2.0]) == [1, 1, 4]  # equal scores, equal ratings
    folder = write_experts(tmp_path / "experts", n=21)
    scorer = LengthScorer()
    v = validate_judge(scorer, None, tmp_path / "out", experts=folder)  # type: ignore[arg-type]
    context, reply = scorer.pairs[3]
    assert context.startswith("Situation: Day 3, a story.\nSpeaker: Something happened, day 3.\nListener: ")
    assert reply == "Listener line 3: care level 2.\nI hear you."
    e = v["experts"]
    assert e["n_unscored"] == 1 and e["judge_rating"]["kind"] == "score_texts" and "quintile" in e["judge_rating"]["rule"]
    assert "pairwise_agreement" not in v and v["judge"]["mode"] == "score_texts"
    lines = [json.loads(x) for x in (tmp_path / "out" / "expert_ratings.jsonl").read_text().splitlines()]
    assert sorted(x["rating"] for x in lines if x["rating"]) == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4
    written = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert "care level" not in written and "Something happened" not in written  # no conversation text is kept


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: (d / "annotations/empatheticdialogues/expert2_ratings.csv").unlink(),
     "expert2_ratings.csv: missing. --experts wants a folder laid out like"),
    (lambda d: (d / "original_data/sample_empatheticdialogues.csv").unlink(),
     "sample_empatheticdialogues.csv: missing. --experts wants a folder laid out like"),
    (lambda d: _edit(d / "annotations/empatheticdialogues/crowd_ratings.csv", "dlg4-c8,", "dlg99-c1,"),
     "crowd_ratings.csv: its conv ids do not match the 25 conversations of"),
    (lambda d: _edit(d / "annotations/empatheticdialogues/expert3_ratings.csv", "dlg4-c8,4,", "dlg4-c8,6,"),
     "expert3_ratings.csv:6: empathy is '6'; ratings are numbers from 1 to 5"),
    (lambda d: _edit(d / "annotations/empatheticdialogues/expert1_ratings.csv", "dlg4-c8,4,", "dlg4-c8,high,"),
     "expert1_ratings.csv:6: empathy is 'high'; ratings are numbers from 1 to 5"),
    (lambda d: _edit(d / "annotations/empatheticdialogues/gpt_ratings.csv", "empathy", "warmth"),
     "gpt_ratings.csv: no column empathy"),
])
def test_a_bad_folder_is_one_clear_line(tmp_path, capsys, damage, message):
    folder = write_experts(tmp_path / "experts", seed=2)
    _fix_row(folder)
    damage(folder)
    with pytest.raises(ExpertDataError, match=re.escape(message)):
        load_experts(folder)
    assert main(["validate-judge", "--experts", str(folder), "--judge", "x", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _fix_row(folder: Path) -> None:
    """Give conversation dlg4 the rating 4 in expert1 and expert3 (row 6), so the damage above is predictable."""
    for rater in ("expert1", "expert3"):
        path = folder / f"annotations/empatheticdialogues/{rater}_ratings.csv"
        path.write_text(re.sub(r"dlg4-c8,[^\n]*", "dlg4-c8,4,4,4", path.read_text()))


def test_the_cli_needs_ratings_or_experts(tmp_path, capsys):
    assert main(["validate-judge", "--judge", "x", "--output", str(tmp_path / "o")]) == 2
    assert "validate-judge needs --human-ratings FILE.csv" in capsys.readouterr().err
    assert main(["validate-judge", "--experts", str(tmp_path / "none"), "--judge", "x", "--output", str(tmp_path / "o")]) == 2
    assert f"--experts {tmp_path / 'none'}: no such folder" in capsys.readouterr().err
    folder = write_experts(tmp_path / "experts")
    assert main(["validate-judge", "--experts", str(folder), "--prior-ratings", str(tmp_path / "p.csv"), "--judge", "x",
                 "--output", str(tmp_path / "o")]) == 2
    assert f"--prior-ratings {tmp_path / 'p.csv'}: it goes with --human-ratings" in capsys.readouterr().err


def test_validate_judge_experts_cli_on_tiny_model(tmp_path, tiny_models, capsys):
    folder = write_experts(tmp_path / "experts")
    out = tmp_path / "out"
    code = main(["validate-judge", "--experts", str(folder), "--judge", str(tiny_models["judge"]), "--judge-device",
                 "cpu", "--judge-min-label-mass", "0", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    v = json.loads((out / "validity.json").read_text())
    assert v["experts"]["n_conversations"] == 25 and v["experts"]["n_unscored"] == 0
    assert v["experts"]["verdict"]["label"] in ("like an expert", "like the paper's LLMs", "like the crowd", "not at all")
    assert "agreement with experts" in captured.out and "agrees with experts" in captured.out
    assert not (out / "pairs.jsonl").exists()


def test_a_judge_that_scores_texts_is_never_prompted(tmp_path):
    """A reward-model judge is a Judge with score_texts (harness.judge.reward): it is rated through score_texts."""

    class ScoringJudge(Judge):
        def score_texts(self, pairs):
            return [float(len(reply)) for _, reply in pairs]

    class Silent:
        name, model_id, revision = "scripted", "silent", None

        def generate(self, requests, max_new_tokens):
            raise AssertionError("a scoring judge answers no prompts")

        def close(self):
            pass

    judge = ScoringJudge(client=LLMClient(backend=Silent(), mode="generate", cache=JudgeCache(tmp_path / "c.sqlite")))
    report, rated = expert_report(judge, write_experts(tmp_path / "experts"), seed=0)
    assert report["judge_rating"]["kind"] == "score_texts" and all(r.rating for r in rated)
