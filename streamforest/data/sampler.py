"""Modality-grouped length sampler (``group_by_modality_length``, REFERENCE §4.10).

Behaviour of the reference kept: megabatches of ``world·batch`` indices sorted by length and split into
``world`` balanced chunks, multimodal and text-only samples grouped separately, the two partial
megabatches merged into one last "additional" batch. Kept as well: the trainer passes
``world = world_size × gradient_accumulation_steps`` (REFERENCE §8.2-12), so a megabatch spans one full
optimizer step across all ranks.

Changed: every random draw uses one ``torch.Generator`` seeded with ``seed + epoch`` (the reference drew
from the global RNG, with ``generator=None`` in the sub-calls), so an interrupted run resumes on exactly the
same order (docs/DEVIATIONS.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def split_to_even_chunks(indices: list[int], lengths: list[int], num_chunks: int) -> list[list[int]]:
    """Split ``indices`` into ``num_chunks`` chunks of equal count, greedily balancing total length.

    Each index (in the given order) goes to the chunk with the smallest total so far; a full chunk is
    closed. If the count is not divisible, a round-robin stride split is used instead.
    """
    if len(indices) % num_chunks != 0:
        return [indices[i::num_chunks] for i in range(num_chunks)]
    per_chunk = len(indices) // num_chunks
    chunks: list[list[int]] = [[] for _ in range(num_chunks)]
    totals = [0.0] * num_chunks
    for index in indices:
        j = min(range(num_chunks), key=totals.__getitem__)
        chunks[j].append(index)
        totals[j] += lengths[index]
        if len(chunks[j]) == per_chunk:
            totals[j] = math.inf
    return chunks


def length_grouped_indices(
    lengths: list[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """Random permutation → megabatches of ``world·batch`` → sorted by length desc → balanced chunks."""
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    size = world_size * batch_size
    megabatches = [perm[i : i + size] for i in range(0, len(lengths), size)]
    megabatches = [sorted(mb, key=lambda i: lengths[i], reverse=True) for mb in megabatches]
    chunked = [split_to_even_chunks(mb, lengths, world_size) for mb in megabatches]
    return [i for mb in chunked for chunk in mb for i in chunk]


def modality_length_grouped_indices(
    lengths: list[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """Group multimodal (length > 0) and text-only (length < 0) samples into separate megabatches."""
    if any(v == 0 for v in lengths):
        raise ValueError("modality lengths must be non-zero (positive: image/video, negative: text-only)")
    if all(v > 0 for v in lengths) or all(v < 0 for v in lengths):
        return length_grouped_indices([abs(v) for v in lengths], batch_size, world_size, generator)
    mm = [(i, v) for i, v in enumerate(lengths) if v > 0]
    lang = [(i, -v) for i, v in enumerate(lengths) if v < 0]
    size = world_size * batch_size

    def grouped(pairs: list[tuple[int, int]]) -> list[list[int]]:
        order = length_grouped_indices([v for _, v in pairs], batch_size, world_size, generator)
        shuffled = [pairs[i][0] for i in order]
        return [shuffled[i : i + size] for i in range(0, len(shuffled), size)]

    mm_mb, lang_mb = grouped(mm), grouped(lang)
    additional = mm_mb[-1] + lang_mb[-1]
    megabatches = mm_mb[:-1] + lang_mb[:-1]
    perm = torch.randperm(len(megabatches), generator=generator).tolist()
    megabatches = [megabatches[i] for i in perm]
    if additional:
        megabatches.append(sorted(additional))
    return [i for mb in megabatches for i in mb]


class ModalityLengthGroupedSampler(Sampler[int]):
    """Sampler over the whole dataset (the accelerate dataloader shards batches across ranks).

    Args:
        lengths: signed modality lengths of the dataset (``SupervisedDataset.modality_lengths``).
        batch_size: per-device micro-batch size.
        world_size: ``world_size × gradient_accumulation_steps`` as in the reference.
        seed: base seed; the order of epoch ``e`` depends only on ``seed + e``.
    """

    def __init__(self, lengths: list[int], batch_size: int, world_size: int, seed: int = 42) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(modality_length_grouped_indices(self.lengths, self.batch_size, self.world_size, g))
