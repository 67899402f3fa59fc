"""Standing questions: questions a session checks as frames arrive, alerts when the answer turns to "yes".

``session.watch(question, threshold=0.5, every_s=None, cooldown_s=10.0, answer=False, option=None)``
registers a question; after the frames of each ``push`` are encoded, every due watch is *probed*: one
prefill step over the watch prompt (sharing the session's prefix cache) and the probability of the "yes"
answer read from the first-token logits.

Prompt
    :func:`streamforest.prompts.watch_question`: ``"{question}\\nAnswer yes or no."`` in the evaluation
    prompt (visual tokens, time message, question; REFERENCE §5.2 item 4), single-turn. With ``option="B"``
    the question carries its ``A. …`` lines and the multiple-choice post prompt is appended.

Probability
    ``p = Σ_yes P(t) / (Σ_yes P(t) + Σ_no P(t))`` over the first answer token, where *yes* is every single-token
    form of :data:`~streamforest.prompts.YES_FORMS` (``Yes``, ``yes``, ``YES``, with and without a leading
    space) the tokenizer has, and *no* likewise. Renormalising over the two answers (rather than the raw
    vocabulary probability of "Yes") makes the threshold mean "P(yes | the model answers yes or no)": it does
    not move when the model puts mass on formatting tokens, it is symmetric, and on a model trained to answer
    ``Yes``/``No`` it equals the raw probability up to the negligible mass elsewhere. With ``option`` the
    same renormalisation runs over the option letters found in the question (lines ``"A. …"``), each letter
    with and without a leading space.

Alerts
    A watch is *armed* when registered and whenever a probe reads ``p < threshold``. A probe with
    ``p ≥ threshold`` fires an :class:`Alert` if the watch is armed and at least ``cooldown_s`` seconds of
    stream time passed since its last alert; firing disarms it. So an answer that turns to "yes" and stays
    there alerts once; flicker within the cool-down alerts once. ``answer=True`` also generates a free-form
    answer to the question (without the yes/no instruction) when the alert fires.

Scheduling and batching
    ``every_s=None`` probes at every encoded frame batch, otherwise when ``every_s`` seconds of stream time
    passed since the watch's last probe. While any watch is registered, ``push`` encodes its frames at once
    (no batching across pushes), so each pushed frame is probed at its own time and ``push`` returns the alerts
    it caused. ``push_many`` encodes in batches of ``encode_batch_size`` and probes at the last frame of
    each batch. Alerts are also queued (bounded, :data:`ALERT_QUEUE`) for :meth:`Watcher.drain`
    (``session.alerts()``) and passed to callbacks registered with ``session.on_alert(cb)`` (called after the
    session lock is released, in the pushing thread).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from streamforest.streaming.types import StreamError

__all__ = ["ALERT_QUEUE", "Alert", "Watch", "Watcher", "answer_probability", "probe_due"]

ALERT_QUEUE = 1024
"""Undrained alerts kept for ``session.alerts()`` (oldest dropped first; ``push`` always returns its own)."""
_OPTION_LINE = re.compile(r"^\s*([A-Z])\.\s", re.MULTILINE)


@dataclass(frozen=True)
class Alert:
    """A standing question whose answer crossed its threshold.

    Attributes:
        watch_id: id returned by ``session.watch``.
        question: the question as registered.
        time: stream time (s) of the probed frame.
        probability: the probe's probability of "yes" (or of the watched option).
        answer: the generated answer (``answer=True`` watches), else None.
    """

    watch_id: str
    question: str
    time: float
    probability: float
    answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field."""
        return dataclasses.asdict(self)


@dataclass
class Watch:
    """A registered standing question and its probe state (see the module docstring)."""

    id: str
    question: str
    prompt: str
    positive: list[int]
    negative: list[int]
    threshold: float
    every_s: float | None
    cooldown_s: float
    answer: bool
    option: str | None = None
    last_probe: float | None = None
    last_alert: float | None = None
    armed: bool = True
    probability: float | None = None
    probes: int = 0
    alerts: int = 0

    def due(self, t: float) -> bool:
        return self.every_s is None or self.last_probe is None or t - self.last_probe >= self.every_s - 1e-9

    def record(self, t: float, p: float) -> bool:
        """Update the state with a probe at ``t``; True when it fires an alert."""
        self.last_probe, self.probability, self.probes = t, p, self.probes + 1
        if p < self.threshold:
            self.armed = True
            return False
        cooled = self.last_alert is None or t - self.last_alert >= self.cooldown_s - 1e-9
        if not (self.armed and cooled):
            return False
        self.armed, self.last_alert, self.alerts = False, t, self.alerts + 1
        return True

    def summary(self) -> dict[str, Any]:
        return {"question": self.question, "option": self.option, "threshold": self.threshold, "probes": self.probes,
                "alerts": self.alerts, "last_probability": self.probability}  # fmt: skip


def answer_probability(logits: Tensor, positive: list[int], negative: list[int]) -> float:
    """``Σ P(positive) / (Σ P(positive) + Σ P(negative))`` from first-token ``logits [V]`` (stable in log space)."""
    logits = logits.float()
    pos = torch.logsumexp(logits[positive], 0)
    rest = torch.logsumexp(logits[negative], 0)
    return float(torch.sigmoid(pos - rest))


def _token_sets(tokenizer: Any, question: str, option: str | None) -> tuple[list[int], list[int]]:
    """Token ids counted for the watched answer and for its alternatives."""
    from streamforest.prompts import NO_FORMS, YES_FORMS, single_token_ids

    if option is None:
        yes, no = single_token_ids(tokenizer, YES_FORMS), single_token_ids(tokenizer, NO_FORMS)
        if not yes or not no or set(yes) & set(no):
            raise StreamError(f"the tokenizer has no distinct single-token yes/no answers (yes ids {yes}, no ids "
                              f"{no}); watch with option='A' and a multiple-choice question instead")  # fmt: skip
        return yes, no
    letters = sorted(set(_OPTION_LINE.findall(question)))
    if not isinstance(option, str) or option not in letters:
        raise StreamError(f"option={option!r} is not one of the question's option letters {letters} "
                          "(write the options as lines 'A. …', 'B. …' in the question)")  # fmt: skip
    ids = {letter: single_token_ids(tokenizer, (letter, " " + letter)) for letter in letters}
    missing = [letter for letter, found in ids.items() if not found]
    if missing:
        raise StreamError(f"the tokenizer has no single token for the option letters {missing}")
    return ids[option], sorted({i for letter, found in ids.items() if letter != option for i in found})


class Watcher:
    """The standing questions of one session, the alert queue and the callbacks (not thread-safe: the
    session calls it under its lock)."""

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}
        self.queue: deque[Alert] = deque(maxlen=ALERT_QUEUE)
        self.callbacks: list[Callable[[Alert], None]] = []
        self.probes = 0
        self.alerts = 0
        self.probe_s = 0.0
        self._next = 0

    @property
    def active(self) -> bool:
        return bool(self.watches)

    def add(self, tokenizer: Any, question: str, *, threshold: float, every_s: float | None, cooldown_s: float,
            answer: bool, option: str | None, verbatim: bool = False) -> str:  # fmt: skip
        """Validate and register a watch; returns its id (``"w1"``, ``"w2"``, …). ``verbatim``: the question
        is the whole user question as written (no appended answer instruction), e.g. a benchmark's own probe."""
        from streamforest.prompts import watch_question

        if not isinstance(question, str) or not question.strip():
            raise StreamError(f"watch: question must be a non-empty string, got {question!r}")
        checks = (("threshold", threshold, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]"),
                  ("cooldown_s", cooldown_s, lambda v: v >= 0, "seconds >= 0"),
                  ("every_s", every_s, lambda v: v > 0, "seconds > 0 (None = every frame)"))  # fmt: skip
        for name, value, ok, what in checks:
            if value is None and name == "every_s":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
                raise StreamError(f"watch: {name}={value!r} must be {what}")
        positive, negative = _token_sets(tokenizer, question, option)
        self._next += 1
        wid = f"w{self._next}"
        prompt = question if verbatim else watch_question(question, option)
        self.watches[wid] = Watch(wid, question, prompt, positive, negative, float(threshold),
                                  None if every_s is None else float(every_s), float(cooldown_s), bool(answer), option)  # fmt: skip
        return wid

    def remove(self, watch_id: str) -> None:
        if watch_id not in self.watches:
            raise StreamError(f"unwatch: no standing question with id {watch_id!r} (registered: {sorted(self.watches)})")
        del self.watches[watch_id]

    def restart(self) -> None:
        """A new stream: queued alerts dropped, every watch re-armed with no probe or alert yet (counters stay)."""
        self.queue.clear()
        for watch in self.watches.values():
            watch.last_probe, watch.last_alert, watch.armed, watch.probability = None, None, True, None

    def due(self, t: float) -> list[Watch]:
        return [w for w in self.watches.values() if w.due(t)]

    def fired(self, alert: Alert) -> None:
        self.alerts += 1
        self.queue.append(alert)

    def drain(self) -> list[Alert]:
        """Every queued alert, oldest first; the queue is emptied."""
        out = list(self.queue)
        self.queue.clear()
        return out

    def notify(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            for callback in list(self.callbacks):
                callback(alert)

    def stats(self) -> dict[str, Any]:
        return {"watches": len(self.watches), "probes": self.probes, "alerts": self.alerts,
                "probe_ms_mean": 1e3 * self.probe_s / self.probes if self.probes else 0.0,
                "queued_alerts": len(self.queue), "per_watch": {k: w.summary() for k, w in self.watches.items()}}  # fmt: skip


def probe_due(session: Any, t: float) -> list[Alert]:
    """Probe every watch of ``session`` due at stream time ``t`` (the newest encoded frame; under the session
    lock); returns the alerts fired, also queued on the session's :class:`Watcher`."""
    import time

    watcher: Watcher = session._watcher
    fired: list[Alert] = []
    for watch in watcher.due(t):
        t0 = time.perf_counter()
        p = answer_probability(session._probe(watch.prompt, t), watch.positive, watch.negative)
        watcher.probes += 1
        watcher.probe_s += time.perf_counter() - t0
        if not watch.record(t, p):
            continue
        text = None
        if watch.answer:
            prompt, runs = session._compose(watch.question, [], t)
            text = session._generate(prompt, session.max_new_tokens, runs).text
        alert = Alert(watch.id, watch.question, float(t), p, text)
        watcher.fired(alert)
        fired.append(alert)
    return fired
