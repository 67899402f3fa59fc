"""StreamingBench proactive output: the official polling protocol, its scoring, and two ways to run it.

Protocol (StreamingBench's proactive evaluation)
    A question posed at ``time_stamp`` (``start``) is polled once a second, at ``start + 1, start + 2, …,
    ground_truth_time + 4`` (both ends included, :func:`poll_times`), with the yes/no probe :data:`PROBE_TEMPLATE`
    over the clip ``[start, now]``. At the first "yes" the question itself is asked over the same frames and
    the run stops; that turn's time is the answer time. Scoring (StreamingBench ``count.py``, :func:`score`):
    *time accuracy* = the answer time lies within ±2 s (:data:`TIME_TOLERANCE_S`) of ``ground_truth_time``;
    *answer accuracy* = time-accurate **and** ``ground_truth_output`` is a substring of the answer. A run
    without any "yes" has no answer turn and scores 0 on both (our reading: the last turn is a "no").

Decision rule
    A poll answers "yes" when ``P(yes) ≥ P(no)`` over the first answer token, *yes*/*no* being every
    single-token form of ``prompts.YES_FORMS`` / ``NO_FORMS`` (:func:`streamforest.streaming.watch.answer_probability`
    ≥ :data:`THRESHOLD`). For a model that answers with a yes/no word this is its greedy answer; it is also
    exactly what a standing question with ``threshold=0.5`` fires on, so both runners share one rule.

Two runners
    :func:`run_clips` — the reference path: every poll decodes ``[start, now]`` anew (≈1 fps mid-bin frames,
    min 4, max ``max_frames``) and re-encodes every frame: O(polls²) frames encoded.
    :func:`run_session` — one pass: a :class:`~streamforest.streaming.StreamingSession` fed once, frame by
    frame, from ``start`` (the ≈1 fps mid-bin grid of ``[start, last poll]``), the probe registered as a
    standing question (``session.watch``, one probe per poll over the frames up to the poll time, sharing
    the prefix cache), the question asked at the alert. O(polls) frames encoded.

Where the session's frames differ from per-poll clip sampling
    At poll ``t`` the clip holds ``⌊t − start + 1⌋`` frames at the bin centres of ``[start, t]``; the session
    holds the frames of the ``[start, last poll]`` grid up to ``t``. So (1) frame times differ by less than one
    bin (≤ 1 s) — the grids coincide only at the last poll; (2) the clip has at least 4 frames (the first two
    polls of a clip hold 4 frames spread over 1–2 s, the session 1–2 frames); (3) the count may differ by
    one; (4) clips beyond ``max_frames`` seconds are thinned by the clip path, never by the session.
    ``benchmarks/proactive_replay.py`` measures how often the decisions agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from streamforest import inference

__all__ = [
    "FIRST_POLL_AFTER_S",
    "LAST_POLL_AFTER_S",
    "PROBE_TEMPLATE",
    "THRESHOLD",
    "TIME_TOLERANCE_S",
    "Poll",
    "load_docs",
    "ProactiveResult",
    "poll_times",
    "probe_text",
    "run_clips",
    "run_session",
    "score",
]

PROBE_TEMPLATE = '{question} Is it the right time to output "{output}"? You can only answer yes or no.'
"""The official probe text (verbatim)."""
FIRST_POLL_AFTER_S = 1
"""The first poll is at ``time_stamp + 1``."""
LAST_POLL_AFTER_S = 4
"""The last poll is at ``ground_truth_time_stamp + 4``."""
TIME_TOLERANCE_S = 2.0
"""An answer time within ±2 s of the ground-truth time is on time."""
THRESHOLD = 0.5
"""``P(yes) / (P(yes) + P(no))`` at or above this is a "yes" (``P(yes) ≥ P(no)``)."""


def load_docs(bench: str, config: str, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The docs of the official proactive file in the benchmark's annotation folder (the only layout: the
    StreamForest annotation release has no proactive questions); a clear error when the file is missing."""
    from streamforest.eval import media, official

    path = media.anno_dir(bench) / official.STREAMINGBENCH_PROACTIVE_FILE
    if not path.is_file():
        raise media.AnnotationError(
            f"{path}: not found; streamingbench_proactive reads StreamingBench's official "
            f"{official.STREAMINGBENCH_PROACTIVE_FILE} (src/data/ of the StreamingBench release): put it there or "
            "point SF_ANNO_STREAMINGBENCH to the folder holding it"
        )
    return official.load_docs(bench, config, required)


def poll_times(start: float, truth: float) -> list[float]:
    """Poll times (s): ``start + 1, start + 2, …`` up to ``truth + 4`` inclusive (empty if ``truth + 4 < start + 1``)."""
    first, last = float(start) + FIRST_POLL_AFTER_S, float(truth) + LAST_POLL_AFTER_S
    return [first + k for k in range(int(math.floor(last - first + 1e-9)) + 1)] if last >= first else []


def probe_text(question: str, output: str) -> str:
    """The official yes/no probe of a proactive question."""
    return PROBE_TEMPLATE.format(question=question, output=output)


@dataclass(frozen=True)
class Poll:
    """One poll: its time (s), the probability of "yes" (None: no frame yet) and the decision."""

    time: float
    probability: float | None
    frames: int

    @property
    def yes(self) -> bool:
        return self.probability is not None and self.probability >= THRESHOLD


@dataclass
class ProactiveResult:
    """The turns of one proactive question: every poll, and the answer at the first "yes" (if any)."""

    polls: list[Poll] = field(default_factory=list)
    answer_time: float | None = None
    answer: str = ""

    def to_json(self) -> str:
        """JSON text (what the lmms-eval adapter returns as the generated text of the request)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProactiveResult:
        """Parse :meth:`to_json`; raises ``ValueError`` naming the problem for anything else."""
        try:
            data = json.loads(text)
            polls = [Poll(float(p["time"]), None if p["probability"] is None else float(p["probability"]),
                          int(p["frames"])) for p in data["polls"]]  # fmt: skip
            when = data["answer_time"]
            return cls(polls, None if when is None else float(when), str(data["answer"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"not a proactive result (expected ProactiveResult JSON): {text[:200]!r} ({err})") from err


def score(result: ProactiveResult, truth: float, output: str) -> dict[str, float]:
    """StreamingBench's counter: ``time`` = 1 when the answer time is within ±2 s of ``truth``, ``answer`` = 1 when
    also ``output`` is a substring of the answer; 0 otherwise (no "yes" = 0 and 0)."""
    on_time = result.answer_time is not None and abs(result.answer_time - float(truth)) <= TIME_TOLERANCE_S + 1e-9
    return {"time": float(on_time), "answer": float(on_time and str(output) in result.answer)}


def _yes_no_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    from streamforest.prompts import NO_FORMS, YES_FORMS, single_token_ids

    yes, no = single_token_ids(tokenizer, YES_FORMS), single_token_ids(tokenizer, NO_FORMS)
    if not yes or not no or set(yes) & set(no):
        raise ValueError(f"the tokenizer has no distinct single-token yes/no answers (yes {yes}, no {no})")
    return yes, no


# ----------------------------------------------------------------------------------------------------------
# The reference path: one clip per poll
# ----------------------------------------------------------------------------------------------------------


def run_clips(
    model: Any, tokenizer: Any, image_processor: Any, path: str | Path, doc: dict[str, Any], *,
    max_frames: int = inference.EVAL_SETTINGS.max_frames, time_msg: str | None = inference.EVAL_SETTINGS.time_msg,
    template: str = inference.EVAL_SETTINGS.template, backend: str = "auto", max_new_tokens: int = 16,
    stop_at_yes: bool = True,
) -> ProactiveResult:  # fmt: skip
    """Poll ``doc`` (``question``, ``ground_truth_output``, ``start``, ``ground_truth_time``) by decoding and
    encoding the clip ``[start, t]`` at every poll ``t`` (the reference's cost). ``stop_at_yes=False`` probes
    every poll of the window (for measurements); the answer is still the first "yes"'s."""
    from streamforest.streaming.watch import answer_probability

    yes, no = _yes_no_ids(tokenizer)
    probe, result = probe_text(doc["question"], doc["ground_truth_output"]), ProactiveResult()
    for t in poll_times(doc["start"], doc["ground_truth_time"]):
        clip = inference.load_clip(path, (float(doc["start"]), t), max_frames=max_frames, backend=backend)
        pixels = inference.prepare_pixels(image_processor, clip.frames, model.device, model.dtype)
        visual = inference.video_features(model, pixels)
        message = inference.clip_time_message(clip, time_msg)
        prompt = inference.make_prompt(tokenizer, probe, message, visual=visual, template=template, device=model.device)
        with torch.inference_mode():
            logits = model(input_ids=prompt.input_ids, visual_features=[visual], modalities=["video"]).logits[0, -1]
        poll = Poll(t, answer_probability(logits, yes, no), len(clip.frames))
        result.polls.append(poll)
        if poll.yes and result.answer_time is None:
            asked = inference.make_prompt(tokenizer, doc["question"], message, visual=visual, template=template,
                                          device=model.device)  # fmt: skip
            gen = inference.generate(model, tokenizer, asked, template=template, max_new_tokens=max_new_tokens)
            result.answer_time, result.answer = t, gen.text
            if stop_at_yes:
                break
    return result


# ----------------------------------------------------------------------------------------------------------
# One pass: a streaming session with the probe as a standing question
# ----------------------------------------------------------------------------------------------------------


def _frames_until(frames: Iterator[tuple[float, Any]], ahead: list[Any], t: float) -> tuple[list[Any], list[float]]:
    """Frames (and times) of ``frames`` with timestamp ≤ ``t``; ``ahead`` holds the one read past ``t``."""
    got, times = [], []
    while True:
        item = ahead.pop() if ahead else next(frames, None)
        if item is None:
            return got, times
        if item[0] > t + 1e-9:
            ahead.append(item)
            return got, times
        times.append(float(item[0]))
        got.append(item[1])


def run_session(
    make_session: Callable[[float], Any], path: str | Path, doc: dict[str, Any], *, backend: str = "auto",
    max_new_tokens: int = 16, stop_at_yes: bool = True,
) -> ProactiveResult:  # fmt: skip
    """Poll ``doc`` in one pass: ``make_session(start)`` opens a session whose stream starts at ``start``; the
    ≈1 fps frames of ``[start, last poll]`` are pushed once, in order; at each poll ``t`` the frames up to ``t``
    are pushed and the standing question (the official probe, ``threshold=0.5``) is probed at the newest of
    them; the alert is the first "yes", where the question is asked (``session.ask(at=t)``)."""
    from streamforest.video import iter_video_frames

    start, polls = float(doc["start"]), poll_times(doc["start"], doc["ground_truth_time"])
    result = ProactiveResult()
    if not polls:
        return result
    session = make_session(start)
    probe = probe_text(doc["question"], doc["ground_truth_output"])
    # The official probe text is the whole user question (no appended "Answer yes or no.").
    wid = session.watch(probe, threshold=THRESHOLD, every_s=None, cooldown_s=0.0, verbatim=True)
    frames, ahead = iter_video_frames(path, sample_fps=1.0, start=start, end=polls[-1], backend=backend), []
    probability: float | None = None
    for t in polls:
        batch, times = _frames_until(frames, ahead, t)
        alerts = session.push_many(batch, times) if batch else []
        if batch:  # no new frame (past the video end): the same frames, the same probe outcome
            probability = session.watch_probability(wid)
        result.polls.append(Poll(t, probability, session.num_frames))
        if alerts and result.answer_time is None:
            result.answer_time = t
            result.answer = session.ask(doc["question"], at=t, max_new_tokens=max_new_tokens).text
            if stop_at_yes:
                break
    return result
