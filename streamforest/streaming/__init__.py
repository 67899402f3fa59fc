"""Online streaming runtime: encode every frame once, answer questions at any moment (docs/ARCHITECTURE.md).

Layout: :mod:`~streamforest.streaming.core` (the session: push / ask / reset, the state machine and its
lock), :mod:`~streamforest.streaming.playback` (files, frame folders, iterables, progress),
:mod:`~streamforest.streaming.metrics` (latencies, memory, RSS), :mod:`~streamforest.streaming.types`
(modes, errors, questions, answers, input validation). Prompt and generation come from
:mod:`streamforest.inference`, the path the notebook API and the lmms-eval adapter share.

The reference answers a question asked at time ``q`` by re-decoding ``[start, q]``, re-encoding every sampled
frame with the ViT and rebuilding the FSTW + PEMF memory from scratch (REFERENCE §2.5, §8.4). A
:class:`StreamingSession` instead ingests frames as they arrive — image processor, vision tower, position
embedding (temporal index = frame count mod 512) and memory update, each done **once per frame**, in small
batches (``encode_batch_size``) flushed when full or when a question comes — and answers a question with
what it already holds: memory read-out → projector MLP → prompt → greedy generation. A session may be
shared by threads: state changes are serialised by a lock, questions are answered one at a time, and
frames pushed while an answer is generated are encoded meanwhile (the answer sees the frames up to the
moment it was asked).

    >>> session = StreamingSession.from_pretrained("ckpt", mode="exact")
    >>> for t, frame in camera:                       # uint8 [H,W,3] RGB, t in seconds
    ...     session.push(frame, t)
    ...     if t >= 12.5 and not asked:
    ...         print(session.ask("What is the car in front doing?").text)
    >>> answers = session.play("drive.mp4", questions=[(12.5, "What is ahead?"), (40, "Any pedestrians?")])
    >>> session.stats()["question_latency_ms"]

Modes
-----
``"exact"`` (memory consolidation ``deferred``): the answer to a question equals — same visual embeddings
(``torch.equal``), same generated token ids — what the released model gives through the reference rebuild
path ``model.generate(ids, images=[pixels], modalities=["video"])`` **on the session's frames**: the frames
pushed (or played) so far, with temporal indices ``0..T-1`` in arrival order, and the ``short_online_v2``
time message built from those frames' timestamps exactly as the evaluation builds it
(``str(round(t, 1))`` per frame, REFERENCE §1.11). The memory keeps every event leaf (O(T) tokens) and replays
the long-memory merges at read time, so state and read cost grow slowly with the stream.
Bit-equality assumes the vision tower is batch-invariant (it is on CPU, fp32 and bf16, tested); on GPUs
different batch sizes may change the last bits of the ViT features, just as the reference's own 128-frame
chunking does.

``"bounded"`` (consolidation ``eager``): long-memory merges happen as soon as the quota is exceeded, so the
stored tokens, the per-frame cost and the per-question cost stay constant for unbounded streams. Outputs
differ from the reference once long-memory merges start (they are decided without the final global view,
see ``streamforest.memory``); use it for live streams that never end.

When does ``exact`` coincide with the benchmark sampling?
----------------------------------------------------------
The reference samples frames *for each question*: ⌊q' + 1⌋ mid-bin frames over the clip ``[0, q']``
(q' = q clamped to the video end − 0.1 s; min 4, max 2048 frames; REFERENCE §5.3) — the set of frames depends on
q, so no single frame-by-frame stream can reproduce it for every q. It coincides exactly when:

* a file is played from 0 to ``end = q`` (``play(path, end=q)``, ``iter_video_frames`` applies the same
  rule to the whole span ``[0, q]``) and the question is asked at ``q``: the answer equals
  ``StreamForest.ask(path, question, at=q)`` for 3 s ≤ q ≤ 2047 s (outside, the evaluation's min-4 /
  max-2048 frame bounds act). The CLI uses this: by default it plays up to the last question's time, so
  the last question is benchmark-exact;
* the same holds for a question at the end of a video played to its end.

Earlier questions of a played file see the frames of the ``[0, end]`` grid up to their time: with 1 fps the
frame times differ from the per-question benchmark sampling by less than one bin (≈ 1 s) and the frame
count by at most one. Frames pushed by the user are taken as they are (e.g. 1 fps frames at
``k + 0.5`` s); questions longer than 2048 frames are not re-sampled to 2048 as in the benchmark.

Multi-turn dialogue
-------------------
``ask(question, follow_up=True)`` continues the current dialogue. As in the reference (one ``<image>`` at
the start of the first user turn, REFERENCE §5.2 item 4), the visual tokens and the time message always sit at
the start of the **first** user turn and describe the memory *at the time of the latest question*; the
earlier questions and answers follow as plain text turns. ``follow_up=False`` (default) starts a new
single-turn dialogue — the benchmark setting.

What is reused between questions
--------------------------------
ViT features, position embeddings and the memory's causal work (frame → short compression, event cutting,
event similarities; merged events in ``deferred`` mode are cached by merge-tree identity) are computed once
per frame. The projected visual tokens are reused when no frame arrived since the previous question.

The LLM's KV cache of the prompt head is reused by the **prefix cache**
(:mod:`~streamforest.streaming.prefix_cache`): keyed exactly by the text before the visual tokens, the
long-memory event ids and the short/current frame ids, it prefills only the part of the prompt after the
longest cached prefix (an event entering the long memory extends it, a merge invalidates it from the first
changed event, a reset clears it). It is on by default in ``bounded`` and opt-in in ``exact``
(``prefix_cache=True``): a cached prefill equals the one-shot prefill only up to floating-point reordering,
so ``exact`` keeps its bit-identical guarantee with the cache off.

Standing questions
------------------
``watch(question, threshold=, every_s=, cooldown_s=, answer=, option=)`` registers a yes/no (or option) question
probed as frames are encoded; ``push`` returns the alerts (:class:`Alert`) its frames caused, ``alerts()`` drains the
queue, ``on_alert(cb)`` registers a callback (:mod:`~streamforest.streaming.watch` defines the prompt, the
probability and the alert rule).

Bounded everything
------------------
A ``bounded`` session keeps O(1) state for endless streams: the eager memory, one cached prompt prefix,
count/first/last timestamps (only the time messages without a per-frame list), fixed latency windows and
alert queue. The temporal position index of frame ``k`` is ``k mod 512``, as in the reference (REFERENCE §1.4).
"""

from streamforest.streaming.core import StreamingSession
from streamforest.streaming.metrics import format_stats, rss_bytes, tensor_bytes
from streamforest.streaming.types import MODES, Question, StreamAnswer, StreamError, parse_questions
from streamforest.streaming.watch import Alert

__all__ = [
    "MODES",
    "Alert",
    "Question",
    "StreamAnswer",
    "StreamError",
    "StreamingSession",
    "format_stats",
    "parse_questions",
    "rss_bytes",
    "tensor_bytes",
]
