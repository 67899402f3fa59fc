"""Load benchmark for ``streamforest serve`` (not a test): concurrent live sessions from local clients.

    python benchmarks/serve_load.py     # 3 rounds of: 8 sessions × 1 fps × 120 s of stream, a question every 10 s
    python benchmarks/serve_load.py --sessions 2 --seconds 20 --rounds 2 --out /tmp/sl   # smoke run

Starts ``python -m streamforest serve`` (the tiny checkpoint unless ``--model``) on a free 127.0.0.1 port as a
subprocess, then runs one WebSocket client per session, all on 127.0.0.1: each sends synthetic driving frames
(JPEG, 320×240) in real time at ``--fps`` with times ``k / fps``, asks a question every ``--ask-every`` seconds
over the same socket and reads answers, drops and alerts as they are pushed. At the end it reads every
session's stats and reports: frames sent vs received / ingested / dropped (drops are counted by the server and
announced to the client, so the two counts must agree), answer latency p50/p95 (client round trip and the
session's own ``latency_ms``), and the server process's RSS over time. Each round opens fresh sessions on the
same server: RSS at the end of each round must stay flat after the first (warm-up) round — a leak per frame,
question or session would add about as much every round.

Outputs ``serve_load.md`` and ``serve_load.json`` in ``benchmarks/results/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
QUESTION = "What is the car in front doing?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_jpegs(seed: int, n: int, fps: float) -> list[bytes]:
    """``n`` JPEG frames of a synthetic driving scene sampled at ``fps``."""
    from PIL import Image

    from streamforest.synthetic.scenes import Scene, SceneConfig

    scene = Scene(SceneConfig(width=320, height=240, fps=4, duration=n / fps + 1), seed=seed)
    out = []
    for k in range(n):
        buf = io.BytesIO()
        Image.fromarray(scene.render(k / fps)).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamforest", "--log-level", "WARNING", "serve", "--model", str(args.model),
           "--port", str(port), "--max-sessions", str(args.sessions), "--mode", args.mode,
           "--max-new-tokens", str(args.max_new_tokens), "--queue-depth", str(args.queue_depth)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)  # torch's intra-op threads in the server
    return subprocess.Popen(cmd, env=env)


async def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode}")
            try:
                return (await http.get(url + "/healthz")).json()
            except httpx.TransportError:
                await asyncio.sleep(0.5)
    raise RuntimeError("the server did not answer /healthz in time")


async def run_client(index: int, url: str, args: argparse.Namespace, frames: list[bytes]) -> dict[str, Any]:
    """One live session: frames in real time, a question every ``ask_every`` s; returns what it saw."""
    import httpx
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        sid = (await http.post("/v1/sessions", json={"fps_hint": args.fps})).json()["id"]
        asked: dict[int, float] = {}
        seen: dict[str, Any] = {"answers": [], "dropped": 0, "errors": [], "alerts": 0}
        async with connect(url.replace("http", "ws") + f"/v1/sessions/{sid}/ws", max_size=None) as ws:

            async def read() -> None:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "answer":
                        rtt = time.perf_counter() - asked.pop(msg["id"])
                        seen["answers"].append({"rtt_ms": 1e3 * rtt, "latency_ms": msg["latency_ms"],
                                                "num_frames": msg["num_frames"], "time": msg["time"]})  # fmt: skip
                    elif msg["type"] == "dropped":
                        seen["dropped"] += 1
                    elif msg["type"] == "alert":
                        seen["alerts"] += 1
                    elif msg["type"] == "error":
                        seen["errors"].append(msg["message"])

            reader = asyncio.create_task(read())
            start = time.perf_counter()
            every = max(1, round(args.ask_every * args.fps))
            for k, jpeg in enumerate(frames):
                await asyncio.sleep(max(0.0, start + k / args.fps - time.perf_counter()))
                await ws.send(struct.pack("<d", k / args.fps) + jpeg)
                if k and k % every == 0:
                    asked[k] = time.perf_counter()
                    await ws.send(json.dumps({"type": "ask", "question": QUESTION, "id": k}))
            deadline = time.perf_counter() + 120
            while asked and time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
            reader.cancel()
        stats = (await http.get(f"/v1/sessions/{sid}/stats")).json()
        for _ in range(300):  # frames sent after the last question may still be queued: wait for them
            if not stats["server"]["frames_waiting"]:
                break
            await asyncio.sleep(0.1)
            stats = (await http.get(f"/v1/sessions/{sid}/stats")).json()
        await http.delete(f"/v1/sessions/{sid}")
    return {"session": index, "sent": len(frames), "unanswered": len(asked), **seen, "stats": stats}


async def sample_rss(pid: int, samples: list[tuple[float, float]], start: float) -> None:
    import psutil

    proc = psutil.Process(pid)
    while True:
        samples.append((time.perf_counter() - start, proc.memory_info().rss / 2**20))
        await asyncio.sleep(2.0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    n = int(args.seconds * args.fps)
    all_frames = [session_jpegs(seed, n, args.fps) for seed in range(args.sessions)]
    proc = start_server(args, port)
    try:
        health = await wait_healthy(url, proc)
        rss: list[tuple[float, float]] = []
        round_end: list[float] = []
        clients: list[dict[str, Any]] = []
        start = time.perf_counter()
        sampler = asyncio.create_task(sample_rss(proc.pid, rss, start))
        for _ in range(args.rounds):  # each round: fresh sessions on the same server
            clients += await asyncio.gather(*(run_client(i, url, args, f) for i, f in enumerate(all_frames)))
            round_end.append(rss_now(proc.pid))
        sampler.cancel()
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"health": health, "clients": clients, "rss": rss, "wall_s": wall, "rss_round_end": round_end}


def rss_now(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def summarise(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    clients = result["clients"]
    answers = [a for c in clients for a in c["answers"]]
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    server = [c["stats"]["server"] for c in clients]
    ends = result["rss_round_end"]
    return {
        "sessions": args.sessions, "fps": args.fps, "stream_s": args.seconds, "ask_every_s": args.ask_every,
        "mode": args.mode, "max_new_tokens": args.max_new_tokens, "queue_depth": args.queue_depth,
        "frames_sent": sum(c["sent"] for c in clients),
        "frames_received": sum(s["frames_received"] for s in server),
        "frames_ingested": sum(s["frames_ingested"] for s in server),
        "frames_dropped": sum(s["frames_dropped"] for s in server),
        "drops_announced": sum(c["dropped"] for c in clients),
        "frames_rejected": sum(s["frames_rejected"] for s in server),
        "questions_asked": sum(len(c["answers"]) + c["unanswered"] for c in clients),
        "answers": len(answers), "errors": sum(len(c["errors"]) for c in clients),
        "rtt_ms_p50": pct([a["rtt_ms"] for a in answers], 50), "rtt_ms_p95": pct([a["rtt_ms"] for a in answers], 95),
        "latency_ms_p50": pct([a["latency_ms"] for a in answers], 50),
        "latency_ms_p95": pct([a["latency_ms"] for a in answers], 95),
        "frame_ms_mean": statistics.fmean(c["stats"]["frame_latency_ms"]["mean"] for c in clients),
        "frames_waiting_at_end": sum(s["frames_waiting"] for s in server),
        "rss_mib_start": result["rss"][0][1], "rss_mib_round_end": [round(m, 1) for m in ends],
        "rss_mib_growth_per_round_after_first": (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan"),
        "rss_mib_max": max(m for _, m in result["rss"]), "wall_s": result["wall_s"],
        "memory_tokens_end": [c["stats"]["memory_tokens"]["total"] for c in clients[-args.sessions :]],
    }  # fmt: skip


def write_report(args: argparse.Namespace, summary: dict[str, Any], result: dict[str, Any]) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clients = [{"session": c["session"], "sent": c["sent"], "unanswered": c["unanswered"], "dropped": c["dropped"],
                "alerts": c["alerts"], "errors": c["errors"], "answers": len(c["answers"]),
                "rtt_ms": [round(a["rtt_ms"], 1) for a in c["answers"]], "server": c["stats"]["server"],
                **{k: c["stats"][k] for k in ("question_latency_ms", "frame_latency_ms", "memory_tokens")}}
               for c in result["clients"]]  # fmt: skip
    rss = [[round(t, 1), round(m, 1)] for t, m in result["rss"]]
    (out / "serve_load.json").write_text(json.dumps({"summary": summary, "rss": rss, "clients": clients}, indent=1))
    s = summary
    lines = [
        "# Serve load benchmark", "",
        f"`python benchmarks/serve_load.py {' '.join(sys.argv[1:])}` — `streamforest serve` on the tiny checkpoint "
        f"({result['health']['device']}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
        f"{s['sessions']} WebSocket clients on 127.0.0.1 ({args.rounds} round(s)), each {s['fps']:g} fps for {s['stream_s']:g} s of stream "
        f"in real time (320×240 JPEG), a question every {s['ask_every_s']:g} s, {s['max_new_tokens']} new tokens per "
        f"answer, mode {s['mode']}, queue depth {s['queue_depth']}, torch threads {args.threads or 'default'}. "
        f"Wall time {s['wall_s']:.0f} s; load average before / after: {args.load_before} / {os.getloadavg()[0]:.1f} "
        "(the machine is shared).", "",
        "| frames sent | received | ingested | dropped (server count) | drops announced to clients | rejected | still queued |",
        "|---|---|---|---|---|---|---|",
        f"| {s['frames_sent']} | {s['frames_received']} | {s['frames_ingested']} | {s['frames_dropped']} | "
        f"{s['drops_announced']} | {s['frames_rejected']} | {s['frames_waiting_at_end']} |", "",
        "| questions | answers | errors | round trip p50 / p95 ms | session latency p50 / p95 ms | frame ingest mean ms |",
        "|---|---|---|---|---|---|",
        f"| {s['questions_asked']} | {s['answers']} | {s['errors']} | {s['rtt_ms_p50']:.0f} / {s['rtt_ms_p95']:.0f} | "
        f"{s['latency_ms_p50']:.0f} / {s['latency_ms_p95']:.0f} | {s['frame_ms_mean']:.1f} |", "",
        f"Server RSS (sampled every 2 s): {s['rss_mib_start']:.0f} MiB with the model loaded, "
        f"{' → '.join(f'{m:.0f}' for m in s['rss_mib_round_end'])} MiB at the end of each round (fresh sessions each "
        f"round, same server), at most {s['rss_mib_max']:.0f} MiB: after the first round (warm-up) it grows "
        f"{s['rss_mib_growth_per_round_after_first']:+.1f} MiB per round of {s['frames_sent'] // args.rounds} frames and "
        f"{s['questions_asked'] // args.rounds} questions. Memory tokens per session at the end: {s['memory_tokens_end']}.", "",
        "Round trip = from sending the question on the socket to receiving the answer (it waits behind the frames "
        "the client sent before it and behind other sessions' work on the one model worker); session latency = "
        "the session's own `ask` time (flush + read-out + generation).",
    ]  # fmt: skip
    path = out / "serve_load.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: a fresh tiny checkpoint)")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=120.0, help="stream time per session (sent in real time)")
    parser.add_argument("--ask-every", type=float, default=10.0)
    parser.add_argument("--mode", default="bounded", choices=("bounded", "exact"))
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--queue-depth", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="repeat with fresh sessions (RSS must not keep growing)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server (default: torch's)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.model is None:
        from streamforest.tiny import make_tiny_checkpoint

        args.model = make_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny", projector_type="tome729_fstw_pemf")
    args.load_before = f"{os.getloadavg()[0]:.1f}"
    result = asyncio.run(run(args))
    summary = summarise(args, result)
    path = write_report(args, summary, result)
    print(path.read_text())


if __name__ == "__main__":
    main()
