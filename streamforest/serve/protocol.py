"""Request bodies and WebSocket messages: parsing and validation shared by the REST routes and the socket.

Every error is an :class:`~streamforest.serve.errors.ApiError` naming the field and the fix.

WebSocket protocol (``/v1/sessions/{id}/ws``)
----------------------------------------------
Client → server:

* a **binary** message is one frame: 8 bytes of little-endian float64 stream time (seconds), then the JPEG or
  PNG bytes;
* a **text** message is JSON with a ``type``: ``{"type": "ask", "question": ..., "follow_up": false, "id": any}``,
  ``{"type": "watch", "question": ..., "threshold": 0.5, "every_s": null, "cooldown_s": 10, "answer": false,
  "option": null, "id": any}``, ``{"type": "unwatch", "watch_id": ..., "id": any}``, ``{"type": "stats", "id": any}``.

Server → client (JSON): ``answer`` (the fields of ``POST .../ask`` plus the request ``id``), ``watching``
(``watch_id``), ``unwatched``, ``alert`` (``watch_id, question, time, probability, answer``), ``stats``,
``dropped`` (a frame was dropped: ``t``, ``reason``, ``frames_dropped`` so far) and ``error`` (``status``,
``field``, ``message``, the request ``id``). The connection stays open after an ``error``; it is closed with
code 4401 (token), 4403 (another site's page), 4404 (unknown or closed session), 4408 (idle expiry), 1009 (a
message over the size limit)
or 1013 (the client read its messages too slowly: more than ``OUTBOX_LIMIT`` piled up).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from streamforest.serve.errors import ApiError
from streamforest.serve.settings import ServeSettings

__all__ = ["FRAME_HEADER", "WATCH_FIELDS", "answer_dict", "parse_ask", "parse_json", "parse_session", "parse_watch", "split_frame"]

FRAME_HEADER = struct.Struct("<d")
"""Binary WebSocket frame header: the stream time in seconds (little-endian float64)."""


def parse_json(raw: bytes | str, allowed: tuple[str, ...], example: str, where: str = "body") -> dict[str, Any]:
    """A JSON object with only ``allowed`` keys (an empty body is ``{}``)."""
    if not raw or not str(raw if isinstance(raw, str) else raw.decode("utf-8", "replace")).strip():
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"{where}: not valid JSON ({e}); send an object such as {example}", where) from None
    if not isinstance(data, dict):
        raise ApiError(422, f"{where}: expected a JSON object such as {example}, got {type(data).__name__}", where)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(422, f"{where}: unknown field(s) {unknown}; the fields are {list(allowed)}", unknown[0])
    return data


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if value is None:
        raise ApiError(422, f"field '{name}' is missing; send {{\"{name}\": \"...\"}}", name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, f"field '{name}' must be a non-empty string, got {value!r}", name)
    if len(value) > limit:
        raise ApiError(422, f"field '{name}' has {len(value)} characters, the limit is {limit} "
                            "(--max-question-chars); shorten it", name)  # fmt: skip
    return value.strip()


def _bool(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(422, f"field '{name}' must be true or false, got {value!r}", name)
    return value


def _number(data: dict[str, Any], name: str, default: float | None, low: float, high: float,
            *, open_low: bool = False) -> float | None:  # fmt: skip
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(422, f"field '{name}' must be a number, got {value!r}", name)
    if value < low or value > high or (open_low and value == low):
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        raise ApiError(422, f"field '{name}' = {value!r} must be {bound} and <= {high:g}", name)
    return float(value)


def parse_session(data: dict[str, Any], settings: ServeSettings) -> tuple[str, float]:
    """``{"mode"?, "fps_hint"?}`` → ``(mode, fps_hint)``."""
    from streamforest.streaming import MODES

    mode = data.get("mode", settings.mode)
    if mode not in MODES:
        raise ApiError(422, f"field 'mode' = {mode!r} is not one of {sorted(MODES)} ('bounded': constant memory "
                            "for endless streams, 'exact': the reference's answers)", "mode")  # fmt: skip
    fps = _number(data, "fps_hint", 1.0, 0.0, settings.max_fps_hint, open_low=True)
    return mode, float(fps if fps is not None else 1.0)


def parse_ask(data: dict[str, Any], settings: ServeSettings) -> tuple[str, bool]:
    """``{"question", "follow_up"?}`` → ``(question, follow_up)``."""
    return _text(data, "question", settings.max_question_chars), _bool(data, "follow_up", False)


WATCH_FIELDS = ("question", "threshold", "every_s", "cooldown_s", "answer", "option")


def parse_watch(data: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
    """``{"question", "threshold"?, "every_s"?, "cooldown_s"?, "answer"?, "option"?}`` → keyword arguments of
    ``session.watch`` (``option``: watch that letter of a multiple-choice question instead of "yes")."""
    kwargs = {
        "question": _text(data, "question", settings.max_question_chars),
        "threshold": _number(data, "threshold", 0.5, 0.0, 1.0),
        "every_s": _number(data, "every_s", None, 0.0, 86400.0, open_low=True),
        "cooldown_s": _number(data, "cooldown_s", 10.0, 0.0, 86400.0),
        "answer": _bool(data, "answer", False),
    }
    option = data.get("option")
    if option is not None:
        if not (isinstance(option, str) and len(option) == 1 and option.isupper()):
            raise ApiError(422, f"field 'option' must be one capital letter such as \"B\", got {option!r}", "option")
        kwargs["option"] = option
    return kwargs


def split_frame(message: bytes) -> tuple[float, bytes]:
    """A binary WebSocket message → ``(t, image bytes)``."""
    if len(message) <= FRAME_HEADER.size:
        raise ApiError(422, f"binary message of {len(message)} bytes: expected 8 bytes of little-endian float64 "
                            "time (seconds) followed by JPEG/PNG bytes", "frame")  # fmt: skip
    (t,) = FRAME_HEADER.unpack_from(message)
    return t, message[FRAME_HEADER.size :]


def answer_dict(answer: Any, server_latency_s: float) -> dict[str, Any]:
    """A :class:`~streamforest.streaming.StreamAnswer` as the JSON of ``POST .../ask``."""
    d = answer.to_dict()
    ids = d.pop("output_ids", [])
    return {
        "answer": d.pop("text"),
        "question": d["question"],
        "time": d["time"],
        "frame_time": d["frame_time"],
        "first_frame_time": d["first_frame_time"],
        "num_frames": d["num_frames"],
        "turn": d["turn"],
        "latency_ms": 1e3 * d["latency_s"],
        "server_latency_ms": 1e3 * server_latency_s,
        "prompt_tokens": d["prompt_tokens"],
        "visual_tokens": d["visual_tokens"],
        "new_tokens": len(ids),
    }
