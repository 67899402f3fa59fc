"""Notebook API ``StreamForest.ask`` on a tiny checkpoint with synthetic videos (PyAV-written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_video import write_frame_folder, write_index_video

from streamforest.api import Answer, StreamForest


@pytest.fixture(scope="module")
def sf(tiny_checkpoint: Path) -> StreamForest:
    return StreamForest.from_pretrained(tiny_checkpoint, dtype="float32", max_frames=64)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_index_video(tmp_path_factory.mktemp("api") / "clip.mp4", num_frames=100, fps=10)  # 10 s


def test_ask_at_time_uses_eval_sampling(sf: StreamForest, video: Path) -> None:
    answer = sf.ask(video, "What is in the video?", at=6.0, max_new_tokens=4)
    assert isinstance(answer, Answer) and isinstance(answer.text, str)
    assert answer.time == 6.0
    assert answer.num_frames == 7  # ⌊6 + 1⌋ frames at ≈1 fps (clip [0, 6] s)
    assert answer.timestamps == [
        0.3,
        1.2,
        2.0,
        2.9,
        3.7,
        4.6,
        5.5,
    ]  # mid-bin of 60 frames in 7 bins (REFERENCE §5.3)
    again = sf.ask(video, "What is in the video?", at=6.0, max_new_tokens=4)
    assert again == answer  # greedy and deterministic


def test_ask_clip_start_whole_video_and_min_frames(sf: StreamForest, video: Path) -> None:
    later = sf.ask(video, "Q?", at=9.0, start=5.0, max_new_tokens=2)
    assert later.num_frames == 5 and all(5.0 <= t <= 9.0 for t in later.timestamps)
    whole = sf.ask(video, "Q?", max_new_tokens=2)
    assert whole.num_frames == 11  # ⌊10 + 1⌋
    short = sf.ask(video, "Q?", at=1.0, max_new_tokens=2)
    assert short.num_frames == 4  # min_num_frames = 4


def test_ask_frame_folder_and_array(sf: StreamForest, tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "frames", 8)
    from_folder = sf.ask(folder, "Q?", at=5.0, fps=1.0, max_new_tokens=2)
    assert from_folder.num_frames >= 4
    frames = np.random.default_rng(0).integers(0, 256, (50, 32, 40, 3), dtype=np.uint8)  # 5 s at 10 fps
    by_fps = sf.ask(frames, "Q?", at=3.0, fps=10.0, max_new_tokens=2)
    by_ts = sf.ask(frames, "Q?", at=3.0, timestamps=np.arange(50) / 10.0, max_new_tokens=2)
    assert by_fps == by_ts and by_fps.num_frames == 4
    assert by_fps.timestamps == [
        0.3,
        1.0,
        1.8,
        2.5,
    ]  # bins of int(linspace(0, 30, 5)), mid = (a + b - 1) // 2


def test_ask_bad_inputs(sf: StreamForest, video: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sf.ask(tmp_path / "missing.mp4", "Q?", at=1.0)
    with pytest.raises(ValueError, match="beyond the end"):
        sf.ask(video, "Q?", at=25.0)
    with pytest.raises(ValueError, match="must be after start"):
        sf.ask(video, "Q?", at=2.0, start=3.0)
    frames = np.zeros((10, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="fps"):
        sf.ask(frames, "Q?", at=1.0)
    with pytest.raises(ValueError, match="beyond the end"):
        sf.ask(frames, "Q?", at=5.0, fps=5.0)
    with pytest.raises(ValueError, match="uint8"):
        sf.ask(frames.astype(np.float32), "Q?", at=1.0, fps=5.0)
    with pytest.raises(ValueError, match="template"):
        StreamForest(sf.tokenizer, sf.model, sf.image_processor, template="vicuna_v1")


def test_stream_session_answers_like_ask(sf: StreamForest, video: Path) -> None:
    # Played at 1 fps from 0 to the question time, the session sees the frames the benchmark samples.
    session = sf.stream(max_new_tokens=3)
    (streamed,) = session.play(video, [(6.0, "Q?")], end=6.0)
    asked = sf.ask(video, "Q?", at=6.0, max_new_tokens=3)
    assert streamed.num_frames == asked.num_frames == 7
    assert streamed.text == asked.text


def test_option_scores_agree_with_greedy_first_letter(sf: StreamForest, video: Path) -> None:
    scores = sf.option_scores(video, "Q?\nA. x\nB. y\nC. z", letters="ABC", at=6.0)
    assert set(scores) == {"A", "B", "C"}
    assert all(v <= 0.0 for v in scores.values())
    # the forced choice is the letter the model ranks highest among the options
    best = max(scores, key=scores.get)
    again = sf.option_scores(video, "Q?\nA. x\nB. y\nC. z", letters="ABC", at=6.0)
    assert max(again, key=again.get) == best and again == scores
    with pytest.raises(ValueError, match="must be after"):
        sf.option_scores(video, "Q?", at=1.0, start=2.0)


# ------------------------------------------------------------------------------------------ issue 16: bad input
BAD_ASKS = {  # kwargs of ask / option_scores → (error, message); each used to fail deep inside or be answered
    "at_str": ({"at": "5"}, ValueError, r"at must be a number of seconds, got '5' \(str\)"),  # '<=' not supported
    "at_nan": ({"at": float("nan")}, ValueError, "at must be a finite number"),
    "start_inf": ({"start": float("-inf")}, ValueError, "start must be a finite number"),
    "none": ({"question": None}, TypeError, r"question must be a str, got NoneType"),
    "bytes": ({"question": b"What is ahead?"}, TypeError, r"got bytes; decode it first"),
    "scores_none": ({"question": None, "scores": True}, TypeError, "question must be a str"),
    "empty": ({"question": "  \n"}, ValueError, "question must be a non-empty string"),  # was answered
    "surrogate": ({"question": "what\udcff?"}, ValueError, r"character 4 is '\\udcff' \(a lone surrogate"),
    "zero_tokens": ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be an integer >= 1, got 0"),  # gave 64
}


@pytest.mark.parametrize("case", sorted(BAD_ASKS))
def test_ask_refuses_bad_times_and_questions(sf: StreamForest, video: Path, case: str) -> None:
    kwargs, error, message = BAD_ASKS[case]
    kwargs = {"question": "Q?", "at": 5.0, **kwargs}
    with pytest.raises(error, match=message):
        if kwargs.pop("scores", False):
            kwargs.pop("max_new_tokens", None)
            sf.option_scores(video, **kwargs)
        else:
            sf.ask(video, **kwargs)


def test_ask_accepts_frames_as_a_list_or_a_tensor(sf: StreamForest) -> None:
    import torch
    from PIL import Image

    frames = np.random.default_rng(1).integers(0, 256, (20, 32, 40, 3), dtype=np.uint8)  # 2 s at 10 fps
    ref = sf.ask(frames, "Q?", at=1.5, fps=10.0, max_new_tokens=2)
    assert sf.ask(torch.from_numpy(frames), "Q?", at=1.5, fps=10.0, max_new_tokens=2) == ref
    assert sf.ask(list(frames), "Q?", at=1.5, fps=10.0, max_new_tokens=2) == ref
    assert sf.ask([Image.fromarray(f) for f in frames], "Q?", at=1.5, fps=10.0, max_new_tokens=2) == ref
    with pytest.raises(TypeError, match=r"video must be a file or frame-folder path, or frames uint8 \[T,H,W,3\]"):
        sf.ask({"frames": frames}, "Q?", at=1.0, fps=10.0)
    with pytest.raises(ValueError, match="differ in shape"):
        sf.ask([frames[0], frames[1, :8]], "Q?", at=0.1, fps=10.0)


def test_question_that_does_not_fit_the_context_is_refused(sf: StreamForest, video: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A too-long question was cut from the end (the assistant header dropped) and still "answered"."""
    from streamforest.inference import PromptTooLongError

    monkeypatch.setattr(sf.model.config, "tokenizer_model_max_length", 300)
    long_question = "Describe every object. " * 100
    with pytest.raises(PromptTooLongError, match=r"context of 300 tokens: \d+ text tokens .* \+ \d+ visual tokens \+ 4 answer"):
        sf.ask(video, long_question, at=6.0, max_new_tokens=4)
    with pytest.raises(PromptTooLongError, match="context of 300 tokens"):
        sf.option_scores(video, long_question, at=6.0)
    session = sf.stream(max_new_tokens=4)
    session.push(np.zeros((32, 32, 3), np.uint8), 0.0)
    with pytest.raises(PromptTooLongError, match="context of 300 tokens"):
        session.ask(long_question)
    assert sf.ask(video, "Q?", at=6.0, max_new_tokens=4).num_frames == 7  # a short one still fits
    monkeypatch.undo()  # the checkpoint's own context (32768): the issue's 100,000-character question
    with pytest.raises(PromptTooLongError, match="context of 32768 tokens"):
        sf.ask(video, "x" * 100_000, at=6.0, max_new_tokens=4)


@pytest.mark.parametrize(("question", "at", "message"), [
    ("Q?", float("nan"), r"at=nan must be a finite number of seconds"),  # used to say "before the newest frame"
    ("Q\udcff?", None, "lone surrogate"),  # was a tokenizers TypeError
])  # fmt: skip
def test_session_refuses_nan_time_and_bad_text(sf: StreamForest, question: str, at: float | None, message: str) -> None:
    from streamforest.streaming import StreamError

    session = sf.stream(max_new_tokens=2)
    session.push(np.zeros((32, 32, 3), np.uint8), 1.0)
    with pytest.raises(StreamError, match=message):
        session.ask(question, at=at)
