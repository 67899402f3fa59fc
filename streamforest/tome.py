"""Token Merging (ToMe) with StreamForest's semantics — pure torch.

One implementation shared by every projector and by the event memory.

Bipartite soft matching (Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023), with the
details StreamForest was trained with (REFERENCE §1.5):

* the matching metric is not the attention keys but the feature vector averaged over ``num_heads``
  equal chunks: ``x.reshape(B, N, H, C // H).mean(2)`` -> ``[B, N, C // H]`` (72-d for SigLIP so400m);
* tokens are split by the parity of their current index: set A = even indices, set B = odd indices;
* every A token finds its most similar B token (cosine); the ``r`` A tokens with the highest best score
  are merged (summed) into their partner, the rest stay;
* output order is ``[unmerged A tokens in descending best-score order, B tokens in original order]``;
* merges are size-weighted averages; sizes start at 1 on every :func:`merge_tokens` call;
* to reach an exact target the number of removed tokens halves per step (:func:`halving_schedule`).

The matching (scores, sort, argmax) runs without gradient; the merge itself is differentiable in ``x``.

Deviation (docs/DEVIATIONS.md): the descending sort is *stable* (ties keep index order) so results do
not depend on the device's sort implementation; the reference's unstable sort only differs on exact ties.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "bipartite_soft_matching",
    "halving_schedule",
    "head_mean_metric",
    "matching_scores",
    "merge_tokens",
    "merge_wavg",
]

MergeFn = Callable[[Tensor], Tensor]


def head_mean_metric(x: Tensor, num_heads: int) -> Tensor:
    """The ToMe matching metric: ``x`` averaged over ``num_heads`` equal channel chunks.

    Args:
        x: ``[B, N, C]`` token features, ``C % num_heads == 0``.
        num_heads: number of chunks (16 for SigLIP so400m).

    Returns:
        ``[B, N, C // num_heads]``.
    """
    b, n, c = x.shape
    if num_heads <= 0 or c % num_heads != 0:
        raise ValueError(f"feature width {c} is not divisible by num_heads={num_heads}")
    return x.reshape(b, n, num_heads, c // num_heads).mean(dim=2)


@torch.no_grad()
def matching_scores(metric: Tensor) -> tuple[Tensor, Tensor]:
    """Best cosine match of every even-index token among the odd-index tokens.

    Args:
        metric: ``[B, N, D]`` (unnormalised).

    Returns:
        ``(node_max, node_idx)``, both ``[B, ceil(N / 2)]``: the best score of each A token and the index
        (within B) of its partner. The first maximum wins on ties.
    """
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    scores = a @ b.transpose(-1, -2)
    return scores.max(dim=-1)


def bipartite_soft_matching(metric: Tensor, r: int) -> MergeFn:
    """Plan one ToMe step that removes ``r`` tokens; return the merge function.

    Args:
        metric: ``[B, N, D]`` matching metric (see :func:`head_mean_metric`).
        r: tokens to remove; clipped to ``N // 2`` (at most every A token is merged).

    Returns:
        ``merge(x: [B, N, C], ) -> [B, N - r, C]`` which sums each merged A token into its B partner.

    Raises:
        ValueError: if ``r`` (after clipping) is not positive.
    """
    n_tokens = metric.shape[-2]
    r = min(r, n_tokens // 2)
    if r <= 0:
        raise ValueError(f"cannot remove r={r} tokens from a set of {n_tokens}")

    node_max, node_idx = matching_scores(metric)
    with torch.no_grad():
        order = torch.sort(node_max, dim=-1, descending=True, stable=True).indices[..., None]
        unm_idx = order[..., r:, :]  # [B, |A| - r, 1] kept A tokens, most similar first
        src_idx = order[..., :r, :]  # [B, r, 1] merged A tokens
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)  # [B, r, 1] their partners in B

    def merge(x: Tensor) -> Tensor:
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        bsz, n_a, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(bsz, n_a - r, c))
        moved = src.gather(dim=-2, index=src_idx.expand(bsz, r, c))
        dst = dst.scatter_add(-2, dst_idx.expand(bsz, r, c), moved)
        return torch.cat([unm, dst], dim=1)

    return merge


def merge_wavg(merge: MergeFn, x: Tensor, size: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Apply ``merge`` as a size-weighted average.

    Args:
        merge: from :func:`bipartite_soft_matching`.
        x: ``[B, N, C]`` token features.
        size: ``[B, N, 1]`` number of original tokens each token stands for (ones when ``None``).

    Returns:
        ``(x, size)`` of shapes ``[B, N - r, C]`` and ``[B, N - r, 1]``; sizes are summed.
    """
    if size is None:
        size = torch.ones_like(x[..., :1])
    x = merge(x * size)
    size = merge(size)
    return x / size, size


def halving_schedule(n_tokens: int, target: int) -> list[int]:
    """Tokens removed per ToMe step to go from ``n_tokens`` to exactly ``target``.

    Each step removes at most half of the current tokens: while the remaining excess exceeds
    ``floor(p / 2)`` remove ``floor(p / 2)``, then remove the rest. E.g. 729 -> 128 is ``[364, 182, 55]``.

    Raises:
        ValueError: if ``target`` is not in ``[1, n_tokens]``.
    """
    if target < 1 or target > n_tokens:
        raise ValueError(f"target {target} must be between 1 and the token count {n_tokens}")
    schedule: list[int] = []
    p = n_tokens
    while p > target:
        half = p // 2
        if p - target <= half:
            schedule.append(p - target)
            break
        schedule.append(half)
        p -= half
    return schedule


def merge_tokens(x: Tensor, target: int, num_heads: int) -> Tensor:
    """Merge ``x`` down to exactly ``target`` tokens per batch row.

    Args:
        x: ``[B, N, C]`` token features.
        target: tokens to keep, ``1 <= target <= N``.
        num_heads: channel chunks averaged into the matching metric; ``C % num_heads == 0``.

    Returns:
        ``[B, target, C]``; ``x`` itself when ``N == target``.

    Raises:
        ValueError: ``target > N``, ``target < 1`` or ``C % num_heads != 0``.
    """
    if x.dim() != 3:
        raise ValueError(f"expected [B, N, C] tokens, got shape {tuple(x.shape)}")
    n, c = x.shape[1], x.shape[2]
    if num_heads <= 0 or c % num_heads != 0:
        raise ValueError(f"feature width {c} is not divisible by num_heads={num_heads}")
    if target > n:
        raise ValueError(f"cannot merge {n} tokens up to {target}: target exceeds the token count")
    if target == n:
        return x
    size: Tensor | None = None
    for r in halving_schedule(n, target):
        merge = bipartite_soft_matching(head_mean_metric(x, num_heads), r)
        x, size = merge_wavg(merge, x, size)
    return x
