"""Online streaming session: exactness against the reference rebuild path, bounded memory, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamforest.streaming import Question, StreamError, StreamingSession, parse_questions

QUESTION = "What is the car in front doing?"
NEW_TOKENS = 8


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32")


def make_frames(n: int, seed: int = 0, size: tuple[int, int] = (24, 32), cut_every: int = 7) -> np.ndarray:
    """``uint8 [n,H,W,3]``: a drifting scene with a cut every ``cut_every`` frames (events of varying length)."""
    rng = np.random.default_rng(seed)
    frames, scene = [], rng.integers(0, 256, (*size, 3)).astype(np.float64)
    for k in range(n):
        if k % cut_every == 0:
            scene = rng.integers(0, 256, (*size, 3)).astype(np.float64)
        scene = np.clip(scene + rng.normal(0, 12, scene.shape), 0, 255)
        frames.append(scene.round().astype(np.uint8))
    return np.stack(frames)


def session_for(loaded: Any, **kwargs: Any) -> StreamingSession:
    kwargs.setdefault("max_new_tokens", NEW_TOKENS)
    return StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, **kwargs)


def rebuild(loaded: Any, frames: np.ndarray, times: list[float], prompt_question: str | None = None,
            prompt: str | None = None) -> tuple[list[int], torch.Tensor]:
    """The reference path: all frames re-encoded, memory rebuilt from scratch (``model.encode_images``), the
    evaluation prompt, greedy generation (``streamforest.inference``, shared with the notebook API/adapter)."""
    from streamforest import inference
    from streamforest.prompts import build_inference_prompt, time_message, tokenizer_image_token

    model, tok = loaded.model, loaded.tokenizer
    pixels = inference.prepare_pixels(loaded.image_processor, list(frames), "cpu", model.dtype)
    visual = inference.video_features(model, pixels)
    if prompt is None:
        msg = time_message("short_online_v2", [str(round(t, 1)) for t in times], times[-1])
        prompt = build_inference_prompt(prompt_question or QUESTION, msg)
    ids = tokenizer_image_token(prompt, tok, return_tensors="pt").unsqueeze(0)
    out = inference.generate(model, tok, inference.Prompt(ids, visual), max_new_tokens=NEW_TOKENS)
    return out.output_ids, visual


# ------------------------------------------------------------------------------------------------ exactness


def test_exact_mode_equals_rebuild_path_at_several_times(loaded: Any) -> None:
    frames = make_frames(40)
    times = [k + 0.5 for k in range(40)]
    session = session_for(loaded, mode="exact", encode_batch_size=3)
    checks = 0
    for k in range(40):
        session.push(frames[k], times[k])
        if k + 1 in (1, 13, 40):
            answer = session.ask(QUESTION)
            ref_ids, ref_visual = rebuild(loaded, frames[: k + 1], times[: k + 1])
            assert answer.output_ids == ref_ids
            assert torch.equal(session.visual_features(), ref_visual)
            assert answer.num_frames == k + 1 and answer.frame_time == times[k] and answer.time == times[k]
            assert answer.visual_tokens == ref_visual.shape[0]
            checks += 1
    assert checks == 3
    assert len(answer.output_ids) > 1  # the comparison covers several greedy steps
    # long-memory merges happened (quota 64 tokens), so the equality covers step C of the memory
    assert any(event.merge_count > 1 for event in session.memory.events)


def test_bounded_mode_differs_from_reference_once_merging(loaded: Any) -> None:
    """Sanity of the exactness test: the eager policy gives other visual tokens after long-memory merges."""
    frames = make_frames(40)
    times = [k + 0.5 for k in range(40)]
    bounded = session_for(loaded, mode="bounded")
    bounded.push_many(frames, times)
    _, ref_visual = rebuild(loaded, frames, times)
    got = bounded.visual_features()
    assert got.shape[1] == ref_visual.shape[1]
    assert got.shape != ref_visual.shape or not torch.equal(got, ref_visual)


def test_follow_up_turn_equals_rebuild_with_multiturn_prompt(loaded: Any) -> None:
    from streamforest.prompts import build_eval_question, get_template, time_message

    frames = make_frames(20, seed=1)
    times = [0.5 + k for k in range(20)]
    session = session_for(loaded)
    session.push_many(frames[:12], times[:12])
    first = session.ask("Where are we?")
    session.push_many(frames[12:], times[12:])
    second = session.ask("And now?", follow_up=True)
    assert (first.turn, second.turn) == (1, 2)
    # reference rendering: one <image> + time message (of the current frames) at the start of the first turn
    conv = get_template("qwen_2")
    msg = time_message("short_online_v2", [str(t) for t in times], times[-1])
    conv.append_message(conv.roles[0], build_eval_question("Where are we?", msg))
    conv.append_message(conv.roles[1], first.text)
    conv.append_message(conv.roles[0], "And now?")
    conv.append_message(conv.roles[1], None)
    prompt = conv.get_prompt()
    assert session.prompt("And now?", follow_up=True) != prompt  # the dialogue now holds the second turn too
    ref_ids, _ = rebuild(loaded, frames, times, prompt=prompt)
    assert second.output_ids == ref_ids
    assert session.dialogue == [("Where are we?", first.text), ("And now?", second.text)]
    third = session.ask("New topic?")
    assert third.turn == 1 and len(session.dialogue) == 1


def test_several_questions_at_one_time_reuse_visual_tokens(loaded: Any) -> None:
    session = session_for(loaded)
    session.push_many(make_frames(5), [0.5, 1.5, 2.5, 3.5, 4.5])
    a = session.ask("Q1?", at=5.0)
    feats = session.visual_features()
    b = session.ask("Q2?", at=5.0)
    assert session.visual_features() is feats  # unchanged memory → cached projection
    assert a.time == b.time == 5.0 and a.frame_time == 4.5
    assert session.stats()["questions"] == 2


# ------------------------------------------------------------------------------------------------ bounded


def test_bounded_memory_stays_bounded(loaded: Any) -> None:
    session = session_for(loaded, mode="bounded", encode_batch_size=16)
    cfg = session.memory.config
    frames = make_frames(160, seed=2)
    tokens_cap = cfg.max_tokens
    # read-out tokens + the previous frame (16 patches) kept for cosines + slack for short-window frames that
    # share the storage of their batch (two batches of 16)
    bytes_cap = (tokens_cap + 16 + 2 * 16 * cfg.short_tokens) * cfg.hidden_size * 4
    seen_bytes = []
    for k in range(160):
        session.push(frames[k], k + 0.5)
        if (k + 1) % 16 == 0:
            session.flush()
            stats = session.stats()
            assert stats["memory_tokens"]["total"] <= tokens_cap
            assert stats["memory_bytes"] <= bytes_cap
            seen_bytes.append(stats["memory_bytes"])
            assert stats["memory_buffers"]["events"] <= cfg.long_token_quota // cfg.long_tokens_per_frame
    assert max(seen_bytes[5:]) <= max(seen_bytes[:5]) * 1.5  # no growth with stream length
    answer = session.ask(QUESTION)
    assert answer.num_frames == 160 and answer.visual_tokens <= tokens_cap
    exact = session_for(loaded, mode="exact", encode_batch_size=16)
    exact.push_many(frames, [k + 0.5 for k in range(160)])
    exact.flush()
    assert exact.stats()["memory_bytes"] > session.stats()["memory_bytes"]  # exact keeps every event leaf


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("frame", "stamp", "fragment"),
    [
        (np.zeros((24, 32, 3), np.float32), 9.0, "dtype float32"),
        (np.zeros((24, 32, 4), np.uint8), 9.0, "alpha"),
        (np.zeros((3, 24, 32), np.uint8), 9.0, "channels-first"),
        (np.zeros((24, 32), np.uint8), 9.0, "expected [H,W,3]"),
        (np.zeros((48, 64, 3), np.uint8), 9.0, "differs from the stream"),
        ([[1, 2, 3]], 9.0, "got list"),
        (np.zeros((24, 32, 3), np.uint8), 1.0, "goes backwards"),
        (np.zeros((24, 32, 3), np.uint8), float("nan"), "finite"),
        (np.zeros((24, 32, 3), np.uint8), "soon", "not a number"),
    ],
)
def test_bad_frame_raises_and_session_survives(loaded: Any, frame: Any, stamp: Any, fragment: str) -> None:
    frames = make_frames(6, seed=3)
    times = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    session = session_for(loaded, encode_batch_size=2)
    session.push_many(frames[:5], times[:5])
    with pytest.raises(StreamError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        session.push(frame, stamp)
    assert session.num_frames == 5 and session.now == 4.5
    session.push(frames[5], times[5])
    answer = session.ask(QUESTION)
    ref_ids, ref_visual = rebuild(loaded, frames, times)
    assert answer.output_ids == ref_ids and torch.equal(session.visual_features(), ref_visual)


def test_bad_batch_is_rejected_whole(loaded: Any) -> None:
    session = session_for(loaded)
    good = make_frames(3)
    with pytest.raises(StreamError, match="frame 2"):
        session.push_many([good[0], good[1], good[2].astype(np.float64)], [0.0, 1.0, 2.0])
    assert session.num_frames == 0
    with pytest.raises(StreamError, match="one time per frame"):
        session.push_many(good, [0.0, 1.0])


def test_question_errors(loaded: Any) -> None:
    session = session_for(loaded)
    with pytest.raises(StreamError, match="no frame has been pushed yet"):
        session.ask(QUESTION)
    session.push_many(make_frames(2), [1.0, 2.0])
    with pytest.raises(StreamError, match="before the newest frame"):
        session.ask(QUESTION, at=1.5)
    with pytest.raises(StreamError, match="non-empty string"):
        session.ask("   ")
    session.ask(QUESTION)
    with pytest.raises(StreamError, match="cannot contain <image>"):
        session.ask("<image> again?", follow_up=True)
    assert session.stats()["questions"] == 1


def test_session_rejects_unknown_mode_and_non_memory_projector(loaded: Any, tiny_checkpoint_tome16: Path) -> None:
    from streamforest.model.loader import load_pretrained

    with pytest.raises(StreamError, match="mode='fast'"):
        session_for(loaded, mode="fast")
    other = load_pretrained(tiny_checkpoint_tome16, dtype="float32")
    with pytest.raises(StreamError, match="tome729_fstw_pemf"):
        StreamingSession(other.model, other.tokenizer, other.image_processor)


def test_parse_questions() -> None:
    got = parse_questions([{"time": 40, "question": "b"}, (12.5, "a"), Question(20.0, "c", True)])
    assert [(q.time, q.text, q.follow_up) for q in got] == [(12.5, "a", False), (20.0, "c", True), (40.0, "b", False)]
    for bad, fragment in [
        ({"time": 1}, "needs the fields"),
        ({"time": "x", "question": "q"}, "'time' = 'x'"),
        ({"time": -1, "question": "q"}, ">= 0"),
        ({"time": 1, "question": ""}, "non-empty"),
        ({"time": 1, "question": "q", "when": 2}, "unknown fields"),
        ("12: q", "expected"),
    ]:
        with pytest.raises(StreamError, match=fragment):
            parse_questions([bad], source="file.json")


# ------------------------------------------------------------------------------------------------ playback / stats


def test_play_answers_each_question_with_frames_up_to_its_time(loaded: Any) -> None:
    frames = make_frames(10, seed=4)
    stream = [(k + 0.5, frames[k]) for k in range(10)]
    seen: list[Any] = []
    session = session_for(loaded, encode_batch_size=4)
    answers = session.play(stream, [(3.0, "a?"), {"time": 3.0, "question": "b?", "follow_up": True},
                                    (7.5, "c?"), (50.0, "late?")], on_answer=seen.append)  # fmt: skip
    assert [a.question for a in answers] == ["a?", "b?", "c?", "late?"] and seen == answers
    assert [a.num_frames for a in answers] == [3, 3, 8, 10]
    assert [a.frame_time for a in answers] == [2.5, 2.5, 7.5, 9.5]
    assert [a.turn for a in answers] == [1, 2, 1, 1]
    assert answers[2].time == 7.5 and answers[3].time == 50.0


def test_play_video_last_question_equals_notebook_ask(loaded: Any, tmp_path: Path) -> None:
    """Played from 0 to the question time, a file gives the benchmark's frames: same answer as ``ask``."""
    from helpers_video import write_index_video

    from streamforest.api import StreamForest

    video = write_index_video(tmp_path / "v.mp4", 70, fps=10)
    session = session_for(loaded)
    answers = session.play(video, [(2.0, "early?"), (5.0, QUESTION)], end=5.0)
    api = StreamForest(loaded.tokenizer, loaded.model, loaded.image_processor)
    ref = api.ask(video, QUESTION, at=5.0, max_new_tokens=NEW_TOKENS)
    assert answers[-1].text == ref.text
    assert answers[-1].num_frames == ref.num_frames == 6
    assert answers[-1].first_frame_time == pytest.approx(ref.timestamps[0])
    assert answers[-1].frame_time == pytest.approx(ref.timestamps[-1], abs=0.05)


def test_play_corrupt_video_raises_and_session_survives(loaded: Any, tmp_path: Path) -> None:
    from streamforest.video import VideoError

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    session = session_for(loaded)
    session.push_many(make_frames(3), [0.5, 1.5, 2.5])
    with pytest.raises(VideoError, match="broken.mp4"):
        session.play(bad, [(1.0, "q?")])
    assert session.num_frames == 3
    assert session.ask(QUESTION).num_frames == 3


def test_stats_fields_are_present_and_sane(loaded: Any) -> None:
    from streamforest.streaming import format_stats

    session = session_for(loaded, encode_batch_size=4)
    session.push_many(make_frames(14, seed=5), [0.5 + k for k in range(14)])
    stats = session.stats()
    assert stats["frames"] == 14 and stats["pending_frames"] == 2 and stats["questions"] == 0
    answer = session.ask(QUESTION)
    stats = session.stats()
    assert stats["pending_frames"] == 0 and stats["frame_latency_ms"]["count"] == 14
    assert 0 < stats["frame_latency_ms"]["p50"] <= stats["frame_latency_ms"]["max"]
    assert stats["question_latency_ms"]["count"] == 1
    assert stats["question_latency_ms"]["last"] == pytest.approx(1e3 * answer.latency_s)
    tokens = stats["memory_tokens"]
    assert tokens == session.memory.token_counts()
    assert tokens["total"] == tokens["long"] + tokens["short"] + tokens["now"] == answer.visual_tokens
    assert stats["last_question"]["visual_tokens"] == answer.visual_tokens
    assert stats["last_question"]["generate_ms"] > 0 and stats["last_question"]["new_tokens"] >= 1
    cfg = session.memory.config
    assert stats["memory_bytes"] >= tokens["total"] * cfg.hidden_size * 4
    assert stats["rss_bytes"] > 0 and stats["peak_rss_bytes"] > 0
    assert stats["stream_time_s"] == 13.5 and stats["memory_events"] == len(session.memory.events)
    line = format_stats(stats)
    assert "frames=14" in line and "memory tokens" in line
    session.reset()
    assert session.num_frames == 0 and session.stats()["questions"] == 0


# ------------------------------------------------------------------------------------------------ threads


def test_session_shared_by_threads_equals_sequential_run(loaded: Any) -> None:
    """Three threads push into one session (a barrier per round keeps timestamps monotone: in round r each
    thread pushes frame r at time r + 0.5) while a fourth asks questions. Frame count, visual tokens and every
    answer equal a sequential run (the session used to lose or duplicate frames silently)."""
    import threading

    pushers, rounds = 3, 14
    frames = make_frames(rounds, seed=7)
    order = [r for r in range(rounds) for _ in range(pushers)]  # the stream every interleaving produces
    shared = session_for(loaded, encode_batch_size=2)
    barrier, errors, answers = threading.Barrier(pushers), [], []
    done = threading.Event()

    def push(_: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=60)
                shared.push(frames[r], r + 0.5)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()

    def ask() -> None:
        try:
            while not done.is_set() and len(answers) < 4:
                if shared.num_frames:
                    answers.append(shared.ask(QUESTION))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(pushers)]
    asker = threading.Thread(target=ask)
    for t in [*threads, asker]:
        t.start()
    for t in threads:
        t.join(timeout=300)
    done.set()
    asker.join(timeout=300)
    assert not errors, errors
    assert shared.num_frames == shared.memory.num_frames + shared.stats()["pending_frames"] == len(order)
    assert answers, "the asking thread got no turn"
    sequential, seen = session_for(loaded, encode_batch_size=2), 0
    for answer in sorted(answers, key=lambda a: a.num_frames):  # each answer = the sequential one on its frames
        k = answer.num_frames
        sequential.push_many([frames[r] for r in order[seen:k]], [r + 0.5 for r in order[seen:k]])
        seen = k
        assert answer.output_ids == sequential.ask(QUESTION).output_ids, f"answer after {k} frames"
    sequential.push_many([frames[r] for r in order[seen:]], [r + 0.5 for r in order[seen:]])
    assert torch.equal(shared.visual_features(), sequential.visual_features())
    assert shared.memory.num_frames == sequential.memory.num_frames == len(order)
    assert shared.ask(QUESTION).output_ids == sequential.ask(QUESTION).output_ids
