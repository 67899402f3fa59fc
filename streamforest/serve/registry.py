"""Sessions of the server: one model, one worker thread, a bounded frame queue per session, idle expiry.

Every call into a :class:`~streamforest.streaming.StreamingSession` (push, ask, watch, stats) runs on the single
worker thread of :class:`SessionRegistry`, so model work is serialised across sessions and the event loop never
blocks. Each session feeds the worker from its own queue through its own consumer task, and hands the worker
one job at a time: sessions take turns, and a client that floods frames fills only its own queue. A frame
that finds ``queue_depth`` frames already waiting is dropped, counted in the session's stats and reported to
the client (429 or a ``dropped`` WebSocket message); questions wait behind the frames sent before them, so an
answer always sees every frame the client sent first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamforest.serve.errors import ApiError
from streamforest.serve.settings import ServeSettings

logger = logging.getLogger(__name__)

__all__ = ["ServedSession", "SessionRegistry"]

OUTBOX_LIMIT = 256
"""Messages waiting for one WebSocket client; a client that falls further behind is disconnected."""


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    is_frame: bool = False


@dataclass
class Counters:
    """What the server did with a session's frames and questions (part of its stats)."""

    frames_received: int = 0
    frames_ingested: int = 0
    frames_dropped: int = 0
    frames_failed: int = 0
    frames_rejected: int = 0
    questions: int = 0
    alerts: int = 0
    last_answer_latency_ms: float | None = None
    drops_by_reason: dict[str, int] = field(default_factory=dict)


class ServedSession:
    """A streaming session plus its queue, counters and WebSocket listeners (create through the registry)."""

    def __init__(self, sid: str, session: Any, settings: ServeSettings, registry: SessionRegistry,
                 *, fps_hint: float) -> None:  # fmt: skip
        self.id, self.session, self.settings, self.registry = sid, session, settings, registry
        self.fps_hint = fps_hint
        self.counters = Counters()
        self.created = self.last_active = time.monotonic()
        self.last_t: float | None = None
        self.frame_size: tuple[int, int] | None = None
        self.closed: str | None = None  # why it was closed
        self.listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._frames_waiting = self._calls_waiting = 0
        self._busy = False
        self._current: _Job | None = None
        self._task = asyncio.get_running_loop().create_task(self._consume(), name=f"session-{sid}")

    # ------------------------------------------------------------------ input
    def touch(self) -> None:
        """Mark the session as active now (resets the idle clock)."""
        self.last_active = time.monotonic()

    def check_frame(self, t: Any, shape: tuple[int, ...] | None = None) -> float:
        """Validate a frame's time (and size) against the frames already accepted; returns ``t`` as float."""
        try:
            when = float(t)
        except (TypeError, ValueError):
            raise ApiError(422, f"t={t!r} is not a number; give the frame's stream time in seconds, e.g. ?t=12.5",
                           "t") from None  # fmt: skip
        if not math.isfinite(when) or when < 0:
            raise ApiError(422, f"t={t!r} must be a finite number of seconds >= 0", "t")
        if self.last_t is not None and when < self.last_t:
            raise ApiError(422, f"t={when:g} s goes backwards (the previous frame was at {self.last_t:g} s); send "
                                "frames in time order, or create a new session for a new stream", "t")  # fmt: skip
        if shape is not None and self.frame_size is not None and tuple(shape[:2]) != self.frame_size:
            h, w = self.frame_size
            raise ApiError(422, f"frame is {shape[1]}x{shape[0]} but this stream's frames are {w}x{h}; send every "
                                "frame at the size of the first one (or create a new session)", "body")  # fmt: skip
        return when

    def offer_frame(self, frame: np.ndarray, t: Any) -> asyncio.Future[list[dict[str, Any]]] | None:
        """Queue a decoded frame; returns a future of its alerts, or None when the frame was dropped (counted)."""
        self.check_open()
        when = self.check_frame(t, frame.shape)
        self.touch()
        self.counters.frames_received += 1
        if self._frames_waiting >= self.settings.queue_depth:
            self.count_drop("queue_full")
            return None
        self.last_t, self.frame_size = when, (int(frame.shape[0]), int(frame.shape[1]))
        self._frames_waiting += 1
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(functools.partial(self.session.push, frame, when), future, is_frame=True))
        return future

    def count_drop(self, reason: str) -> None:
        c = self.counters
        c.frames_dropped += 1
        c.drops_by_reason[reason] = c.drops_by_reason.get(reason, 0) + 1
        logger.info("session %s: frame dropped (%s, %d dropped so far)", self.id, reason, c.frames_dropped)

    async def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the worker after the frames already queued; 429 when too many calls are waiting."""
        self.check_open()
        self.touch()
        if self._calls_waiting >= self.settings.max_pending_questions:
            raise ApiError(429, f"{self._calls_waiting} questions/commands are already waiting on this session "
                                "(--max-pending-questions); wait for their answers before sending more")  # fmt: skip
        self._calls_waiting += 1
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(fn, future))
        try:
            return await future
        finally:
            self.touch()

    def check_open(self) -> None:
        if self.closed:
            raise ApiError(404, f"session {self.id} was closed ({self.closed}); create a new one with POST /v1/sessions")

    # ------------------------------------------------------------------ worker
    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            self._busy, self._current = True, job
            try:
                result = await loop.run_in_executor(self.registry.executor, job.fn)
            except Exception as e:  # noqa: BLE001 - handed to whoever waits for the job
                if job.is_frame:
                    self.counters.frames_failed += 1
                    self.publish({"type": "error", "status": 422, "field": "frame", "message": str(e)})
                if not job.future.done():
                    job.future.set_exception(e)
            else:
                if job.is_frame:
                    result = self._frame_done(result)
                if not job.future.done():
                    job.future.set_result(result)
            finally:
                self._busy, self._current = False, None
                if job.is_frame:
                    self._frames_waiting -= 1
                else:
                    self._calls_waiting -= 1
                if job.future.done() and not job.future.cancelled():
                    job.future.exception()  # mark retrieved: a client that went away is not an error

    def _frame_done(self, alerts: Any) -> list[dict[str, Any]]:
        self.counters.frames_ingested += 1
        out = [a.to_dict() if hasattr(a, "to_dict") else dict(a) for a in (alerts or [])]
        for alert in out:
            self.counters.alerts += 1
            self.publish({"type": "alert", **alert})
        return out

    @property
    def busy(self) -> bool:
        """True while work of this session is queued or running."""
        return self._busy or not self._queue.empty()

    # ------------------------------------------------------------------ output
    def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every WebSocket listener; a listener too far behind is disconnected."""
        for outbox in list(self.listeners):
            try:
                outbox.put_nowait(message)
            except asyncio.QueueFull:
                self.listeners.discard(outbox)
                with contextlib.suppress(asyncio.QueueFull):
                    outbox.get_nowait()
                    outbox.put_nowait(None)  # the sender closes this client: it reads too slowly
                logger.warning("session %s: a WebSocket client fell %d messages behind; disconnected", self.id,
                               OUTBOX_LIMIT)  # fmt: skip

    def listen(self) -> asyncio.Queue[dict[str, Any] | None]:
        outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self.listeners.add(outbox)
        return outbox

    def server_stats(self) -> dict[str, Any]:
        """The server's counters for this session (merged into the session's own stats)."""
        c = self.counters
        return {
            "id": self.id,
            "fps_hint": self.fps_hint,
            "frames_received": c.frames_received,
            "frames_ingested": c.frames_ingested,
            "frames_dropped": c.frames_dropped,
            "frames_failed": c.frames_failed,
            "frames_rejected": c.frames_rejected,
            "drops_by_reason": dict(c.drops_by_reason),
            "frames_waiting": self._frames_waiting,
            "queue_depth": self.settings.queue_depth,
            "questions_answered": c.questions,
            "alerts": c.alerts,
            "last_answer_latency_ms": c.last_answer_latency_ms,
            "idle_s": time.monotonic() - self.last_active,
            "age_s": time.monotonic() - self.created,
        }

    async def close(self, reason: str) -> None:
        """Stop the consumer, fail waiting jobs, disconnect listeners, release the session."""
        if self.closed:
            return
        self.closed = reason
        waiting = [self._current] if self._current is not None else []  # the consumer's finally clears it
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:
            if not job.future.done():
                job.future.set_exception(ApiError(404, f"session {self.id} was closed ({reason})"))
                job.future.exception()
        for outbox in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                outbox.put_nowait(None)
        self.listeners.clear()
        self.session = None  # the memory goes with the last reference


class SessionRegistry:
    """Open sessions by id, the shared worker thread, and the idle-expiry loop."""

    def __init__(self, settings: ServeSettings, factory: Callable[[str], Any]) -> None:
        self.settings = settings
        self.factory = factory  # mode -> StreamingSession on the shared model
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamforest-model")
        self.sessions: dict[str, ServedSession] = {}
        self.expired = 0
        self._creating = 0
        self._reaper: asyncio.Task[None] | None = None

    async def create(self, mode: str, fps_hint: float) -> ServedSession:
        if len(self.sessions) + self._creating >= self.settings.max_sessions:  # counts creations in flight
            raise ApiError(429, f"{len(self.sessions)} sessions are open, the limit is {self.settings.max_sessions} "
                                "(--max-sessions); close one with DELETE /v1/sessions/{id} or wait for idle ones to "
                                f"expire (--idle-timeout {self.settings.idle_timeout:g} s)")  # fmt: skip
        self._creating += 1
        try:
            session = await asyncio.get_running_loop().run_in_executor(self.executor, self.factory, mode)
        finally:
            self._creating -= 1
        sid = secrets.token_hex(8)
        served = ServedSession(sid, session, self.settings, self, fps_hint=fps_hint)
        self.sessions[sid] = served
        logger.info("session %s opened (mode=%s, %d open)", sid, mode, len(self.sessions))
        return served

    def get(self, sid: str) -> ServedSession:
        served = self.sessions.get(sid)
        if served is None:
            raise ApiError(404, f"unknown session {sid!r}: it never existed, was deleted or expired after "
                                f"{self.settings.idle_timeout:g} s idle; create one with POST /v1/sessions",
                           "session_id")  # fmt: skip
        served.touch()
        return served

    async def delete(self, sid: str, reason: str = "deleted") -> None:
        served = self.sessions.pop(sid, None)
        if served is None:
            self.get(sid)  # raises the 404
        else:
            await served.close(reason)
            logger.info("session %s closed (%s, %d open)", sid, reason, len(self.sessions))

    async def expire_idle(self) -> list[str]:
        """Close sessions idle longer than ``idle_timeout`` (with no work in progress); returns their ids."""
        now, limit = time.monotonic(), self.settings.idle_timeout
        stale = [s.id for s in self.sessions.values() if now - s.last_active > limit and not s.busy]
        for sid in stale:
            await self.delete(sid, reason=f"idle for more than {limit:g} s")
        self.expired += len(stale)
        return stale

    async def _reap(self) -> None:
        period = min(5.0, max(0.05, self.settings.idle_timeout / 4))
        while True:
            await asyncio.sleep(period)
            try:
                await self.expire_idle()
            except Exception:  # noqa: BLE001 - the reaper must outlive one bad close
                logger.exception("idle expiry failed")

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="session-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for sid in list(self.sessions):
            await self.delete(sid, reason="server shutting down")
        self.executor.shutdown(wait=False, cancel_futures=True)
