"""Splice visual tokens into text embeddings at ``<image>`` placeholders (REFERENCE §1.8) — pure torch.

Per sample: drop padding (attention mask 0), split ``input_ids`` at every ``-200``, embed the text pieces
with one call, and put the next feature tensor ``[N_i, H]`` at each placeholder (labels -100 there).
Then truncate to ``max_length`` and re-pad the batch (zero embeddings, labels -100, mask 0).

Differences from the reference (docs/DEVIATIONS.md): a placeholder/feature count mismatch raises
``ValueError`` (the reference silently reused the previous features); a text-only sample consumes no
feature entry (the reference consumed one and spliced an empty slice of it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from streamforest.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX

logger = logging.getLogger(__name__)

__all__ = ["SpliceResult", "count_placeholders", "splice_visual_tokens"]


class SpliceResult(NamedTuple):
    """Output of :func:`splice_visual_tokens` (B samples, padded length L)."""

    inputs_embeds: Tensor
    """``[B, L, H]`` in the embedding dtype; padding rows are zeros."""
    labels: Tensor | None
    """``[B, L]`` long, -100 over visual spans and padding; None when the caller passed None."""
    attention_mask: Tensor
    """``[B, L]`` bool, False on padding."""
    position_ids: Tensor | None
    """``[B, L]`` long (0..n-1 over real tokens, 0 on padding); None when the caller passed None."""


def _rows(x: Tensor | Sequence[Tensor]) -> list[Tensor]:
    return [row for row in x] if isinstance(x, Tensor) else list(x)


def count_placeholders(input_ids: Tensor | Sequence[Tensor]) -> list[int]:
    """Number of ``IMAGE_TOKEN_INDEX`` placeholders in each sample."""
    return [int((ids == IMAGE_TOKEN_INDEX).sum()) for ids in _rows(input_ids)]


def _splice_one(
    ids: Tensor, labels: Tensor, features: list[Tensor], embed: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """Splice ``features`` (one per placeholder of ``ids``, in order) → (``[n,H]`` embeds, ``[n]`` labels)."""
    cuts = torch.nonzero(ids == IMAGE_TOKEN_INDEX).flatten().tolist()
    bounds = [-1, *cuts, ids.shape[0]]
    text_ids = [ids[bounds[i] + 1 : bounds[i + 1]] for i in range(len(bounds) - 1)]
    text_labels = [labels[bounds[i] + 1 : bounds[i + 1]] for i in range(len(bounds) - 1)]
    text_embeds = torch.split(embed(torch.cat(text_ids)), [t.shape[0] for t in text_ids], dim=0)
    pieces: list[Tensor] = []
    piece_labels: list[Tensor] = []
    for i, (emb, lab) in enumerate(zip(text_embeds, text_labels)):
        pieces.append(emb)
        piece_labels.append(lab)
        if i < len(features):
            if features[i].shape[-1] != emb.shape[-1]:
                raise ValueError(
                    f"visual feature must be [N, {emb.shape[-1]}] (the LLM width), got {tuple(features[i].shape)}"
                )
            feat = features[i].to(device=emb.device, dtype=emb.dtype)
            pieces.append(feat)
            piece_labels.append(
                torch.full((feat.shape[0],), IGNORE_INDEX, dtype=lab.dtype, device=lab.device)
            )
    return torch.cat(pieces, dim=0), torch.cat(piece_labels, dim=0)


def _check_features(features: Sequence[Tensor], counts: list[int], hidden: int | None) -> None:
    if sum(counts) != len(features):
        raise ValueError(
            f"the batch has {sum(counts)} <image> placeholders (per sample: {counts}) but {len(features)} "
            "visual feature tensors were given; every placeholder needs exactly one [N, H] feature tensor"
        )
    for i, feat in enumerate(features):
        if feat.dim() != 2 or (hidden is not None and feat.shape[1] != hidden):
            raise ValueError(f"visual feature {i} must be [N, {hidden}], got {tuple(feat.shape)}")


def _pad(
    seqs: list[Tensor], labs: list[Tensor], padding_side: str, want_positions: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Pad spliced samples to a batch (zeros / -100 / False / position 0)."""
    batch, width = len(seqs), max(s.shape[0] for s in seqs)
    ref = seqs[0]
    embeds = ref.new_zeros((batch, width, ref.shape[1]))
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=labs[0].dtype, device=labs[0].device)
    mask = torch.zeros((batch, width), dtype=torch.bool, device=ref.device)
    positions = torch.zeros((batch, width), dtype=torch.long, device=ref.device) if want_positions else None
    for i, (seq, lab) in enumerate(zip(seqs, labs)):
        n = seq.shape[0]
        span = slice(width - n, width) if padding_side == "left" else slice(0, n)
        embeds[i, span] = seq
        labels[i, span] = lab
        mask[i, span] = True
        if positions is not None:
            positions[i, span] = torch.arange(n, device=ref.device)
    return embeds, labels, mask, positions


def splice_visual_tokens(
    input_ids: Tensor | Sequence[Tensor],
    features: Sequence[Tensor],
    embed: Callable[[Tensor], Tensor],
    *,
    labels: Tensor | Sequence[Tensor] | None = None,
    attention_mask: Tensor | Sequence[Tensor] | None = None,
    position_ids: Tensor | None = None,
    max_length: int | None = None,
    padding_side: str = "right",
    anchor: Tensor | None = None,
) -> SpliceResult:
    """Build LLM inputs with visual tokens at the ``-200`` placeholders.

    Args:
        input_ids: ``[B, T]`` tensor or list of ``[T_i]`` tensors containing ``-200`` placeholders.
        features: visual tokens ``[N_j, H]``, consumed in order, one per placeholder of the whole batch.
        embed: token embedding function ``[n] long -> [n, H]`` (e.g. ``model.embed_tokens``).
        labels: like ``input_ids`` (or None: labels are not returned).
        attention_mask: like ``input_ids``; positions with 0 are dropped before splicing (None: keep all).
        position_ids: only its presence matters (reference): when given, fresh positions are returned.
        max_length: truncate each spliced sequence to this many tokens (reference:
            ``tokenizer_model_max_length``); None keeps everything.
        padding_side: ``"right"`` (reference default) or ``"left"``.
        anchor: optional scalar added (it should be 0-valued) to text-only samples so that the parameters
            that produced it stay in the autograd graph (DeepSpeed needs every trainable parameter used).

    Returns:
        :class:`SpliceResult`.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    rows = _rows(input_ids)
    if not rows:
        raise ValueError("splice_visual_tokens got an empty batch")
    masks = _rows(attention_mask) if attention_mask is not None else [None] * len(rows)
    label_rows = _rows(labels) if labels is not None else [torch.full_like(r, IGNORE_INDEX) for r in rows]
    rows = [r if m is None else r[m.bool()] for r, m in zip(rows, masks)]
    label_rows = [lab if m is None else lab[m.bool()] for lab, m in zip(label_rows, masks)]
    counts = count_placeholders(rows)
    _check_features(features, counts, features[0].shape[-1] if features else None)

    seqs, labs, cursor = [], [], 0
    for ids, lab, k in zip(rows, label_rows, counts):
        seq, seq_lab = _splice_one(ids, lab, list(features[cursor : cursor + k]), embed)
        cursor += k
        if k == 0 and anchor is not None:
            seq = seq + anchor.to(seq.dtype)
        if max_length is not None and seq.shape[0] > max_length:
            logger.warning("spliced sequence of %d tokens truncated to %d", seq.shape[0], max_length)
            seq, seq_lab = seq[:max_length], seq_lab[:max_length]
        seqs.append(seq)
        labs.append(seq_lab)
    embeds, out_labels, mask, positions = _pad(seqs, labs, padding_side, position_ids is not None)
    return SpliceResult(embeds, out_labels if labels is not None else None, mask, positions)
