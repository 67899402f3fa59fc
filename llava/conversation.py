"""Legacy import path ``llava.conversation`` (re-exports :mod:`streamforest.prompts`).

``conv_templates[name].copy()`` gives a fresh :class:`Conversation`; ``get_prompt()`` renders it.
"""

from streamforest.prompts import (
    Conversation,
    SeparatorStyle,
    conv_plain,
    conv_qwen,
    conv_templates,
    get_template,
)

default_conversation = conv_qwen
"""The template StreamForest stages 2–5 and evaluation use (``qwen_2``)."""

__all__ = [
    "Conversation",
    "SeparatorStyle",
    "conv_plain",
    "conv_qwen",
    "conv_templates",
    "default_conversation",
    "get_template",
]
