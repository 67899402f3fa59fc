"""One path from (video, time, question) to an answer: the notebook API, the lmms-eval adapter and the online
session give the same answer; ToMe-clip checkpoints get whole clips everywhere; prompt token boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_video import write_index_video

from streamforest import inference
from streamforest.api import StreamForest

QUESTION = "What is happening?\nA. a\nB. b\nC. c"
NEW_TOKENS = 6


def _loaded(path: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(path, dtype="float32")


@pytest.fixture(scope="module")
def memory_model(tiny_checkpoint: Path) -> Any:
    return _loaded(tiny_checkpoint)


@pytest.fixture(scope="module")
def tome_model(tiny_checkpoint_tome16: Path) -> Any:
    return _loaded(tiny_checkpoint_tome16)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_index_video(tmp_path_factory.mktemp("inference") / "clip.mp4", num_frames=100, fps=10)  # 10 s


def adapter_answer(loaded: Any, video: Path, at: float, monkeypatch: pytest.MonkeyPatch) -> str:
    """The lmms-eval adapter (with the released evaluation settings) answering one ODV-Bench-style request."""
    pytest.importorskip("lmms_eval")
    from lmms_eval.api.instance import Instance

    from streamforest.eval import adapter as adapter_mod
    from streamforest.model import loader

    monkeypatch.setattr(loader, "load_pretrained", lambda path, **kwargs: loaded)
    settings = inference.EVAL_SETTINGS
    lmm = adapter_mod.StreamForestLMM(pretrained="tiny", max_frames_num=settings.max_frames,
                                      time_msg=settings.time_msg, device="cpu")  # fmt: skip
    lmm.task_dict = {"t": {"test": [{}]}}
    visual = [str(video), {"video_read_type": "decord", "start": 0.0, "end": at}]
    gen = {"max_new_tokens": NEW_TOKENS, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    request = Instance(request_type="generate_until", arguments=(QUESTION, gen, lambda doc: visual, 0, "t", "test"),
                       idx=0, metadata={"task": "t", "doc_id": 0, "repeats": 1})  # fmt: skip
    (answer,) = lmm.generate_until([request])
    return answer


def test_same_answer_through_api_adapter_and_session(memory_model: Any, video: Path, monkeypatch) -> None:
    loaded = memory_model
    api = StreamForest(loaded.tokenizer, loaded.model, loaded.image_processor)
    asked = api.ask(video, QUESTION, at=5.0, max_new_tokens=NEW_TOKENS)
    session = api.stream(max_new_tokens=NEW_TOKENS)
    (streamed,) = session.play(video, [(5.0, QUESTION)], end=5.0)
    evaluated = adapter_answer(loaded, video, 5.0, monkeypatch)
    assert asked.num_frames == streamed.num_frames == 6
    assert asked.text == streamed.text == evaluated
    assert len(streamed.output_ids) > 1  # several greedy steps compared, not just an immediate stop
    # and the answer is the one of the shared path run by hand
    clip = inference.frames_at(video, 5.0)
    pixels = inference.prepare_pixels(loaded.image_processor, clip.frames, "cpu", torch.float32)
    visual = inference.video_features(loaded.model, pixels)
    prompt = inference.make_prompt(loaded.tokenizer, QUESTION, inference.clip_time_message(clip, "short_online_v2"),
                                   visual=visual)  # fmt: skip
    by_hand = inference.generate(loaded.model, loaded.tokenizer, prompt, max_new_tokens=NEW_TOKENS)
    assert by_hand.output_ids == streamed.output_ids and torch.equal(visual, session.visual_features())


def test_tome_clip_checkpoint_api_equals_adapter_and_session_refuses(tome_model: Any, video: Path, monkeypatch) -> None:
    """A ToMe-clip checkpoint (L = 8): the API samples whole clips like the adapter (it used to raise
    'video of 10 frames cannot be cut into clips' at at=9); the session needs the memory projector."""
    from streamforest.streaming import StreamError, StreamingSession

    loaded = tome_model
    assert inference.clip_length(loaded.model) == 8
    api = StreamForest(loaded.tokenizer, loaded.model, loaded.image_processor)
    asked = api.ask(video, QUESTION, at=9.0, max_new_tokens=NEW_TOKENS)
    assert asked.num_frames % 8 == 0 and asked.num_frames == 8  # floor(9 + 1) = 10 frames → one clip of 8
    assert asked.text == adapter_answer(loaded, video, 9.0, monkeypatch)
    frames = inference.frames_at(video, 9.0).frames  # the frames as an array: same clip rule
    by_array = api.ask(frames, QUESTION, at=9.0, fps=1.0, max_new_tokens=NEW_TOKENS)
    assert by_array.num_frames % 8 == 0
    scores = api.option_scores(video, QUESTION, letters="ABC", at=9.0)
    assert set(scores) == {"A", "B", "C"}
    with pytest.raises(StreamError, match="tome729_fstw_pemf"):
        StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor)


def test_prompt_segments_locate_text_and_memory_parts(memory_model: Any) -> None:
    from test_streaming import make_frames

    from streamforest.constants import IMAGE_TOKEN_INDEX

    loaded = memory_model
    session = StreamForest(loaded.tokenizer, loaded.model, loaded.image_processor).stream()
    session.push_many(make_frames(30), [k + 0.5 for k in range(30)])
    prompt = session.build_prompt("Where?")
    parts = prompt.segments()
    counts = session.memory.token_counts()
    assert list(parts) == ["prefix", "long", "short", "now", "suffix"]
    assert [parts[k][1] - parts[k][0] for k in ("long", "short", "now")] == [counts[k] for k in ("long", "short", "now")]
    assert counts["long"] > 0 and counts["short"] > 0 and counts["now"] > 0
    spliced = prompt.embed(loaded.model).inputs_embeds[0]
    assert spliced.shape[0] == prompt.num_tokens == parts["suffix"][1]
    begin, end = parts["long"][0], parts["now"][1]
    assert torch.equal(spliced[begin:end], prompt.visual.to(spliced.dtype))
    ids = prompt.input_ids[0]
    cut = int((ids == IMAGE_TOKEN_INDEX).nonzero())
    embed = loaded.model.get_input_embeddings()
    assert torch.equal(spliced[: parts["prefix"][1]], embed(ids[:cut]))
    assert torch.equal(spliced[parts["suffix"][0] :], embed(ids[cut + 1 :]))
    assert loaded.tokenizer.decode(ids[cut + 1 :]).endswith("Where?<|im_end|>\n<|im_start|>assistant\n")


def test_stop_string_comes_from_the_template() -> None:
    from streamforest.prompts import stop_string

    assert stop_string("qwen_2") == "<|im_end|>"
    assert stop_string("plain") is None
