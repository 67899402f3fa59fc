"""Token ids and strings shared by prompts, data and the model (values of the reference, REFERENCE §1.9)."""

IGNORE_INDEX = -100
"""Label value ignored by the loss."""
IMAGE_TOKEN_INDEX = -200
"""Placeholder id that marks where visual tokens are spliced into ``input_ids``."""
DEFAULT_IMAGE_TOKEN = "<image>"
DEFAULT_IMAGE_PATCH_TOKEN = "<im_patch>"
DEFAULT_IM_START_TOKEN = "<im_start>"
DEFAULT_IM_END_TOKEN = "<im_end>"
TIME_MSG_PER_FRAME_TOKEN = "[TIME_MSG_PER_FRAME]"
