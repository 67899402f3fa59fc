"""Prefix-cached answering: keep the LLM's KV cache of the stable head of the prompt between questions.

A session's prompt is ``[system + user text | long memory | short window | current frame | time message +
question + open assistant turn]`` (:meth:`inference.Prompt.segments`). Attention is causal, so the KV of a
token depends only on the tokens before it: while the head of the prompt is unchanged, its KV can be kept
and only what follows prefilled. The cache describes what it holds *exactly*, as a list of :class:`Run`\\ s:

* ``("text", token ids)`` — the text before the visual tokens (system prompt, user turn start);
* ``("long", event uid)`` — one long-memory event (``EventMemory.layout``: a uid names its exact tokens;
  entering an event appends a run, a merge replaces runs by a new uid);
* ``("short", frame)`` / ``("now", frame)`` — one short-window / current frame (their tokens never change
  while the frame stays in that window);
* ``("text", token ids)`` — the text after the visual tokens.

A lookup reuses the longest common prefix of the cached runs and the new prompt's runs (token-exact for
text runs), crops the cache there and prefills the rest. After each question / probe the cache is cropped
back to the end of the visual tokens: one prefix per session, at most ``MemoryConfig.max_tokens`` visual
tokens plus the text before them. Because the short window also grows only at its end between frames,
consecutive frames reuse the long memory *and* the short frames already cached; only the newest short frame,
the current frame and the text are prefilled.

Each lookup is classified by what happened to the long-memory part (``stats()["outcomes"]``):

* ``hit`` — every long-memory event of the new prompt is in the cache;
* ``extension`` — events entered the long memory after the cached ones (those are kept, the new ones and
  everything after them are prefilled);
* ``merge`` — a cached event was merged (or dropped): the cache is reused up to the first changed event;
* ``prompt`` — the text before the visual tokens changed (template / system prompt): nothing reused;
* ``cold`` — nothing cached yet; ``reset`` — the session was reset since the last lookup.

Exactness: the prefilled tokens see the same keys/values at the same positions as a one-shot prefill, so
the result differs from it only by floating-point reordering (different matmul shapes; tested within fp32
tolerance). ``exact`` sessions therefore keep the cache off unless asked (their bit-identity guarantee
holds with the cache off); ``bounded`` sessions use it by default. Works with any attention implementation
(sdpa, flash-attention, eager) and dtype: it only uses ``DynamicCache`` and the model's own forward.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from streamforest import inference
from streamforest.constants import IMAGE_TOKEN_INDEX

__all__ = ["OUTCOMES", "PrefixCache", "Run", "prompt_runs"]

OUTCOMES = ("hit", "extension", "merge", "prompt", "cold", "reset")
"""Lookup outcomes (module docstring); every outcome but ``hit`` and ``extension`` is a miss."""


@dataclass(frozen=True)
class Run:
    """A stretch of prompt tokens with one identity: ``kind`` ∈ {text, long, short, now}; ``ident`` = the
    token ids (text), the event uid (long) or the frame index (short / now); ``length`` in tokens."""

    kind: str
    ident: Any
    length: int


def prompt_runs(prompt: inference.Prompt, layout: Sequence[tuple[str, int, int]]) -> list[Run]:
    """The runs of ``prompt`` whose visual tokens are the memory read-out described by ``layout``
    (``EventMemory.layout()``, taken under the same lock as the read-out)."""
    ids = prompt.input_ids[0].tolist()
    where = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_INDEX]
    if len(where) != 1:
        raise ValueError(f"a prompt with {len(where)} <image> placeholders cannot be prefix-cached (needs one)")
    total = sum(n for _, _, n in layout)
    if total != prompt.visual.shape[0]:
        raise ValueError(f"memory layout has {total} tokens but the prompt holds {prompt.visual.shape[0]} visual tokens")
    head, tail = ids[: where[0]], ids[where[0] + 1 :]
    return [Run("text", tuple(head), len(head)), *(Run(k, i, n) for k, i, n in layout), Run("text", tuple(tail), len(tail))]


def _common_tokens(old: Sequence[Run], new: Sequence[Run]) -> int:
    """Tokens at the start of ``new`` that ``old`` holds too (equal runs, then a common text prefix)."""
    total = 0
    for a, b in zip(old, new):
        if a == b:
            total += a.length
            continue
        if a.kind == b.kind == "text":
            for x, y in zip(a.ident, b.ident):
                if x != y:
                    break
                total += 1
        break
    return total


def _classify(old: Sequence[Run] | None, new: Sequence[Run], cleared: str) -> str:
    if not old:
        return cleared
    if old[0] != new[0]:
        return "prompt"
    old_long = [r.ident for r in old if r.kind == "long"]
    new_long = [r.ident for r in new if r.kind == "long"]
    if old_long == new_long:
        return "hit"
    return "extension" if new_long[: len(old_long)] == old_long else "merge"


def _crop(kv: Any, keep: int) -> None:
    """Drop the cached tokens after the first ``keep``."""
    extra = kv.get_seq_length() - keep
    if extra > 0:
        kv.crop(-extra)  # transformers 5: a negative count of tokens to remove


class PrefixCache:
    """The KV cache of one session's prompt head, its exact description and its statistics.

    Args:
        enabled: False = every lookup prefills the whole prompt (the one-shot path; outcomes not counted).

    Use :meth:`generate` and :meth:`first_token_logits`; both hold :attr:`lock` for the whole
    lookup → prefill → store sequence, so a probe (from ``push``) and a question (from another thread) never
    interleave on the cache.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.reused_tokens = 0
        self.prefilled_tokens = 0
        self._kv: Any = None
        self._runs: list[Run] = []
        self._cleared = "cold"

    def clear(self, reason: str = "reset") -> None:
        """Drop the cached KV; the next lookup is a miss for ``reason`` (``reset`` or ``cold``)."""
        with self.lock:
            self._kv, self._runs, self._cleared = None, [], reason

    @property
    def cached_tokens(self) -> int:
        """Tokens whose KV the cache holds now."""
        return sum(r.length for r in self._runs)

    def nbytes(self) -> int:
        """Bytes of the cached keys and values."""
        if self._kv is None:
            return 0
        return sum(t.numel() * t.element_size() for layer in self._kv.layers
                   for t in (getattr(layer, "keys", None), getattr(layer, "values", None)) if t is not None)  # fmt: skip

    def _lookup(self, model: Any, runs: list[Run]) -> Any:
        """A ``DynamicCache`` holding the reusable head of ``runs`` (empty on a full miss; None when disabled)."""
        from transformers import DynamicCache

        total = sum(r.length for r in runs)
        if not self.enabled:
            self.prefilled_tokens += total
            return None
        outcome = _classify(self._runs, runs, self._cleared)
        self.outcomes[outcome] += 1
        reuse = min(_common_tokens(self._runs, runs), total - 1) if self._kv is not None else 0
        if reuse <= 0:
            self._kv = DynamicCache(config=model.config)
        _crop(self._kv, reuse)
        self.reused_tokens += reuse
        self.prefilled_tokens += total - reuse
        return self._kv

    def _store(self, runs: list[Run]) -> None:
        """Keep the KV of the text head and the visual runs of ``runs`` (crop off the trailing text)."""
        if not self.enabled:
            return
        keep = runs[:-1] if runs and runs[-1].kind == "text" and len(runs) > 1 else list(runs)
        _crop(self._kv, sum(r.length for r in keep))
        self._runs, self._cleared = keep, "cold"

    def generate(self, model: Any, tokenizer: Any, prompt: inference.Prompt, runs: list[Run], **kwargs: Any) -> inference.Generation:
        """:func:`inference.generate` with the cached head reused (``kwargs`` go to it)."""
        with self.lock:
            kv = self._lookup(model, runs)
            try:
                out = inference.generate(model, tokenizer, prompt, past_key_values=kv, **kwargs)
            except BaseException:
                self._kv, self._runs, self._cleared = None, [], "cold"
                raise
            self._store(runs)
        return out

    def first_token_logits(self, model: Any, prompt: inference.Prompt, runs: list[Run]) -> Tensor:
        """Float32 logits ``[V]`` of the first answer token (one prefill step, the cached head reused)."""
        with self.lock:
            kv = self._lookup(model, runs)
            reuse = kv.get_seq_length() if kv is not None else 0
            try:
                with torch.inference_mode():
                    embeds = prompt.embed(model).inputs_embeds
                    out = model(inputs_embeds=embeds[:, reuse:], past_key_values=kv, use_cache=kv is not None,
                                logits_to_keep=1)  # fmt: skip
            except BaseException:
                self._kv, self._runs, self._cleared = None, [], "cold"
                raise
            self._store(runs)
        return out.logits[0, -1].float()

    def stats(self) -> dict[str, Any]:
        """JSON-friendly counters: lookups, hits, extensions, misses by reason, tokens reused/prefilled, size."""
        lookups = sum(self.outcomes.values())
        hits = self.outcomes["hit"]
        return {
            "enabled": self.enabled,
            "lookups": lookups,
            "hits": hits,
            "extensions": self.outcomes["extension"],
            "misses": {k: self.outcomes[k] for k in OUTCOMES[2:]},
            "hit_rate": hits / lookups if lookups else 0.0,
            "reused_tokens": self.reused_tokens,
            "prefilled_tokens": self.prefilled_tokens,
            "cached_tokens": self.cached_tokens,
            "cached_bytes": self.nbytes(),
        }
