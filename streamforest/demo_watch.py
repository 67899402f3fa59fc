"""``make demo``, step ``watch``: standing questions (``session.watch``) on held-out synthetic streams.

For each held-out video (``videos/eval``) the trained model and its untrained twin each stream the video at
:data:`STREAM_FPS` through a :class:`~streamforest.streaming.StreamingSession` with the standing questions
of :data:`WATCHES` registered (threshold :data:`THRESHOLD`, cool-down :data:`COOLDOWN_S`): yes/no questions
(the stage-4 yes/no families) and, for the light, the evaluation's multiple-choice question watched on one
option letter. The truth comes
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
from streamforest.synthetic import FAMILIES, DatasetParams, DatasetPaths, format_mc_prompt, make_scene
from streamforest.synthetic.questions import LIGHT_OPTIONS
from streamforest.synthetic.yesno import YESNO_TEMPLATES, onsets, truth_per_frame

if TYPE_CHECKING:
    from streamforest.demo import Ctx

__all__ = ["WATCHES", "measure_alerts", "print_watch", "step_watch"]

WATCHES: tuple[tuple[str, str, bool], ...] = (
    ("light_is", "green", False), ("light_is", "red", False), ("side_object", "left", False),
    ("side_object", "right", False), ("light_is", "green", True), ("light_is", "red", True),
)  # fmt: skip
"""Standing questions ``(family, value, option)``: a yes/no question ``YESNO_TEMPLATES[family].format(value=value)``,
or (``option=True``, light only) the multiple-choice light-colour question of the evaluation split watched on
the letter of ``value`` (``session.watch(..., option=letter)``); both have the same truth."""
THRESHOLD = 0.5
COOLDOWN_S = 3.0
DETECT_S = 2.0
"""An alert within this many seconds after a true change detects it."""
STREAM_FPS = 1.0
MAX_VIDEOS = {"quick": 1}
"""Held-out videos measured per demo size (absent: all)."""
TIMING_VIDEOS = {"quick": 1, "full": 5}


def _question(family: str, value: str, option: bool = False) -> str:
    """The label of a watch (the yes/no text, or ``"<mc question> [option: <value>]"``)."""
    if option:
        return f"{FAMILIES['light_color'].template} [option {_letter(value)}: {value}]"
    return YESNO_TEMPLATES[family].format(value=value)


def _letter(value: str) -> str:
    return chr(ord("A") + LIGHT_OPTIONS.index(value))


def _register(session: Any, family: str, value: str, option: bool) -> str:
    if option:
        question = format_mc_prompt(FAMILIES["light_color"].template, list(LIGHT_OPTIONS))
        return session.watch(question, threshold=THRESHOLD, cooldown_s=COOLDOWN_S, option=_letter(value))
    return session.watch(_question(family, value), threshold=THRESHOLD, cooldown_s=COOLDOWN_S)


def stream_with_watches(session: Any, video: Path) -> list[dict]:
    """Play ``video`` at :data:`STREAM_FPS` through ``session`` (reset first; its watches stay); every alert."""
    from streamforest.streaming.playback import frame_source

    session.reset()
    alerts = []
    for t, frame in frame_source(video, STREAM_FPS):
        alerts += session.push(frame, t)
    alerts += session.flush()
    return [a.to_dict() for a in alerts]


def open_session(ckpt: Path, *, prefix_cache: bool) -> tuple[Any, dict[str, tuple[str, str, bool]]]:
    """A float32 exact-mode session on ``ckpt`` with every :data:`WATCHES` question; ``(session, id → watch)``."""
    from streamforest.streaming import StreamingSession

    session = StreamingSession.from_pretrained(ckpt, dtype="float32", prefix_cache=prefix_cache)
    ids = {_register(session, *w): w for w in WATCHES}
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


def _totals(parts: list[dict], minutes: float) -> dict[str, Any]:
    """Detection rate, median delay, false alerts per minute and late alerts of :func:`score_alerts` results."""
    delays = [d for p in parts for d in p["delays"]]
    changes, detected, false = (sum(len(p["changes"]) if k == "changes" else p[k] for p in parts) for k in ("changes", "detected", "false"))
    return {"changes": changes, "detected": detected, "detection_rate": detected / max(changes, 1),
            "median_delay_s": statistics.median(delays) if delays else None, "false_alerts": false,
            "false_per_min": false / max(minutes, 1e-9), "late_alerts": sum(p["late"] for p in parts)}  # fmt: skip


def measure_alerts(session: Any, ids: dict[str, tuple[str, str, bool]], videos: list[tuple[Path, Any]], desc: str) -> dict:
    """Stream every ``(video, scene)``; per-video alerts, and the :func:`_totals` over all and per question."""
    per_video, parts, minutes = [], {wid: [] for wid in ids}, 0.0
    for video, scene in tqdm(videos, desc=desc, leave=False):
        alerts = stream_with_watches(session, video)
        rows = {}
        for wid, (family, value, option) in ids.items():
            mine = [a for a in alerts if a["watch_id"] == wid]
            s = score_alerts(mine, truth_per_frame(scene, family, value), scene.config.fps)
            parts[wid].append(s)
            rows[_question(family, value, option)] = {"changes": s["changes"], "alerts": [(round(a["time"], 2), round(a["probability"], 3)) for a in mine]}
        minutes += scene.config.duration / 60
        per_video.append({"video": video.name, "questions": rows})
    all_parts = [p for ps in parts.values() for p in ps]
    return {
        "videos": len(videos), "stream_minutes": round(minutes, 2), **_totals(all_parts, minutes),
        "per_question": {_question(*ids[wid]): _totals(ps, minutes) for wid, ps in parts.items()},
        "probes": session.stats()["watch"]["probes"], "per_video": per_video,
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
        say(f"  {q:<56} turns yes at: {changes:<18} alerts at: {alerts}")
    tr, un = w["trained"], w["untrained"]
    say(f"Standing questions on {tr['videos']} held-out videos ({tr['stream_minutes']:.1f} min; detection = alert "
        f"within {w['detect_s']:g} s of a true change; false = alert while the answer is no):")  # fmt: skip
    say(f"  {'':<56}{'changes':>7}  {'detected':>17}  {'median delay':>13}  {'false / min':>13}")
    say(f"  {'':<56}{'':>7}  {'untrained':>9} {'trained':>7}  {'untr.':>6} {'tr.':>6}  {'untr.':>6} {'tr.':>6}")

    def delay(m: dict) -> str:
        return "  –   " if m["median_delay_s"] is None else f"{m['median_delay_s']:5.2f}s"

    for q in [*tr["per_question"], "all"]:
        a, b = (un, tr) if q == "all" else (un["per_question"][q], tr["per_question"][q])
        say(f"  {q:<56}{b['changes']:>7}  {100 * a['detection_rate']:8.1f}% {100 * b['detection_rate']:6.1f}%  "
            f"{delay(a):>6} {delay(b):>6}  {a['false_per_min']:6.2f} {b['false_per_min']:6.2f}")
    on, off = w["probe_cost"]["prefix_cache_on"], w["probe_cost"]["prefix_cache_off"]
    say(f"  probe cost (trained, {len(WATCHES)} watches): {on['ms_per_probe']:.1f} ms/probe, {on['ms_per_frame']:.1f} "
        f"ms/frame with the prefix cache; {off['ms_per_probe']:.1f} ms/probe, {off['ms_per_frame']:.1f} ms/frame without")  # fmt: skip
