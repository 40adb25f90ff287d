"""Tiny random models built in-process, for the offline demo, the tests and the benchmarks.

A byte-level BPE tokenizer is trained on the bundled dialogues and prompt files, given a ChatML chat template,
and paired with a 2-layer random Qwen2 model; both are saved with ``save_pretrained`` so that every consumer
loads them with the real ``from_pretrained`` code path. Their replies and verdicts are noise: they exercise
the machinery, not empathy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.resources import bundled_dialogues_path, prompts_dir

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


#: The prompt files the tiny tokenizer learns from: a fixed list, so that adding a prompt file does not change every
#: tiny model (and every figure a test pins on them). Words of later prompts are split into known pieces.
TOKENIZER_PROMPTS = ("generation/default.yaml", "judge/listener.yaml", "judge/pairwise.yaml", "judge/probe.yaml",
                     "judge/rubric.yaml", "teacher/default.yaml")


def _corpus() -> list[str]:
    lines = bundled_dialogues_path().read_text(encoding="utf-8").splitlines()
    for name in TOKENIZER_PROMPTS:
        lines.extend((prompts_dir() / name).read_text(encoding="utf-8").splitlines())
    return lines


def build_tokenizer(out_dir: Path, *, vocab_size: int = 1200, chat_template: bool = True) -> None:
    """Train a byte-level BPE tokenizer and save it as a transformers tokenizer in ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    if chat_template:
        fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)


def build_tiny_model(
    out_dir: Path | str,
    *,
    seed: int = 0,
    chat_template: bool = True,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Build and save a tiny random Qwen2 causal LM with its tokenizer; returns the folder."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out, chat_template=chat_template)
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        # A zero embedding gives the end-of-turn token logit 0 while others spread around it, so a random
        # model rarely stops at once and its replies are not all empty.
        model.model.embed_tokens.weight[tokenizer.eos_token_id].zero_()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    return out


#: What the scripted judge writes to every prompt: a pairwise verdict and a rubric score in one line.
SCRIPTED_ANSWER = "Verdict: A Score 3"


def build_scripted_judge(out_dir: Path | str, *, answer: str = SCRIPTED_ANSWER, seed: int = 0) -> Path:
    """A tiny Qwen2 that answers every chat prompt with ``answer`` — a judge whose verdicts are readable.

    Attention and MLP outputs are zeroed, so the model is a bigram table: the embedding of each token on the
    answer's path is set to an orthonormal direction and the (untied) output head maps it to the next token.
    Random judges write noise that never parses; this one always says the first reply wins, so tests of
    transport, retries and caching can tell a judged item from an unscored one.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    out = build_tiny_model(out_dir, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(out)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # the untied head is 'missing' from the tied checkpoint: expected, set below
    try:
        model = AutoModelForCausalLM.from_pretrained(out, tie_word_embeddings=False)
    finally:
        hf_logging.set_verbosity(verbosity)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    last = tokenizer.encode(str(prompt), add_special_tokens=False)[-1]
    path = [int(last), *tokenizer.encode(answer, add_special_tokens=False), int(tokenizer.eos_token_id)]
    sources = path[:-1]
    if len(set(sources)) != len(sources):
        raise ValueError(f"the scripted answer {answer!r} repeats a token; a bigram model cannot say it")
    hidden = model.config.hidden_size
    if len(sources) > hidden:
        raise ValueError("the scripted answer is longer than the hidden size")
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(hidden, hidden, generator=gen))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for k, (src, dst) in enumerate(zip(sources, path[1:], strict=True)):
            model.model.embed_tokens.weight[src] = basis[:, k] * hidden**0.5
            model.lm_head.weight[dst] += basis[:, k] * 10.0
    model.config.tie_word_embeddings = False
    model.save_pretrained(out)
    return out


def build_tiny_reward_model(
    out_dir: Path | str,
    *,
    seed: int = 0,
    num_labels: int = 1,
    labels: Sequence[str] | None = None,
    favour: Mapping[str, float] | None = None,
    head: Sequence[float] | None = None,
    hidden_size: int = 64,
) -> Path:
    """Build and save a tiny Qwen2 sequence-classification model (a reward model) with its tokenizer.

    Without ``favour`` the weights are random (rewards are noise). With ``favour`` (word → weight in [-1, 1]) the
    model is a bag of words: the first layer attends uniformly over the text pair and reads each token's weight,
    every other block adds nothing, so output k is ``10 · head[k] · a / √(1 + a²)`` with ``a`` the mean weight of the
    pair's tokens (unlisted tokens weigh 0) — replies with favoured words get higher rewards, for real.

    Args:
        out_dir: The folder to write.
        seed: Seeds the random weights.
        num_labels: Outputs of the head (1: a reward; 3 with the dimension names: rubric scores).
        labels: Their names (``config.id2label``); default ``LABEL_k``, or the rubric dimensions for 3 outputs.
        favour: Words and their weights (every token of the word, with and without a leading space).
        head: Each output's factor on the favour feature (default 1 for every output).
        hidden_size: Width of the model (at least 8).
    """
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification

    from harness.core.prompts import DIMENSIONS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out, chat_template=False)
    tokenizer = AutoTokenizer.from_pretrained(out)
    names = list(labels or (DIMENSIONS if num_labels == 3 else [f"LABEL_{k}" for k in range(num_labels)]))
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=False, initializer_range=0.2,
        id2label=dict(enumerate(names)), label2id={n: k for k, n in enumerate(names)},
    )
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(config)  # type: ignore[no-untyped-call]
    if favour is not None:
        _bag_of_words(model, tokenizer, favour, head or [1.0] * num_labels, seed)
    model.save_pretrained(out)
    return out


def _bag_of_words(model: Any, tokenizer: Any, favour: Mapping[str, float], head: Sequence[float], seed: int) -> None:
    """Set the weights of :func:`build_tiny_reward_model`'s bag-of-words reward model (see there)."""
    import torch

    hidden = model.config.hidden_size
    weight = torch.zeros(model.config.vocab_size)
    for word, w in favour.items():
        for variant in (word, " " + word):
            weight[tokenizer.encode(variant, add_special_tokens=False)] = max(-1.0, min(1.0, float(w)))
    gen = torch.Generator().manual_seed(seed)
    rest = torch.randn(model.config.vocab_size, hidden, generator=gen)
    rest[:, 0] = rest[:, -1] = 0.0  # coordinate 0 carries the token's weight, the last one the layer's reading
    rest = rest / rest.norm(dim=1, keepdim=True)
    with torch.no_grad():
        # every embedding has norm √hidden, so each RMSNorm leaves it as it is
        embed = hidden**0.5 * (weight[:, None] * torch.eye(hidden)[0] + (1 - weight[:, None] ** 2).sqrt() * rest)
        model.model.embed_tokens.weight.copy_(embed)
        for n, layer in enumerate(model.model.layers):
            attn = layer.self_attn
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj):  # zero queries: uniform attention
                proj.weight.zero_()
                if proj.bias is not None:
                    proj.bias.zero_()
            layer.mlp.down_proj.weight.zero_()
            if n == 0:  # value 0 of head 0 reads the weight; the output writes the mean weight to the last coordinate
                attn.v_proj.weight[0, 0] = hidden**-0.5
                attn.o_proj.weight[hidden - 1, 0] = hidden**0.5
        model.score.weight.zero_()
        for k, factor in enumerate(head):
            model.score.weight[k, hidden - 1] = 10.0 * factor * hidden**-0.5
