"""Candidates and judges behind a real OpenAI-compatible server (``transformers serve`` on 127.0.0.1)."""

from __future__ import annotations

import json

from harness.cli.main import main
from harness.llm.family import family_overlap_warning, model_family
from tests.servers import FaultProxy

SECRET = "sk-test-do-not-leak-4242"


def test_model_family_from_config_and_name(tiny_models):
    assert model_family(str(tiny_models["judge"])) == ("qwen", "config model_type 'qwen2'")
    assert model_family("meta-llama/Llama-3.2-1B-Instruct")[0] == "llama"
    assert model_family("mistralai/Mixtral-8x7B-Instruct-v0.1")[0] == "mistral"
    assert model_family("Qwen/Qwen2.5-7B-Instruct")[0] == "qwen"
    assert model_family("gpt-4o")[0] == "gpt"
    assert model_family("my-org/empathy-model")[0] is None
    warn = family_overlap_warning("Qwen/Qwen2.5-7B-Instruct", {"candidate": "Qwen/Qwen2.5-0.5B-Instruct",
                                                               "teacher": "meta-llama/Llama-3.1-8B-Instruct"})
    assert len(warn) == 1 and "candidate Qwen/Qwen2.5-0.5B-Instruct" in warn[0] and "'qwen' family" in warn[0]
    assert family_overlap_warning("gpt-4o", {"candidate": "Qwen/Qwen2.5-0.5B-Instruct"}) == []


def test_eval_with_served_candidate_and_http_judge(tmp_path, tiny_models, small_refs, scripted_judge, model_server,
                                                   monkeypatch, capsys):
    """`empathy eval --model-backend openai-chat …` through lm-eval's local-chat-completions, judged over HTTP
    with an API key from the environment; the key must appear in no output file and no log line."""
    monkeypatch.setenv("EMPATHY_TEST_JUDGE_KEY", SECRET)
    proxy = FaultProxy(model_server.url, lambda *_: None).start()  # fault-free: records the Authorization header
    out, cache = tmp_path / "out", tmp_path / "cache"
    try:
        code = main([
            "eval", "--model", str(tiny_models["candidate"]), "--model-backend", "openai-chat",
            "--base-url", model_server.url, "--reference", f"base={small_refs['base']}", "--limit", "6",
            "--judge", str(scripted_judge), "--judge-backend", "openai", "--judge-base-url", proxy.url,
            "--judge-api-key-env", "EMPATHY_TEST_JUDGE_KEY", "--judge-concurrency", "4",
            "--output", str(out), "--cache-dir", str(cache),
        ])
    finally:
        proxy.stop()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert proxy.auth == {f"Bearer {SECRET}"}
    result = json.loads((out / "results.json").read_text())
    assert result["vs_base"]["n_scored"] == 6 and result["vs_base"]["tie_rate"] == 1.0
    assert result["rubric"]["affective"]["mean"] == 3.0
    assert any("'qwen' family" in w and "candidate" in w for w in result["warnings"])
    assert any("no top_logprobs" in w for w in result["warnings"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["candidate"]["backend"] == "local-chat-completions"
    assert manifest["judge"]["http"]["endpoint"] == proxy.url + "/chat/completions"
    assert manifest["judge"]["mode"] == "generate" and manifest["judge"]["requested_mode"] == "logits"
    gens = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 6 and all(g["prompt"].startswith('[{"role": "user"') for g in gens)
    # the key is nowhere: output files, cache, console
    for path in [*out.rglob("*"), *cache.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in captured.out + captured.err
