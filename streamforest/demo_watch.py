"""``make demo``, step ``watch``: standing questions (``session.watch``) on held-out synthetic streams.

For each held-out video (``videos/eval``) the trained model and its untrained twin each stream the video at
:data:`STREAM_FPS` through a :class:`~streamforest.streaming.StreamingSession` with the standing questions
of :data:`WATCHES` registered (threshold :data:`THRESHOLD`, cool-down :data:`COOLDOWN_S`). The truth comes
from the scene ground truth (``meta/eval_scenes.json`` regenerated through
:func:`~streamforest.synthetic.make_scene`): :func:`~streamforest.synthetic.yesno.onsets` of each question's
per-frame truth are the *true changes* (the times its answer turns to "yes", ``0.0`` when true from the start).

Measures, per model:

* **detection rate**: true changes followed by an alert within ``[t, t + DETECT_S]``;
* **median delay**: alert time − change time over the detected changes (frames arrive at ≈1 fps, mid-bin);
* **false alerts per minute**: alerts at a frame where the answer is "no", per minute of stream;
* **late alerts**: alerts while the answer is "yes" but more than ``DETECT_S`` after its change (not counted
  as detections nor as false alerts);
* **probe cost**: milliseconds per probe and per frame (all watches), with and without the prefix cache
  (trained model, the first :data:`TIMING_VIDEOS` videos, same frames).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from streamforest.console import say
from streamforest.synthetic import DatasetParams, DatasetPaths, make_scene
from streamforest.synthetic.yesno import YESNO_TEMPLATES, onsets, truth_per_frame

if TYPE_CHECKING:
    from streamforest.demo import Ctx

__all__ = ["WATCHES", "measure_alerts", "print_watch", "step_watch"]

WATCHES: tuple[tuple[str, str], ...] = (
    ("light_is", "green"), ("light_is", "red"), ("side_object", "left"), ("side_object", "right"),
)  # fmt: skip
"""Standing questions ``(family, value)`` → ``YESNO_TEMPLATES[family].format(value=value)``."""
THRESHOLD = 0.5
COOLDOWN_S = 3.0
DETECT_S = 2.0
"""An alert within this many seconds after a true change detects it."""
STREAM_FPS = 1.0
MAX_VIDEOS = {"quick": 1}
"""Held-out videos measured per demo size (absent: all)."""
TIMING_VIDEOS = {"quick": 1, "full": 5}


def _question(family: str, value: str) -> str:
    return YESNO_TEMPLATES[family].format(value=value)


def stream_with_watches(session: Any, video: Path) -> list[dict]:
    """Play ``video`` at :data:`STREAM_FPS` through ``session`` (reset first; its watches stay); every alert."""
    from streamforest.streaming.playback import frame_source

    session.reset()
    alerts = []
    for t, frame in frame_source(video, STREAM_FPS):
        alerts += session.push(frame, t)
    alerts += session.flush()
    return [a.to_dict() for a in alerts]


def open_session(ckpt: Path, *, prefix_cache: bool) -> tuple[Any, dict[str, tuple[str, str]]]:
    """A float32 exact-mode session on ``ckpt`` with every :data:`WATCHES` question; ``(session, id → watch)``."""
    from streamforest.streaming import StreamingSession

    session = StreamingSession.from_pretrained(ckpt, dtype="float32", prefix_cache=prefix_cache)
    ids = {session.watch(_question(*w), threshold=THRESHOLD, cooldown_s=COOLDOWN_S): w for w in WATCHES}
    return session, ids


def score_alerts(alerts: list[dict], truth: list[bool], fps: float) -> dict[str, Any]:
    """Match the alerts of one question on one video against its per-frame ``truth`` (video frames at ``fps``).

    Returns ``{"changes", "detected", "delays", "false", "late"}``: each true change is detected by the first
    alert in ``[change, change + DETECT_S]``; an alert at a frame where the truth is False is false; the rest
    (truth True, no change to detect) are late.
    """
    changes = onsets(truth, fps)
    times = sorted(a["time"] for a in alerts)
    used: set[int] = set()
    delays = []
    for c in changes:
        hit = next((i for i, t in enumerate(times) if i not in used and c - 1e-6 <= t <= c + DETECT_S + 1e-6), None)
        if hit is not None:
            used.add(hit)
            delays.append(times[hit] - c)
    rest = [t for i, t in enumerate(times) if i not in used]
    false = sum(not truth[min(int(t * fps + 1e-6), len(truth) - 1)] for t in rest)
    return {"changes": changes, "detected": len(delays), "delays": delays, "false": false, "late": len(rest) - false}


def measure_alerts(session: Any, ids: dict[str, tuple[str, str]], videos: list[tuple[Path, Any]], desc: str) -> dict:
    """Stream every ``(video, scene)``; per-video alerts and the totals of :func:`score_alerts` over all."""
    per_video, tot = [], {"changes": 0, "detected": 0, "delays": [], "false": 0, "late": 0, "minutes": 0.0}
    for video, scene in tqdm(videos, desc=desc, leave=False):
        alerts = stream_with_watches(session, video)
        fps = scene.config.fps
        rows = {}
        for wid, (family, value) in ids.items():
            mine = [a for a in alerts if a["watch_id"] == wid]
            s = score_alerts(mine, truth_per_frame(scene, family, value), fps)
            rows[_question(family, value)] = {"changes": s["changes"], "alerts": [(round(a["time"], 2), round(a["probability"], 3)) for a in mine]}
            for k in ("detected", "false", "late"):
                tot[k] += s[k]
            tot["changes"] += len(s["changes"])
            tot["delays"] += s["delays"]
        tot["minutes"] += scene.config.duration / 60
        per_video.append({"video": video.name, "questions": rows})
    stats = session.stats()["watch"]
    return {
        "videos": len(videos), "stream_minutes": round(tot["minutes"], 2), "changes": tot["changes"],
        "detected": tot["detected"], "detection_rate": tot["detected"] / max(tot["changes"], 1),
        "median_delay_s": statistics.median(tot["delays"]) if tot["delays"] else None,
        "false_alerts": tot["false"], "false_per_min": tot["false"] / max(tot["minutes"], 1e-9), "late_alerts": tot["late"],
        "probes": stats["probes"], "per_video": per_video,
    }  # fmt: skip


def probe_cost(ckpt: Path, videos: list[tuple[Path, Any]]) -> dict[str, dict]:
    """Probe time with and without the prefix cache on the same frames: ms per probe and per frame."""
    out = {}
    for name, cache in (("prefix_cache_on", True), ("prefix_cache_off", False)):
        session, _ = open_session(ckpt, prefix_cache=cache)
        frames = 0
        for video, _scene in videos:
            stream_with_watches(session, video)
            frames += session.stats()["frames"]  # per video (reset); the watch counters add up over resets
        st = session.stats()
        probes, ms = st["watch"]["probes"], st["watch"]["probe_ms_mean"]
        out[name] = {"frames": frames, "probes": probes, "ms_per_probe": ms, "ms_per_frame": ms * probes / max(frames, 1),
                     "prefix_cache": st["prefix_cache"]}  # fmt: skip
    return out


def step_watch(ctx: Ctx) -> dict:
    """The demo step: one video's alerts against the true changes, then the measurement on every held-out video."""
    paths = DatasetPaths.under(ctx.data)
    manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    params = DatasetParams(**{**manifest["params"], "duration_range": tuple(manifest["params"]["duration_range"])})
    n = MAX_VIDEOS.get(ctx.size.name, params.n_eval_videos)
    videos = [(paths.videos_eval / f"eval_{i:04d}.mp4", make_scene(params, "eval", i)) for i in range(n)]
    out: dict[str, Any] = {"watches": [_question(*w) for w in WATCHES], "threshold": THRESHOLD, "cooldown_s": COOLDOWN_S,
                           "detect_s": DETECT_S, "stream_fps": STREAM_FPS}  # fmt: skip
    for name, ckpt in (("trained", ctx.trained_ckpt), ("untrained", ctx.init_ckpt)):
        session, ids = open_session(ckpt, prefix_cache=True)
        out[name] = measure_alerts(session, ids, videos, f"standing questions ({name})")
    out["example"] = {"video": videos[0][0].name, **out["trained"]["per_video"][0]}
    out["probe_cost"] = probe_cost(ctx.trained_ckpt, videos[: TIMING_VIDEOS.get(ctx.size.name, 5)])
    path = ctx.out / "watch" / "watch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return {k: v for k, v in out.items() if k not in ("trained", "untrained")} | {
        name: {k: v for k, v in out[name].items() if k != "per_video"} for name in ("trained", "untrained")
    }


def print_watch(w: dict) -> None:
    """Console section: the example video's alerts vs the true changes, then the side-by-side measurement."""
    say("")
    say(f"Standing questions on {w['example']['video']} (trained model, {w['stream_fps']:g} fps, alert when "
        f"P(yes) >= {w['threshold']}, cool-down {w['cooldown_s']:g} s):")  # fmt: skip
    for q, row in w["example"]["questions"].items():
        changes = ", ".join(f"{c:.2f}" for c in row["changes"]) or "none"
        alerts = ", ".join(f"{t:.1f} (p={p:.2f})" for t, p in row["alerts"]) or "none"
        say(f"  {q:<38} turns yes at: {changes:<18} alerts at: {alerts}")
    tr, un = w["trained"], w["untrained"]
    say(f"Standing questions on {tr['videos']} held-out videos ({tr['stream_minutes']:.1f} min, {tr['changes']} true "
        f"changes; detection = alert within {w['detect_s']:g} s):")  # fmt: skip
    say(f"  {'':<26}{'untrained':>10}  {'trained':>8}")
    delay = [("   –  " if m["median_delay_s"] is None else f"{m['median_delay_s']:.2f} s") for m in (un, tr)]
    rows = [("detection rate", f"{100 * un['detection_rate']:.1f}%", f"{100 * tr['detection_rate']:.1f}%"),
            ("median delay", *delay),
            ("false alerts / min", f"{un['false_per_min']:.2f}", f"{tr['false_per_min']:.2f}"),
            ("late alerts", str(un["late_alerts"]), str(tr["late_alerts"]))]  # fmt: skip
    for label, a, b in rows:
        say(f"  {label:<26}{a:>10}  {b:>8}")
    on, off = w["probe_cost"]["prefix_cache_on"], w["probe_cost"]["prefix_cache_off"]
    say(f"  probe cost (trained, {len(WATCHES)} watches): {on['ms_per_probe']:.1f} ms/probe, {on['ms_per_frame']:.1f} "
        f"ms/frame with the prefix cache; {off['ms_per_probe']:.1f} ms/probe, {off['ms_per_frame']:.1f} ms/frame without")  # fmt: skip
