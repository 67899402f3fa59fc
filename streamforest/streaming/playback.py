"""Playback: drive a session from a video file, a frame folder or an iterable of ``(timestamp, frame)``,
answering timed questions once the stream reaches their time (with an optional progress bar)."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from streamforest.streaming.types import StreamAnswer, StreamError, parse_questions

if TYPE_CHECKING:  # pragma: no cover
    from streamforest.streaming.core import StreamingSession

logger = logging.getLogger(__name__)

__all__ = ["frame_source", "play"]


def frame_source(
    source: str | os.PathLike | Iterable[tuple[float, Any]], fps: float = 1.0, start: float = 0.0,
    end: float | None = None, backend: str = "auto",
) -> Iterator[tuple[float, Any]]:  # fmt: skip
    """``(timestamp, frame)`` pairs of a file / frame folder (≈``fps`` mid-bin frames of ``[start, end]``,
    :func:`streamforest.video.iter_video_frames`) or of an iterable as it is."""
    if isinstance(source, (str, os.PathLike)):
        from streamforest.video import iter_video_frames

        return iter_video_frames(source, sample_fps=fps, start=start, end=end, backend=backend)
    return iter(source)


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit="frame", desc="streaming", dynamic_ncols=True)


def play(
    session: StreamingSession,
    source: str | os.PathLike | Iterable[tuple[float, Any]],
    questions: Iterable[Any] = (),
    *,
    fps: float = 1.0,
    start: float = 0.0,
    end: float | None = None,
    backend: str = "auto",
    max_new_tokens: int | None = None,
    progress: bool = False,
    on_answer: Callable[[StreamAnswer], None] | None = None,
) -> list[StreamAnswer]:
    """Play ``source`` through ``session``, answering each question once the stream reaches its time.

    A question at time ``q`` is answered with every frame whose timestamp is ``<= q`` (before the first
    later frame is pushed). Questions after the last frame are answered at the end (with a warning when
    they lie beyond it). See :mod:`streamforest.streaming` for when this matches the benchmark sampling.

    Raises:
        VideoError: a missing or corrupt video (frames pushed before the error stay in the session).
        StreamError: malformed questions or frames.
    """
    pending = deque(parse_questions(questions))
    frames = frame_source(source, fps, start, end, backend)
    answers: list[StreamAnswer] = []

    def answer_due(upto: float | None) -> None:
        while pending and session.num_frames and (upto is None or pending[0].time < upto):
            q = pending.popleft()
            now = session.now or 0.0
            if upto is None and q.time > now + 1.0:
                logger.warning("question at %.2f s is after the end of the stream (%.2f s); answered with "
                               "all %d frames", q.time, now, session.num_frames)  # fmt: skip
            ans = session.ask(q.text, at=max(q.time, now), follow_up=q.follow_up, max_new_tokens=max_new_tokens)
            answers.append(ans)
            if on_answer is not None:
                on_answer(ans)

    bar = _progress(progress)
    try:
        for t, frame in frames:
            answer_due(float(t))
            session.push(frame, t)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"t={float(t):.1f}s")
        answer_due(None)
    finally:
        if bar is not None:
            bar.close()
    if pending:
        raise StreamError(f"{len(pending)} question(s) could not be answered: the stream had no frames")
    return answers
