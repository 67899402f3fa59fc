"""The session operations behind both the REST routes and the WebSocket: frame, ask, watch, unwatch, stats."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from streamforest.serve.errors import ApiError
from streamforest.serve.images import FrameError, decode_frame
from streamforest.serve.protocol import answer_dict
from streamforest.serve.registry import ServedSession

__all__ = ["ask", "offer_frame", "stats", "unwatch", "watch"]


async def offer_frame(served: ServedSession, t: Any, body: bytes, field: str = "body") -> asyncio.Future[Any] | None:
    """Check the time, decode off the event loop with the caps, queue; None = dropped (queue full, counted).

    A refused frame (413/415/422 :class:`ApiError`) is counted in ``frames_rejected``.
    """
    s = served.settings
    try:
        served.check_open()
        served.check_frame(t)  # cheap checks before decoding
        try:
            frame = await asyncio.to_thread(decode_frame, body, max_bytes=s.max_frame_bytes,
                                            max_pixels=s.max_frame_pixels, field=field)  # fmt: skip
        except FrameError as e:
            raise ApiError(e.status, str(e), field) from None
        return served.offer_frame(frame, t)
    except ApiError:
        served.counters.frames_rejected += 1
        raise


def _stream_error(e: Exception, field: str) -> ApiError:
    from streamforest.streaming import StreamError

    if isinstance(e, ApiError):
        return e
    if isinstance(e, (StreamError, KeyError, ValueError)):
        return ApiError(422, str(e).strip("'\""), field)
    raise e


async def ask(served: ServedSession, question: str, follow_up: bool) -> dict[str, Any]:
    """Answer after the frames sent before the question (409 before the first frame)."""
    if served.last_t is None:
        raise ApiError(409, "no frame yet: send at least one frame (POST .../frames?t=SECONDS or a binary WebSocket "
                            "message) before asking", "question")  # fmt: skip
    t0 = time.perf_counter()
    try:
        answer = await served.call(lambda: served.session.ask(question, follow_up=follow_up))
    except Exception as e:  # noqa: BLE001 - mapped to a 4xx or re-raised
        raise _stream_error(e, "question") from None
    out = answer_dict(answer, time.perf_counter() - t0)
    served.counters.questions += 1
    served.counters.last_answer_latency_ms = out["latency_ms"]
    return out


def _require_watch(served: ServedSession) -> None:
    if not hasattr(served.session, "watch"):
        raise ApiError(501, "standing questions are not available in this version of streamforest "
                            "(StreamingSession.watch is missing); upgrade streamforest", "question")  # fmt: skip


async def watch(served: ServedSession, kwargs: dict[str, Any]) -> str:
    """Register a standing question; returns its watch id."""
    served.check_open()
    _require_watch(served)
    question = kwargs.pop("question")
    try:
        return str(await served.call(lambda: served.session.watch(question, **kwargs)))
    except Exception as e:  # noqa: BLE001 - mapped to a 4xx or re-raised
        raise _stream_error(e, "question") from None


async def unwatch(served: ServedSession, watch_id: str) -> None:
    """Remove a standing question (404 for an unknown id)."""
    served.check_open()
    _require_watch(served)
    try:
        await served.call(functools.partial(served.session.unwatch, watch_id))
    except Exception as e:  # noqa: BLE001 - mapped to a 4xx or re-raised
        err = _stream_error(e, "watch_id")
        raise ApiError(404, f"unknown standing question {watch_id!r} ({err.message}); the ids come from POST .../watch",
                       "watch_id") from None  # fmt: skip


async def stats(served: ServedSession) -> dict[str, Any]:
    """The session's own stats (run on the worker, between jobs) with the server's counters under ``server``."""
    served.check_open()
    session = served.session
    loop = asyncio.get_running_loop()
    own = await loop.run_in_executor(served.registry.executor, session.stats)
    return {**own, "server": served.server_stats()}
