"""Shared-prefix reuse for a local judge: each shared prompt prefix is computed once, its key/value cache reused.

Judge prompts repeat themselves: every prompt of one kind starts with the same system text and instructions (the
*global* prefix), and the prompts of one dialogue (both orders of a pair; the three rubric dimensions of one reply)
share the dialogue and more (a *group* prefix). The plan below tokenises every prompt once and splits it into

    global prefix (computed once per call) | group prefix (once per group) | suffix (once per prompt)

and the forward passes run on transformers' own cache objects (``DynamicCache``): the global prefix once at batch
1, the group prefixes of a batch as one batch on top of copies of it, then every suffix of the batch on top of its
group's rows. Rows of different lengths are padded *between* the shared part and their own tokens; the attention
mask hides the pads and explicit position ids (``cumsum(mask) - 1``) give every real token the position it has in
the unpadded prompt, so each verdict equals the plain full-prompt pass (the tests hold label probabilities within
1e-4 in float32). Only the last position's logits are projected onto the vocabulary (``logits_to_keep=1``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: A group is formed only when its members share at least this many tokens beyond the global prefix.
MIN_GROUP_TOKENS = 8


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Group:
    """Prompts that share ``prefix`` (tokens after the global prefix); ``members`` index the caller's requests."""

    prefix: list[int]
    members: list[int] = field(default_factory=list)


@dataclass
class Plan:
    """How a call's prompts are computed: the global prefix, then batches of groups."""

    global_prefix: list[int]
    batches: list[list[Group]]
    suffixes: dict[int, list[int]]

    def tokens_computed(self) -> int:
        """Real tokens that go through the model (each shared part counted once; pads not counted)."""
        return (len(self.global_prefix) + sum(len(g.prefix) for b in self.batches for g in b)
                + sum(len(s) for s in self.suffixes.values()))

    def _widths(self, batch: list[Group]) -> tuple[int, int]:
        """(group-prefix width, suffix width) of a batch once padded."""
        return (max(len(g.prefix) for g in batch),
                max(len(self.suffixes[m]) for g in batch for m in g.members))

    def positions_run(self) -> int:
        """Positions the model runs, pads included (what the compute actually costs)."""
        total = len(self.global_prefix)
        for batch in self.batches:
            g_width, s_width = self._widths(batch)
            total += len(batch) * g_width + sum(len(g.members) for g in batch) * s_width
        return total

    def longest_row(self) -> int:
        """The longest padded row of any batch: global prefix + group-prefix width + suffix width."""
        return len(self.global_prefix) + max((sum(self._widths(b)) for b in self.batches), default=0)

    def most_padded(self, batch: list[Group]) -> int:
        """The request of ``batch`` with the most pads between its shared part and its own tokens."""
        g_width, s_width = self._widths(batch)
        return max(((g_width - len(g.prefix)) + (s_width - len(self.suffixes[m])), m)
                   for g in batch for m in g.members)[1]


def plan_prefixes(encoded: Sequence[Sequence[int]], batch_size: int) -> Plan:
    """Split tokenised prompts into global prefix, groups and suffixes, and pack groups into batches.

    Every prompt keeps at least one token of its own (the position whose logits are read). Groups are runs of the
    prompts in lexicographic order (prompts sharing a long prefix are neighbours), chosen to save the most tokens
    (see :func:`_best_groups`); a group never holds more than ``batch_size`` prompts. Batches are filled with
    groups in order of suffix length (long first), so padding stays small.
    """
    if not encoded:
        return Plan([], [], {})
    if any(len(e) == 0 for e in encoded):
        raise ValueError("an empty prompt cannot be judged")
    order = sorted(range(len(encoded)), key=lambda i: list(encoded[i]))
    first, last = encoded[order[0]], encoded[order[-1]]
    g_len = min(common_prefix_len(first, last), min(len(e) for e in encoded) - 1)
    groups = _best_groups([encoded[i] for i in order], g_len, batch_size)
    groups = [(shared, [order[k] for k in members]) for shared, members in groups]
    built: list[Group] = []
    suffixes: dict[int, list[int]] = {}
    for shared, members in groups:  # a group shares ≥ MIN_GROUP_TOKENS beyond g_len; a single prompt, just g_len
        built.append(Group(prefix=list(encoded[members[0]][g_len:shared]), members=members))
        for m in members:
            suffixes[m] = list(encoded[m][shared:])
    built.sort(key=lambda g: -max(len(suffixes[m]) for m in g.members))
    batches: list[list[Group]] = []
    rows = 0
    for g in built:
        if not batches or rows + len(g.members) > batch_size:
            batches.append([])
            rows = 0
        batches[-1].append(g)
        rows += len(g.members)
    return Plan(list(first[:g_len]), batches, suffixes)


def _best_groups(seqs: Sequence[Sequence[int]], g_len: int, batch_size: int) -> list[tuple[int, list[int]]]:
    """Split sorted prompts into runs that save the most computed tokens: (shared length, member positions).

    A run of k prompts whose common prefix reaches ``shared`` tokens saves (k − 1) × (shared − global prefix)
    tokens; runs sharing fewer than :data:`MIN_GROUP_TOKENS` beyond the global prefix save nothing. Dynamic
    programming over the sorted order (O(n × batch size)) picks the best split — e.g. the three rubric prompts
    of one reply (sharing the dialogue and the reply) rather than all nine of a dialogue (sharing only the
    dialogue).
    """
    n = len(seqs)
    adjacent = [common_prefix_len(seqs[i], seqs[i + 1]) for i in range(n - 1)]
    best = [0] * (n + 1)
    choice = [1] * (n + 1)
    for end in range(1, n + 1):
        shared = len(seqs[end - 1]) - 1
        best[end], choice[end] = best[end - 1], 1
        for k in range(2, min(batch_size, end) + 1):
            start = end - k
            shared = min(shared, adjacent[start], len(seqs[start]) - 1)
            gain = shared - g_len
            if gain < MIN_GROUP_TOKENS:
                break  # a longer run only shares less
            if best[start] + (k - 1) * gain > best[end]:
                best[end], choice[end] = best[start] + (k - 1) * gain, k
    out: list[tuple[int, list[int]]] = []
    end = n
    while end > 0:
        k = choice[end]
        members = list(range(end - k, end))
        shared = min([len(seqs[m]) - 1 for m in members] + adjacent[end - k:end - 1]) if k > 1 else g_len
        out.append((shared, members))
        end -= k
    return out[::-1]


#: Layer kinds whose attention depends only on token order, which the padded layout keeps.
_FULL = "full_attention"
_SLIDING = "sliding_attention"


def reuse_blocker(config: Any, plan: Plan) -> str | None:
    """Why this plan cannot be run with reuse on this architecture, or None.

    A sliding window counts distance in cache slots, pads included: a padded row longer than the window would
    let a token see other tokens than in its unpadded prompt. Chunked, linear or recurrent layers are not
    handled at all.
    """
    text = config.get_text_config()
    kinds = set(getattr(text, "layer_types", None) or [])
    unknown = kinds - {_FULL, _SLIDING}
    if unknown:
        return f"layers of kind {', '.join(sorted(unknown))} are not supported by prefix reuse"
    window = getattr(text, "sliding_window", None)
    sliding = _SLIDING in kinds if kinds else bool(window) and getattr(text, "use_sliding_window", True)
    if sliding and window and plan.longest_row() > int(window):
        return (f"a padded row of {plan.longest_row()} tokens exceeds the model's sliding attention window "
                f"({window})")
    return None


def keeps_last_logits(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (every causal LM in transformers 5 does)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


class PrefixRunner:
    """Runs a :class:`Plan` on a transformers causal LM: last-position logits, or greedy generation."""

    def __init__(self, model: Any, pad_id: int, device: str) -> None:
        self.model, self.pad_id, self.device = model, pad_id, device
        self.keep = {"logits_to_keep": 1} if keeps_last_logits(model) else {}
        # transformers 5.2x names the cache argument `cache`; earlier releases `past_key_values`
        params = inspect.signature(model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"

    def global_cache(self, plan: Plan) -> Any:
        """The key/value cache of the global prefix (batch 1), or None when there is none."""
        import torch
        from transformers import DynamicCache

        if not plan.global_prefix:
            return None
        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([plan.global_prefix], device=self.device)
        self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                   **{self.cache_kw: cache}, **self.keep)
        return cache

    def _pad(self, seqs: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """Left-padded ids and mask (the pads sit between the shared part and each row's own tokens)."""
        import torch

        width = max((len(s) for s in seqs), default=0)
        ids = [[self.pad_id] * (width - len(s)) + list(s) for s in seqs]
        mask = [[0] * (width - len(s)) + [1] * len(s) for s in seqs]
        # built on the host and copied once (not one small copy per row)
        return (torch.tensor(ids, dtype=torch.long).reshape(len(seqs), width).to(self.device),
                torch.tensor(mask, dtype=torch.long).reshape(len(seqs), width).to(self.device))

    def _extend(self, cache: Any, ids: Any, mask: Any, past_mask: Any) -> Any:
        """Run ``ids`` on top of ``cache`` (whose rows are described by ``past_mask``); returns the model output."""
        import torch

        full = torch.cat([past_mask, mask], dim=1)
        positions = (full.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        return self.model(input_ids=ids, attention_mask=full, position_ids=positions, use_cache=True,
                          **{self.cache_kw: cache}, **self.keep)

    def prepare(self, plan: Plan, shared: Any, batch: list[Group]) -> tuple[list[int], Any, Any, Any, Any, Any]:
        """Everything a batch's last step needs.

        The batch's rows (request indices), its cache through the group prefixes, the cached part's ids and mask,
        and the padded suffixes (ids, mask).
        """
        import torch
        from transformers import DynamicCache

        p0 = len(plan.global_prefix)
        n_groups = len(batch)
        if shared is not None:
            cache = copy.deepcopy(shared)
            cache.batch_repeat_interleave(n_groups)
        else:
            cache = DynamicCache(config=self.model.config)
        past_mask = torch.ones((n_groups, p0), dtype=torch.long, device=self.device)
        past_ids = torch.tensor([plan.global_prefix] * n_groups, dtype=torch.long).reshape(n_groups, p0).to(
            self.device)
        if any(g.prefix for g in batch):
            g_ids, g_mask = self._pad([g.prefix for g in batch])
            self._extend(cache, g_ids, g_mask, past_mask)
            past_mask = torch.cat([past_mask, g_mask], dim=1)
            past_ids = torch.cat([past_ids, g_ids], dim=1)
        rows = [m for g in batch for m in g.members]
        select = torch.tensor([k for k, g in enumerate(batch) for _ in g.members], device=self.device)
        if cache.get_seq_length() > 0:
            cache.batch_select_indices(select)
        s_ids, s_mask = self._pad([plan.suffixes[m] for m in rows])
        return rows, cache, past_ids[select], past_mask[select], s_ids, s_mask

    def last_logits(self, plan: Plan, shared: Any, batch: list[Group]) -> tuple[list[int], Any]:
        """(request indices, float32 logits of each one's last position)."""
        rows, cache, _, past_mask, s_ids, s_mask = self.prepare(plan, shared, batch)
        out = self._extend(cache, s_ids, s_mask, past_mask)
        return rows, out.logits[:, -1, :].float()

    def generate(self, plan: Plan, shared: Any, batch: list[Group], **kwargs: Any) -> tuple[list[int], Any]:
        """(request indices, new token ids) of greedy generation that continues each row's cached prefix."""
        import torch

        rows, cache, past_ids, past_mask, s_ids, s_mask = self.prepare(plan, shared, batch)
        # generate() takes the whole sequence (logits processors may read it) and computes only what the cache
        # does not hold yet
        ids = torch.cat([past_ids, s_ids], dim=1)
        mask = torch.cat([past_mask, s_mask], dim=1)
        out = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                  **{self.cache_kw: cache}, **kwargs)
        return rows, out[:, ids.shape[1]:]
