"""Generation decoding is enforced: the ``decoding`` a caller passes is what lm-eval decodes with."""

from harness.core.records import Decoding
from harness.data.selection import run_dialogues
from harness.generate.replies import ModelSpec, default_decoding, generate


def test_the_decoding_argument_is_applied(tiny_models):
    from transformers import AutoTokenizer

    dialogues, _ = run_dialogues("bundled", 3)
    spec = ModelSpec(str(tiny_models["candidate"]), device="cpu")
    short = Decoding(max_gen_toks=3, do_sample=False, temperature=0.0, until=default_decoding().until)
    gens = generate(spec, dialogues, dataset="bundled", decoding=short, system="c")
    full = generate(spec, dialogues, dataset="bundled", decoding=default_decoding(), system="c")
    tok = AutoTokenizer.from_pretrained(tiny_models["candidate"])
    for s, f in zip(gens, full, strict=True):
        # greedy: 3 tokens are the start of the 160-token reply (the task YAML's budget, unused before the fix)
        assert f.raw_response.startswith(s.raw_response) and len(s.raw_response) < len(f.raw_response)
        assert len(tok.encode(f.raw_response, add_special_tokens=False)) > 10


def test_the_environment_does_not_narrow_a_run(tiny_models, monkeypatch):
    """EMPATHY_LIMIT is an lm-eval fallback; `empathy eval` generates exactly its own dialogues."""
    monkeypatch.setenv("EMPATHY_LIMIT", "2")
    dialogues, _ = run_dialogues("bundled", 4)
    gens = generate(ModelSpec(str(tiny_models["candidate"]), device="cpu"), dialogues, dataset="bundled",
                    decoding=Decoding(max_gen_toks=2, until=default_decoding().until), system="c")
    assert [g.dialogue_id for g in gens] == [d.id for d in dialogues]
