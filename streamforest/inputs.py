"""Checks of user input on the inference path, shared by the notebook API, the lmms-eval adapter and the
streaming session (re-exported by :mod:`streamforest.inference`): questions, times in seconds, and whether a
prompt plus its answer fits the model's context."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PromptTooLongError", "check_fits", "check_question", "check_seconds"]


def check_question(question: Any, where: str = "question") -> str:
    """``question`` if it is a non-empty ``str`` that encodes as UTF-8; otherwise a clear error.

    Raises:
        TypeError: not a ``str`` (bytes: decode them first). ValueError: empty, or holding a lone surrogate
            (e.g. non-UTF-8 bytes on a command line, read with ``surrogateescape``), with its position.
    """
    if isinstance(question, (bytes, bytearray)):
        raise TypeError(f"{where} must be a str, got bytes; decode it first, e.g. question.decode('utf-8')")
    if not isinstance(question, str):
        raise TypeError(f"{where} must be a str, got {type(question).__name__} ({question!r:.60})")
    if not question.strip():
        raise ValueError(f"{where} must be a non-empty string, got {question!r}; ask a question")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{where} is not valid text: character {e.start} is {question[e.start]!r} (a lone surrogate, e.g. from "
            "non-UTF-8 bytes); give UTF-8 text"
        ) from None
    return question


def check_seconds(value: Any, name: str, *, allow_none: bool = True) -> float | None:
    """``value`` as a finite float of seconds (None passes when ``allow_none``); a string, NaN or ±inf is a
    ``ValueError`` naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (str, bytes, bool)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r} ({type(value).__name__}); e.g. {name}=5.0")
    seconds = float(value)
    if not np.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return seconds


class PromptTooLongError(ValueError):
    """A prompt (text + visual tokens) plus the answer does not fit the model's context (:func:`check_fits`)."""


def check_fits(model: Any, prompt: Any, max_new_tokens: int = 0) -> None:
    """Refuse a prompt that, with ``max_new_tokens`` of answer, exceeds the model's context
    (``tokenizer_model_max_length``: a longer sequence would be cut from the end, dropping the assistant header)."""
    limit = getattr(getattr(model, "multimodal", None), "tokenizer_model_max_length", None)
    if not isinstance(limit, int) or limit < 1:
        return  # unlimited or unknown
    text, visual = int(prompt.input_ids.shape[1]) - 1, int(prompt.visual.shape[0])
    if text + visual + max_new_tokens > limit:
        raise PromptTooLongError(
            f"the prompt does not fit the model's context of {limit} tokens: {text} text tokens (question, "
            f"time message, template) + {visual} visual tokens + {max_new_tokens} answer tokens = "
            f"{text + visual + max_new_tokens}; shorten the question or use fewer frames"
        )
