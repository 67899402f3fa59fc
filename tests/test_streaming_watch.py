"""Standing questions: the probe's probability, the alert rule (threshold crossing + cool-down), scheduling,
alerts from push / alerts() / on_alert, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from streamforest import inference
from streamforest.prompts import NO_FORMS, YES_FORMS, single_token_ids, watch_question
from streamforest.streaming import Alert, StreamError, StreamingSession
from streamforest.streaming.watch import Watch, answer_probability

QUESTION = "Is the light green?"


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32")


def frames_of(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 24, 32, 3)).astype(np.uint8)


def session_for(loaded: Any, **kwargs: Any) -> StreamingSession:
    kwargs.setdefault("max_new_tokens", 4)
    return StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, **kwargs)


def test_watch_prompt_format_and_answer_tokens(loaded: Any) -> None:
    assert watch_question("  Is the light green? ") == "Is the light green?\nAnswer yes or no."
    mc = "What colour is the light?\nA. red\nB. green"
    assert watch_question(mc, "B").endswith("B. green\nAnswer with the option's letter from the given choices directly.")
    tok = loaded.tokenizer
    yes, no = single_token_ids(tok, YES_FORMS), single_token_ids(tok, NO_FORMS)
    assert tok.convert_tokens_to_ids("Yes") in yes and tok.convert_tokens_to_ids("No") in no
    assert all(len(tok.convert_ids_to_tokens([i])) == 1 for i in yes + no) and not set(yes) & set(no)
    assert tok.convert_tokens_to_ids("y") not in yes  # "yes" is two tokens in the tiny vocabulary: not counted


def test_answer_probability_renormalises_over_yes_and_no() -> None:
    logits = torch.full((10,), -5.0)
    logits[[1, 2]] = torch.tensor([1.0, 0.0])  # two yes forms
    logits[3] = 0.5  # one no form
    logits[7] = 9.0  # mass on an unrelated token does not matter
    p_yes = (np.exp(1.0) + np.exp(0.0)) / (np.exp(1.0) + np.exp(0.0) + np.exp(0.5))
    assert answer_probability(logits, [1, 2], [3]) == pytest.approx(p_yes, abs=1e-6)


def test_alert_rule_crossing_and_cooldown() -> None:
    watch = Watch("w1", "q", "q", [1], [2], threshold=0.5, every_s=None, cooldown_s=10.0, answer=False)
    fired = [t for t, p in [(0, 0.2), (1, 0.7), (2, 0.9), (3, 0.3), (4, 0.8), (12, 0.9), (13, 0.2), (14, 0.6)]
             if watch.record(t, p)]  # fmt: skip
    # crosses at 1; stays up (2) → nothing; drops (3) re-arms; crossing at 4 is within the cool-down → held;
    # still up and armed at 12 (cool-down over) → fires; drops at 13, crosses at 14 but within 10 s of 12
    assert fired == [1, 12]
    assert watch.probes == 8 and watch.alerts == 2
    every = Watch("w2", "q", "q", [1], [2], threshold=0.5, every_s=2.0, cooldown_s=0.0, answer=False)
    due = []
    for t in [0.5, 1.5, 2.5, 3.5, 4.5]:
        if every.due(t):
            due.append(t)
            every.record(t, 0.0)
    assert due == [0.5, 2.5, 4.5]


def test_probe_equals_one_shot_probability_and_push_returns_alerts(loaded: Any) -> None:
    session = session_for(loaded, mode="bounded", encode_batch_size=8)
    wid = session.watch(QUESTION, threshold=0.0, cooldown_s=5.0, answer=True)  # p >= 0 always: fires when cooled
    got: list[Alert] = []
    session.on_alert(got.append)
    frames = frames_of(24)
    returned: list[Alert] = []
    for k in range(24):
        returned += session.push(frames[k], k + 0.5)
        assert session.stats()["pending_frames"] == 0  # with a watch, each push is encoded (and probed) at once
    # threshold 0 never re-arms after the first alert: exactly one alert, at the first frame
    assert [a.time for a in returned] == [0.5] and got == returned and session.alerts() == returned
    assert session.alerts() == []  # drained
    alert = returned[0]
    assert alert.watch_id == wid and alert.question == QUESTION and isinstance(alert.answer, str)
    assert set(alert.to_dict()) == {"watch_id", "question", "time", "probability", "answer"}
    # the last probe's probability equals a one-shot prefill of the watch prompt over the same frames
    prompt = session.build_prompt(watch_question(QUESTION))
    with torch.inference_mode():
        logits = loaded.model(input_ids=prompt.input_ids, visual_features=[prompt.visual], modalities=["video"]).logits[0, -1]
    tok = loaded.tokenizer
    expected = answer_probability(logits, single_token_ids(tok, YES_FORMS), single_token_ids(tok, NO_FORMS))
    stats = session.stats()["watch"]
    assert stats["probes"] == 24 and stats["alerts"] == 1
    assert stats["per_watch"][wid]["last_probability"] == pytest.approx(expected, abs=1e-5)
    assert session.stats()["prefix_cache"]["hits"] > 0  # probes share the prefix cache
    session.reset()  # a new stream: the watch stays registered and re-armed, its cool-down forgotten
    assert [a.time for a in session.push(frames[0], 0.0)] == [0.0] and len(got) == 2
    session.unwatch(wid)
    assert session.push(frames[1], 1.0) == [] and session.stats()["pending_frames"] == 1  # batching resumes


def test_verbatim_watch_probes_the_question_as_written(loaded: Any) -> None:
    """``verbatim=True`` (a benchmark's own probe text): the prompt is the question itself, and
    ``watch_probability`` reads the last probe without building the stats report."""
    session = session_for(loaded, mode="bounded")
    probe = "Is the light green now? Answer with yes or no."
    plain, verbatim = session.watch(probe, threshold=1.0), session.watch(probe, threshold=1.0, verbatim=True)
    assert session.watch_probability(verbatim) is None  # no probe yet
    frames = frames_of(6, seed=3)
    for k in range(6):
        session.push(frames[k], k + 0.5)
    prompt = session.build_prompt(probe)
    with torch.inference_mode():
        logits = loaded.model(input_ids=prompt.input_ids, visual_features=[prompt.visual], modalities=["video"]).logits[0, -1]
    tok = loaded.tokenizer
    expected = answer_probability(logits, single_token_ids(tok, YES_FORMS), single_token_ids(tok, NO_FORMS))
    assert session.watch_probability(verbatim) == pytest.approx(expected, abs=1e-5)
    assert session.watch_probability(plain) != pytest.approx(expected, abs=1e-5)  # "\nAnswer yes or no." appended
    assert session.watch_probability(verbatim) == session.stats()["watch"]["per_watch"][verbatim]["last_probability"]
    with pytest.raises(StreamError, match="no standing question"):
        session.watch_probability("w99")


def test_every_s_option_watch_and_several_watches(loaded: Any) -> None:
    session = session_for(loaded, mode="bounded")
    yes_no = session.watch(QUESTION, every_s=3.0)
    option = session.watch("What colour is the light?\nA. red\nB. green\nC. yellow", option="B", every_s=1.0)
    frames = frames_of(9, seed=1)
    for k in range(9):
        session.push(frames[k], float(k))
    per = session.stats()["watch"]["per_watch"]
    assert per[yes_no]["probes"] == 3 and per[option]["probes"] == 9  # t = 0, 3, 6 and every frame
    assert 0.0 <= per[option]["last_probability"] <= 1.0
    # the option probability is renormalised over the question's letters
    prompt = session.build_prompt(watch_question("What colour is the light?\nA. red\nB. green\nC. yellow", "B"))
    with torch.inference_mode():
        logits = loaded.model(input_ids=prompt.input_ids, visual_features=[prompt.visual], modalities=["video"]).logits[0, -1]
    ids = {c: single_token_ids(loaded.tokenizer, (c, " " + c)) for c in "ABC"}
    expected = answer_probability(logits, ids["B"], ids["A"] + ids["C"])
    assert per[option]["last_probability"] == pytest.approx(expected, abs=1e-5)


def test_watch_bad_input(loaded: Any) -> None:
    session = session_for(loaded, mode="bounded")
    with pytest.raises(StreamError, match="no standing question with id 'w9'"):
        session.unwatch("w9")
    for kwargs, fragment in [({"threshold": 1.5}, "threshold"), ({"cooldown_s": -1}, "cooldown_s"),
                             ({"every_s": 0}, "every_s"), ({"option": "D"}, "option letters")]:  # fmt: skip
        with pytest.raises(StreamError, match=fragment):
            session.watch("Which? \nA. x\nB. y", **kwargs)
    with pytest.raises(StreamError, match="non-empty"):
        session.watch("  ")
    with pytest.raises(StreamError, match="callable"):
        session.on_alert("print")
    assert session.stats()["watch"]["watches"] == 0


def test_time_message_from_count_equals_full_list() -> None:
    from streamforest.prompts import time_message

    times = [0.5 + k for k in range(50)]
    full = [str(round(t, 1)) for t in times]
    for kind in ("short", "short_online", "short_online_v2"):
        assert time_message(kind, [full[0], full[-1]], 50.0, count=50) == time_message(kind, full, 50.0)
        assert inference.stream_time_message(kind, times, None) == time_message(kind, full, times[-1])
    with pytest.raises(ValueError, match="lists every frame"):
        time_message("short_online_per_frame", [full[0], full[-1]], 50.0, count=50)
