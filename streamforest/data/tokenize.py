"""Turn a conversation into ``input_ids`` / ``labels`` exactly as the reference trains (REFERENCE §4.6).

* ``qwen_2`` (stages 2–5): system message masked, user turns masked, assistant turns fully supervised
  (including the ``<|im_start|>assistant\\n`` header and the trailing ``<|im_end|>\\n``); afterwards every
  token whose id is that of ``"\\n"``, ``<|im_start|>`` or ``<|im_end|>`` is **un-masked anywhere**, also inside
  system and user turns. This LLaVA-OneVision quirk is kept on purpose: the released weights were trained
  with it (docs/DEVIATIONS.md).
* ``plain`` (stage 1): the human turn is replaced by ``<image>`` alone, text = ``<image>`` + answer + ``"\\n"``,
  only the placeholder is masked, no EOS.

``<image>`` becomes ``IMAGE_TOKEN_INDEX`` (−200) in ``input_ids``; no truncation here (the collator does it).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from streamforest.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from streamforest.prompts import get_template, insert_time_message, tokenizer_image_token

logger = logging.getLogger(__name__)

ROLE_MAP = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def normalise_turns(conversations: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``[{"from"|"role", "value"|"content"}]`` → ``[(role in {user, assistant}, text)]``.

    A first turn that is not from the human is dropped (reference behaviour); a ``system`` turn is ignored
    (the template's system message is always used).
    """
    turns: list[tuple[str, str]] = []
    for turn in conversations:
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if role == "system":
            continue
        if role not in ROLE_MAP:
            raise ValueError(f"conversation turn role {role!r} is not one of {sorted(ROLE_MAP)}")
        turns.append((ROLE_MAP[role], text))
    if turns and turns[0][0] != "user":
        turns = turns[1:]
    return turns


def add_time_message(turns: list[tuple[str, str]], msg: str | None, insertion: str = "train") -> list[tuple[str, str]]:
    """Insert the time message into every turn holding ``<image>``: the reference's training form (REFERENCE
    §1.11) or, with ``insertion="eval"``, the evaluation form (:func:`streamforest.prompts.insert_time_message`)."""
    return [(role, insert_time_message(text, msg or "", insertion) if DEFAULT_IMAGE_TOKEN in text else text) for role, text in turns]


def _unmask_ids(tokenizer: Any) -> list[int]:
    """Ids un-masked everywhere by the qwen recipe: ``"\\n"``, ``<|im_start|>``, ``<|im_end|>``."""
    ids: list[int] = []
    nl = tokenizer.encode("\n", add_special_tokens=False)
    if len(nl) == 1:
        ids.append(nl[0])
    for tok in ("<|im_start|>", "<|im_end|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if tid is not None and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return ids


def preprocess_qwen(
    turns: list[tuple[str, str]], tokenizer: Any, template_name: str = "qwen_2"
) -> dict[str, torch.Tensor]:
    """Tokenise a conversation with the ChatML recipe of the reference.

    Args:
        turns: ``[(role, text)]`` with roles ``user``/``assistant`` (see :func:`normalise_turns`).
        tokenizer: a Hugging Face tokenizer that knows ``<|im_start|>``/``<|im_end|>``.

    Returns:
        ``{"input_ids": LongTensor [L], "labels": LongTensor [L]}`` with −200 at each ``<image>``.
    """

    tpl = get_template(template_name)
    roles = {"user": tpl.roles[0], "assistant": tpl.roles[1]}
    input_ids: list[int] = []
    labels: list[int] = []
    system = tokenizer_image_token(tpl.system + tpl.sep + "\n", tokenizer)
    input_ids += system
    labels += [IGNORE_INDEX] * len(system)
    for role, text in turns:
        ids = tokenizer_image_token(f"{roles[role]}\n{text}{tpl.sep}\n", tokenizer)
        input_ids += ids
        labels += ids if role == "assistant" else [IGNORE_INDEX] * len(ids)
    unmask = set(_unmask_ids(tokenizer))
    labels = [tok if tok in unmask else lab for tok, lab in zip(input_ids, labels)]
    # placeholders are never targets (a -200 can only be in input_ids of user turns or assistant text)
    labels = [IGNORE_INDEX if tok == IMAGE_TOKEN_INDEX else lab for tok, lab in zip(input_ids, labels)]
    return {"input_ids": torch.tensor(input_ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}


def preprocess_plain(turns: list[tuple[str, str]], tokenizer: Any, template_name: str = "plain") -> dict[str, torch.Tensor]:
    """Stage-1 recipe: ``<image>`` + answer + sep; only the placeholder is masked (no EOS)."""

    if len(turns) != 2 or DEFAULT_IMAGE_TOKEN not in turns[0][1]:
        raise ValueError("the 'plain' template needs exactly 2 turns (human with <image>, then gpt)")
    sep = get_template(template_name).sep
    ids = tokenizer_image_token(DEFAULT_IMAGE_TOKEN + turns[1][1] + sep, tokenizer)
    n_prompt = len(tokenizer_image_token(DEFAULT_IMAGE_TOKEN, tokenizer))
    labels = [IGNORE_INDEX] * n_prompt + list(ids[n_prompt:])
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}


def tokenize_conversation(
    turns: list[tuple[str, str]], tokenizer: Any, version: str
) -> dict[str, torch.Tensor]:
    """Dispatch on the prompt ``version`` (``qwen_2`` or ``plain``)."""
    if version == "plain":
        return preprocess_plain(turns, tokenizer)
    if version == "qwen_2":
        return preprocess_qwen(turns, tokenizer)
    raise ValueError(f"model.version {version!r} is not supported; use 'qwen_2' (stages 2-5) or 'plain' (stage 1)")
