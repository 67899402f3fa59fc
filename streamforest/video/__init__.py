"""Video loading: pure frame sampling (:mod:`.sampling`) and the decoders (:mod:`.decoders`) behind one API.

    >>> clip = load_video("drive.mp4", clip=(0.0, 36.0))           # eval defaults: min 4, max 2048 frames
    >>> clip.frames.shape, clip.timestamps[0], clip.timestamps[-1]   # ((37, H, W, 3), 0.466…, 35.466…)
"""

from streamforest.video.decoders import (
    BACKENDS,
    READ_TYPES,
    VideoClip,
    backend_for,
    iter_video_frames,
    list_frame_files,
    load_video,
    read_video,
)
from streamforest.video.sampling import (
    END_MARGIN_S,
    EVAL_SAMPLING,
    STREAM_SAMPLING,
    SamplingSpec,
    VideoError,
    clip_frame_indices,
    folder_fps,
    get_frame_indices,
)

__all__ = [
    "BACKENDS",
    "END_MARGIN_S",
    "EVAL_SAMPLING",
    "READ_TYPES",
    "STREAM_SAMPLING",
    "SamplingSpec",
    "VideoClip",
    "VideoError",
    "backend_for",
    "clip_frame_indices",
    "folder_fps",
    "get_frame_indices",
    "iter_video_frames",
    "list_frame_files",
    "load_video",
    "read_video",
]
