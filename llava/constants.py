"""Legacy import path ``llava.constants`` (re-exports :mod:`streamforest.constants`)."""

from streamforest.constants import (
    DEFAULT_IM_END_TOKEN,
    DEFAULT_IM_START_TOKEN,
    DEFAULT_IMAGE_PATCH_TOKEN,
    DEFAULT_IMAGE_TOKEN,
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    TIME_MSG_PER_FRAME_TOKEN,
)

__all__ = [
    "DEFAULT_IMAGE_PATCH_TOKEN",
    "DEFAULT_IMAGE_TOKEN",
    "DEFAULT_IM_END_TOKEN",
    "DEFAULT_IM_START_TOKEN",
    "IGNORE_INDEX",
    "IMAGE_TOKEN_INDEX",
    "TIME_MSG_PER_FRAME_TOKEN",
]
