"""``streamforest serve``: routes, WebSocket, caps and bad input, tokens, drops, idle expiry (tiny checkpoint).

In-process (FastAPI TestClient) and over a real uvicorn on a free 127.0.0.1 port.
"""

from __future__ import annotations

import asyncio
import gc
import json
import struct
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import LiveServer, driving_frames, encode, png_header_only  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from streamforest.serve import ServeSettings, SettingsError, create_app  # noqa: E402
from streamforest.streaming import StreamingSession  # noqa: E402

NEEDS_WATCH = pytest.mark.skipif(not hasattr(StreamingSession, "watch"), reason="standing questions land with issue 12")
QUESTION = "What is the car in front doing?"


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return driving_frames(6, fps=2, size=(64, 48))


def make_app(loaded: Any, **settings: Any) -> Any:
    settings.setdefault("max_new_tokens", 8)
    return create_app(loaded.model, loaded.tokenizer, ServeSettings(**settings), image_processor=loaded.image_processor)


def frame_message(t: float, body: bytes) -> bytes:
    return struct.pack("<d", t) + body


def new_session(client: Any, **body: Any) -> str:
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


# ------------------------------------------------------------------------------------------------ routes


def test_rest_answer_equals_a_local_session_on_the_same_frames(loaded: Any, frames: list[np.ndarray]) -> None:
    with TestClient(make_app(loaded)) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["device"] == "cpu" and health["model"] == "streamforest"
        page = client.get("/")
        assert page.status_code == 200 and "StreamForest" in page.text and "/static/app.js" in page.text
        assert client.get("/static/app.js").status_code == 200
        sid = new_session(client, mode="bounded", fps_hint=2)
        for k, frame in enumerate(frames):
            r = client.post(f"/v1/sessions/{sid}/frames", params={"t": k * 0.5}, content=encode(frame, "PNG"),
                            headers={"Content-Type": "image/png"})  # fmt: skip
            assert r.status_code == 204, r.text
        answer = client.post(f"/v1/sessions/{sid}/ask", json={"question": QUESTION}).json()
        follow = client.post(f"/v1/sessions/{sid}/ask", json={"question": "And now?", "follow_up": True}).json()
        stats = client.get(f"/v1/sessions/{sid}/stats").json()
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
        gone = client.get(f"/v1/sessions/{sid}/stats")
    local = StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, mode="bounded", max_new_tokens=8)
    for k, frame in enumerate(frames):
        local.push(frame, k * 0.5)
    expected = local.ask(QUESTION)
    assert answer["answer"] == expected.text
    assert (answer["time"], answer["num_frames"], answer["turn"]) == (2.5, 6, 1)
    assert answer["prompt_tokens"] == expected.prompt_tokens and answer["new_tokens"] == len(expected.output_ids)
    assert answer["latency_ms"] > 0 and answer["server_latency_ms"] >= answer["latency_ms"]
    assert follow["turn"] == 2 and follow["answer"] == local.ask("And now?", follow_up=True).text
    assert stats["frames"] == 6 and stats["questions"] == 2 and stats["mode"] == "bounded"
    assert stats["server"]["frames_received"] == stats["server"]["frames_ingested"] == 6
    assert stats["server"]["frames_dropped"] == 0
    assert gone.status_code == 404 and gone.json()["field"] == "session_id"


def test_bad_input_gets_a_4xx_naming_the_field_and_the_server_keeps_serving(loaded: Any, frames: list[np.ndarray]) -> None:
    jpeg = encode(frames[0], "JPEG")
    with TestClient(make_app(loaded, max_sessions=2, max_question_chars=100)) as client:
        sid = new_session(client)
        base = f"/v1/sessions/{sid}"

        def refused(r: Any, status: int, field: str, words: str) -> None:
            assert r.status_code == status, r.text
            body = r.json()
            assert body["field"] == field and words in body["detail"], body

        refused(client.post(f"{base}/ask", json={"question": QUESTION}), 409, "question", "send at least one frame")
        refused(client.post("/v1/sessions", content=b"{mode: bounded"), 400, "body", "not valid JSON")
        refused(client.post("/v1/sessions", json={"mode": "fast"}), 422, "mode", "'bounded'")
        refused(client.post("/v1/sessions", json={"fps_hint": 0}), 422, "fps_hint", "> 0")
        refused(client.post("/v1/sessions", json={"fps": 1}), 422, "fps", "fps_hint")
        refused(client.post(f"{base}/frames", content=jpeg), 422, "t", "?t=SECONDS")
        refused(client.post(f"{base}/frames?t=soon", content=jpeg), 422, "t", "seconds")
        refused(client.post(f"{base}/frames?t=1", content=b"GIF89a not really"), 415, "body", "JPEG or PNG")
        refused(client.post(f"{base}/frames?t=1", content=b"\0" * (50 * 1024 * 1024)), 413, "body", "limit")
        refused(client.post(f"{base}/frames?t=1", content=png_header_only(20000, 20000)), 413, "body", "--max-frame-pixels")
        assert client.post(f"{base}/frames?t=2", content=jpeg).status_code == 204
        refused(client.post(f"{base}/frames?t=1.5", content=jpeg), 422, "t", "goes backwards")
        small = encode(frames[0][:24, :32], "JPEG")
        refused(client.post(f"{base}/frames?t=3", content=small), 422, "body", "size of the first one")
        refused(client.post(f"{base}/ask", json={"question": "x" * 101}), 422, "question", "--max-question-chars")
        refused(client.post(f"{base}/ask", json={"question": "  "}), 422, "question", "non-empty")
        refused(client.post(f"{base}/ask", json={"question": "hi", "follow_up": "yes"}), 422, "follow_up", "true or false")
        refused(client.post(f"{base}/ask", content=b"[1, 2]"), 422, "body", "JSON object")
        refused(client.post("/v1/sessions/nope/ask", json={"question": "hi"}), 404, "session_id", "POST /v1/sessions")
        new_session(client)
        refused(client.post("/v1/sessions", json={}), 429, None, "--max-sessions")
        stats = client.get(f"{base}/stats").json()["server"]
        assert stats["frames_rejected"] == 7 and stats["frames_ingested"] == 1
        answer = client.post(f"{base}/ask", json={"question": QUESTION})  # still serving
        assert answer.status_code == 200 and answer.json()["num_frames"] == 1


def test_websocket_frames_questions_errors_and_counted_drops(loaded: Any, frames: list[np.ndarray]) -> None:
    app = make_app(loaded, queue_depth=2)
    with TestClient(app) as client:
        sid = new_session(client)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
            ws.send_text(json.dumps({"type": "ask", "question": QUESTION, "id": 7}))
            early = ws.receive_json()
            assert (early["type"], early["status"], early["id"]) == ("error", 409, 7)
            ws.send_text("{not json")
            assert ws.receive_json()["status"] == 400
            ws.send_text(json.dumps({"type": "dance"}))
            assert "not one of" in ws.receive_json()["message"]
            ws.send_bytes(b"\0\1")
            assert ws.receive_json()["field"] == "frame"
            # hold the shared model worker so that frames pile up in this session's queue
            release = threading.Event()
            app.state.registry.executor.submit(release.wait, 30)
            for k, frame in enumerate(frames):
                ws.send_bytes(frame_message(k * 0.5, encode(frame, "JPEG")))
            drops = [ws.receive_json() for _ in range(len(frames) - 2)]
            release.set()
            ws.send_text(json.dumps({"type": "ask", "question": QUESTION, "id": 8}))
            answer = ws.receive_json()
            ws.send_text(json.dumps({"type": "stats", "id": 9}))
            stats = ws.receive_json()["stats"]
    assert [d["type"] for d in drops] == ["dropped"] * 4 and drops[-1]["frames_dropped"] == 4
    assert [d["t"] for d in drops] == [1.0, 1.5, 2.0, 2.5] and "--queue-depth" in drops[0]["message"]
    assert answer["type"] == "answer" and answer["id"] == 8 and answer["num_frames"] == 2 and answer["frame_time"] == 0.5
    server = stats["server"]
    assert (server["frames_received"], server["frames_ingested"], server["frames_dropped"]) == (6, 2, 4)
    assert server["drops_by_reason"] == {"queue_full": 4} and stats["frames"] == 2


def test_token_guards_every_route_but_health_and_page(loaded: Any, frames: list[np.ndarray]) -> None:
    with TestClient(make_app(loaded, token="s3cret")) as client:
        assert client.get("/healthz").json()["token_required"] is True
        assert client.get("/").status_code == 200
        missing = client.post("/v1/sessions", json={})
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/v1/sessions", json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong token" in wrong.json()["detail"]
        auth = {"Authorization": "Bearer s3cret"}
        sid = client.post("/v1/sessions", json={}, headers=auth).json()["id"]
        assert client.get(f"/v1/sessions/{sid}/stats").status_code == 401
        assert client.post(f"/v1/sessions/{sid}/frames?t=0", content=encode(frames[0])).status_code == 401
        assert client.get(f"/v1/sessions/{sid}/stats", headers=auth).status_code == 200
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
        with client.websocket_connect(f"/v1/sessions/{sid}/ws", subprotocols=["bearer", "s3cret"]) as ws:
            assert ws.accepted_subprotocol == "bearer"
            ws.send_text(json.dumps({"type": "stats"}))
            assert ws.receive_json()["type"] == "stats"
        with client.websocket_connect(f"/v1/sessions/{sid}/ws", headers=auth) as ws:
            ws.send_text(json.dumps({"type": "stats"}))
            assert ws.receive_json()["type"] == "stats"
        for path, protocols, code in ((f"/v1/sessions/{sid}/ws", ["bearer", "nope"], 4401),
                                      ("/v1/sessions/unknown/ws", ["bearer", "s3cret"], 4404)):  # fmt: skip
            with client.websocket_connect(path, subprotocols=protocols) as ws, pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == code


def test_requests_from_another_sites_page_are_refused(loaded: Any) -> None:
    with TestClient(make_app(loaded)) as client:
        evil = {"Origin": "https://evil.example"}
        r = client.post("/v1/sessions", content=b"{}", headers=evil)
        assert r.status_code == 403 and r.json()["field"] == "Origin" and not client.app.state.registry.sessions
        same = client.post("/v1/sessions", json={}, headers={"Origin": "http://testserver"})
        assert same.status_code == 201
        sid = same.json()["id"]
        with client.websocket_connect(f"/v1/sessions/{sid}/ws", headers=evil) as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4403
        with client.websocket_connect(f"/v1/sessions/{sid}/ws", headers={"Origin": "http://testserver"}) as ws:
            ws.send_text(json.dumps({"type": "stats"}))
            assert ws.receive_json()["type"] == "stats"


def test_binding_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from streamforest.cli import main

    monkeypatch.delenv("STREAMFOREST_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="--token"):
        ServeSettings(host="0.0.0.0")
    assert ServeSettings(host="0.0.0.0", token="t").token == "t"
    assert ServeSettings(host="::1").token is None
    assert main(["serve", "--model", "ckpt", "--host", "0.0.0.0"]) == 2
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().err
    monkeypatch.setenv("STREAMFOREST_TOKEN", "from-env")
    assert ServeSettings(host="192.168.1.5").token == "from-env"


def test_serve_command_loads_the_model_once_and_runs_uvicorn(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from streamforest.cli import main

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    args = ["serve", "--model", str(tiny_checkpoint), "--port", "8123", "--max-sessions", "3", "--queue-depth", "5"]
    assert main(args) == 0
    assert (ran["host"], ran["port"]) == ("127.0.0.1", 8123)
    settings = ran["app"].state.settings
    assert (settings.max_sessions, settings.queue_depth, settings.mode) == (3, 5, "bounded")
    with TestClient(ran["app"]) as client:
        assert client.get("/healthz").json()["model"] == tiny_checkpoint.name


def test_idle_sessions_expire_and_free_their_memory(loaded: Any, frames: list[np.ndarray]) -> None:
    app = make_app(loaded, idle_timeout=0.4)
    with TestClient(app) as client:
        sid = new_session(client)
        client.post(f"/v1/sessions/{sid}/frames?t=0", content=encode(frames[0]))
        session_ref = weakref.ref(app.state.registry.sessions[sid].session)
        with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()  # nothing is sent: the session idles out and the socket is closed
        assert closed.value.code == 4408
        r = client.get(f"/v1/sessions/{sid}/stats")
        assert r.status_code == 404 and "expired" in r.json()["detail"]
        assert app.state.registry.expired == 1 and not app.state.registry.sessions
    gc.collect()
    assert session_ref() is None


# ------------------------------------------------------------------------------------------------ real socket


def test_real_uvicorn_serves_rest_and_websocket_and_a_flooding_client_does_not_block_others(
    loaded: Any, frames: list[np.ndarray]
) -> None:
    import httpx
    from websockets.sync.client import connect

    jpeg = [encode(f, "JPEG") for f in frames]
    with LiveServer(make_app(loaded, queue_depth=2)) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        calm = new_session(http)
        flood = new_session(http)
        assert http.post(f"/v1/sessions/{calm}/frames?t=0", content=jpeg[0]).status_code == 204
        ws_url = url.replace("http", "ws") + f"/v1/sessions/{flood}/ws"
        with connect(ws_url, max_size=None) as ws:
            sent = 60
            for k in range(sent):  # as fast as the socket takes them, never reading the replies
                ws.send(frame_message(k * 0.1, jpeg[k % len(jpeg)]))
            t0 = time.perf_counter()
            answer = http.post(f"/v1/sessions/{calm}/ask", json={"question": QUESTION})
            calm_latency = time.perf_counter() - t0
            ws.send(json.dumps({"type": "ask", "question": QUESTION, "id": 1}))
            replies = []
            while not replies or replies[-1].get("type") != "answer":
                replies.append(json.loads(ws.recv(timeout=60)))
        stats = http.get(f"/v1/sessions/{flood}/stats").json()["server"]
        too_big = http.post(f"/v1/sessions/{calm}/frames?t=1", content=b"\xff" * (9 * 1024 * 1024))
    assert answer.status_code == 200 and answer.json()["num_frames"] == 1
    assert calm_latency < 30
    drops = [r for r in replies if r["type"] == "dropped"]
    assert stats["frames_received"] == sent
    assert stats["frames_ingested"] + stats["frames_dropped"] == sent
    assert len(drops) == stats["frames_dropped"] > 0
    assert replies[-1]["num_frames"] == stats["frames_ingested"]
    assert too_big.status_code == 413 and too_big.json()["field"] == "body"


def test_websocket_message_over_the_size_limit_closes_with_1009(loaded: Any, frames: list[np.ndarray]) -> None:
    import httpx
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with LiveServer(make_app(loaded), ws_max_size=4096) as url:
        with httpx.Client(base_url=url) as http:
            sid = new_session(http)
        with connect(url.replace("http", "ws") + f"/v1/sessions/{sid}/ws") as ws:
            ws.send(frame_message(0.0, b"\xff" * 10_000))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


# ------------------------------------------------------------------------------------------------ standing questions


@NEEDS_WATCH
def test_watch_routes_and_alerts(loaded: Any, frames: list[np.ndarray]) -> None:
    # threshold 0: the first probe of a watch always fires (and, never reading p < 0, it never re-arms)
    with TestClient(make_app(loaded)) as client:
        sid = new_session(client)
        base = f"/v1/sessions/{sid}"
        r = client.post(f"{base}/watch", json={"question": "Is the traffic light red?", "threshold": 0.0, "cooldown_s": 0})
        assert r.status_code == 201, r.text
        first_id = r.json()["id"]
        assert client.post(f"{base}/watch", json={"question": "x", "threshold": 2}).json()["field"] == "threshold"
        first = client.post(f"{base}/frames?t=0", content=encode(frames[0]))
        assert first.status_code == 200, first.text
        alert = first.json()["alerts"][0]
        assert alert["watch_id"] == first_id and alert["time"] == 0.0 and 0.0 <= alert["probability"] <= 1.0
        with client.websocket_connect(f"{base}/ws") as ws:
            ws.send_text(json.dumps({"type": "watch", "question": "Is a car ahead?", "threshold": 0.0, "id": 2}))
            watching = ws.receive_json()
            assert watching["type"] == "watching" and watching["id"] == 2
            second_id = watching["watch_id"]
            ws.send_bytes(frame_message(0.5, encode(frames[1])))
            pushed = ws.receive_json()
            assert pushed["type"] == "alert" and pushed["watch_id"] == second_id and pushed["time"] == 0.5
            ws.send_text(json.dumps({"type": "unwatch", "watch_id": second_id, "id": 3}))
            assert ws.receive_json() == {"type": "unwatched", "id": 3, "watch_id": second_id}
        assert client.delete(f"{base}/watch/{first_id}").status_code == 204
        assert client.delete(f"{base}/watch/{first_id}").json()["field"] == "watch_id"
        assert client.post(f"{base}/frames?t=1", content=encode(frames[2])).status_code == 204
        assert client.get(f"{base}/stats").json()["server"]["alerts"] == 2


def test_settings_reject_bad_caps() -> None:
    with pytest.raises(SettingsError, match="--queue-depth"):
        ServeSettings(queue_depth=0)
    with pytest.raises(SettingsError, match="--mode"):
        ServeSettings(mode="fast")
    with pytest.raises(SettingsError, match="no spaces"):
        ServeSettings(token="two words")  # could not travel as a WebSocket subprotocol


def test_registry_runs_all_model_work_on_one_thread(loaded: Any, frames: list[np.ndarray]) -> None:
    app = make_app(loaded, max_sessions=4)
    threads: set[str] = set()
    original = StreamingSession.push

    original_ask = StreamingSession.ask

    def spy(self: Any, frame: Any, t: float) -> Any:
        threads.add(threading.current_thread().name)
        return original(self, frame, t)

    def spy_ask(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        return original_ask(self, *args, **kwargs)

    async def run() -> None:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            sids = [(await c.post("/v1/sessions", json={})).json()["id"] for _ in range(3)]
            extra = await asyncio.gather(*(c.post("/v1/sessions", json={}) for _ in range(3)))  # limit 4, 3 open
            assert sorted(r.status_code for r in extra) == [201, 429, 429]
            for k in range(2):  # the sessions' frames concurrently (one session's frames in order)
                posts = [c.post(f"/v1/sessions/{s}/frames?t={k}", content=encode(frames[k])) for s in sids]
                assert [r.status_code for r in await asyncio.gather(*posts)] == [204] * 3
            asks = [c.post(f"/v1/sessions/{s}/ask", json={"question": QUESTION}) for s in sids]
            assert [r.json()["num_frames"] for r in await asyncio.gather(*asks)] == [2] * 3

    StreamingSession.push, StreamingSession.ask = spy, spy_ask  # type: ignore[method-assign]
    try:
        asyncio.run(run())
    finally:
        StreamingSession.push, StreamingSession.ask = original, original_ask  # type: ignore[method-assign]
    assert len(threads) == 1 and next(iter(threads)).startswith("streamforest-model")


def test_deleting_a_session_fails_its_waiting_question_instead_of_hanging(loaded: Any, frames: list[np.ndarray]) -> None:
    import httpx

    app = make_app(loaded)

    async def run() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            sid = (await c.post("/v1/sessions", json={})).json()["id"]
            assert (await c.post(f"/v1/sessions/{sid}/frames?t=0", content=encode(frames[0]))).status_code == 204
            release = threading.Event()
            app.state.registry.executor.submit(release.wait, 30)  # the question waits on the busy worker
            asking = asyncio.create_task(c.post(f"/v1/sessions/{sid}/ask", json={"question": QUESTION}))
            await asyncio.sleep(0.3)
            assert (await c.delete(f"/v1/sessions/{sid}")).status_code == 204
            try:
                return await asyncio.wait_for(asking, 10)
            finally:
                release.set()

    r = asyncio.run(run())
    assert r.status_code == 404 and "was closed (deleted)" in r.json()["detail"]


def test_a_websocket_client_that_stops_reading_is_cut_off_not_buffered_forever() -> None:
    from streamforest.serve.registry import OUTBOX_LIMIT, SessionRegistry

    async def run() -> tuple[tuple[bool, bool], int, Any]:
        registry = SessionRegistry(ServeSettings(), factory=lambda mode: object())
        served = await registry.create("bounded", 1.0)
        slow, fast = served.listen(), served.listen()
        for k in range(OUTBOX_LIMIT + 5):
            served.publish({"type": "alert", "k": k})
            while not fast.empty():  # this client keeps up
                fast.get_nowait()
        items = [slow.get_nowait() for _ in range(slow.qsize())]
        still_listening = (slow in served.listeners, fast in served.listeners)
        await registry.stop()
        return still_listening, len(items), items[-1]

    still_listening, queued, last = asyncio.run(run())
    assert still_listening == (False, True)
    assert queued == OUTBOX_LIMIT and last is None  # None = the sender closes that socket with 1013
