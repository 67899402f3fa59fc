"""The per-session WebSocket: frames and commands in, answers, alerts and errors out (protocol: ``protocol.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from streamforest.serve import ops
from streamforest.serve.auth import WS_AUTH_PROTOCOL, check_origin, check_token, offered_token
from streamforest.serve.errors import WS_CLOSE, ApiError
from streamforest.serve.protocol import WATCH_FIELDS, parse_ask, parse_json, parse_watch, split_frame
from streamforest.serve.registry import ServedSession, SessionRegistry
from streamforest.serve.settings import ServeSettings

logger = logging.getLogger(__name__)

__all__ = ["serve_websocket"]

SLOW_CLIENT = 1013
"""Close code for a client that reads its messages too slowly ("try again later")."""
COMMANDS = {
    "ask": ("question", "follow_up"),
    "watch": WATCH_FIELDS,
    "unwatch": ("watch_id",),
    "stats": (),
}


def _error(e: ApiError, request_id: Any = None) -> dict[str, Any]:
    return {"type": "error", "status": e.status, "field": e.field, "message": e.message, "id": request_id}


async def _close(ws: Any, status: int, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=WS_CLOSE.get(status, 4000 + status), reason=message.encode()[:120].decode(errors="ignore"))


async def serve_websocket(ws: Any, session_id: str, registry: SessionRegistry, settings: ServeSettings) -> None:
    """Run one WebSocket connection until the client leaves or the session closes."""
    subprotocols = list(ws.scope.get("subprotocols") or [])
    await ws.accept(subprotocol=WS_AUTH_PROTOCOL if WS_AUTH_PROTOCOL in subprotocols else None)
    try:
        check_origin(ws.headers)
        check_token(settings, ws.headers.get("authorization"), offered_token(subprotocols))
        served = registry.get(session_id)
    except ApiError as e:
        await _close(ws, e.status, e.message)
        return
    outbox = served.listen()
    sender = asyncio.create_task(_send_loop(ws, outbox, served))
    conn = _Connection(ws, served, outbox)
    try:
        await conn.receive_loop()
    finally:
        served.listeners.discard(outbox)
        for task in [*conn.tasks, sender]:
            task.cancel()
        await asyncio.gather(*conn.tasks, sender, return_exceptions=True)


async def _send_loop(ws: Any, outbox: asyncio.Queue[dict[str, Any] | None], served: ServedSession) -> None:
    while True:
        message = await outbox.get()
        if message is None:
            if served.closed:
                status = 408 if served.closed.startswith("idle") else 404
                await _close(ws, status, f"session closed: {served.closed}")
            else:
                await ws.close(code=SLOW_CLIENT, reason="client too slow: messages piled up; reconnect")
            return
        await ws.send_json(message)


class _Connection:
    """The receive side of one connection: frames are queued at once, commands run as tasks."""

    def __init__(self, ws: Any, served: ServedSession, outbox: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.ws, self.served, self.outbox = ws, served, outbox
        self.tasks: set[asyncio.Task[None]] = set()

    def reply(self, message: dict[str, Any]) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.served.publish(message)  # evicts this slow listener

    async def receive_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect" or self.served.closed:
                return
            self.served.touch()
            try:
                if message.get("bytes") is not None:
                    await self.on_frame(message["bytes"])
                elif message.get("text") is not None:
                    self.on_command(message["text"])
            except ApiError as e:
                self.reply(_error(e))

    async def on_frame(self, data: bytes) -> None:
        t, body = split_frame(data)
        pending = await ops.offer_frame(self.served, t, body, field="frame")
        if pending is None:
            c = self.served.counters
            self.reply({"type": "dropped", "t": t, "reason": "queue_full", "frames_dropped": c.frames_dropped,
                        "message": f"frame at t={t:g} s dropped: {self.served.settings.queue_depth} frames were "
                                   "already waiting (--queue-depth); send frames at the session's rate"})  # fmt: skip
        else:
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors are published

    def on_command(self, text: str) -> None:
        head = parse_json(text, ("type", "id", *{f for fields in COMMANDS.values() for f in fields}),
                          '{"type": "ask", "question": "What is ahead?"}', where="message")  # fmt: skip
        kind, request_id = head.pop("type", None), head.pop("id", None)
        if kind not in COMMANDS:
            raise ApiError(422, f"message: field 'type' = {kind!r} is not one of {sorted(COMMANDS)}", "type")
        unknown = sorted(set(head) - set(COMMANDS[kind]))
        if unknown:
            raise ApiError(422, f"message: {kind!r} takes the fields {list(COMMANDS[kind])}, not {unknown}", unknown[0])
        task = asyncio.create_task(self.run_command(kind, head, request_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_command(self, kind: str, data: dict[str, Any], request_id: Any) -> None:
        served, settings = self.served, self.served.settings
        try:
            if kind == "ask":
                out = await ops.ask(served, *parse_ask(data, settings))
                self.reply({"type": "answer", "id": request_id, **out})
            elif kind == "watch":
                kwargs = parse_watch(data, settings)
                question = kwargs["question"]
                wid = await ops.watch(served, kwargs)
                self.reply({"type": "watching", "id": request_id, "watch_id": wid, "question": question})
            elif kind == "unwatch":
                wid = data.get("watch_id")
                if not isinstance(wid, str):
                    raise ApiError(422, f"message: field 'watch_id' must be the id string from 'watching', got {wid!r}",
                                   "watch_id")  # fmt: skip
                await ops.unwatch(served, wid)
                self.reply({"type": "unwatched", "id": request_id, "watch_id": wid})
            else:
                self.reply({"type": "stats", "id": request_id, "stats": await ops.stats(served)})
        except ApiError as e:
            self.reply(_error(e, request_id))
        except Exception as e:  # noqa: BLE001 - one failed command must not end the connection
            logger.exception("session %s: %s failed", served.id, kind)
            self.reply(_error(ApiError(500, f"{kind} failed: {e}"), request_id))
