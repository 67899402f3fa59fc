"""Yes/no questions about the current state, for standing questions (``session.watch``), and their ground truth.

Training records use exactly the probe's prompt (:func:`streamforest.prompts.watch_question`:
``"{question}\\nAnswer yes or no."``) and the answer ``"Yes"`` / ``"No"``, so what the stage-4 mix teaches is
what a watch reads. Like the multiple-choice families (:mod:`~streamforest.synthetic.questions`), a question
is asked at time ``q`` only when its fact holds over the whole window ``[q − WINDOW_S, q]``.

Families (stage-4 training only; the ODV-Bench split is unchanged):

* ``light_is`` — Is the traffic light {colour}? (one per light colour at every ``q``: one yes, two no)
* ``side_object`` — Is there an object on the {side}? (yes: a road user in view; no: the side is empty)
* ``object_stopped`` — Is the object on the {side} stopped? (yes: stopped; no: moving towards / away from us)

:func:`truth_per_frame` / :func:`onsets` give the per-frame truth of a standing question and the times it turns
true, the reference for alert timing in ``make demo``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from streamforest.prompts import watch_question
from streamforest.synthetic import questions as Q
from streamforest.synthetic.scenes import SIDES, Scene

YESNO_TEMPLATES: dict[str, str] = {
    "light_is": "Is the traffic light {value}?",
    "side_object": "Is there an object on the {value}?",
    "object_stopped": "Is the object on the {value} stopped?",
}
"""Family → question template (``{value}``: a light colour or a side)."""
YES, NO = "Yes", "No"


@dataclass
class YesNo:
    """One yes/no question about video ``video`` at time ``q`` (seconds)."""

    family: str
    video: int
    q: float
    value: str
    answer: bool
    evidence: dict = field(default_factory=dict)

    @property
    def question(self) -> str:
        return YESNO_TEMPLATES[self.family].format(value=self.value)

    @property
    def prompt(self) -> str:
        """The user text (before ``<image>`` is prepended): the probe's yes/no prompt."""
        return watch_question(self.question)

    @property
    def reply(self) -> str:
        return YES if self.answer else NO

    @property
    def key(self) -> tuple:
        return (self.video, self.family, self.value, self.q)


def yes_no_at(scene: Scene, video: int, q: float) -> list[YesNo]:
    """Every yes/no question well defined at time ``q`` (the fact stable over the window)."""
    frames = Q.window_frames(scene, q)
    if len(frames) == 0:
        return []
    out: list[YesNo] = []
    ev = {"frames": [frames[0], frames[-1]]}
    color = Q.stable_light(scene, frames)
    if color is not None:
        out += [YesNo("light_is", video, q, c, c == color, {**ev, "light": color}) for c in Q.LIGHT_OPTIONS]
    for side in SIDES:
        state, track = Q.side_state(scene, side, frames)
        if state == "unclear":
            continue
        out.append(YesNo("side_object", video, q, side, state == "present", {**ev, "oid": getattr(track, "oid", None)}))
        if track is None:
            continue
        motion = {Q.motion_at(track, k) for k in frames}
        if len(motion) == 1 and None not in motion:
            m = motion.pop()
            out.append(YesNo("object_stopped", video, q, side, m == "stopped", {**ev, "oid": track.oid, "motion": m}))
    return out


def candidate_yes_no(scene: Scene, video: int, *, min_q: float = 3.0, step: float = 0.5) -> list[YesNo]:
    """Yes/no questions at every ``q`` on the same grid as :func:`~streamforest.synthetic.questions.candidate_questions`."""
    out: list[YesNo] = []
    q = min_q
    while q <= scene.config.duration + 1e-9:
        out += yes_no_at(scene, video, round(q, 3))
        q += step
    return out


PAIRED: tuple[str, ...] = ("light_is", "side_object")
"""Families selected as same-clip yes/no pairs (:func:`select_yes_no`)."""


def select_yes_no(pool: list[YesNo], per_family: int, rng: np.random.Generator, load: Counter | None = None) -> list[YesNo]:
    """About ``per_family`` questions per family, half yes and half no, spread over videos (least-loaded first,
    as :func:`~streamforest.synthetic.questions.select_balanced`).

    :data:`PAIRED` families come as *same-clip pairs*, one yes and one no on the same frames, so that only the
    question's word separates the answers (the lesson of the light-colour twins, docs/demo.md): ``light_is``
    asks the colour shown and one other colour (pairs balanced over the colour shown); ``side_object`` asks
    the occupied side and the empty one (balanced over the sides). ``object_stopped`` takes yes and no alike.
    """
    load = Counter() if load is None else load
    used: set = set()
    chosen: list[YesNo] = []
    clips: dict[tuple, list[YesNo]] = {}
    for qa in pool:
        clips.setdefault((qa.video, qa.q, qa.family), []).append(qa)
    for family in YESNO_TEMPLATES:
        paired = family in PAIRED
        if paired:  # yes questions whose clip also has a no question, grouped by the yes value
            values = Q.LIGHT_OPTIONS if family == "light_is" else SIDES
            groups = [[qa for qa in pool if qa.family == family and qa.answer and qa.value == v
                       and any(not o.answer for o in clips[(qa.video, qa.q, family)])] for v in values]  # fmt: skip
            n_each = min(max(1, per_family // (2 * len(values))), *(len(g) for g in groups))
            paired = n_each > 0  # tiny datasets may have no such clip: then yes and no alike
        if not paired:
            groups = [[qa for qa in pool if qa.family == family and qa.answer is ans] for ans in (True, False)]
            n_each = min(max(1, per_family // 2), *(len(g) for g in groups))
        for _ in range(n_each):
            for group in groups:
                qa = Q._take(group, rng, load, used)
                chosen.append(qa)
                if paired:
                    nos = [o for o in clips[(qa.video, qa.q, family)] if not o.answer]
                    chosen.append(nos[int(rng.integers(len(nos)))])
                    load[qa.video] += 1
    return chosen


def yes_no_stats(qas: list[YesNo]) -> dict[str, dict]:
    """Per family: count and answer distribution."""
    return {
        family: {"n": sum(qa.family == family for qa in qas),
                 "answers": dict(sorted(Counter(qa.reply for qa in qas if qa.family == family).items()))}
        for family in YESNO_TEMPLATES if any(qa.family == family for qa in qas)
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- ground truth
def truth_per_frame(scene: Scene, family: str, value: str) -> list[bool]:
    """Whether the standing question ``YESNO_TEMPLATES[family].format(value=value)`` holds in each frame.

    A road user counts as present when at least :data:`~streamforest.synthetic.questions.MIN_VIS` of it is
    visible (as for the questions); ``object_stopped`` is true while the one road user of the side is stopped.
    """
    n = scene.config.n_frames
    if family == "light_is":
        return [scene.light(k) == value for k in range(n)]
    present = [[tr for tr, vis in scene.on_side(value, k) if vis >= Q.MIN_VIS] for k in range(n)]
    if family == "side_object":
        return [bool(p) for p in present]
    if family == "object_stopped":
        return [len(p) == 1 and Q.motion_at(p[0], k) == "stopped" for k, p in enumerate(present)]
    raise ValueError(f"truth_per_frame: unknown family {family!r}; known: {sorted(YESNO_TEMPLATES)}")


def onsets(truth: list[bool], fps: float) -> list[float]:
    """Times (s) at which ``truth`` turns true (frame ``k`` → ``k / fps``), including ``0.0`` when true from
    the first frame."""
    return [k / fps for k, now in enumerate(truth) if now and (k == 0 or not truth[k - 1])]
