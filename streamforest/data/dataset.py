"""The training dataset: records → (input_ids, labels, pixels, modality), reference recipe (REFERENCE §4.4–§4.6).

A sample whose media cannot be read is **skipped**, never replaced: ``__getitem__`` returns a
:class:`SkippedSample` marker, the warning names the file (once per file and process), and the collator /
trainer count skips and stop the run when their fraction passes ``max_skip_fraction``. (The reference
retried other indices i+5 … i+80 and so silently trained on substitutes — docs/DEVIATIONS.md.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from streamforest.constants import DEFAULT_IMAGE_TOKEN
from streamforest.data.tokenize import add_time_message, normalise_turns, tokenize_conversation
from streamforest.prompts import TIME_MSG_INSERTIONS, frame_timestamps, time_message
from streamforest.video import backend_for, load_video

logger = logging.getLogger(__name__)


@dataclass
class VideoSampling:
    """How frames are sampled for training videos (DataArguments of the reference, REFERENCE §4.2/§4.5)."""

    frames_upbound: int = 8
    frames_lowbound: int = 1
    local_num_frames: int = 8
    sample_type: str = "middle"
    time_msg: str | None = None


@dataclass(frozen=True)
class SkippedSample:
    """Marker returned for a sample whose media could not be read."""

    index: int
    path: str
    reason: str


def modality_length(record: dict[str, Any], early_mix_text: bool = False) -> int:
    """Reference ``modality_lengths`` entry: word count, positive for image/video records, negative for text."""
    n = sum(len(str(t.get("value", t.get("content", ""))).split()) for t in record["conversations"])
    n = max(n, 1)
    return n if ("image" in record or "video" in record or early_mix_text) else -n


def expand_to_square(image: np.ndarray, colour: tuple[int, int, int] = (127, 127, 127)) -> np.ndarray:
    """Pad an ``[H,W,3]`` uint8 image to a centred square with ``colour`` (the reference ``pad`` mode)."""
    h, w = image.shape[:2]
    if h == w:
        return image
    s = max(h, w)
    out = np.empty((s, s, 3), dtype=np.uint8)
    out[:] = np.asarray(colour, dtype=np.uint8)
    top, left = (s - h) // 2, (s - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def read_image(path: str) -> np.ndarray:
    """Decode one image file to ``[H,W,3]`` uint8 RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class SupervisedDataset(Dataset):
    """Lazy dataset over validated records (see :func:`streamforest.data.data_list.load_data_list`).

    Each item is ``{"input_ids": Long[L], "labels": Long[L], "image": Float[T,3,S,S], "modality": str,
    "path": str}`` or a :class:`SkippedSample`.
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        tokenizer: Any,
        image_processor: Any,
        *,
        version: str = "qwen_2",
        sampling: VideoSampling | None = None,
        early_mix_text: bool = False,
        time_msg_insertion: str = "train",
    ) -> None:
        if time_msg_insertion not in TIME_MSG_INSERTIONS:
            raise ValueError(f"data.time_msg_insertion {time_msg_insertion!r} is not one of {list(TIME_MSG_INSERTIONS)}")
        self.time_msg_insertion = time_msg_insertion
        self.records = records
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.version = version
        self.sampling = sampling or VideoSampling()
        self.early_mix_text = early_mix_text
        self._warned: set[str] = set()
        if version == "plain":
            self._check_plain()

    def _check_plain(self) -> None:
        for i, rec in enumerate(self.records):
            turns = normalise_turns(rec["conversations"])
            if len(turns) != 2 or DEFAULT_IMAGE_TOKEN not in turns[0][1]:
                raise ValueError(
                    f"{rec.get('_source', '?')} record {i}: the 'plain' template (stage 1) needs exactly two turns, "
                    "the first containing <image>; fix the record or use model.version=qwen_2"
                )

    def __len__(self) -> int:
        return len(self.records)

    @property
    def modality_lengths(self) -> list[int]:
        """Signed word counts used by the modality-grouped sampler (REFERENCE §4.10)."""
        return [modality_length(r, self.early_mix_text) for r in self.records]

    # ------------------------------------------------------------------------------------------- media
    def dummy_image(self) -> torch.Tensor:
        """Black ``[1,3,S,S]`` pixels of the processor size (text-only samples, all-skipped batches)."""
        size = getattr(self.image_processor, "crop_size", None) or {"height": 384, "width": 384}
        black = np.zeros((size["height"], size["width"], 3), dtype=np.uint8)
        return self.image_processor.preprocess(black, return_tensors="pt")["pixel_values"]

    def _load_images(self, paths: str | list[str]) -> torch.Tensor:
        if isinstance(paths, str):
            arrays = [read_image(paths)]
        else:
            arrays = [read_image(p) for p in paths]
            if len(arrays) > 1:
                arrays = [expand_to_square(a) for a in arrays]
        return self.image_processor.preprocess(arrays, return_tensors="pt")["pixel_values"]

    def _load_video(self, record: dict[str, Any]) -> tuple[torch.Tensor, str | None]:
        s = self.sampling
        clip = None
        if record.get("start") is not None or record.get("end") is not None:
            clip = (float(record.get("start") or 0.0), float(record["end"]) if record.get("end") is not None else None)
        backend = backend_for(record.get("video_read_type"))  # one alias table: decord → PyAV fallback
        video = load_video(
            record["video"],
            num_frames=s.frames_upbound,
            sample=s.sample_type,
            min_num_frames=s.frames_lowbound,
            max_num_frames=s.frames_upbound,
            clip=clip,
            local_num_frames=s.local_num_frames,
            fps=record.get("fps"),
            backend=backend,
        )
        n = len(video.indices)
        if s.sample_type == "dynamic_fps1" and n % s.local_num_frames != 0:
            raise ValueError(f"{n} frames sampled, not a multiple of local_num_frames={s.local_num_frames}")
        msg = None
        if s.time_msg:
            msg = time_message(s.time_msg, frame_timestamps(video.indices, video.fps), video.duration)
        pixels = self.image_processor.preprocess(video.frames, return_tensors="pt")["pixel_values"]
        return pixels, msg

    def _media(self, record: dict[str, Any]) -> tuple[torch.Tensor, str, str | None]:
        if "image" in record:
            return self._load_images(record["image"]), "image", None
        if "video" in record:
            pixels, msg = self._load_video(record)
            return pixels, "video", msg
        return self.dummy_image(), "text", None

    # ------------------------------------------------------------------------------------------- items
    def __getitem__(self, i: int) -> dict[str, Any] | SkippedSample:
        record = self.records[i]
        path = record.get("video", record.get("image", ""))
        path = path if isinstance(path, str) else ",".join(path)
        try:
            pixels, modality, msg = self._media(record)
        except Exception as e:  # noqa: BLE001 - any decoding failure means: skip this sample, loudly
            if path not in self._warned:
                self._warned.add(path)
                logger.warning("skipping sample %d (%s record %s): cannot read %s: %s", i, record.get("_source", "?"), record.get("id"), path, e)
            return SkippedSample(index=i, path=path, reason=f"{type(e).__name__}: {e}")
        turns = normalise_turns(record["conversations"])
        if modality == "video":
            turns = add_time_message(turns, msg, self.time_msg_insertion)
        elif modality == "image":
            turns = add_time_message(turns, None, self.time_msg_insertion)
        item = tokenize_conversation(turns, self.tokenizer, self.version)
        item.update(image=pixels, modality=modality, path=path)
        return item
