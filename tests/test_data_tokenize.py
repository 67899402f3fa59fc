"""Label masking of the qwen_2 and plain recipes (REFERENCE §4.6), collator (§4.7), skip handling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamforest.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from streamforest.data.collator import DataCollator
from streamforest.data.dataset import SkippedSample, expand_to_square, modality_length
from streamforest.data.tokenize import normalise_turns, preprocess_plain, preprocess_qwen


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from streamforest.tiny import make_tiny_tokenizer

    return make_tiny_tokenizer(tmp_path_factory.mktemp("tok"), texts=["What colour is the video?", "The video is red."])


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False).input_ids


def test_qwen_masking_golden(tokenizer) -> None:
    turns = normalise_turns(
        [{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "The video is red."}]
    )
    out = preprocess_qwen(turns, tokenizer)
    ims, ime = tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    nl = _ids(tokenizer, "\n")
    assert len(nl) == 1
    system = _ids(tokenizer, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    user = _ids(tokenizer, "<|im_start|>user\n") + [IMAGE_TOKEN_INDEX] + _ids(tokenizer, "\nWhat colour?<|im_end|>\n")
    assistant = _ids(tokenizer, "<|im_start|>assistant\nThe video is red.<|im_end|>\n")
    assert out["input_ids"].tolist() == system + user + assistant
    keep = {nl[0], ims, ime}
    expected = [t if t in keep else IGNORE_INDEX for t in system + user] + assistant
    assert out["labels"].tolist() == expected
    # the quirk: newlines and chat markers inside system/user turns are supervised
    n_prompt = len(system) + len(user)
    unmasked_prompt = [t for t in out["labels"][:n_prompt].tolist() if t != IGNORE_INDEX]
    assert unmasked_prompt and set(unmasked_prompt) <= keep
    assert out["labels"][out["input_ids"] == IMAGE_TOKEN_INDEX].eq(IGNORE_INDEX).all()


def test_qwen_multi_turn_supervises_every_assistant_turn(tokenizer) -> None:
    turns = normalise_turns([
        {"from": "gpt", "value": "dropped: a first turn that is not human"},
        {"from": "human", "value": "<image>\nA?"}, {"from": "gpt", "value": "yes"},
        {"from": "human", "value": "B?"}, {"role": "assistant", "content": "no"},
    ])
    assert [r for r, _ in turns] == ["user", "assistant", "user", "assistant"]
    out = preprocess_qwen(turns, tokenizer)
    text = tokenizer.decode([t for t in out["labels"].tolist() if t != IGNORE_INDEX])
    assert "assistant\nyes<|im_end|>" in text and "assistant\nno<|im_end|>" in text
    assert "A?" not in text and "B?" not in text and "dropped" not in text


def test_plain_masks_only_the_placeholder(tokenizer) -> None:
    turns = normalise_turns([{"from": "human", "value": "Describe. <image>"}, {"from": "gpt", "value": "The video is red."}])
    out = preprocess_plain(turns, tokenizer)
    answer = _ids(tokenizer, "The video is red.\n")
    assert out["input_ids"].tolist() == [IMAGE_TOKEN_INDEX, *answer]
    assert out["labels"].tolist() == [IGNORE_INDEX, *answer]
    with pytest.raises(ValueError, match="exactly 2 turns"):
        preprocess_plain(turns + turns, tokenizer)


def test_time_message_insertion_for_training(tokenizer) -> None:
    from streamforest.data.tokenize import add_time_message

    turns = add_time_message([("user", "What colour? <image>")], "\nThe video lasts for 6.00 seconds, and 6 frames are uniformly sampled from it. ")
    assert turns[0][1] == "<image>\nThe video lasts for 6.00 seconds, and 6 frames are uniformly sampled from it. \nWhat colour?"


def test_collator_pads_truncates_and_counts_skips() -> None:
    pad = 7
    items = [
        {"input_ids": torch.tensor([1, 2, 3, 4, 5]), "labels": torch.tensor([-100, -100, 3, 4, 5]),
         "image": torch.zeros(2, 3, 4, 4), "modality": "video"},
        SkippedSample(1, "bad.mp4", "VideoError"),
        {"input_ids": torch.tensor([1, 2]), "labels": torch.tensor([-100, 2]), "image": torch.zeros(1, 3, 4, 4), "modality": "text"},
    ]
    batch = DataCollator(pad_token_id=pad, model_max_length=4)(items)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [1, 2, pad, pad]]
    assert batch["labels"].tolist() == [[-100, -100, 3, 4], [-100, 2, -100, -100]]
    assert batch["attention_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert batch["modalities"] == ["video", "text"] and len(batch["images"]) == 2
    assert (batch["num_seen"], batch["num_skipped"], batch["skipped_paths"], batch["all_skipped"]) == (3, 1, ["bad.mp4"], False)
    dummy = torch.full((1, 3, 4, 4), -1.0)
    empty = DataCollator(pad_token_id=None, model_max_length=4, dummy_image=dummy)([SkippedSample(0, "x.mp4", "e")])
    assert empty["all_skipped"] and empty["num_skipped"] == 1 and empty["labels"].eq(IGNORE_INDEX).all()
    assert empty["images"][0] is dummy and empty["modalities"] == ["text"]


def test_skip_tracker_stops_training_past_the_bound() -> None:
    from streamforest.train.trainer import DataSkipError, SkipTracker

    tracker = SkipTracker(max_fraction=0.25, min_samples=4)
    tracker.update(2, 2, ["a.mp4", "b.mp4"])  # 100 % but below the minimum count
    tracker.update(6, 0, [])
    assert tracker.skipped == 2 and tracker.seen == 8
    with pytest.raises(DataSkipError, match=r"3 of 9 samples.*b.mp4.*max_skip_fraction"):
        tracker.update(1, 1, ["c.mp4"])


def test_modality_length_and_square_padding() -> None:
    conv = [{"from": "human", "value": "a b c"}, {"from": "gpt", "value": "d e"}]
    assert modality_length({"video": "v", "conversations": conv}) == 5
    assert modality_length({"conversations": conv}) == -5
    assert modality_length({"conversations": conv}, early_mix_text=True) == 5
    img = torch.full((2, 4, 3), 9, dtype=torch.uint8).numpy()
    sq = expand_to_square(img)
    assert sq.shape == (4, 4, 3) and (sq[0] == 127).all() and (sq[1:3] == 9).all() and (sq[3] == 127).all()


def test_dataset_skips_unreadable_media_and_logs_the_path(tmp_path: Path, tokenizer, caplog: pytest.LogCaptureFixture) -> None:
    from streamforest.data.dataset import SupervisedDataset
    from streamforest.model.processor import SigLipImageProcessor

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    rec = {"image": str(bad), "_source": "x.json", "id": 0,
           "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}
    ds = SupervisedDataset([rec, dict(rec)], tokenizer, SigLipImageProcessor(size=28))
    with caplog.at_level("WARNING"):
        a, b = ds[0], ds[1]
    assert isinstance(a, SkippedSample) and a.path == str(bad)
    assert isinstance(b, SkippedSample)
    assert sum(str(bad) in r.getMessage() for r in caplog.records) == 1  # logged once per file


@pytest.mark.parametrize("insertion", ["train", "eval"])
def test_eval_insertion_trains_on_the_inference_prompt(tmp_path: Path, tokenizer, insertion: str) -> None:
    """With ``time_msg_insertion="eval"`` a video record's input ids up to the answer are the ids of the prompt
    the inference paths build (``build_inference_prompt``); with the reference's ``train`` form they differ
    (one newline more and none before the question at inference, REFERENCE §1.11)."""
    from helpers_video import write_index_video

    from streamforest.data.dataset import SupervisedDataset, VideoSampling
    from streamforest.model.processor import SigLipImageProcessor
    from streamforest.prompts import build_inference_prompt, tokenizer_image_token

    video = write_index_video(tmp_path / "v.mp4", 40, fps=10)
    question = "What colour is the video?\nA. red\nB. blue\nAnswer with the option's letter from the given choices directly."
    rec = {"video": str(video), "start": 0.0, "end": 3.0, "id": 0, "_source": "x.json",
           "conversations": [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": "A"}]}  # fmt: skip
    sampling = VideoSampling(frames_upbound=8, frames_lowbound=2, local_num_frames=1, sample_type="dynamic_fps1", time_msg="short_online_v2")
    ds = SupervisedDataset([rec], tokenizer, SigLipImageProcessor(size=28), sampling=sampling, time_msg_insertion=insertion)
    _, msg = ds._load_video(rec)
    assert msg and msg.startswith("\nThe video contains")
    expected = tokenizer_image_token(build_inference_prompt(question, msg), tokenizer)
    ids = ds[0]["input_ids"].tolist()
    assert (ids[: len(expected)] == expected) is (insertion == "eval")
    with pytest.raises(ValueError, match="data.time_msg_insertion 'x'"):
        SupervisedDataset([rec], tokenizer, SigLipImageProcessor(size=28), time_msg_insertion="x")
