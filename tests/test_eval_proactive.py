"""StreamingBench proactive output (protocol, scoring, both runners, the lmms-eval task) and online replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_video import write_index_video

from streamforest.eval import official, proactive
from streamforest.eval.media import AnnotationError
from streamforest.eval.proactive import Poll, ProactiveResult, poll_times, score
from streamforest.eval.replay import ReplayItem, group_items

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SF_TEST_SHARED_DATA", REPO / ".." / "shared" / "data"))
PROACTIVE_FILE = SHARED / "streamingbench" / "questions_proactive.json"
QUESTION = 'When the counter shows 3, output "3".'


def _result(answer_time: float | None, answer: str = "") -> ProactiveResult:
    return ProactiveResult([Poll(1.0, 0.2, 1)], answer_time, answer)


# ------------------------------------------------------------------------------------------ protocol and scoring
def test_poll_window_is_start_plus_one_to_truth_plus_four() -> None:
    assert poll_times(20, 29) == [float(t) for t in range(21, 34)]  # 21 … 33 inclusive
    assert poll_times(5, 5) == [6.0, 7.0, 8.0, 9.0]
    assert poll_times(0.5, 2) == [1.5, 2.5, 3.5, 4.5, 5.5]  # fractional start: 1 s steps, last ≤ truth + 4
    assert poll_times(10, 3) == []  # truth + 4 before start + 1: nothing to poll


def test_probe_text_is_the_official_prompt() -> None:
    assert proactive.probe_text("When X, output \"3\".", "3") == (
        'When X, output "3". Is it the right time to output "3"? You can only answer yes or no.'
    )


@pytest.mark.parametrize(
    ("answer_time", "answer", "expected"),
    [
        (29.0, "The score is 3", {"time": 1.0, "answer": 1.0}),
        (27.0, "3", {"time": 1.0, "answer": 1.0}),  # -2 s: on time
        (31.0, "3", {"time": 1.0, "answer": 1.0}),  # +2 s: on time
        (26.0, "3", {"time": 0.0, "answer": 0.0}),  # -3 s: late/early means the answer does not count either
        (32.0, "3", {"time": 0.0, "answer": 0.0}),
        (29.0, "three", {"time": 1.0, "answer": 0.0}),  # on time, output not a substring
        (None, "", {"time": 0.0, "answer": 0.0}),  # never said yes
    ],
)
def test_score_time_and_answer_accuracy(answer_time: float | None, answer: str, expected: dict[str, float]) -> None:
    assert score(_result(answer_time, answer), 29.0, "3") == expected


def test_poll_decision_and_result_json_round_trip() -> None:
    assert Poll(3.0, 0.5, 2).yes and not Poll(3.0, 0.49, 2).yes and not Poll(3.0, None, 0).yes
    result = ProactiveResult([Poll(1.0, 0.1, 1), Poll(2.0, 0.9, 2)], 2.0, "3 points")
    assert ProactiveResult.from_json(result.to_json()) == result
    with pytest.raises(ValueError, match="not a proactive result"):
        ProactiveResult.from_json("B")


# ------------------------------------------------------------------------------------------ docs
def _entry(video: str, stamp: str = "00:00:03", truth: str = "00:00:06", output: str = "3") -> dict[str, Any]:
    return {"video_path": video, "video_categories": "synthetic", "questions": [
        {"task_type": "Proactive Output", "question": QUESTION, "time_stamp": stamp,
         "ground_truth_time_stamp": truth, "ground_truth_output": output, "required_ability": "working memory"}]}  # fmt: skip


def test_proactive_docs_and_bad_fields() -> None:
    (doc,) = official.streamingbench_proactive_docs([_entry("./videos/a.mp4", "00:01:03", "00:01:10")], "f.json")
    assert (doc["start"], doc["ground_truth_time"], doc["ground_truth_output"]) == (63.0, 70.0, "3")
    assert doc["video"] == "./videos/a.mp4" and doc["question"] == QUESTION
    with pytest.raises(AnnotationError, match="ground_truth_time_stamp"):
        official.streamingbench_proactive_docs([_entry("a.mp4", "00:00:09", "00:00:06")], "f.json")
    with pytest.raises(AnnotationError, match="ground_truth_output"):
        official.streamingbench_proactive_docs([_entry("a.mp4", output="")], "f.json")


def test_missing_proactive_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_ANNO_STREAMINGBENCH", str(tmp_path))
    with pytest.raises(AnnotationError, match="questions_proactive.json"):
        proactive.load_docs("streamingbench", "proactive_output")
    (tmp_path / official.STREAMINGBENCH_PROACTIVE_FILE).write_text(json.dumps([_entry("./videos/a.mp4")]))
    (doc,) = proactive.load_docs("streamingbench", "proactive_output", ("video", "start"))
    assert doc["start"] == 3.0 and doc["ground_truth_time"] == 6.0


@pytest.mark.skipif(not PROACTIVE_FILE.is_file(), reason=f"official proactive file not available ({PROACTIVE_FILE})")
def test_official_proactive_file_reads_250_questions() -> None:
    docs = official.streamingbench_proactive_docs(official.read_release_json(PROACTIVE_FILE), str(PROACTIVE_FILE))
    data = official.read_release_json(PROACTIVE_FILE)
    assert len(data) == 248 and len(docs) == 250 and len({d["video"] for d in docs}) == 50  # 248 entries, 50 files
    assert all(d["ground_truth_time"] >= d["start"] for d in docs)


# ------------------------------------------------------------------------------------------ runners on the tiny model
@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def clip_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_index_video(tmp_path_factory.mktemp("proactive") / "v.mp4", num_frames=150, fps=10)  # 15 s


def _session_factory(loaded: Any) -> Any:
    from streamforest.streaming import StreamingSession

    return lambda start: StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, start_time=start)


DOC = {"question": QUESTION, "ground_truth_output": "3", "start": 2.0, "ground_truth_time": 5.0}


def test_session_pass_matches_clip_per_poll_where_the_grids_coincide(loaded: Any, clip_video: Path) -> None:
    """All polls run (no stop): the last poll's frames are the same in both paths, so its probe is the same;
    earlier polls hold the session's grid prefix (1, 2, … frames) vs. the clip's own ≥ 4 frames."""
    clips = proactive.run_clips(loaded.model, loaded.tokenizer, loaded.image_processor, clip_video, DOC,
                                stop_at_yes=False, max_new_tokens=4)  # fmt: skip
    one = proactive.run_session(_session_factory(loaded), clip_video, DOC, stop_at_yes=False, max_new_tokens=4)
    times = [p.time for p in clips.polls]
    assert times == [p.time for p in one.polls] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert [p.frames for p in clips.polls] == [4, 4, 4, 5, 6, 7, 8]
    session_frames = [p.frames for p in one.polls]  # prefixes of the [2, 9] grid (8 frames, < 1 s apart)
    assert session_frames[0] == 1 and session_frames[-1] == 8
    assert all(0 <= b - a <= 2 for a, b in zip(session_frames, session_frames[1:]))
    assert one.polls[-1].probability == pytest.approx(clips.polls[-1].probability, abs=1e-5)
    assert all(0.0 <= p.probability <= 1.0 for p in one.polls)


def test_first_yes_asks_the_question_and_stops(loaded: Any, clip_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the threshold at 0 the first poll is a "yes": the answer is generated there and polling stops."""
    monkeypatch.setattr(proactive, "THRESHOLD", 0.0)
    for result in (
        proactive.run_session(_session_factory(loaded), clip_video, DOC, max_new_tokens=4),
        proactive.run_clips(loaded.model, loaded.tokenizer, loaded.image_processor, clip_video, DOC, max_new_tokens=4),
    ):
        assert len(result.polls) == 1 and result.answer_time == 3.0 and isinstance(result.answer, str)
        assert score(result, 5.0, "3")["time"] == 1.0  # 3 s is within ±2 s of 5 s


# ------------------------------------------------------------------------------------------ online replay
def test_group_items_regroups_by_video_and_sorts_by_time() -> None:
    def item(i: int, path: str, end: float | None, start: float = 0.0, fps: float | None = None) -> ReplayItem:
        media = {"video_read_type": "decord", "start": start, "end": end, **({"fps": fps} if fps else {})}
        return ReplayItem(i, path, media, f"q{i}", 16)

    items = [item(0, "a", 9.0), item(1, "b", 4.0), item(2, "a", 3.0), item(3, "a", 5.0, start=2.0),
             item(4, "c", None), item(5, "d", 4.0, fps=2.0), item(6, "b", 2.0)]  # fmt: skip
    groups, single = group_items(items)
    assert [[it.index for it in g] for g in groups] == [[2, 0], [6, 1], [3]]
    assert [it.index for it in single] == [4, 5]  # no end time / frame folder at a given fps: per question


def _adapter(loaded: Any, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    pytest.importorskip("lmms_eval")
    from streamforest.eval import adapter as adapter_mod
    from streamforest.model import loader

    monkeypatch.setattr(loader, "load_pretrained", lambda path, **kw: loaded)
    lmm = adapter_mod.StreamForestLMM(pretrained="tiny", max_frames_num=64, time_msg="short_online_v2", device="cpu",
                                      **kwargs)  # fmt: skip
    lmm.task_dict = {"t": {"test": [{}] * 8}}
    return lmm


def _requests(specs: list[tuple[Path, float, str]]) -> list[Any]:
    from lmms_eval.api.instance import Instance

    gen = {"max_new_tokens": 6, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    out = []
    for i, (video, end, question) in enumerate(specs):
        visual = [str(video), {"video_read_type": "decord", "start": 0.0, "end": end}]
        out.append(Instance(request_type="generate_until", arguments=(question, gen, lambda doc, v=visual: v, i, "t", "test"),
                            idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1}))  # fmt: skip
    return out


def test_online_replay_same_answers_where_frames_coincide(loaded: Any, tmp_path: Path, monkeypatch) -> None:
    """Questions asked at each video's last time see the per-question frames exactly: same answers, original
    order, although the requests of video A are not adjacent."""
    a = write_index_video(tmp_path / "a.mp4", num_frames=80, fps=10)
    b = write_index_video(tmp_path / "b.mp4", num_frames=60, fps=10)
    specs = [(a, 7.0, "What is shown?"), (b, 5.0, "What happens?"), (a, 7.0, "Describe the scene."),
             (b, 5.0, "What is shown?")]  # fmt: skip
    plain = _adapter(loaded, monkeypatch).generate_until(_requests(specs))
    replay_lmm = _adapter(loaded, monkeypatch, online_replay="true")
    sessions: list[float] = []
    real = replay_lmm._session
    replay_lmm._session = lambda start: sessions.append(start) or real(start)
    replayed = replay_lmm.generate_until(_requests(specs))
    assert replayed == plain and len(sessions) == 2  # one pass per video


def test_online_replay_earlier_questions_answered_in_order(loaded: Any, tmp_path: Path, monkeypatch) -> None:
    a = write_index_video(tmp_path / "a.mp4", num_frames=80, fps=10)
    specs = [(a, 7.0, "Last?"), (a, 3.0, "First?"), (a, 5.0, "Middle?")]
    lmm = _adapter(loaded, monkeypatch, online_replay="true")
    asked: list[tuple[str, float]] = []
    real = lmm._session

    def spy(start: float) -> Any:
        session = real(start)
        ask = session.ask
        session.ask = lambda q, at=None, **kw: asked.append((q, at)) or ask(q, at=at, **kw)
        return session

    lmm._session = spy
    answers = lmm.generate_until(_requests(specs))
    assert [q for q, _ in asked] == ["First?", "Middle?", "Last?"]  # played in time order …
    assert [at for _, at in asked] == [3.0, 5.0, 7.0]
    assert len(answers) == 3 and all(isinstance(x, str) for x in answers)  # … returned in request order
    assert answers[0] == _adapter(loaded, monkeypatch).generate_until(_requests(specs[:1]))[0]  # the last is exact


def test_online_replay_arg_is_checked(loaded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="online_replay"):
        _adapter(loaded, monkeypatch, online_replay="maybe")
    with pytest.raises(ValueError, match="proactive_pass"):
        _adapter(loaded, monkeypatch, proactive_pass="fast")


# ------------------------------------------------------------------------------------------ lmms-eval end to end
@pytest.mark.slow
def test_streamingbench_proactive_through_lmms_eval(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """``python -m lmms_eval --tasks streamingbench_proactive`` on the tiny checkpoint with a small official-format
    file over synthetic videos: both metrics reported, every poll of the window logged."""
    from test_eval_e2e import eval_env

    anno, videos = tmp_path / "anno", tmp_path / "videos"
    anno.mkdir()
    entries = [_entry("./videos/p1.mp4", "00:00:02", "00:00:04"), _entry("./videos/p2.mp4", "00:00:01", "00:00:03", "7")]
    (anno / official.STREAMINGBENCH_PROACTIVE_FILE).write_text(json.dumps(entries), encoding="utf-8")
    write_index_video(videos / "videos" / "p1.mp4", 100, fps=10)
    write_index_video(videos / "videos" / "p2.mp4", 80, fps=10)
    env = eval_env(tmp_path / "unused_anno", tmp_path / "unused_videos")
    env.update(SF_ANNO_STREAMINGBENCH=str(anno), SF_VIDEOS_STREAMINGBENCH=str(videos))
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "streamforest",
           "--model_args", f"pretrained={tiny_checkpoint},conv_template=qwen_2,max_frames_num=64,time_msg=short_online_v2",
           "--tasks", "streamingbench_proactive", "--batch_size", "1", "--log_samples",
           "--output_path", str(tmp_path / "out"), "--include_path", str(REPO / "lmms_eval" / "tasks")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    (results_file,) = list((tmp_path / "out").rglob("*_results.json")) or [None]
    assert results_file is not None, log
    row = json.loads(results_file.read_text())["results"]["streamingbench_proactive"]
    for metric in ("streamingbench_proactive_time_accuracy,none", "streamingbench_proactive_answer_accuracy,none"):
        assert row[metric] in (0.0, 50.0, 100.0), log
    samples = [json.loads(line) for f in (tmp_path / "out").rglob("*_samples_streamingbench_proactive*.jsonl")
               for line in f.open()]  # fmt: skip
    responses = [s["filtered_resps"] if isinstance(s["filtered_resps"], str) else s["filtered_resps"][0] for s in samples]
    polls = sorted(len(ProactiveResult.from_json(r).polls) for r in responses)
    assert len(samples) == 2 and polls[-1] <= 6 and polls[0] >= 1  # windows 3..8 and 2..7 (fewer after a "yes")


def test_adapter_routes_proactive_requests_both_passes(loaded: Any, clip_video: Path, monkeypatch) -> None:
    """``sf_protocol: proactive`` in the generation kwargs runs the protocol; polls past the video end (15 s) see
    the last frames again (same outcome), both passes; an unknown protocol is an error naming the task."""
    from lmms_eval.api.instance import Instance

    doc = {**DOC, "start": 9.0, "ground_truth_time": 13.0}  # polls 10 … 17 s
    visual = [str(clip_video), {"video_read_type": "decord", "start": 9.0, "end": None}]
    gen = {"max_new_tokens": 4, "temperature": 0, "do_sample": False, "sf_protocol": "proactive"}
    request = Instance(request_type="generate_until", arguments=(QUESTION, gen, lambda d: visual, 0, "t", "test"),
                       idx=0, metadata={"task": "t", "doc_id": 0, "repeats": 1})  # fmt: skip
    results = {}
    for proactive_pass in ("session", "clips"):
        lmm = _adapter(loaded, monkeypatch, proactive_pass=proactive_pass)
        lmm.task_dict = {"t": {"test": [doc]}}
        (text,) = lmm.generate_until([request])
        results[proactive_pass] = ProactiveResult.from_json(text)
    for result in results.values():
        assert [p.time for p in result.polls] == [float(t) for t in range(10, 18)] and result.answer_time is None
        assert result.polls[-1].probability == pytest.approx(result.polls[-2].probability, abs=1e-6)
    assert results["session"].polls[-1].frames == results["clips"].polls[-1].frames  # the same [9, end] grid
    bad = Instance(request_type="generate_until", arguments=(QUESTION, {**gen, "sf_protocol": "live"},
                   lambda d: visual, 0, "t", "test"), idx=0, metadata={"task": "t", "doc_id": 0, "repeats": 1})  # fmt: skip
    with pytest.raises(ValueError, match="sf_protocol"):
        lmm.generate_until([bad])
