"""Prompts: golden template / time-message / insertion strings, tokenizer_image_token, stopping criteria."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamforest.constants import IMAGE_TOKEN_INDEX
from streamforest.prompts import (
    EVAL_GENERATION_DEFAULTS,
    build_eval_question,
    build_inference_prompt,
    conv_templates,
    frame_timestamps,
    get_template,
    insert_time_message,
    insert_time_message_train,
    time_message,
    tokenizer_image_token,
)

REPO = Path(__file__).resolve().parents[1]

# REFERENCE §5.2 item 4: ODV-Bench, clip [0 s, 36 s] of a 30-fps video -> 37 frames, first 0.5 s, last 35.5 s
SEC_37 = frame_timestamps([14 + 29 * k for k in range(36)] + [1064], 30.0)
V2_37 = (
    "\nThe video contains 37 frames sampled from the past 35.0 seconds ago (0.5s of the entire video) "
    "up to the present moment (35.5s of the entire video). "
)
QUESTION = (
    "What is the colour of the car ahead?\nA. red\nB. blue\n"
    "Answer with the option's letter from the given choices directly."
)


# ------------------------------------------------------------------------------------------- time messages


def test_frame_timestamps_are_reference_strings():
    assert frame_timestamps([0, 14, 15, 1064, 45], 30.0) == ["0.0", "0.5", "0.5", "35.5", "1.5"]
    assert frame_timestamps([7], 3) == ["2.3"]
    with pytest.raises(ValueError, match="fps"):
        frame_timestamps([1], 0.0)


def test_time_message_short_online_v2_golden():
    assert SEC_37[0] == "0.5" and SEC_37[-1] == "35.5" and len(SEC_37) == 37
    assert time_message("short_online_v2", SEC_37, 36.0) == V2_37


def test_time_message_every_kind_golden():
    sec = ["0.5", "1.5", "2.4"]
    assert time_message("short", sec, 3.0) == "\nThe video lasts for 3.00 seconds, and 3 frames are uniformly sampled from it. "
    assert time_message("short_online", sec, 3.0) == (
        "\nThe video segment contains 3 frames sampled from the past 1.9 seconds ago up to the present moment. "
    )
    assert time_message("short_online_v2", sec, 3.0) == (
        "\nThe video contains 3 frames sampled from the past 1.9 seconds ago (0.5s of the entire video) "
        "up to the present moment (2.4s of the entire video). "
    )
    assert time_message("short_online_per_frame", sec, 3.0) == (
        "\nThe video contains 3 frames sampled from the past 1.9 seconds ago (0.5s of the entire video) "
        "up to the present moment (2.4s of the entire video). "
        "[TIME_MSG_PER_FRAME]0.5 seconds[TIME_MSG_PER_FRAME]1.5 seconds[TIME_MSG_PER_FRAME]2.4 seconds"
        "[TIME_MSG_PER_FRAME]"
    )
    assert time_message("anything_else", sec, 12.345) == (
        "\nThe video lasts for 12.35 seconds, and 3 frames are uniformly sampled at 0.5, 1.5, 2.4 seconds. "
    )
    assert time_message(None, sec, 3.0) == ""
    assert time_message("", sec, 3.0) == ""
    with pytest.raises(ValueError, match="at least one"):
        time_message("short", [], 1.0)


# ------------------------------------------------------------------------------------------- insertion


def test_train_insertion_moves_image_to_front_and_appends_message():
    msg = time_message("short_online_v2", SEC_37, 36.0)
    assert insert_time_message_train("What is ahead?\n<image>", msg) == "<image>" + V2_37.rstrip() + " \nWhat is ahead?"
    # already at the front: only the replacement
    assert insert_time_message_train("<image>\nWhat is ahead?", msg) == "<image>" + V2_37.rstrip() + " \nWhat is ahead?"
    # exact text the model was trained on (REFERENCE §1.11)
    assert insert_time_message_train("<image>\nQ?", msg) == (
        "<image>\nThe video contains 37 frames sampled from the past 35.0 seconds ago (0.5s of the entire video) "
        "up to the present moment (35.5s of the entire video). \nQ?"
    )


def test_train_insertion_without_message_and_multi_image():
    assert insert_time_message_train("Describe <image> please", "") == "<image>\nDescribe  please"
    assert insert_time_message_train("Describe <image> please", None) == "<image>\nDescribe  please"
    assert insert_time_message_train("<image>\nX", "   ") == "<image>\nX"  # blank message: no replacement
    # two placeholders are not moved; each gets the message
    assert insert_time_message_train("a <image> b <image>", "\nM. ") == "a <image>\nM.  b <image>\nM. "
    assert insert_time_message_train("QA_GT_caption_based_noisy<image>", None) == "<image>\n"


def test_eval_question_has_the_extra_newline():
    msg = time_message("short_online_v2", SEC_37, 36.0)
    assert build_eval_question("Q?", msg) == "<image>\n" + V2_37.rstrip() + " Q?"
    assert build_eval_question("Q?", msg).startswith("<image>\n\nThe video contains 37 frames")
    assert build_eval_question("Q?", "") == "<image>\nQ?"
    assert build_eval_question("<image> Q?", msg) == "<image> Q?"


def test_opt_in_eval_insertion_writes_the_inference_text():
    """``data.time_msg_insertion: eval`` gives a training turn the exact text of the evaluation prompt."""
    turn = "<image>\n" + QUESTION
    assert insert_time_message(turn, V2_37, "eval") == build_eval_question(QUESTION, V2_37)
    assert insert_time_message(turn, V2_37, "eval") != insert_time_message_train(turn, V2_37)
    assert insert_time_message(turn, V2_37) == insert_time_message_train(turn, V2_37)  # default: the reference
    assert insert_time_message("Q? <image>", V2_37, "eval") == build_eval_question("Q?", V2_37)  # moved to the front
    assert insert_time_message("<image>\nQ?", "  ", "eval") == "<image>\nQ?"  # blank message: none
    assert insert_time_message("<image>\nQA_GT_caption_based_noisyQ?", None, "eval") == "<image>\nQ?"
    two = "a <image> b <image>"  # no evaluation form: the training one
    assert insert_time_message(two, "\nM. ", "eval") == insert_time_message_train(two, "\nM. ")
    with pytest.raises(ValueError, match="time_msg_insertion 'inference' is not one of"):
        insert_time_message(turn, V2_37, "inference")


def test_inference_prompt_matches_spec_example_byte_for_byte():
    msg = time_message("short_online_v2", SEC_37, 36.0)
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n\n"
        "The video contains 37 frames sampled from the past 35.0 seconds ago (0.5s of the entire video) "
        "up to the present moment (35.5s of the entire video). "
        "What is the colour of the car ahead?\nA. red\nB. blue\n"
        "Answer with the option's letter from the given choices directly.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert build_inference_prompt(QUESTION, msg) == expected


def test_inference_prompt_with_history_puts_image_and_time_message_in_the_first_turn():
    msg = time_message("short_online_v2", ["0.5", "1.5"], 2.0)
    got = build_inference_prompt("And now?", msg, history=[("Where?", "A road."), ("Cars?", "Two.")])
    assert got == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n\n"
        "The video contains 2 frames sampled from the past 1.0 seconds ago (0.5s of the entire video) up to the "
        "present moment (1.5s of the entire video). Where?<|im_end|>\n<|im_start|>assistant\nA road.<|im_end|>\n"
        "<|im_start|>user\nCars?<|im_end|>\n<|im_start|>assistant\nTwo.<|im_end|>\n"
        "<|im_start|>user\nAnd now?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert build_inference_prompt("Q?", msg, history=()) == build_inference_prompt("Q?", msg)
    with pytest.raises(ValueError, match="cannot contain <image>"):
        build_inference_prompt("<image> again?", msg, history=[("Where?", "A road.")])


# ------------------------------------------------------------------------------------------- templates


def test_chatml_multi_turn_rendering():
    conv = get_template("qwen_2")
    conv.append_message(conv.roles[0], "hi")
    conv.append_message(conv.roles[1], "hello")
    conv.append_message(conv.roles[0], "and?")
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nand?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert conv_templates["qwen_2"].messages == []  # the registry prototype is untouched
    assert conv_templates["qwen_1_5"] is conv_templates["qwen_2"]


def test_plain_template_and_errors():
    conv = get_template("plain")
    conv.append_message("", "<image>")
    conv.append_message("", "a cat")
    assert conv.get_prompt() == "<image>\na cat\n"
    assert conv.sep == "\n" and conv.system == ""
    with pytest.raises(ValueError, match="known templates: plain, qwen_1_5, qwen_2"):
        get_template("vicuna_v1")
    with pytest.raises(ValueError, match="role"):
        get_template("qwen_2").append_message("user", "x")


def test_eval_generation_defaults():
    assert EVAL_GENERATION_DEFAULTS == {
        "max_new_tokens": 1024,
        "temperature": 0,
        "do_sample": False,
        "top_p": None,
        "num_beams": 1,
        "use_cache": True,
    }


def test_import_is_cheap():
    code = "import sys, streamforest.prompts; print('transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------------------------------- tokenisation


def _tiny_tokenizer(bos: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + (["<s>"] if bos else [])
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["You are a helpful assistant.", "What is the colour of the car ahead?", "The video contains frames.", "stop here"]
    tok.train_from_iterator(corpus * 4, trainer)
    kwargs = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
        kwargs["bos_token"] = "<s>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def _ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def test_tokenizer_image_token_splits_and_joins_with_minus_200():
    tok = _tiny_tokenizer()
    prompt = "<|im_start|>user\n<image>\nThe video contains frames.<|im_end|>"
    ids = tokenizer_image_token(prompt, tok)
    assert ids == _ids(tok, "<|im_start|>user\n") + [IMAGE_TOKEN_INDEX] + _ids(tok, "\nThe video contains frames.<|im_end|>")
    assert ids.count(IMAGE_TOKEN_INDEX) == 1
    assert tok.convert_tokens_to_ids("<|im_start|>") == ids[0]
    # leading, adjacent and trailing placeholders
    assert tokenizer_image_token("<image><image>car<image>", tok) == [-200, -200] + _ids(tok, "car") + [-200]
    assert tokenizer_image_token("no image here", tok) == _ids(tok, "no image here")
    pt = tokenizer_image_token(prompt, tok, return_tensors="pt")
    assert isinstance(pt, torch.Tensor) and pt.dtype == torch.long and pt.tolist() == ids
    assert tokenizer_image_token("<image>x", tok, image_token_index=-7)[0] == -7
    with pytest.raises(ValueError, match="return_tensors"):
        tokenizer_image_token("x", tok, return_tensors="np")


def test_tokenizer_image_token_keeps_a_single_leading_bos():
    tok = _tiny_tokenizer(bos=True)
    bos = tok.bos_token_id
    assert tok("car").input_ids[0] == bos  # this tokenizer adds BOS
    ids = tokenizer_image_token("car <image> stop here", tok)
    assert ids == [bos] + _ids(tok, "car ") + [IMAGE_TOKEN_INDEX] + _ids(tok, " stop here")
    assert ids.count(bos) == 1
    assert tokenizer_image_token("<image>car", tok)[:2] == [bos, IMAGE_TOKEN_INDEX]


def test_keywords_stopping_criteria():
    from transformers import StoppingCriteria

    from streamforest.prompts import KeywordsStoppingCriteria

    tok = _tiny_tokenizer()
    prompt = torch.tensor([_ids(tok, "What is")])
    crit = KeywordsStoppingCriteria(["<|im_end|>"], tok, prompt)
    assert isinstance(crit, StoppingCriteria) and crit.start_len == prompt.shape[1]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    a = _ids(tok, "car")
    rows = torch.tensor([a + [end], a + [a[0]]])
    assert crit(rows, None).tolist() == [True, False]
    multi = KeywordsStoppingCriteria(["stop here"], tok, prompt)
    assert multi(torch.tensor([_ids(tok, "car stop here")]), None).tolist() == [True]
    assert multi(torch.tensor([_ids(tok, "stop here car")]), None).tolist() == [False]
    with pytest.raises(ValueError, match="keyword"):
        KeywordsStoppingCriteria([], tok, prompt)


# ------------------------------------------------------------------------------------------- llava compat


def test_llava_compat_reexports_and_size():
    import llava.constants
    import llava.conversation
    import llava.mm_utils
    from streamforest import constants, prompts

    assert llava.constants.IMAGE_TOKEN_INDEX == constants.IMAGE_TOKEN_INDEX == -200
    assert llava.conversation.conv_templates is prompts.conv_templates
    assert llava.mm_utils.tokenizer_image_token is prompts.tokenizer_image_token
    assert llava.mm_utils.KeywordsStoppingCriteria is prompts.KeywordsStoppingCriteria
    for name in ("constants", "conversation", "mm_utils", "video_utils"):
        assert len((REPO / "llava" / f"{name}.py").read_text().splitlines()) < 100


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("MCG-NJU/StreamForest-Qwen2-7B", "StreamForest-Qwen2-7B"),
        ("/ckpt/run1/checkpoint-500/", "run1_checkpoint-500"),
        ("checkpoint-3", "checkpoint-3"),
        ("model", "model"),
    ],
)
def test_get_model_name_from_path(path, name):
    from llava.mm_utils import get_model_name_from_path

    assert get_model_name_from_path(path) == name
