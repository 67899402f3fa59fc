"""Procedural driving scenes: a seeded world state over time and its renderer (numpy only).

The picture is laid out on a 4 × 4 grid so that every answer survives the tiny model's 56 × 56 input
(4 × 4 patches of 14 px). With ``c`` = one grid cell:

* top row (``y < c``): a dark band (the horizon); the **traffic light** is a large disc in the top-right
  cell, red / yellow / green, cycling green → yellow → red → green;
* the other three rows are the road, split by a dashed centre line into the **left side** (oncoming
  traffic, moving down towards the camera) and the **right side** (our direction, moving up, away);
  a stop line crosses the right side just below the horizon;
* **road users** are large saturated shapes of four colours and three kinds: ``car`` (about one cell),
  ``truck`` (one cell wide, two tall), ``pedestrian`` (a narrow bar with a dark head). At most one road user
  is on each side at a time; they appear at the road edge, move, sometimes stop (right side: at the stop
  line while the light is not green; left side: at random) and sometimes turn off the road sideways.

Time is discrete: frame ``k`` shows the world at ``t = k / fps``. A scene is fully determined by its seed
and its :class:`SceneConfig`; :meth:`Scene.render` draws any frame as ``uint8 [H, W, 3]`` RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

OBJECT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 200, 30),
}
"""Road-user colours (name → RGB). Saturated and far apart so they survive 56 × 56 and yuv420p."""
LIGHT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (250, 30, 30),
    "yellow": (250, 200, 0),
    "green": (30, 220, 70),
}
"""Traffic-light disc colours (name → RGB)."""
LIGHT_CYCLE: tuple[str, ...] = ("green", "yellow", "red")
"""Phase order; after red comes green again."""
KINDS: tuple[str, ...] = ("car", "truck", "pedestrian")
SIDES: tuple[str, ...] = ("left", "right")

HORIZON_RGB = (35, 40, 55)
ROAD_RGB = (105, 105, 105)
MARKING_RGB = (235, 235, 235)
HOUSING_RGB = (15, 15, 15)
HEAD_RGB = (70, 45, 30)

# Sizes in grid cells (width, height) and speeds in cells per second, per kind.
_KIND_SIZE: dict[str, tuple[float, float]] = {"car": (0.85, 0.9), "truck": (0.85, 1.9), "pedestrian": (0.45, 1.2)}
_KIND_SPEED: dict[str, tuple[float, float]] = {"car": (1.0, 1.4), "truck": (0.75, 1.0), "pedestrian": (0.45, 0.6)}
_LIGHT_DURATION: dict[str, tuple[float, float]] = {"green": (3.0, 5.0), "yellow": (2.5, 3.5), "red": (3.0, 5.0)}
_TURN_SPEED = 1.2  # cells per second, sideways


@dataclass(frozen=True)
class SceneConfig:
    """Size and timing of one synthetic video."""

    width: int = 112
    """Frame width in pixels (a multiple of 4 keeps the grid exact)."""
    height: int = 112
    """Frame height in pixels."""
    fps: int = 4
    """Native frame rate."""
    duration: float = 16.0
    """Length in seconds; the video has ``round(duration · fps)`` frames."""

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"SceneConfig: width/height must be >= 32 px, got {self.width}x{self.height}")
        if self.fps < 1:
            raise ValueError(f"SceneConfig: fps must be >= 1, got {self.fps}")
        if self.duration * self.fps < 4:
            raise ValueError(f"SceneConfig: duration {self.duration} s at {self.fps} fps gives < 4 frames")

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))

    @property
    def cell_w(self) -> float:
        return self.width / 4

    @property
    def cell_h(self) -> float:
        return self.height / 4

    @property
    def stop_line_y(self) -> float:
        """Top edge (px) at which right-side road users wait for green."""
        return self.cell_h * 1.3


@dataclass(frozen=True)
class LightPhase:
    """One traffic-light phase ``[start, end)`` in seconds."""

    color: str
    start: float
    end: float


@dataclass
class Track:
    """One road user over its lifetime.

    ``x``/``y`` hold the centre (px) for frames ``first_frame … first_frame + len(x) − 1``.
    """

    oid: int
    side: str
    kind: str
    color: str
    width: float
    height: float
    first_frame: int
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    turned: bool = False

    @property
    def last_frame(self) -> int:
        return self.first_frame + len(self.x) - 1

    @property
    def description(self) -> str:
        """Short noun phrase, e.g. ``"red car"``."""
        return f"{self.color} {self.kind}"

    def position(self, k: int) -> tuple[float, float] | None:
        """Centre ``(x, y)`` at frame ``k``, or None outside the track's lifetime."""
        i = k - self.first_frame
        if 0 <= i < len(self.x):
            return float(self.x[i]), float(self.y[i])
        return None


class Scene:
    """World state over time for one video, built from a seed (pure python / numpy, deterministic)."""

    def __init__(self, config: SceneConfig, seed: int) -> None:
        self.config = config
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self.light_phases: list[LightPhase] = _make_light_phases(rng, config.duration + 30.0)
        self._light_per_frame: list[str] = [self.light_at(k / config.fps) for k in range(config.n_frames)]
        self.tracks: list[Track] = []
        for side in SIDES:
            self.tracks.extend(self._simulate_side(rng, side, first_oid=len(self.tracks)))
        self.tracks.sort(key=lambda tr: (tr.first_frame, tr.oid))
        self._vis_cache: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ ground truth
    def light_at(self, t: float) -> str:
        """Traffic-light colour at time ``t`` seconds."""
        for phase in self.light_phases:
            if phase.start <= t < phase.end:
                return phase.color
        raise ValueError(f"Scene.light_at: t={t} outside the simulated light timeline")

    def light(self, k: int) -> str:
        """Traffic-light colour shown in frame ``k``."""
        return self._light_per_frame[k]

    def next_light_phase(self, t: float) -> LightPhase:
        """The phase that follows the one active at time ``t``."""
        for i, phase in enumerate(self.light_phases):
            if phase.start <= t < phase.end:
                return self.light_phases[i + 1]
        raise ValueError(f"Scene.next_light_phase: t={t} outside the simulated light timeline")

    def visibility(self, track: Track, k: int) -> float:
        """Fraction of ``track``'s box inside the road area in frame ``k`` (0 when absent)."""
        vis = self._vis_cache.get(track.oid)
        if vis is None:
            vis = self._track_visibility(track)
            self._vis_cache[track.oid] = vis
        i = k - track.first_frame
        return float(vis[i]) if 0 <= i < len(vis) else 0.0

    def on_side(self, side: str, k: int) -> list[tuple[Track, float]]:
        """Road users of ``side`` that are at least partly visible in frame ``k``, with their visibility."""
        out = []
        for track in self.tracks:
            if track.side == side and track.first_frame <= k <= track.last_frame:
                vis = self.visibility(track, k)
                if vis > 0:
                    out.append((track, vis))
        return out

    def visible_frames(self, track: Track, min_vis: float = 0.7) -> list[int]:
        """Frames in which at least ``min_vis`` of the track is visible."""
        return [
            k
            for k in range(track.first_frame, min(track.last_frame, self.config.n_frames - 1) + 1)
            if self.visibility(track, k) >= min_vis
        ]

    # ------------------------------------------------------------------ rendering
    def render(self, t: float) -> np.ndarray:
        """The frame shown at time ``t`` seconds: ``uint8 [H, W, 3]`` RGB."""
        k = min(max(int(math.floor(t * self.config.fps + 1e-6)), 0), self.config.n_frames - 1)
        return self.render_frame(k)

    def render_frame(self, k: int) -> np.ndarray:
        """Frame ``k`` (``0 ≤ k < n_frames``) as ``uint8 [H, W, 3]`` RGB."""
        cfg = self.config
        if not 0 <= k < cfg.n_frames:
            raise IndexError(f"Scene.render_frame: frame {k} outside [0, {cfg.n_frames})")
        img = np.empty((cfg.height, cfg.width, 3), dtype=np.uint8)
        horizon = int(round(cfg.cell_h))
        img[:horizon] = HORIZON_RGB
        img[horizon:] = ROAD_RGB
        self._draw_markings(img)
        for track in self.tracks:
            pos = track.position(k)
            if pos is not None:
                _draw_track(img, track, pos, horizon)
        self._draw_light(img, self.light(k))
        return img

    def _draw_markings(self, img: np.ndarray) -> None:
        cfg = self.config
        horizon = int(round(cfg.cell_h))
        mid = cfg.width // 2
        dash = max(int(cfg.cell_h / 2), 2)
        for y0 in range(horizon, cfg.height, 2 * dash):
            img[y0 : y0 + dash, mid - 1 : mid + 1] = MARKING_RGB
        stop = int(round(cfg.stop_line_y))
        img[stop - 2 : stop, mid + 2 :] = MARKING_RGB

    def _draw_light(self, img: np.ndarray, color: str) -> None:
        cfg = self.config
        cw, ch = cfg.cell_w, cfg.cell_h
        x0, y0 = int(round(3 * cw)) + 1, 1
        img[y0 : int(round(ch)) - 1, x0 : cfg.width - 1] = HOUSING_RGB
        cx, cy = 3.5 * cw, 0.5 * ch
        _fill_disc(img, cx, cy, 0.42 * min(cw, ch), LIGHT_COLORS[color])

    def light_disc_center(self) -> tuple[int, int]:
        """Pixel ``(x, y)`` at the centre of the traffic-light disc (for consistency checks)."""
        return int(3.5 * self.config.cell_w), int(0.5 * self.config.cell_h)

    # ------------------------------------------------------------------ simulation
    def _simulate_side(self, rng: np.random.Generator, side: str, first_oid: int) -> list[Track]:
        cfg = self.config
        tracks: list[Track] = []
        t_next = float(rng.uniform(0.0, 2.0))
        while True:
            spawn = int(math.ceil(t_next * cfg.fps))
            if spawn >= cfg.n_frames:
                break
            track = self._simulate_track(rng, side, first_oid + len(tracks), spawn)
            tracks.append(track)
            if track.last_frame >= cfg.n_frames - 1:
                break
            t_next = (track.last_frame + 1) / cfg.fps + float(rng.uniform(0.5, 2.5))
        return tracks

    def _simulate_track(self, rng: np.random.Generator, side: str, oid: int, spawn: int) -> Track:
        """Step one road user frame by frame from ``spawn`` until it has left the view or the video ends."""
        cfg = self.config
        cw, ch, dt = cfg.cell_w, cfg.cell_h, 1.0 / cfg.fps
        kind = KINDS[int(rng.integers(len(KINDS)))]
        color = tuple(OBJECT_COLORS)[int(rng.integers(len(OBJECT_COLORS)))]
        w, h = _KIND_SIZE[kind][0] * cw, _KIND_SIZE[kind][1] * ch
        speed = float(rng.uniform(*_KIND_SPEED[kind])) * ch
        turn = bool(rng.random() < 0.25)
        turn_y = float(rng.uniform(ch * 2.2, ch * 3.0))
        pause = bool(side == "left" and rng.random() < 0.4)
        pause_y = float(rng.uniform(ch * 1.8, ch * 2.8))
        pause_left = float(rng.uniform(2.0, 4.0))
        if side == "right":
            x, y, direction = 3 * cw, cfg.height + h / 2, -1.0
        else:
            x, y, direction = cw, ch - h / 2, 1.0
        xs, ys = [x], [y]
        turning = False
        k = spawn
        while k < cfg.n_frames - 1:
            k += 1
            if turning:
                x += (1.0 if side == "right" else -1.0) * _TURN_SPEED * cw * dt
            elif side == "right":
                y = self._step_right(y, h, speed * dt, k)
                turning = turn and y <= turn_y
            else:
                if pause and y >= pause_y and pause_left > 0:
                    pause_left -= dt
                else:
                    y += direction * speed * dt
                turning = turn and y >= turn_y and not (pause and pause_left > 0)
            xs.append(x)
            ys.append(y)
            if _gone(x, y, w, h, cfg, ch):
                break
        return Track(oid, side, kind, color, w, h, spawn, np.asarray(xs), np.asarray(ys), turned=turn and turning)

    def _step_right(self, y: float, h: float, step: float, k: int) -> float:
        """Move a right-side road user up by ``step``, waiting at the stop line unless the light is green."""
        top, line = y - h / 2, self.config.stop_line_y
        if self.light(k) != "green" and top >= line and top - step < line:
            return line + h / 2
        return y - step

    def _track_visibility(self, track: Track) -> np.ndarray:
        cfg = self.config
        horizon = cfg.cell_h
        x0 = np.clip(track.x - track.width / 2, 0, cfg.width)
        x1 = np.clip(track.x + track.width / 2, 0, cfg.width)
        y0 = np.clip(track.y - track.height / 2, horizon, cfg.height)
        y1 = np.clip(track.y + track.height / 2, horizon, cfg.height)
        inside = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        return inside / (track.width * track.height)


def _gone(x: float, y: float, w: float, h: float, cfg: SceneConfig, horizon: float) -> bool:
    return x + w / 2 <= 0 or x - w / 2 >= cfg.width or y + h / 2 <= horizon or y - h / 2 >= cfg.height


def _make_light_phases(rng: np.random.Generator, until: float) -> list[LightPhase]:
    """Light phases covering ``[0, until)``; the first phase starts part-way through."""
    i = int(rng.integers(len(LIGHT_CYCLE)))
    color = LIGHT_CYCLE[i]
    t = -round(float(rng.uniform(0.0, _LIGHT_DURATION[color][0])) * 4) / 4
    phases = []
    while t < until:
        color = LIGHT_CYCLE[i % len(LIGHT_CYCLE)]
        # Phase boundaries on a 0.25 s grid so they coincide with frame times at 4 fps.
        length = round(float(rng.uniform(*_LIGHT_DURATION[color])) * 4) / 4
        phases.append(LightPhase(color, max(t, 0.0), t + length))
        t += length
        i += 1
    return phases


def _fill_rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, rgb: tuple[int, int, int], y_min: int) -> None:
    h, w = img.shape[:2]
    a, b = max(int(round(x0)), 0), min(int(round(x1)), w)
    c, d = max(int(round(y0)), y_min), min(int(round(y1)), h)
    if a < b and c < d:
        img[c:d, a:b] = rgb


def _fill_disc(img: np.ndarray, cx: float, cy: float, r: float, rgb: tuple[int, int, int], y_min: int = 0) -> None:
    h, w = img.shape[:2]
    ys, xs = np.ogrid[:h, :w]
    mask = (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= r * r
    mask[:y_min] = False
    img[mask] = rgb


def _draw_track(img: np.ndarray, track: Track, pos: tuple[float, float], horizon: int) -> None:
    x, y = pos
    w, h = track.width, track.height
    rgb = OBJECT_COLORS[track.color]
    if track.kind == "pedestrian":
        head_r = w * 0.4
        _fill_rect(img, x - w / 2, y - h / 2 + 2 * head_r, x + w / 2, y + h / 2, rgb, horizon)
        _fill_disc(img, x, y - h / 2 + head_r, head_r, HEAD_RGB, horizon)
    else:
        _fill_rect(img, x - w / 2, y - h / 2, x + w / 2, y + h / 2, rgb, horizon)
