"""Legacy import path ``llava.video_utils``: the reference reader registry over :func:`streamforest.video.load_video`.

Every reader has the reference signature and returns ``(frames uint8 [T,H,W,3], frame_indices, fps, duration)``.
``s3://`` paths (petrel) are not supported; ``client`` is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from streamforest.prompts import frame_timestamps, time_message
from streamforest.video import READ_TYPES, VideoError, get_frame_indices
from streamforest.video import load_video as _load

__all__ = ["VIDEO_READER_FUNCS", "VideoError", "get_frame_indices", "load_video"]

Reader = Callable[..., tuple[np.ndarray, list[int], float, float]]


def _reader(backend: str) -> Reader:
    def read(video_path: str, num_frames: int, sample: str = "rand", fix_start: int | None = None,
             max_num_frames: int = -1, client: Any = None, clip: Any = None, min_num_frames: int = 4,
             local_num_frames: int = 8, fps: float | None = None, **kwargs: Any) -> tuple[np.ndarray, list[int], float, float]:  # fmt: skip
        if "s3://" in str(video_path):
            raise VideoError(f"{video_path}: s3:// (petrel) paths are not supported; download the file and use a local path")
        v = _load(video_path, num_frames=num_frames, sample=sample, fix_start=fix_start, min_num_frames=min_num_frames,
                  max_num_frames=max_num_frames, clip=clip, local_num_frames=local_num_frames, fps=fps, backend=backend)  # fmt: skip
        return v.frames, v.indices, v.fps, v.duration

    read.__name__ = f"read_frames_{backend}"
    read.__doc__ = f"Reference reader signature over ``load_video(..., backend='{backend}')``."
    return read


VIDEO_READER_FUNCS: dict[str, Reader] = {name: _reader(backend) for name, backend in READ_TYPES.items() if name}
"""The reference registry, one reader per ``video_read_type`` of :data:`streamforest.video.READ_TYPES`."""


def load_video(video_path: str | list[str], max_frames_num: int, media_dict: Mapping[str, Any] | None = None,
               time_msg: str | None = "short_online_v2") -> tuple[np.ndarray, str, int]:  # fmt: skip
    """The evaluation adapter's reader call (REFERENCE §5.2): ``(frames, time message, number of frames)``."""
    media = dict(media_dict or {"video_read_type": "decord"})
    path = video_path if isinstance(video_path, str) else video_path[0]
    clip = (media["start"], media["end"]) if "start" in media else None
    reader = VIDEO_READER_FUNCS[media.get("video_read_type") or "decord"]
    frames, indices, fps, duration = reader(path, max_frames_num, sample="dynamic_fps1", min_num_frames=4,
                                            max_num_frames=max_frames_num, clip=clip, local_num_frames=1,
                                            fps=media.get("fps"))  # fmt: skip
    return frames, time_message(time_msg, frame_timestamps(indices, fps), duration), len(indices)
