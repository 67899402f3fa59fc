"""Modality-grouped length sampler (REFERENCE §4.10) with a seeded generator."""

from __future__ import annotations

import torch

from streamforest.data.sampler import (
    ModalityLengthGroupedSampler,
    length_grouped_indices,
    modality_length_grouped_indices,
    split_to_even_chunks,
)


def test_split_to_even_chunks_greedy_balance_and_stride() -> None:
    lengths = [10, 9, 8, 1, 1, 1]
    # each index goes to the chunk with the smallest total so far: 0→c0(10), 1→c1(9), 2→c1(17), 3→c0, 4→c0 (full), 5→c1
    assert split_to_even_chunks([0, 1, 2, 3, 4, 5], lengths, 2) == [[0, 3, 4], [1, 2, 5]]
    assert split_to_even_chunks([0, 1, 2, 3, 4], lengths, 2) == [[0, 2, 4], [1, 3]]


def test_megabatches_are_sorted_by_length_within_chunks() -> None:
    lengths = [5, 50, 3, 30, 8, 80, 2, 20]
    order = length_grouped_indices(lengths, batch_size=2, world_size=2, generator=torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(8))
    for mb in (order[:4], order[4:]):
        for chunk in (mb[:2], mb[2:]):
            assert lengths[chunk[0]] >= lengths[chunk[1]]


def test_modalities_never_share_a_megabatch_except_the_last() -> None:
    lengths = [i + 1 for i in range(12)] + [-(i + 1) for i in range(7)]
    order = modality_length_grouped_indices(lengths, batch_size=2, world_size=2, generator=torch.Generator().manual_seed(1))
    assert sorted(order) == list(range(19))
    megabatches = [order[i : i + 4] for i in range(0, 12, 4)]
    for mb in megabatches:
        signs = {lengths[i] > 0 for i in mb}
        assert len(signs) == 1
    # the last "additional" batch mixes the leftovers (12 % 4 = 0 → 4 mm, 7 % 4 = 3 text) and is sorted
    tail = order[12:]
    assert tail == sorted(tail) and len(tail) == 7 and {lengths[i] > 0 for i in tail} == {True, False}


def test_sampler_is_deterministic_per_epoch_and_independent_of_global_rng() -> None:
    lengths = [3, -2, 5, 7, -1, 4, 9, -6, 2, 8]
    s = ModalityLengthGroupedSampler(lengths, batch_size=1, world_size=2, seed=42)
    torch.manual_seed(0)
    first = list(s)
    torch.manual_seed(123)
    assert list(s) == first
    s.set_epoch(1)
    second = list(s)
    assert sorted(second) == sorted(first) == list(range(10))
    assert second != first
    assert len(s) == 10
