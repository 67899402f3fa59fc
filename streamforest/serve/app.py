"""The ASGI app: REST routes, the WebSocket and the web page over one shared model (``create_app``).

    POST   /v1/sessions                    {"mode"?, "fps_hint"?}           → 201 {"id", "mode", "fps_hint"}
    DELETE /v1/sessions/{id}                                                 → 204
    GET    /v1/sessions/{id}/stats                                           → the session's stats + "server"
    POST   /v1/sessions/{id}/frames?t=S    JPEG/PNG body                     → 204, or 200 {"alerts": [...]}
    POST   /v1/sessions/{id}/ask           {"question", "follow_up"?}        → the answer
    POST   /v1/sessions/{id}/watch         {"question", "threshold"?, ...}   → 201 {"id"}  (fields: WATCH_FIELDS)
    DELETE /v1/sessions/{id}/watch/{wid}                                     → 204
    WS     /v1/sessions/{id}/ws            (streamforest.serve.protocol)
    GET    /healthz, GET /                 (no token needed)

A frame that finds the session's queue full answers 429 and is counted in ``stats.server.frames_dropped``.
"""

from __future__ import annotations

import contextlib
import logging
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from streamforest.serve import ops
from streamforest.serve.auth import check_origin, check_token
from streamforest.serve.errors import ApiError
from streamforest.serve.protocol import WATCH_FIELDS, parse_ask, parse_json, parse_session, parse_watch
from streamforest.serve.registry import ServedSession, SessionRegistry
from streamforest.serve.settings import ServeSettings
from streamforest.serve.ws import serve_websocket

logger = logging.getLogger(__name__)

__all__ = ["create_app"]

JSON_LIMIT = 64 * 1024
"""Largest JSON request body (questions are capped far below this)."""


def _static_dir() -> Any:
    return resources.files("streamforest.serve") / "static"


async def read_body(request: Any, limit: int, field: str = "body") -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (never read whole)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"{field}: {declared} bytes is over the limit of {limit} bytes; send less", field)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"{field}: more than {limit} bytes; send less", field)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model: Any, tokenizer: Any, settings: ServeSettings | None = None, *, image_processor: Any) -> Any:
    """The FastAPI app serving sessions over ``model`` (loaded once, shared by every session).

    Args:
        model, tokenizer, image_processor: what ``streamforest.model.loader.load_pretrained`` returns.
        settings: caps and defaults (:class:`ServeSettings`; the bind/token rule is checked there).
    """
    from streamforest.streaming import StreamingSession

    settings = settings or ServeSettings()

    def factory(mode: str) -> StreamingSession:
        return StreamingSession(model, tokenizer, image_processor, mode=mode, max_new_tokens=settings.max_new_tokens,
                                encode_batch_size=settings.encode_batch_size)  # fmt: skip

    registry = SessionRegistry(settings, factory)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        registry.start()
        yield
        await registry.stop()

    app = FastAPI(title="StreamForest", summary="live streams in, answers and alerts out", lifespan=lifespan)
    app.state.registry, app.state.settings = registry, settings

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.middleware("http")
    async def _same_origin(request: Request, call_next: Any) -> Any:
        try:
            check_origin(request.headers)
        except ApiError as e:
            return _error_response(e)
        return await call_next(request)

    _add_session_routes(app, model, registry, settings)
    _add_stream_routes(app, registry, settings)
    return app


def _error_response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def _session_lookup(registry: SessionRegistry, settings: ServeSettings) -> Any:
    def session_for(request: Request, session_id: str) -> ServedSession:
        check_token(settings, request.headers.get("authorization"))
        return registry.get(session_id)

    return session_for


def _add_session_routes(app: FastAPI, model: Any, registry: SessionRegistry, settings: ServeSettings) -> None:
    """``/healthz``, the page, session create / delete / stats and the WebSocket."""
    session_for = _session_lookup(registry, settings)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_name, "device": str(model.device),
                "dtype": str(model.dtype).replace("torch.", ""), "sessions": len(registry.sessions),
                "max_sessions": settings.max_sessions, "token_required": bool(settings.token)}  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(_static_dir() / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(_static_dir())), name="static")

    @app.post("/v1/sessions", status_code=201)
    async def create_session(request: Request) -> dict[str, Any]:
        check_token(settings, request.headers.get("authorization"))
        data = parse_json(await read_body(request, JSON_LIMIT), ("mode", "fps_hint"), '{"mode": "bounded", "fps_hint": 1}')
        mode, fps = parse_session(data, settings)
        served = await registry.create(mode, fps)
        return {"id": served.id, "mode": mode, "fps_hint": fps}

    @app.delete("/v1/sessions/{session_id}", status_code=204, response_class=Response, response_model=None)
    async def delete_session(request: Request, session_id: str) -> Response:
        session_for(request, session_id)
        await registry.delete(session_id)
        return Response(status_code=204)

    @app.get("/v1/sessions/{session_id}/stats")
    async def session_stats(request: Request, session_id: str) -> dict[str, Any]:
        return await ops.stats(session_for(request, session_id))

    @app.websocket("/v1/sessions/{session_id}/ws")
    async def websocket(ws: WebSocket, session_id: str) -> None:
        await serve_websocket(ws, session_id, registry, settings)



def _add_stream_routes(app: FastAPI, registry: SessionRegistry, settings: ServeSettings) -> None:
    """Frames, questions and standing questions over REST."""
    session_for = _session_lookup(registry, settings)

    @app.post("/v1/sessions/{session_id}/frames", response_model=None)
    async def post_frame(request: Request, session_id: str, t: str | None = None) -> Response | dict[str, Any]:
        served = session_for(request, session_id)
        try:
            if t is None:
                raise ApiError(422, "query parameter 't' is missing: POST .../frames?t=SECONDS (the frame's stream time)", "t")
            served.check_frame(t)  # cheap checks before reading the body
            body = await read_body(request, settings.max_frame_bytes)
        except ApiError:
            served.counters.frames_rejected += 1
            raise
        pending = await ops.offer_frame(served, t, body)  # counts its own refusals
        if pending is None:
            raise ApiError(429, f"frame at t={t} dropped: {settings.queue_depth} frames are already waiting "
                                f"(--queue-depth); {served.counters.frames_dropped} dropped so far. Send frames at "
                                "the session's rate, or wait for each answer", "body")  # fmt: skip
        try:
            alerts = await pending
        except Exception as e:  # noqa: BLE001 - the session refused the frame
            raise ApiError(422, str(e), "body") from None
        return {"alerts": alerts} if alerts else Response(status_code=204)

    @app.post("/v1/sessions/{session_id}/ask")
    async def post_ask(request: Request, session_id: str) -> dict[str, Any]:
        served = session_for(request, session_id)
        data = parse_json(await read_body(request, JSON_LIMIT), ("question", "follow_up"),
                          '{"question": "What is ahead?", "follow_up": false}')  # fmt: skip
        question, follow_up = parse_ask(data, settings)
        return await ops.ask(served, question, follow_up)

    @app.post("/v1/sessions/{session_id}/watch", status_code=201)
    async def post_watch(request: Request, session_id: str) -> dict[str, Any]:
        served = session_for(request, session_id)
        data = parse_json(await read_body(request, JSON_LIMIT), WATCH_FIELDS,
                          '{"question": "Is the light red?", "threshold": 0.5}')  # fmt: skip
        return {"id": await ops.watch(served, parse_watch(data, settings))}

    @app.delete("/v1/sessions/{session_id}/watch/{watch_id}", status_code=204, response_class=Response, response_model=None)
    async def delete_watch(request: Request, session_id: str, watch_id: str) -> Response:
        await ops.unwatch(session_for(request, session_id), watch_id)
        return Response(status_code=204)
