"""Prompts — the one source of truth for conversation templates, time messages and their insertion.

Everything here reproduces the reference text byte for byte (REFERENCE §1.10, §1.11, §5.2): the released
checkpoints were trained and evaluated with exactly these strings. Two insertion builders exist on purpose:

* :func:`insert_time_message_train` — what training (``preprocess_multimodal``) feeds the model:
  ``<image>⏎The video contains … entire video). ⏎{question}``;
* :func:`build_eval_question` — what the evaluation adapter feeds the model:
  ``<image>⏎⏎The video contains … entire video). {question}`` (one extra newline, none before the question).

Importing this module is cheap: ``transformers`` and ``torch`` load only inside the functions that need them.

    >>> from streamforest.prompts import build_inference_prompt, frame_timestamps, time_message
    >>> msg = time_message("short_online_v2", frame_timestamps([15, 1065], 30.0), 36.0)
    >>> prompt = build_inference_prompt("What is ahead?", msg)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from streamforest.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX, TIME_MSG_PER_FRAME_TOKEN

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "EVAL_GENERATION_DEFAULTS",
    "NO_FORMS",
    "TIME_MSG_KINDS",
    "TIME_MSG_SPAN_KINDS",
    "WATCH_YES_NO_INSTRUCTION",
    "YES_FORMS",
    "Conversation",
    "KeywordsStoppingCriteria",  # noqa: F822 - built lazily by __getattr__ (needs transformers)
    "SeparatorStyle",
    "build_eval_question",
    "build_inference_prompt",
    "conv_templates",
    "frame_timestamps",
    "get_template",
    "insert_time_message_train",
    "single_token_ids",
    "stop_string",
    "time_message",
    "tokenizer_image_token",
    "watch_question",
]

# ----------------------------------------------------------------------------------------------------------
# Conversation templates (REFERENCE §1.10, §4.6)
# ----------------------------------------------------------------------------------------------------------


class SeparatorStyle(Enum):
    """How a :class:`Conversation` renders its messages (only the two styles StreamForest uses)."""

    CHATML = "chatml"
    PLAIN = "plain"


@dataclass
class Conversation:
    """A conversation template plus the messages appended to it (LLaVA's ``Conversation`` API).

    ``messages`` holds ``[role, text]`` pairs; ``text=None`` marks the open turn the model completes.
    Use :meth:`copy` before appending to a template from :data:`conv_templates`.
    """

    system: str
    roles: tuple[str, str]
    sep_style: SeparatorStyle
    sep: str
    sep2: str | None = None
    version: str = "plain"
    stop_str: str | None = None
    """Text that ends the model's turn; generation stops once the output ends with it (None: EOS only)."""
    messages: list[list[str | None]] = field(default_factory=list)

    def append_message(self, role: str, message: str | None) -> None:
        """Append one turn; ``role`` must be one of :attr:`roles`."""
        if role not in self.roles:
            raise ValueError(f"role {role!r} is not one of this template's roles {self.roles}")
        self.messages.append([role, message])

    def get_prompt(self) -> str:
        """Render the conversation exactly as the reference does (REFERENCE §1.10)."""
        if self.sep_style is SeparatorStyle.CHATML:
            out = "" if self.system == "" else self.system + self.sep + "\n"
            for role, message in self.messages:
                out += role + "\n" if message is None else role + "\n" + message + self.sep + "\n"
            return out
        seps = (self.sep, self.sep2 if self.sep2 is not None else self.sep)
        out = self.system
        for i, (_, message) in enumerate(self.messages):
            if message:
                out += message + seps[i % 2]
        return out

    def copy(self) -> Conversation:
        """An independent copy (messages are copied, so the template stays empty)."""
        return dataclasses.replace(self, messages=[list(m) for m in self.messages])


conv_qwen = Conversation(
    system="<|im_start|>system\nYou are a helpful assistant.",
    roles=("<|im_start|>user", "<|im_start|>assistant"),
    sep_style=SeparatorStyle.CHATML,
    sep="<|im_end|>",
    version="qwen",
    stop_str="<|im_end|>",
)
"""ChatML template of Qwen2-Instruct (``qwen_2`` in the reference)."""

conv_plain = Conversation(system="", roles=("", ""), sep_style=SeparatorStyle.PLAIN, sep="\n", sep2="\n", version="plain")
"""Stage-1 template: no system prompt, no roles, newline separator (REFERENCE §4.6)."""

conv_templates: dict[str, Conversation] = {
    "qwen_2": conv_qwen,
    # LLaVA-NeXT (the code base the reference derives from) registers the same object under this name.
    "qwen_1_5": conv_qwen,
    "plain": conv_plain,
}
"""Template registry; values are shared prototypes — call ``.copy()`` before appending messages."""


def get_template(name: str) -> Conversation:
    """A fresh copy of the template ``name`` (``qwen_2`` or ``plain``); unknown names raise ``ValueError``."""
    try:
        return conv_templates[name].copy()
    except KeyError:
        raise ValueError(
            f"unknown conversation template {name!r}; known templates: {', '.join(sorted(conv_templates))} "
            "(set 'version' / 'conv_template' to one of them)"
        ) from None


# ----------------------------------------------------------------------------------------------------------
# Time messages (REFERENCE §1.11)
# ----------------------------------------------------------------------------------------------------------

TIME_MSG_KINDS = ("short", "short_online", "short_online_v2", "short_online_per_frame")
"""The named kinds; any other non-empty string selects the generic per-timestamp message."""


def frame_timestamps(indices: Sequence[int], fps: float) -> list[str]:
    """The reference's ``sec`` list: ``str(round(index / fps, 1))`` for every sampled frame index.

    Args:
        indices: absolute frame indices (``VideoClip.indices``).
        fps: the video's frame rate (``VideoClip.fps``).
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0 to turn frame indices into seconds, got {fps}")
    return [str(round(int(i) / float(fps), 1)) for i in indices]


TIME_MSG_SPAN_KINDS = ("short", "short_online", "short_online_v2")
"""Kinds whose text needs only the frame count and the first/last timestamps (``time_message(count=…)``)."""


def _v2_text(sec: Sequence[str], n: int) -> str:
    first, last = float(sec[0]), float(sec[-1])
    return (
        f"\nThe video contains {n} frames sampled from the past {last - first:.1f} seconds ago "
        f"({first:.1f}s of the entire video) up to the present moment ({last:.1f}s of the entire video). "
    )


def time_message(kind: str | None, timestamps: Sequence[str], duration: float, count: int | None = None) -> str:
    """The time message of kind ``kind`` (REFERENCE §1.11); ``None`` or ``""`` gives ``""``.

    Args:
        kind: ``short``, ``short_online``, ``short_online_v2``, ``short_online_per_frame``, any other
            string (generic: lists every timestamp) or ``None``.
        timestamps: the ``sec`` strings of :func:`frame_timestamps` (N = number of frames).
        duration: duration returned by the video reader (clip duration when a clip was read).
        count: the number of frames N when ``timestamps`` holds only the first and last of them (the
            kinds of :data:`TIME_MSG_SPAN_KINDS`; same text, O(1) for endless streams).

    Returns:
        A string that starts with ``"\\n"`` and ends with one space (``short_online_per_frame`` ends with
        the per-frame marker token), or ``""``.
    """
    if not kind:
        return ""
    sec = [str(s) for s in timestamps]
    if not sec:
        raise ValueError("time_message needs at least one frame timestamp (the video reader returned no frames)")
    n = len(sec) if count is None else int(count)
    if count is not None and kind not in TIME_MSG_SPAN_KINDS:
        raise ValueError(f"time message {kind!r} lists every frame: pass all timestamps, not count={count}")
    if kind == "short":
        return f"\nThe video lasts for {duration:.2f} seconds, and {n} frames are uniformly sampled from it. "
    if kind == "short_online":
        span = float(sec[-1]) - float(sec[0])
        return f"\nThe video segment contains {n} frames sampled from the past {span:.1f} seconds ago up to the present moment. "
    if kind == "short_online_v2":
        return _v2_text(sec, n)
    if kind == "short_online_per_frame":
        per_frame = "".join(f"{TIME_MSG_PER_FRAME_TOKEN}{s} seconds" for s in sec) + TIME_MSG_PER_FRAME_TOKEN
        return _v2_text(sec, n) + per_frame
    return f"\nThe video lasts for {duration:.2f} seconds, and {n} frames are uniformly sampled at {', '.join(sec)} seconds. "


# ----------------------------------------------------------------------------------------------------------
# Insertion (training vs evaluation) and the full inference prompt
# ----------------------------------------------------------------------------------------------------------


def insert_time_message_train(value: str, msg: str | None) -> str:
    """Training insertion (``preprocess_multimodal``, REFERENCE §1.11) applied to one turn's text.

    A turn with exactly one ``<image>`` that is not at the start has it moved to the front as
    ``"<image>\\n" + rest``; then every ``<image>`` becomes ``"<image>" + msg.rstrip() + " "``.
    With an empty (or blank) message the ``<image>`` stays as it is, as in the reference.
    """
    if value.count(DEFAULT_IMAGE_TOKEN) == 1 and not value.startswith(DEFAULT_IMAGE_TOKEN):
        rest = value.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        value = (DEFAULT_IMAGE_TOKEN + "\n" + rest).strip()
    if msg and msg.rstrip():
        value = value.replace(DEFAULT_IMAGE_TOKEN, DEFAULT_IMAGE_TOKEN + msg.rstrip() + " ")
    # the reference also strips this VideoInstruct-100K annotation artefact from every turn
    return value.replace("QA_GT_caption_based_noisy", "")


TIME_MSG_INSERTIONS: tuple[str, ...] = ("train", "eval")
"""Where training puts the time message (``data.time_msg_insertion``): ``train`` — the reference's training form
(:func:`insert_time_message_train`, the default); ``eval`` — the evaluation form (:func:`build_eval_question`),
so that a model trained from scratch sees at training time exactly the prompt every inference path builds."""


def insert_time_message(value: str, msg: str | None, insertion: str = "train") -> str:
    """One training turn's text with the time message inserted in the ``insertion`` form (see
    :data:`TIME_MSG_INSERTIONS`).

    ``eval`` gives ``"<image>" + "\n" + msg.rstrip() + " " + rest`` for a turn holding exactly one ``<image>``
    (``rest``: the turn without it, stripped) — the text :func:`build_inference_prompt` writes for the same
    question. Turns with several ``<image>`` have no evaluation form and keep the training one.
    """
    if insertion not in TIME_MSG_INSERTIONS:
        raise ValueError(f"time_msg_insertion {insertion!r} is not one of {list(TIME_MSG_INSERTIONS)}")
    if insertion == "train" or value.count(DEFAULT_IMAGE_TOKEN) != 1:
        return insert_time_message_train(value, msg)
    rest = value.replace(DEFAULT_IMAGE_TOKEN, "").strip()
    return build_eval_question(rest, msg if msg and msg.rstrip() else None).replace("QA_GT_caption_based_noisy", "")


def build_eval_question(question: str, msg: str | None) -> str:
    """Evaluation insertion (lmms-eval adapter, REFERENCE §5.2 item 4) for one video.

    ``"<image>" + "\\n" + msg.rstrip() + " " + question`` — with the extra newline the released model was
    evaluated with. Without a message: ``"<image>\\n" + question``. A question that already contains
    ``<image>`` is returned unchanged (the reference then adds no time message).
    """
    if DEFAULT_IMAGE_TOKEN in question:
        return question
    if msg:
        return DEFAULT_IMAGE_TOKEN + "\n" + msg.rstrip() + " " + question
    return DEFAULT_IMAGE_TOKEN + "\n" + question


def build_inference_prompt(
    question: str,
    time_msg: str | None,
    template: str = "qwen_2",
    history: Sequence[tuple[str, str]] = (),
) -> str:
    """The full generation prompt: eval insertion of ``time_msg``, the user turn(s), an open assistant turn.

    Example (``qwen_2``): ``<|im_start|>system⏎You are a helpful assistant.<|im_end|>⏎<|im_start|>user⏎``
    ``<image>⏎⏎The video contains … {question}<|im_end|>⏎<|im_start|>assistant⏎``.

    ``history`` holds earlier ``(question, answer)`` turns of a multi-turn dialogue. As in the reference (one
    ``<image>`` at the start of the first user turn, REFERENCE §5.2 item 4), the visual placeholder and the
    time message go into the **first** user turn; later questions and the answers are plain text turns.
    A follow-up ``question`` must not contain ``<image>`` (``ValueError``).
    """
    conv = get_template(template)
    if history and DEFAULT_IMAGE_TOKEN in question:
        raise ValueError(
            f"a follow-up question cannot contain {DEFAULT_IMAGE_TOKEN}: the visual tokens sit in the first turn"
        )
    for i, (past_question, past_answer) in enumerate(history):
        conv.append_message(conv.roles[0], build_eval_question(past_question, time_msg) if i == 0 else past_question)
        conv.append_message(conv.roles[1], past_answer)
    conv.append_message(conv.roles[0], question if history else build_eval_question(question, time_msg))
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


# ----------------------------------------------------------------------------------------------------------
# Standing questions (streaming ``watch``): the prompt text and the answer tokens a probe reads
# ----------------------------------------------------------------------------------------------------------

WATCH_YES_NO_INSTRUCTION = "Answer yes or no."
"""Appended (after a newline) to a yes/no standing question: ``"Is the light green?\nAnswer yes or no."``;
the trained answer is ``"Yes"`` or ``"No"`` (capitalised, nothing else)."""

YES_FORMS = ("Yes", "yes", "YES", " Yes", " yes", " YES")
NO_FORMS = ("No", "no", "NO", " No", " no", " NO")
"""Surface forms of the two answers; a probe counts each form the tokenizer encodes as a single token."""


def watch_question(question: str, option: str | None = None) -> str:
    """The question text of a standing question (the user turn's question, before the time message).

    Yes/no (``option=None``): ``"{question}\n{WATCH_YES_NO_INSTRUCTION}"``. Option watch (``option="B"``):
    the question with its ``A. …`` option lines, followed by the multiple-choice post prompt
    (``MCQ_POST_PROMPT``) unless it already ends with it. Leading/trailing blanks are stripped.
    """
    from streamforest.eval.scoring import MCQ_POST_PROMPT

    text = question.strip()
    if option is None:
        return f"{text}\n{WATCH_YES_NO_INSTRUCTION}"
    return text if text.endswith(MCQ_POST_PROMPT) else f"{text}\n{MCQ_POST_PROMPT}"


def single_token_ids(tokenizer: Any, forms: Sequence[str]) -> list[int]:
    """Sorted distinct ids of the ``forms`` that ``tokenizer`` encodes as exactly one token (no specials)."""
    ids = {tuple(tokenizer(form, add_special_tokens=False).input_ids) for form in forms}
    return sorted({i[0] for i in ids if len(i) == 1})


def stop_string(template: str) -> str | None:
    """The text that ends an assistant turn of ``template`` (``<|im_end|>`` for ``qwen_2``; None for ``plain``)."""
    return get_template(template).stop_str


# ----------------------------------------------------------------------------------------------------------
# Tokenisation with image placeholders
# ----------------------------------------------------------------------------------------------------------


def _bos_added(tokenizer: Any) -> int | None:
    """The BOS id if ``tokenizer`` prepends one when asked for special tokens (Qwen2 does not)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    ids = tokenizer("a", add_special_tokens=True).input_ids
    return bos if ids and ids[0] == bos else None


def tokenizer_image_token(
    prompt: str,
    tokenizer: Any,
    image_token_index: int = IMAGE_TOKEN_INDEX,
    return_tensors: str | None = None,
) -> list[int] | torch.Tensor:
    """Tokenise ``prompt`` with every ``<image>`` replaced by the placeholder id ``image_token_index``.

    Each text chunk between placeholders is tokenised on its own without special tokens. A tokenizer that
    adds a BOS token gets exactly one, at the very start (LLaVA behaviour); Qwen2 adds none.

    Args:
        prompt: text with zero or more ``<image>`` markers.
        tokenizer: a Hugging Face tokenizer.
        image_token_index: id written at each placeholder (−200).
        return_tensors: ``None`` → ``list[int]``; ``"pt"`` → ``LongTensor [L]``.
    """
    if return_tensors not in (None, "pt"):
        raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
    ids: list[int] = []
    bos = _bos_added(tokenizer)
    if bos is not None:
        ids.append(bos)
    for i, chunk in enumerate(prompt.split(DEFAULT_IMAGE_TOKEN)):
        if i > 0:
            ids.append(image_token_index)
        if chunk:
            ids.extend(tokenizer(chunk, add_special_tokens=False).input_ids)
    if return_tensors == "pt":
        import torch

        return torch.tensor(ids, dtype=torch.long)
    return ids


# ----------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------

EVAL_GENERATION_DEFAULTS: dict[str, Any] = {
    "max_new_tokens": 1024,
    "temperature": 0,
    "do_sample": False,
    "top_p": None,
    "num_beams": 1,
    "use_cache": True,
}
"""Generation defaults of the reference evaluation adapter (REFERENCE §1.13, §5.2 item 6); task YAMLs override
``max_new_tokens`` (16 for multiple choice) and ``top_p`` (1.0). Copy before modifying."""


def _make_keywords_stopping_criteria() -> type:
    """Build :class:`KeywordsStoppingCriteria` on first use (keeps ``import streamforest.prompts`` cheap)."""
    import torch
    from transformers import StoppingCriteria

    class KeywordsStoppingCriteria(StoppingCriteria):
        """Stop generation once the generated text ends with one of ``keywords`` (e.g. ``"<|im_end|>"``).

        Matching is on token ids (a keyword's ids are a suffix of the row) or on the decoded tail of the
        last few tokens, special tokens included.

        Args:
            keywords: stop strings.
            tokenizer: the tokenizer used for generation.
            input_ids: the prompt ``LongTensor [B, L]`` (kept for API compatibility: ``start_len = L``).
        """

        tail_tokens = 3

        def __init__(self, keywords: Sequence[str], tokenizer: Any, input_ids: Any = None) -> None:
            if isinstance(keywords, str):
                keywords = [keywords]
            if not keywords:
                raise ValueError("KeywordsStoppingCriteria needs at least one keyword")
            self.keywords = list(keywords)
            self.tokenizer = tokenizer
            self.keyword_ids = [list(tokenizer(k, add_special_tokens=False).input_ids) for k in self.keywords]
            self.start_len = int(input_ids.shape[1]) if getattr(input_ids, "shape", None) is not None else 0

        def _row_done(self, row: list[int]) -> bool:
            for kw_ids in self.keyword_ids:
                if kw_ids and row[-len(kw_ids) :] == kw_ids:
                    return True
            longest = max(len(k) for k in self.keyword_ids)
            tail = self.tokenizer.decode(row[-(longest + self.tail_tokens) :], skip_special_tokens=False)
            return any(tail.rstrip().endswith(k) for k in self.keywords)

        def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
            """``input_ids [B, L']`` (prompt and/or generated ids) → ``BoolTensor [B]``: True = stop."""
            done = [self._row_done(row) for row in input_ids.tolist()]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    KeywordsStoppingCriteria.__module__ = __name__
    return KeywordsStoppingCriteria


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "KeywordsStoppingCriteria":
        if name not in _LAZY:
            _LAZY[name] = _make_keywords_stopping_criteria()
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
