"""Online replay (opt-in ``online_replay=true``): answer every question of a video from one session pass.

Online benchmarks ask several questions of one video at different times (ODV-Bench ≈5 per video, OVO-Bench
≈9 probes per forward item), each over the clip ``[start, q]``. Per question, the reference re-decodes and
re-encodes ``[start, q]``; replay groups the requests of a video (same file, clip start, reader and fps),
plays the video once through a :class:`~streamforest.streaming.StreamingSession` (``exact`` mode) from ``start``
to the group's last question time, answers each question when the stream reaches its time
(``session.play``) and returns the answers in the original request order.

Not bit-identical: the session's frames are the ≈1 fps mid-bin grid of ``[start, q_last]``; a question at
``q < q_last`` sees that grid's frames up to ``q`` instead of the bin centres of ``[start, q]`` (times differ
by less than one bin, the count by at most one; the min-4-frame rule of short clips and the ``max_frames``
thinning of long clips do not act). The last question of each group (and any question asked at the group's
end time) sees exactly the per-question frames (for 3 s ≤ q − start < ``max_frames`` s).

Grouping holds within one process: lmms-eval hands each rank the requests of its own documents (it shards
by document index), so under data parallelism the questions of one video may be split across ranks and
each rank replays its share. Run with one process per model (``--num_processes 1``) to get one pass per
video, or accept the extra passes (answers are unaffected: every question still sees ``[start, q]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["ReplayItem", "group_items", "replay_group"]


@dataclass(frozen=True)
class ReplayItem:
    """One request: its position in the request list, the visual ``[path, media]`` and the question text."""

    index: int
    path: str
    media: dict[str, Any]
    question: str
    max_new_tokens: int

    @property
    def key(self) -> tuple[Any, ...]:
        """Requests with the same key share one pass: same file, clip start, reader, fps and answer length."""
        m = self.media
        return (self.path, float(m.get("start") or 0.0), str(m.get("video_read_type", "decord")), m.get("fps"),
                self.max_new_tokens)  # fmt: skip

    @property
    def time(self) -> float | None:
        """Question time = the clip end (None: the video end, which replay does not handle)."""
        end = self.media.get("end")
        return None if end is None else float(end)


def group_items(items: Sequence[ReplayItem]) -> tuple[list[list[ReplayItem]], list[ReplayItem]]:
    """``(groups, single)``: groups of items sharing a :attr:`ReplayItem.key`, each sorted by question time
    (stable), in the order of their first request; items without an end time and frame folders read at a
    given fps (``img`` reader) are left to the per-question path."""
    groups: dict[tuple[Any, ...], list[ReplayItem]] = {}
    single: list[ReplayItem] = []
    for item in items:
        if item.time is None or item.media.get("fps") is not None:
            single.append(item)
        else:
            groups.setdefault(item.key, []).append(item)
    return [sorted(g, key=lambda it: it.time) for g in groups.values()], single


def replay_group(make_session: Callable[[float], Any], group: Sequence[ReplayItem], *, backend: str,
                 max_frames: int | None = None) -> dict[int, str]:  # fmt: skip
    """Answers ``{index: text}`` of one group from one pass (``make_session(start)`` opens the session)."""
    first = group[0]
    start, end = first.key[1], max(it.time for it in group if it.time is not None)
    if max_frames is not None and end - start + 1 > max_frames:
        logger.warning("online_replay: %s spans %.0f s > max_frames_num=%d: the per-question clips would be "
                       "thinned to %d frames, the session keeps ≈1 fps", first.path, end - start, max_frames,
                       max_frames)  # fmt: skip
    session = make_session(start)
    questions = [{"time": it.time, "question": it.question} for it in group]
    answers = session.play(first.path, questions, start=start, end=end, backend=backend,
                           max_new_tokens=first.max_new_tokens)  # fmt: skip
    if len(answers) != len(group):
        raise RuntimeError(f"online_replay: {len(answers)} answers for {len(group)} questions of {first.path}")
    return {it.index: ans.text for it, ans in zip(group, answers)}
