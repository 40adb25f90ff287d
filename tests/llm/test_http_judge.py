"""The OpenAI-compatible judge backend against real servers on 127.0.0.1.

``transformers serve`` (transformers[serving]) runs the tiny scripted judge on CPU; a real aiohttp proxy in front
of it injects 429s, 500s, stalls, truncated JSON and dropped connections. Only the ``top_logprobs`` parsing is
fed hand-written JSON, because ``transformers serve`` does not return log-probabilities (vLLM/OpenAI do, and
no such server can run here).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.resources import bundled_dialogues_path
from harness.core.settings import JudgeSettings
from harness.core.urls import chat_completions_url
from harness.data.sources import load_jsonl
from harness.judge.judge import Judge, PairItem, RubricItem, open_judge
from harness.llm.base import NoAnswer
from harness.llm.cache import JudgeCache
from harness.llm.client import LLMClient
from harness.llm.openai import (
    OpenAIBackend,
    backoff_delay,
    label_probs_from_logprobs,
    retry_after_seconds,
)
from tests.servers import FAULTS, FaultProxy, Serve, free_port


def pair_items(n: int, start: int = 0) -> list[PairItem]:
    dialogues = load_jsonl(bundled_dialogues_path())[start : start + n]
    return [PairItem(d, "vs_base", "cand", "base", f"I'm so sorry about {d.situation[:30]}", "ok") for d in dialogues]


def settings(url: str, model: Path, cache: Path, **kw) -> JudgeSettings:
    base = {"model": str(model), "backend": "openai", "base_url": url, "cache_dir": str(cache), "concurrency": 4,
            "timeout_s": 10.0, "max_retries": 3, "retry_backoff_s": 0.05}
    return JudgeSettings(**{**base, **kw})


def summary(judgments) -> list[tuple]:
    return [(j.dialogue_id, j.outcome, tuple(v.raw for v in j.verdicts)) for j in judgments]


# -- units (no server) -----------------------------------------------------------------------------------------


def test_url_forms():
    assert chat_completions_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("https://x/v1/chat/completions") == "https://x/v1/chat/completions"
    with pytest.raises(HarnessError, match="not an http"):
        chat_completions_url("127.0.0.1:8000")


def test_retry_after_and_backoff():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    rng = random.Random(0)
    delays = [backoff_delay(3, 0.5, 60, None, rng) for _ in range(500)]
    assert 0 <= min(delays) and max(delays) <= 4.0 and max(delays) > 3.0  # full jitter over [0, 0.5·2³]
    assert all(backoff_delay(0, 0.5, 60, 2.5, rng) >= 2.5 for _ in range(50))  # Retry-After is a floor
    assert backoff_delay(10, 1, 8, None, random.Random(1)) <= 8  # capped


def test_label_probs_from_top_logprobs():
    # vLLM / OpenAI response shape (hand-written: no server here returns logprobs)
    content = [
        {"token": "Ver", "logprob": -0.01, "top_logprobs": []},
        {"token": "dict", "logprob": -0.01, "top_logprobs": []},
        {"token": ":", "logprob": -0.01, "top_logprobs": []},
        {"token": " B", "logprob": -0.5, "top_logprobs": [
            {"token": " B", "logprob": -0.5}, {"token": " A", "logprob": -1.2}, {"token": "A", "logprob": -3.0},
            {"token": " C", "logprob": -2.0}, {"token": " The", "logprob": -4.0}]},
    ]
    import math

    p = label_probs_from_logprobs(content, ("A", "B", "C"), "Verdict:")
    mass = {"A": math.exp(-1.2) + math.exp(-3.0), "B": math.exp(-0.5), "C": math.exp(-2.0)}
    total = sum(mass.values())
    assert p == pytest.approx({**{k: v / total for k, v in mass.items()}, "_mass": min(1.0, total)})
    # the labels' share of the next token is kept: here the model mostly wanted to write something else
    unsure = [{"token": " B", "logprob": -2.5, "top_logprobs": [{"token": " B", "logprob": -2.5},
                                                                {"token": " The", "logprob": -0.1}]}]
    assert label_probs_from_logprobs(unsure, ("A", "B", "C"), "Verdict:")["_mass"] == pytest.approx(math.exp(-2.5))
    # a label word inside prose (not at the verdict position) is not a verdict
    prose = [{"token": "I", "logprob": -1, "top_logprobs": []}, {"token": " think", "logprob": -1},
             {"token": " A", "logprob": -1, "top_logprobs": [{"token": " A", "logprob": -1}]}]
    assert label_probs_from_logprobs(prose, ("A", "B", "C"), "Verdict:") == {}
    # bare answer "A" is read
    assert label_probs_from_logprobs([{"token": "A", "logprob": 0.0, "top_logprobs": []}], ("A", "B"), "Verdict:") == {
        "A": 1.0, "B": 0.0, "_mass": 1.0}


def test_api_key_required_for_openai_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(HarnessError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o")
    OpenAIBackend("local", "http://127.0.0.1:9/v1").close()  # local servers need no key


def test_unreachable_server_is_a_clear_error(tmp_path, scripted_judge):
    port = free_port()
    judge = open_judge(settings(f"http://127.0.0.1:{port}/v1", scripted_judge, tmp_path, max_retries=1))
    with pytest.raises(HarnessError, match="did not answer a probe request: connection failed"):
        judge.judge_pairs(pair_items(1))
    judge.backend.close()


# -- against transformers serve ------------------------------------------------------------------------------


def test_real_server_judges_and_rerun_is_free(tmp_path, scripted_judge, model_server):
    judge = open_judge(settings(model_server.url, scripted_judge, tmp_path))
    items = pair_items(8)
    judgments = judge.judge_pairs(items)
    rubric = judge.score_rubric([RubricItem(it.dialogue, "cand", it.candidate_response) for it in items[:3]])
    stats = judge.backend.stats()
    judge.backend.close()
    # transformers serve returns no top_logprobs: logits was asked, generate was used, and the identity says so
    fp = judge.fingerprint
    assert fp.requested_mode == "logits" and fp.mode == "generate" and fp.logprobs_probe is False
    assert fp.model.kind == "served" and fp.model.base_url == model_server.url.rstrip("/")
    assert "no top_logprobs" in (judge.mode_note or "")
    # the scripted judge always says 'A': candidate wins shown first, reference wins shown first → a tie
    assert [j.outcome for j in judgments] == ["tie"] * 8
    assert all(r.scores == {"cognitive": 3.0, "affective": 3.0, "compassionate": 3.0} for r in rubric)
    assert stats["requests"] == 1 + 16 + 9 and stats["retries"] == 0 and stats["failed_items"] == 0

    again = open_judge(settings(model_server.url, scripted_judge, tmp_path))
    assert summary(again.judge_pairs(items)) == summary(judgments)
    assert again.calls == 0 and again.cache.hits == 16 and not again.backend.loaded  # no probe, no request
    assert again.fingerprint == fp

    # another endpoint is another judge: the same server under another name misses every cached verdict
    other_url = model_server.url.replace("127.0.0.1", "localhost")
    moved = open_judge(settings(other_url, scripted_judge, tmp_path))
    assert summary(moved.judge_pairs(items)) == summary(judgments)
    assert moved.calls == 16 and moved.fingerprint.fingerprint != fp.fingerprint
    moved.backend.close()

    # a larger token budget is another judge too (generate mode)
    longer = open_judge(settings(model_server.url, scripted_judge, tmp_path, max_new_tokens=120))
    longer.judge_pairs(items[:2])
    assert longer.calls == 4 and longer.fingerprint.max_new_tokens == 120
    longer.backend.close()


def test_logprobs_probe_is_part_of_the_identity_and_expires(tmp_path, scripted_judge, model_server, monkeypatch):
    """The server's top_logprobs capability is re-probed after PROBE_TTL_S: a restarted server may differ."""
    import harness.llm.client as client

    first = open_judge(settings(model_server.url, scripted_judge, tmp_path))
    first.judge_pairs(pair_items(1))
    assert first.backend.stats()["requests"] == 1 + 2  # the probe + two orders
    first.backend.close()
    within = open_judge(settings(model_server.url, scripted_judge, tmp_path))
    within.resolve_mode()
    assert not within.backend.loaded  # the probe's answer is still trusted: no request at all
    later = time.time() + client.PROBE_TTL_S + 60
    monkeypatch.setattr(client.time, "time", lambda: later)
    expired = open_judge(settings(model_server.url, scripted_judge, tmp_path))
    assert expired.fingerprint.logprobs_probe is False
    assert expired.backend.loaded and expired.backend.stats()["requests"] == 1  # asked again
    expired.backend.close()


def test_server_killed_mid_run_then_restarted(tmp_path, scripted_judge):
    """(a) Kill the server mid-run: answered verdicts stay cached; after a restart the re-run asks only the rest
    and its results equal an uninterrupted run's."""
    items = pair_items(30)
    server = Serve(scripted_judge, log=tmp_path / "serve.log").start()
    cache = tmp_path / "interrupted"
    judge = open_judge(settings(server.url, scripted_judge, cache, concurrency=1, max_retries=1))
    db = cache / "judge-cache.sqlite"

    def kill_after_some_answers() -> None:
        while True:
            time.sleep(0.01)
            if db.exists():
                with sqlite3.connect(db) as con:
                    if con.execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= 12:
                        server.kill()
                        return

    watcher = threading.Thread(target=kill_after_some_answers)
    watcher.start()
    first = judge.judge_pairs(items)
    watcher.join()
    judge.backend.close()
    answered = sum(1 for j in first for v in j.verdicts if v.winner is not None)
    failed = [v for j in first for v in j.verdicts if v.winner is None]
    assert 10 <= answered < 60 and len(failed) == 60 - answered
    assert all("connection failed" in (v.unscored_reason or "") for v in failed)
    assert all(j.unscored_reason for j in first if j.outcome is None)

    restarted = Serve(scripted_judge, port=server.port, log=tmp_path / "serve.log").start()
    try:
        rerun = open_judge(settings(restarted.url, scripted_judge, cache, concurrency=1))
        second = rerun.judge_pairs(items)
        assert rerun.calls == len(failed)  # only what was not answered before
        assert rerun.backend.stats()["requests"] == len(failed)
        assert rerun.cache.hits == answered
        rerun.backend.close()
        clean = open_judge(settings(restarted.url, scripted_judge, tmp_path / "uninterrupted"))
        reference = clean.judge_pairs(items)
        clean.backend.close()
    finally:
        restarted.stop()
    assert summary(second) == summary(reference)
    assert all(j.outcome == "tie" for j in second)


def test_fault_proxy_every_item_judged_or_unscored_with_reason(tmp_path, scripted_judge, model_server, monkeypatch):
    """(b) 429 (Retry-After), 500, stalls, truncated JSON, dropped connections: nothing lost or duplicated."""
    items = pair_items(20)
    poison = items[7].dialogue.situation  # requests about this dialogue always get a 500

    poisoned: set[str] = set()

    def choose(key: str, attempt: int, raw: bytes) -> str | None:
        if poison.encode() in raw:
            poisoned.add(key)
            return "500"
        if b"Say A." in raw:  # the capability probe
            return None
        return FAULTS[int(key, 16) % 6] if attempt == 0 and int(key, 16) % 6 < len(FAULTS) else None

    monkeypatch.setenv("EMPATHY_TEST_JUDGE_KEY", "sk-test-0123456789abcdef")
    proxy = FaultProxy(model_server.url, choose, stall_s=3.0, retry_after="1").start()
    try:
        s = settings(proxy.url, scripted_judge, tmp_path, timeout_s=1.5, max_retries=2, concurrency=8,
                     api_key_env="EMPATHY_TEST_JUDGE_KEY")
        judge = open_judge(s)
        judgments = judge.judge_pairs(items)
        stats = judge.backend.stats()
        judge.backend.close()
        assert set(proxy.faults) == set(FAULTS)  # every kind of fault was injected
        assert proxy.auth == {"Bearer sk-test-0123456789abcdef"}  # the key is sent, in the header only
        # nothing lost, nothing duplicated
        assert [j.dialogue_id for j in judgments] == [it.dialogue.id for it in items]
        for j in judgments:
            if j.dialogue_id == items[7].dialogue.id:
                assert j.outcome is None and "HTTP 500" in j.unscored_reason and "gave up after 3 attempts" in j.unscored_reason
            else:
                assert j.outcome == "tie", j.unscored_reason
        # each answered request reached the model once (malformed bodies were re-asked: that is a retry, not a dup)
        assert stats["failed_items"] == 2 and stats["retries"] >= sum(proxy.faults.values()) - 6
        with sqlite3.connect(tmp_path / "judge-cache.sqlite") as con:
            assert con.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 38 + 1  # 19 pairs × 2 + the probe
        # Retry-After: 1 was honoured: the retry of a 429'd request came ≥ 1 s later
        # (the poison item's 500s are retried after the plain backoff: its keys are left out, whatever their hash)
        waits = [t[1] - t[0] for k, t in proxy.times.items()
                 if len(t) > 1 and int(k, 16) % 6 == 0 and k not in poisoned]
        assert waits and min(waits) >= 0.95

        # the faults stop: a re-run asks only the poison item's two orders, and it is judged now
        proxy.choose = lambda *_: None
        rerun = open_judge(s)
        again = rerun.judge_pairs(items)
        assert rerun.calls == 2 and all(j.outcome == "tie" for j in again)
        rerun.backend.close()
    finally:
        proxy.stop()


def test_no_answer_is_not_cached(tmp_path):
    """A NoAnswer from any backend leaves the item unscored and uncached (mock backend: no server needed)."""

    class Failing:
        name, model_id, revision = "failing", "m", None

        def label_probs(self, requests):
            yield list(range(len(requests))), [NoAnswer("HTTP 503 (gave up after 6 attempts)")] * len(requests)

        def close(self):
            pass

    judge = Judge(client=LLMClient(backend=Failing(), mode="logits", cache=JudgeCache(tmp_path / "c.sqlite")))
    (j,) = judge.judge_pairs(pair_items(1))
    assert j.outcome is None and "HTTP 503" in j.unscored_reason and len(judge.cache) == 0


def test_lm_eval_metadata_reaches_the_http_judge_settings():
    from harness.core.settings import task_settings_from_metadata

    s = task_settings_from_metadata(
        {"judge": "served-judge", "judge_backend": "openai", "judge_concurrency": 16, "judge_timeout_s": 30,
         "judge_max_retries": 2}, env={"EMPATHY_JUDGE_BASE_URL": "http://127.0.0.1:8000/v1"})
    j = s.judge
    assert (j.backend, j.base_url, j.concurrency, j.timeout_s, j.max_retries) == (
        "openai", "http://127.0.0.1:8000/v1", 16, 30.0, 2)
    with pytest.raises(HarnessError, match="concurrency"):
        task_settings_from_metadata({"judge_concurrency": 0}, env={})


def test_cli_rejects_bad_http_judge_options(tmp_path, capsys):
    from harness.cli.main import main

    code = main(["eval", "--model", "m", "--reference", "base=x.json", "--judge-backend", "openai",
                 "--judge-concurrency", "0", "--output", str(tmp_path)])
    assert code == 2 and "--judge-concurrency: Input should be greater than or equal to 1" in capsys.readouterr().err
    code = main(["eval", "--model", "m", "--reference", "base=x.json", "--judge-backend", "opena",
                 "--output", str(tmp_path)])
    assert code == 2 and "did you mean 'openai'" in capsys.readouterr().err


def test_served_requests_share_a_byte_identical_prefix(tmp_path, scripted_judge, model_server):
    """What lets vLLM's automatic prefix caching / SGLang's radix cache hit: on the wire, every request carries the
    same system message, every pairwise prompt the same instruction block, both orders and both comparisons of one
    dialogue the same text through the dialogue, and the three rubric prompts of one reply the same text through
    the reply."""
    import json

    bodies: list[dict] = []

    def record(key: str, attempt: int, raw: bytes) -> None:  # pass every request through, keep its body
        bodies.append(json.loads(raw))
        return None

    proxy = FaultProxy(model_server.url, record).start()
    try:
        judge = open_judge(settings(proxy.url, scripted_judge, tmp_path, concurrency=2))
        items = pair_items(3)
        judge.judge_pairs(items + [PairItem(it.dialogue, "vs_direct", "cand", "direct", it.candidate_response,
                                            "Oh. That happens.") for it in items])
        judge.score_rubric([RubricItem(it.dialogue, "cand", it.candidate_response) for it in items])
        judge.backend.close()
    finally:
        proxy.stop()
    chats = [b["messages"] for b in bodies if "Say A." not in json.dumps(b)]  # without the capability probe
    assert len(chats) == 3 * 2 * 2 + 3 * 3
    assert len({json.dumps(c[0], sort_keys=True) for c in chats}) == 1 and chats[0][0]["role"] == "system"
    users = [c[1]["content"] for c in chats]
    pairwise = [u for u in users if "<<<RESPONSE A>>>" in u]
    rubric = [u for u in users if "<<<REPLY>>>" in u]
    assert len({u.split("Situation:")[0] for u in pairwise}) == 1  # one instruction block, byte for byte
    assert len({u.split("Situation:")[0] for u in rubric}) == 1
    for it in items:
        mine = [u for u in pairwise if it.dialogue.utterance.strip() in u]
        assert len(mine) == 4 and len({u.split("<<<RESPONSE A>>>")[0] for u in mine}) == 1
        dims = [u for u in rubric if it.dialogue.utterance.strip() in u]
        assert len(dims) == 3 and len({u.split("The dimension to rate:")[0] for u in dims}) == 1
        assert len({u.split("The dimension to rate:")[1] for u in dims}) == 3  # only the tail differs
