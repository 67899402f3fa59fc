"""Questions, answers and captions computed from a :class:`~streamforest.synthetic.scenes.Scene`'s ground truth.

Every question is asked at a question time ``q`` (seconds) about the clip ``[0, q]``. The model sees that clip
at ≈ 1 fps with the last sampled frame ≈ 0.5–1 s before ``q`` (REFERENCE §5.3), so a question is only asked when
the fact it targets holds over the whole *window* ``[q − 1.5 s, q]`` (:data:`WINDOW_S`).

Families (ODV-Bench config → task / subtask):

* ``light_color`` — What colour is the traffic light now? (red, yellow, green)
* ``stop_or_go`` — What should we do at the light now? (stop, slow down, go)
* ``light_next`` — What colour will the traffic light show next? (red, yellow, green; forward prediction)
* ``object_color`` — What colour is the object on the {side} now? (red, green, blue, yellow)
* ``object_kind`` — What is on the {side} now? (car, truck, pedestrian)
* ``object_motion`` — How is the object on the {side} moving now? (towards us, away from us, stopped)
* ``passed_color`` — What colour was the object that passed on the {side} earlier? (4 colours; backward memory)
* ``first_appeared`` — Which appeared first? (three "colour kind" phrases; backward memory)

``{side}`` is ``left`` or ``right``. ``light_*`` / ``stop_or_go`` → ``targeting_single_static_objects_v4``; ``object_*`` →
``targeting_single_dynamic_objects_v4``; ``passed_color`` / ``first_appeared`` (backward memory) →
``targeting_multi_object_interaction_scenarios_or_events_v4``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from streamforest.eval.scoring import MCQ_POST_PROMPT, format_mcq
from streamforest.synthetic.scenes import KINDS, LIGHT_CYCLE, OBJECT_COLORS, SIDES, Scene, Track

WINDOW_S = 1.5
"""A fact must hold over ``[q − WINDOW_S, q]`` to be asked about at time ``q``."""
MIN_VIS = 0.7
"""A road user counts as *present* in a frame when at least this fraction of it is visible."""
KIND_MIN_VIS = 0.95
"""Kind questions need the whole road user in view (a half-hidden truck looks like a car)."""
MC_POST_PROMPT = MCQ_POST_PROMPT  # the evaluation tasks' post prompt (streamforest.eval.scoring)
"""Post prompt of the reference multiple-choice tasks (REFERENCE §5.4)."""

STATIC_CONFIG = "targeting_single_static_objects_v4"
DYNAMIC_CONFIG = "targeting_single_dynamic_objects_v4"
MULTI_CONFIG = "targeting_multi_object_interaction_scenarios_or_events_v4"
EVAL_CONFIGS: tuple[str, ...] = (STATIC_CONFIG, DYNAMIC_CONFIG, MULTI_CONFIG)

COLOR_OPTIONS: tuple[str, ...] = tuple(OBJECT_COLORS)
LIGHT_OPTIONS: tuple[str, ...] = ("red", "yellow", "green")
ACTION_OPTIONS: tuple[str, ...] = ("stop", "slow down", "go")
ACTION_FOR_LIGHT: dict[str, str] = {"red": "stop", "yellow": "slow down", "green": "go"}
MOTION_OPTIONS: tuple[str, ...] = ("towards us", "away from us", "stopped")
FIRST_APPEARED_OPTIONS = 3
"""Number of road users offered by a ``first_appeared`` question."""


@dataclass(frozen=True)
class Family:
    """One question family: fixed text, fixed options (or per-question ones) and its ODV-Bench labels."""

    name: str
    config: str
    task: str
    subtask: str
    template: str
    options: tuple[str, ...] | None
    """Fixed candidate list (its order is the option order); None = per-question candidates."""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("light_color", STATIC_CONFIG, "real_time_perception", "traffic_light_color",
               "What colour is the traffic light now?", LIGHT_OPTIONS),
        Family("stop_or_go", STATIC_CONFIG, "real_time_perception", "traffic_light_action",
               "What should we do at the light now?", ACTION_OPTIONS),
        Family("light_next", STATIC_CONFIG, "forward_prediction", "traffic_light_next",
               "What colour will the traffic light show next?", LIGHT_OPTIONS),
        Family("object_color", DYNAMIC_CONFIG, "real_time_perception", "object_color",
               "What colour is the object on the {side} now?", COLOR_OPTIONS),
        Family("object_kind", DYNAMIC_CONFIG, "real_time_perception", "object_kind",
               "What is on the {side} now?", KINDS),
        Family("object_motion", DYNAMIC_CONFIG, "real_time_perception", "object_motion",
               "How is the object on the {side} moving now?", MOTION_OPTIONS),
        Family("passed_color", MULTI_CONFIG, "backward_memory", "passed_object_color",
               "What colour was the object that passed on the {side} earlier?", COLOR_OPTIONS),
        Family("first_appeared", MULTI_CONFIG, "backward_memory", "appearance_order",
               "Which appeared first?", None),
    )
}  # fmt: skip


@dataclass
class QA:
    """One question about one video at question time ``q`` (seconds)."""

    family: str
    video: int
    """Index of the video within its split."""
    q: float
    question: str
    candidates: list[str]
    answer: str
    subsubtask: str
    free_form_question: str = ""
    evidence: dict = field(default_factory=dict)
    """Ground-truth facts behind the answer (object ids, frame indices) for checks."""

    @property
    def spec(self) -> Family:
        return FAMILIES[self.family]

    @property
    def key(self) -> tuple:
        return (self.video, self.family, self.subsubtask, self.q)


def format_mc_prompt(question: str, candidates: list[str]) -> str:
    """The reference multiple-choice text: question, ``A. …`` lines, post prompt (REFERENCE §5.4).

    The same builder as the ODV-Bench task (``streamforest.eval.scoring.format_mcq``), so training records and
    evaluation prompts cannot drift apart.
    """
    return format_mcq(question, candidates)


def answer_letter(qa: QA) -> str:
    """Letter of the correct option."""
    return chr(ord("A") + qa.candidates.index(qa.answer))


# ---------------------------------------------------------------------------------------------- windows
def window_frames(scene: Scene, q: float) -> range:
    """Frame indices shown in ``[q − WINDOW_S, q]`` (empty when the window starts before 0)."""
    fps, n = scene.config.fps, scene.config.n_frames
    lo = math.ceil((q - WINDOW_S) * fps - 1e-9)
    hi = min(math.floor(q * fps + 1e-9), n - 1)
    return range(lo, hi + 1) if lo >= 0 and hi >= lo else range(0)


def side_state(scene: Scene, side: str, frames: range) -> tuple[str, Track | None]:
    """``("empty", None)`` / ``("present", track)`` when stable over ``frames``, else ``("unclear", None)``."""
    seen: set[int] = set()
    present: Track | None = None
    for k in frames:
        users = scene.on_side(side, k)
        if not users:
            seen.add(-1)
            continue
        if len(users) > 1 or users[0][1] < MIN_VIS:
            return "unclear", None
        present = users[0][0]
        seen.add(present.oid)
    if seen == {-1}:
        return "empty", None
    if len(seen) == 1 and present is not None:
        return "present", present
    return "unclear", None


def stable_light(scene: Scene, frames: range) -> str | None:
    colors = {scene.light(k) for k in frames}
    return colors.pop() if len(colors) == 1 else None


# ---------------------------------------------------------------------------------------------- families
def _qa(family: str, video: int, q: float, answer: str, side: str = "", **evidence) -> QA:
    spec = FAMILIES[family]
    text = spec.template.format(side=side)
    return QA(family, video, q, text, list(spec.options or ()), answer, side or "traffic_light",
              free_form_question=text, evidence=evidence)  # fmt: skip


def _light_questions(scene: Scene, video: int, q: float, frames: range) -> list[QA]:
    color = stable_light(scene, frames)
    if color is None:
        return []
    nxt = scene.next_light_phase(frames[-1] / scene.config.fps)
    ev = {"frames": [frames[0], frames[-1]], "light": color}
    return [
        _qa("light_color", video, q, color, **ev),
        _qa("stop_or_go", video, q, ACTION_FOR_LIGHT[color], **ev),
        _qa("light_next", video, q, nxt.color, next_start=nxt.start, **ev),
    ]


def _object_questions(scene: Scene, video: int, q: float, frames: range, side: str) -> list[QA]:
    state, track = side_state(scene, side, frames)
    if state != "present" or track is None:
        return []
    ev = {"oid": track.oid, "frames": [frames[0], frames[-1]]}
    out = [_qa("object_color", video, q, track.color, side, **ev)]
    if min(scene.visibility(track, k) for k in frames) >= KIND_MIN_VIS:
        out.append(_qa("object_kind", video, q, track.kind, side, **ev))
    motion = {motion_at(track, k) for k in frames}
    if len(motion) == 1 and None not in motion:
        out.append(_qa("object_motion", video, q, motion.pop(), side, **ev))
    return out


def motion_at(track: Track, k: int) -> str | None:
    """``towards us`` (moving down), ``away from us`` (up), ``stopped``, or None (turning / not present)."""
    cur, prev = track.position(k), track.position(k - 1)
    if cur is None or prev is None:
        return None
    dx, dy = cur[0] - prev[0], cur[1] - prev[1]
    if abs(dx) > 1e-6:
        return None
    if abs(dy) <= 1e-6:
        return "stopped"
    return "towards us" if dy > 0 else "away from us"


def _passed_question(scene: Scene, video: int, q: float, frames: range, side: str) -> list[QA]:
    """Exactly one road user of ``side`` came and went before the window, and what is there now differs."""
    departed = [
        tr for tr in scene.tracks
        if tr.side == side and tr.last_frame < frames[0] and len(scene.visible_frames(tr, MIN_VIS)) >= 2 * scene.config.fps
    ]  # fmt: skip
    earlier = [tr for tr in scene.tracks if tr.side == side and tr.last_frame < frames[0]]
    if len(departed) != 1 or len(earlier) != 1:
        return []
    gone = departed[0]
    state, now = side_state(scene, side, frames)
    if state == "unclear" or (now is not None and now.color == gone.color):
        return []
    return [_qa("passed_color", video, q, gone.color, side, oid=gone.oid, last_frame=gone.last_frame)]


def _first_appeared(scene: Scene, video: int, q: float, frames: range, rng: np.random.Generator) -> list[QA]:
    """Three road users seen before the window, each the only one of its description in the clip so far,
    appearances ≥ 1.5 s apart."""
    fps = scene.config.fps
    in_clip = [tr for tr in scene.tracks if tr.first_frame <= frames[-1]]
    counts = Counter(tr.description for tr in in_clip)
    seen = []
    for tr in in_clip:
        vis = scene.visible_frames(tr, MIN_VIS)
        if vis and vis[0] <= frames[0] and counts[tr.description] == 1:
            seen.append((vis[0], tr))
    seen.sort(key=lambda x: x[0])
    gap = int(WINDOW_S * fps)
    triples = [
        (a, b, c) for a, b, c in itertools.combinations(seen, FIRST_APPEARED_OPTIONS)
        if len({a[1].description, b[1].description, c[1].description}) == 3 and b[0] - a[0] >= gap and c[0] - b[0] >= gap
    ]  # fmt: skip
    if not triples:
        return []
    picked = [tr for _, tr in triples[int(rng.integers(len(triples)))]]
    shown = [picked[i] for i in rng.permutation(len(picked))]
    qa = _qa("first_appeared", video, q, picked[0].description, "both", order=[tr.oid for tr in picked])
    qa.candidates = [tr.description for tr in shown]
    names = [f"the {tr.description}" for tr in shown]
    qa.free_form_question = f"Which appeared first: {names[0]}, {names[1]} or {names[2]}?"
    return [qa]


def questions_at(scene: Scene, video: int, q: float, rng: np.random.Generator) -> list[QA]:
    """Every question that is well defined at time ``q`` (seconds)."""
    frames = window_frames(scene, q)
    if len(frames) == 0:
        return []
    out = _light_questions(scene, video, q, frames)
    for side in SIDES:
        out += _object_questions(scene, video, q, frames, side)
        out += _passed_question(scene, video, q, frames, side)
    out += _first_appeared(scene, video, q, frames, rng)
    return out


def candidate_questions(scene: Scene, video: int, rng: np.random.Generator, *, min_q: float = 3.0, step: float = 0.5) -> list[QA]:
    """Questions at every ``q`` on a ``step``-second grid from ``min_q`` to the end of the video."""
    out: list[QA] = []
    q = min_q
    while q <= scene.config.duration + 1e-9:
        out += questions_at(scene, video, round(q, 3), rng)
        q += step
    return out


# ---------------------------------------------------------------------------------------------- balancing
def select_balanced(
    pool: list[QA], per_family: int, rng: np.random.Generator, load: Counter | None = None, used: set | None = None
) -> list[QA]:
    """Pick about ``per_family`` questions per family with a uniform answer distribution.

    Fixed-option families take ``max(1, round(per_family / #options))`` questions for every option (fewer when
    the rarest option runs out);
    per-question-option families (``first_appeared``) have their options reordered so the correct letter is
    uniform. Questions spread over videos (least-loaded video first). ``load`` (video → count) and ``used``
    (question keys already taken) are updated in place so that several selections do not overlap.
    """
    load = Counter() if load is None else load
    used = set() if used is None else used
    chosen: list[QA] = []
    for name, spec in FAMILIES.items():
        cands = [qa for qa in pool if qa.family == name and qa.key not in used]
        if spec.options is not None:
            groups = [[qa for qa in cands if qa.answer == opt] for opt in spec.options]
            n_each = min([max(1, round(per_family / len(spec.options)))] + [len(g) for g in groups])
            for _ in range(n_each):
                for group in groups:
                    chosen.append(_take(group, rng, load, used))
        else:
            for i in range(min(per_family, len(cands))):
                qa = _take(cands, rng, load, used)
                chosen.append(place_answer(qa, i % len(qa.candidates)))
    return chosen


CONTRASTIVE_PAIRS: tuple[tuple[str, str], ...] = (("light_color", "light_next"),)
"""Families with the same options in the same order whose questions differ only in a word ("now" / "next")."""


def add_contrastive_pairs(chosen: list[QA], pool: list[QA], load: Counter, used: set) -> list[QA]:
    """The twin of every ``chosen`` question of a :data:`CONTRASTIVE_PAIRS` family: the partner family's
    question on the same clip (same video and ``q``), when the pool has it and it is not taken yet.

    Twins are added in ``chosen`` order; ``load`` and ``used`` are updated as in :func:`select_balanced`.
    """
    partner = {a: b for pair in CONTRASTIVE_PAIRS for a, b in (pair, pair[::-1])}
    index = {(qa.video, qa.family, qa.q): qa for qa in pool}
    extra: list[QA] = []
    for qa in chosen:
        twin = index.get((qa.video, partner.get(qa.family), qa.q))
        if twin is not None and twin.key not in used:
            used.add(twin.key)
            load[twin.video] += 1
            extra.append(twin)
    return extra


def _take(group: list[QA], rng: np.random.Generator, load: Counter, used: set) -> QA:
    """Remove and return a not-yet-used question from ``group``, preferring the least-loaded video."""
    while group:
        idx = rng.choice(len(group), size=min(len(group), 12), replace=False)
        best = min(idx, key=lambda i: (load[group[i].video], i))
        qa = group.pop(int(best))
        if qa.key not in used:
            used.add(qa.key)
            load[qa.video] += 1
            return qa
    raise RuntimeError("select_balanced: ran out of questions (duplicate keys in the pool)")


def place_answer(qa: QA, slot: int) -> QA:
    others = [c for c in qa.candidates if c != qa.answer]
    others.insert(slot, qa.answer)
    return replace(qa, candidates=others)


def answer_stats(qas: list[QA]) -> dict[str, dict]:
    """Per family: count, answer distribution, letter distribution and chance accuracy (mean 1/#options)."""
    out: dict[str, dict] = {}
    for name in FAMILIES:
        sel = [qa for qa in qas if qa.family == name]
        if not sel:
            continue
        out[name] = {
            "n": len(sel),
            "answers": dict(sorted(Counter(qa.answer for qa in sel).items())),
            "letters": dict(sorted(Counter(answer_letter(qa) for qa in sel).items())),
            "chance": round(float(np.mean([1.0 / len(qa.candidates) for qa in sel])), 4),
        }
    return out


# ---------------------------------------------------------------------------------------------- captions
def describe_frame(scene: Scene, k: int) -> str | None:
    """Caption of frame ``k``, or None when a road user is only partly visible (ambiguous)."""
    parts = [f"The light is {scene.light(k)}."]
    for side in SIDES:
        state, track = side_state(scene, side, range(k, k + 1))
        if state == "unclear":
            return None
        what = f"A {track.description}" if track is not None else "Nothing"
        parts.append(f"{what} is on the {side}.")
    return " ".join(parts)


def describe_video(scene: Scene) -> str:
    """Whole-video caption: light sequence and the road users of each side in order of appearance."""
    n = scene.config.n_frames
    lights: list[str] = []
    for k in range(n):
        if not lights or lights[-1] != scene.light(k):
            lights.append(scene.light(k))
    parts = [f"The light shows {', '.join(lights)}."]
    for side in SIDES:
        users = [tr for tr in scene.tracks if tr.side == side and scene.visible_frames(tr, 0.5)]
        names = ", ".join(f"a {tr.description}" for tr in users) if users else "nothing"
        parts.append(f"On the {side}: {names}.")
    return " ".join(parts)


def next_color(color: str) -> str:
    """Light colour that follows ``color`` in the cycle."""
    return LIGHT_CYCLE[(LIGHT_CYCLE.index(color) + 1) % len(LIGHT_CYCLE)]
