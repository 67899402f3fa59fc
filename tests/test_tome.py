"""ToMe: schedules, exact merge order and values, size bookkeeping, argument errors."""

import pytest
import torch

from streamforest.tome import (
    bipartite_soft_matching,
    halving_schedule,
    head_mean_metric,
    merge_tokens,
    merge_wavg,
)


@pytest.mark.parametrize(
    ("n", "target", "expected"),
    [
        (729, 128, [364, 182, 55]),  # FSTW frame -> short memory
        (5832, 128, [2916, 1458, 729, 364, 182, 55]),  # tome16, 8-frame clip
        (729, 16, [364, 182, 91, 46, 23, 7]),  # tome16, image
        (1458, 128, [729, 364, 182, 55]),  # tome64, 2-frame clip
        (729, 64, [364, 182, 91, 28]),  # tome64, one frame
        (64, 16, [32, 16]),  # demo config now -> short
        (1024, 512, [512]),  # PEMF event compression 128s -> 64s (s = 8)
        (5, 5, []),
    ],
)
def test_halving_schedule_reference_cases(n, target, expected):
    assert halving_schedule(n, target) == expected
    assert n - sum(expected) == target


@pytest.mark.parametrize(("n", "target"), [(10, 11), (10, 0)])
def test_halving_schedule_rejects_bad_targets(n, target):
    with pytest.raises(ValueError):
        halving_schedule(n, target)


def test_merge_step_order_and_values_hand_checked():
    # A = tokens 0, 2 (even), B = tokens 1, 3 (odd).
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [1.0, 0.0]]])
    merge = bipartite_soft_matching(head_mean_metric(x, 1), r=1)
    out, size = merge_wavg(merge, x)
    # token 0 matches token 3 exactly (cos 1) and is merged into it; token 2 (cos .995) stays.
    expected = torch.tensor([[[1.0, 0.1], [0.0, 1.0], [1.0, 0.0]]])
    torch.testing.assert_close(out, expected)
    assert size.flatten().tolist() == [1.0, 1.0, 2.0]


def test_unmerged_tokens_come_first_in_descending_similarity():
    # A tokens 0, 2, 4 with decreasing similarity to their partners; remove one.
    x = torch.tensor(
        [[[1.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 1.0], [1.0, 0.2], [0.0, 1.0]]]
    )
    out = merge_tokens(x, target=5, num_heads=1)
    # token 0 (cos 1 with token 1) merges; kept A tokens: 4 (cos .98 with 1) then 2 (cos .89).
    torch.testing.assert_close(out[0, 0], x[0, 4])
    torch.testing.assert_close(out[0, 1], x[0, 2])
    torch.testing.assert_close(out[0, 2:], x[0, [1, 3, 5]])


def test_size_weighted_average_conserves_mass_over_a_schedule():
    torch.manual_seed(0)
    x = torch.randn(2, 729, 32)
    size = None
    y = x
    for r in halving_schedule(729, 128):
        y, size = merge_wavg(bipartite_soft_matching(head_mean_metric(y, 4), r), y, size)
    assert y.shape == (2, 128, 32)
    assert size.sum(dim=1).flatten().tolist() == [729.0, 729.0]
    torch.testing.assert_close((y * size).sum(dim=1), x.sum(dim=1), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(merge_tokens(x, 128, 4), y)


def test_scatter_add_matches_scatter_reduce_sum():
    torch.manual_seed(1)
    x = torch.randn(3, 40, 16)
    merge = bipartite_soft_matching(head_mean_metric(x, 4), r=15)
    out = merge(x)
    # Independent formulation with scatter_reduce(sum, include_self=True).
    src, dst = x[:, ::2], x[:, 1::2]
    metric = head_mean_metric(x, 4)
    metric = metric / metric.norm(dim=-1, keepdim=True)
    node_max, node_idx = (metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)).max(-1)
    order = node_max.argsort(dim=-1, descending=True, stable=True)
    src_idx, unm_idx = order[:, :15], order[:, 15:]
    dst_idx = node_idx.gather(1, src_idx)
    moved = src.gather(1, src_idx[..., None].expand(-1, -1, 16))
    dst = dst.scatter_reduce(1, dst_idx[..., None].expand(-1, -1, 16), moved, reduce="sum")
    unm = src.gather(1, unm_idx[..., None].expand(-1, -1, 16))
    torch.testing.assert_close(out, torch.cat([unm, dst], dim=1))


def test_merge_tokens_identity_and_errors():
    x = torch.randn(1, 16, 8)
    assert merge_tokens(x, 16, 2) is x
    with pytest.raises(ValueError, match="exceeds"):
        merge_tokens(x, 17, 2)
    with pytest.raises(ValueError, match="divisible"):
        merge_tokens(x, 8, 3)
    with pytest.raises(ValueError, match=r"\[B, N, C\]"):
        merge_tokens(x[0], 8, 2)
    with pytest.raises(ValueError):
        bipartite_soft_matching(head_mean_metric(x[:, :1], 2), 1)


def test_merge_is_differentiable_in_x():
    x = torch.randn(1, 64, 8, requires_grad=True)
    merge_tokens(x, 9, 2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # every input token contributes to exactly one output token
    assert (x.grad.abs().sum(-1) > 0).all()
