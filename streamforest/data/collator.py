"""Batch collation (REFERENCE §4.7): truncate, right-pad, flatten the media lists, carry the skip count."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from streamforest.constants import IGNORE_INDEX
from streamforest.data.dataset import SkippedSample

logger = logging.getLogger(__name__)


@dataclass
class DataCollator:
    """Collate dataset items into model inputs.

    Output: ``input_ids Long[B,L]``, ``labels Long[B,L]`` (−100 padding), ``attention_mask Bool[B,L]``
    (``input_ids != pad_id``, as the reference), ``images`` (list of B tensors ``[T,3,S,S]``), ``modalities``
    (list of B strings), plus ``num_skipped`` / ``num_seen`` (ints, popped by the trainer). When every sample
    of the batch was skipped, the batch is a text-only placeholder with ``all_skipped=True`` whose loss the
    trainer multiplies by zero (so all ranks still take part in the step).
    """

    pad_token_id: int | None
    model_max_length: int
    dummy_image: torch.Tensor | None = None
    """``[1,3,S,S]`` pixels used for the all-skipped placeholder batch (a black frame, like text-only samples)."""

    def __call__(self, items: list[dict[str, Any] | SkippedSample]) -> dict[str, Any]:
        kept = [it for it in items if not isinstance(it, SkippedSample)]
        skipped = [it for it in items if isinstance(it, SkippedSample)]
        pad = 0 if self.pad_token_id is None else int(self.pad_token_id)
        if kept:
            batch = self._collate(kept, pad)
            batch["all_skipped"] = False
        else:
            batch = self._placeholder(pad)
            batch["all_skipped"] = True
        batch["num_skipped"] = len(skipped)
        batch["num_seen"] = len(items)
        batch["skipped_paths"] = [s.path for s in skipped]
        return batch

    def _collate(self, kept: list[dict[str, Any]], pad: int) -> dict[str, Any]:
        ids = [it["input_ids"][: self.model_max_length] for it in kept]
        labels = [it["labels"][: self.model_max_length] for it in kept]
        input_ids = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad)
        label_t = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)
        return {
            "input_ids": input_ids,
            "labels": label_t,
            "attention_mask": input_ids.ne(pad),
            "images": [it["image"] for it in kept],
            "modalities": [it["modality"] for it in kept],
        }

    def _placeholder(self, pad: int) -> dict[str, Any]:
        token = 1 if pad != 1 else 2
        ids = torch.tensor([[token]], dtype=torch.long)
        return {
            "input_ids": ids,
            "labels": torch.full_like(ids, IGNORE_INDEX),
            "attention_mask": torch.ones_like(ids, dtype=torch.bool),
            "images": [self.dummy_image] if self.dummy_image is not None else None,
            "modalities": ["text"],
        }
