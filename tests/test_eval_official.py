"""The official OVO-Bench and StreamingBench release files, read unchanged by the sf_ovobench and streamingbench
tasks (streamforest.eval.official): exact doc counts on the real files, every doc valid, golden prompts of the first
doc of each task, scoring of hand-made answers, layout detection and clear errors. The real lmms-eval runs are in
test_eval_official_cli.py."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_eval_tasks import load_utils, touch, write_json

from streamforest.eval import media, official, scoring

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SF_TEST_SHARED_DATA", REPO / ".." / "shared" / "data"))
OVO_FILE = SHARED / "ovobench" / "ovo_bench_new.json"
SB_FILE = SHARED / "streamingbench" / "questions_real.json"
POST = "Answer with the option's letter from the given choices directly."
OVO_CONFIGS = ("real_time_visual_perception", "backward_tracking", "forward_active_responding")
BENCH_KEYS = ("ODVBENCH", "STREAMINGBENCH", "OVBENCH", "OVOBENCH", "VIDEOMME", "MLVU_MC", "MVBENCH", "PERCEPTIONTEST")

needs_ovo = pytest.mark.skipif(not OVO_FILE.is_file(), reason=f"official OVO-Bench file not available ({OVO_FILE})")
needs_sb = pytest.mark.skipif(not SB_FILE.is_file(), reason=f"official StreamingBench file not available ({SB_FILE})")


def _clean_env(mp: pytest.MonkeyPatch, anno: Path, videos: Path) -> None:
    mp.setenv("SF_EVAL_ANNO_ROOT", str(anno))
    mp.setenv("SF_EVAL_VIDEO_ROOT", str(videos))
    for key in BENCH_KEYS:
        mp.delenv(f"SF_ANNO_{key}", raising=False)
        mp.delenv(f"SF_VIDEOS_{key}", raising=False)


@pytest.fixture()
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    anno, videos = tmp_path / "anno", tmp_path / "videos"
    _clean_env(monkeypatch, anno, videos)
    return anno, videos


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real files copied unchanged under their release names; the docs of every config, built without videos."""
    if not (OVO_FILE.is_file() and SB_FILE.is_file()):
        pytest.skip(f"official release files not available under {SHARED}")
    root = tmp_path_factory.mktemp("official")
    copy_release(root / "anno", "OVOBench", OVO_FILE)
    copy_release(root / "anno", "StreamingBench", SB_FILE)
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, root / "anno", root / "videos")
        ovo, sb = load_utils("sf_ovobench"), load_utils("streamingbench")
        docs = {config: list(getattr(ovo, f"process_docs_{config}")(None)) for config in OVO_CONFIGS}
        docs["streamingbench"] = list(sb.process_docs_real_time_visual_understanding(None))
        yield {"docs": docs, "ovo": ovo, "sb": sb, "root": root}


def copy_release(anno: Path, folder: str, release: Path) -> Path:
    """The release file copied unchanged, under its release name, into ``<anno>/<folder>/``."""
    (anno / folder).mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(release, anno / folder / release.name))


def first_of_each(docs: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    firsts: dict[str, dict[str, Any]] = {}
    for doc in docs:
        firsts.setdefault(doc[key], doc)
    return firsts


# ------------------------------------------------------------------------------------------ real files: counts, validity
@needs_ovo
@needs_sb
def test_real_files_doc_counts(real: dict[str, Any]) -> None:
    docs = real["docs"]
    assert {k: len(v) for k, v in docs.items()} == {
        "real_time_visual_perception": 837, "backward_tracking": 631, "forward_active_responding": 1567,
        "streamingbench": 2500,
    }  # fmt: skip
    assert len(docs["real_time_visual_perception"]) + len(docs["backward_tracking"]) == 1468
    assert Counter(d["subtask"] for d in docs["real_time_visual_perception"]) == {
        "OCR": 149, "ACR": 109, "ATR": 116, "STU": 178, "FPD": 101, "OJR": 184}  # fmt: skip
    assert Counter(d["subtask"] for d in docs["backward_tracking"]) == {"EPM": 297, "ASI": 148, "HLD": 186}
    assert Counter(d["subtask"] for d in docs["forward_active_responding"]) == {"REC": 698, "SSR": 629, "CRR": 240}
    assert len({d["id"] for d in docs["forward_active_responding"]}) == 172  # 82 REC + 42 SSR + 48 CRR items
    assert Counter(d["task"] for d in docs["streamingbench"]) == {
        "Object Recognition": 367, "Action Recognition": 353, "Text-Rich Understanding": 321, "Clips Summarize": 317,
        "Attribute Recognition": 306, "Spatial Understanding": 246, "Counting": 193, "Event Understanding": 161,
        "Causal Reasoning": 128, "Prospective Reasoning": 108,
    }  # fmt: skip


@needs_ovo
@needs_sb
def test_real_files_every_doc_valid(real: dict[str, Any]) -> None:
    docs = real["docs"]
    for config in ("real_time_visual_perception", "backward_tracking", "streamingbench"):
        for d in docs[config]:
            letter = d["sf_answer_letter"]
            assert 2 <= len(d["candidates"]) <= 5 and all(isinstance(c, str) and c for c in d["candidates"])
            assert d["answer"] == d["candidates"]["ABCDE".index(letter)], d
            assert d["question"].strip() and d["start"] == 0.0 and d["end"] > 0 and d["sf_layout"] == "official"
    # StreamingBench's "A. " prefixes are dropped (the prompt adds the letters); OVO-Bench options are kept as
    # written, even entry 1326's own letters ("A. Wade", "B. Tyler", "D. Carter", "C. Jensen")
    assert not any(re.match(r"^[A-D]\. ", c) for d in docs["streamingbench"] for c in d["candidates"])
    (entry_1326,) = [d for d in docs["real_time_visual_perception"] + docs["backward_tracking"] if d["id"] == 1326]
    assert entry_1326["candidates"] == ["A. Wade", "B. Tyler", "D. Carter", "C. Jensen"]
    for d in docs["forward_active_responding"]:
        assert d["start"] == 0.0 and d["end"] > 0 and d["question"].startswith("\nYou're ")
        assert (d["answer"] in ("Yes", "No")) if d["subtask"] != "REC" else d["answer"].isdigit()
    assert all(re.match(r"^[\w\-]+/.+\.mp4$", d["video"]) for c in OVO_CONFIGS for d in docs[c])
    assert all(re.match(r"^\./videos/sample_\d+_real\.mp4$", d["video"]) for d in docs["streamingbench"])
    assert all(d["sf_config"] == "real_time_visual_understanding" for d in docs["streamingbench"])


@needs_ovo
def test_real_ovo_clip_times_and_duplicate_options(real: dict[str, Any]) -> None:
    by_id = {d["id"]: d for d in real["docs"]["real_time_visual_perception"] + real["docs"]["backward_tracking"]}
    assert by_id[1109]["end"] == 88.43 and by_id[0]["end"] == 215.0  # realtime → clip [0, realtime]
    # entry 1303 lists "She is waving her hands." as options A and D; gt = 3 → D, as the official index says
    assert by_id[1303]["sf_answer_letter"] == "D"
    assert real["ovo"].process_results(by_id[1303], ["D"])["ovobench_accuracy"]["score"] == 1
    assert real["ovo"].process_results(by_id[1303], ["A"])["ovobench_accuracy"]["score"] == 0
    far = [d for d in real["docs"]["forward_active_responding"] if d["id"] == 1516]  # SSR, 14 probes
    assert [(d["end"], d["answer"]) for d in far[:3]] == [(27.0, "Yes"), (30.0, "Yes"), (26.0, "No")]


# ------------------------------------------------------------------------------------------ real files: golden prompts
OVO_MC_GOLDEN = {
    "EPM": "Who did I communicate to  when chopping egg plants?\nA. a person with brown shirt\n"
    "B. a person with green shirt\nC. a person with blue shirt\nD. a person with white shirt\n",
    "HLD": "what did I put in the black dustbin?\nA. empty water bottles\nB. Unable to answer\nC. old newspapers\n"
    "D. food scraps\n",
    "ASI": "What does the person do after load the wheel\nA. pump up the tire\nB. unload the wheel\nC. load the tire\n"
    "D. load the inner tube\n",
    "STU": "Where is the biggest giant standing?\nA. In the front of other four giants.\n"
    "B. In the back of other four giants.\nC. In the left of other four giants.\nD. In the right of other four giants.\n",
    "OJR": "What is under the monkey?\nA. The trees\nB. A piece of rock.\nC. A piece of cloud.\nD. The ground.\n",
    "ATR": "What is the color of the dog?\nA. White.\nB. Black.\nC. Pink.\nD. Brown.\n",
    "FPD": "What is this person going to do?\nA. The individual intends to plant a tree.\n"
    "B. The person is going to drill a hole.\nC. The person is planning to paint a mural.\n"
    "D. The person is preparing to change a tire.\n",
    "ACR": "What is he doing with that tool?\nA. He is repairing a bicycle.\nB. She is using a jack to lift a car.\n"
    "C. He is tightening bolts on a wheel.\nD. He is inflating a tire.\n",
    "OCR": "What are the names listed on each lane of the pool?\n"
    "A. Rapsys, Di Cola, De Tullio, Popovici, Djakovic, Maertens, Auboek, Markos\n"
    "B. Leclos, Vekovishchev, Seto, Irie, Grothe, Schooling, Solaeche, Lazor\n"
    "C. Fraser-Holmes, Krutohzmov, Meyer, Hosszu, Kromowidjojo, Stupp, Ohashi, King\n"
    "D. Lochte, Dressel, Phelps, Cseh, Chalmers, Larkin, Peaty, Kenderesi\n",
}
OVO_FAR_GOLDEN = {  # OVO-Bench constant.py templates, verbatim (trailing spaces, typographic quotes)
    "CRR": "\nYou're responsible of answering questions based on the video content. \n"
    "The following question are relevant to the latest frames, i.e. the end of the video.\n"
    "The woman in a black coat walks towards the direction of the black car, what action does she take to the car?\n"
    "Decide whether existing visual content, especially latest frames, i.e. frames that near the end of the video, "
    "provide enough information for answering the question.\nAnswer only with “Yes” or “No”.\n"
    "Do not include any additional text or explanation in your response.\n",
    "SSR": "\nYou're watching a tutorial video which contain a sequential of steps. \n"
    "The following is one step from the whole procedures: \npull up the hair to reserve place for the hair extensions\n"
    "Your task is to determine if the man or woman in the video is currently performing this step.\n"
    "Answer only with “Yes” or “No”.\nDo not include any additional text or explanation in your response.\n",
    "REC": "\nYou're watching a video in which people may perform a certain type of action repetively. \n"
    "The person performing this kind of action are referred to as 'they' in the following statement.\n"
    "You're task is to count how many times have different people in the video perform this kind of action in "
    "total.\nOne complete motion counts as one. \n"
    "Now, answer the following question: How many times did they breaking something?\n"
    "Provide your answer as a single number (e.g., 0, 1, 2, 3…) indicating the total count.\n"
    "Do not include any additional text or explanation in your response.\n",
}
SB_GOLDEN = {
    "Clips Summarize": "Which of the following options best summarizes the actions of the individual taken just now?\n"
    "A. The individual organized serving trays and sanitized the preparation area.\n"
    "B. The individual retrieved produce from the refrigerator and began chopping vegetables.\n"
    "C. The individual replenished bread inventory by placing new buns onto the shelves.\n"
    "D. The individual checked inventory levels and noted items lacking in stock.\n",
    "Object Recognition": "What can be seen in the cockpit's center screen right now?\nA. A compass.\nB. A map.\n"
    "C. An altitude meter.\nD. A weather radar.\n",
    "Attribute Recognition": "What colors are the pilot's handheld controls right now?\nA. Black.\nB. Red and green.\n"
    "C. Yellow and blue.\nD. Black and orange.\n",
    "Prospective Reasoning": "What might the speaker explain next?\nA. The area of different shapes.\n"
    "B. How to measure the diameter.\nC. The concept of length in 2-dimensional shapes.\nD. How to calculate perimeter.\n",
    "Action Recognition": "What action is the paintbrush performing right now?\nA. Adding details to the hair.\n"
    "B. Coloring the lips.\nC. Adding details to the nose.\nD. Shading the background.\n",
    "Spatial Understanding": "Which parts of the face remain unpainted right now?\nA. Eyes and lips.\n"
    "B. Hair and surrounding skin areas.\nC. Nose and lips.\nD. Eyes and nose.\n",
    "Event Understanding": "What is the primary focus of the video?\nA. The artist mixing paints.\n"
    "B. The artist adjusting the background.\nC. The detailed painting of a woman's face.\nD. The artist framing the artwork.\n",
    "Counting": "How many times in total have movie clips been inserted during this person's explanation so far?\n"
    "A. 2.\nB. 3.\nC. 4.\nD. 0.\n",
    "Text-Rich Understanding": "Which street is indicated on the green sign right now?\nA. E 40 St.\nB. E 34 St.\n"
    "C. W 42 St.\nD. Broadway.\n",
    "Causal Reasoning": "Where does this letter on the ground come from?\nA. It was delivered by the postman earlier.\n"
    "B. It fell out of someone's pocket as they walked by.\nC. It was dropped by a courier who was in a hurry.\n"
    "D. Mr. Bean just stuffed it in.\n",
}


@needs_ovo
@needs_sb
def test_real_files_golden_prompts(real: dict[str, Any]) -> None:
    ovo, sb, docs = real["ovo"], real["sb"], real["docs"]
    mc = first_of_each(docs["real_time_visual_perception"] + docs["backward_tracking"], "subtask")
    assert {task: ovo.doc_to_text(doc) for task, doc in mc.items()} == {t: p + POST for t, p in OVO_MC_GOLDEN.items()}
    far = first_of_each(docs["forward_active_responding"], "subtask")
    assert {task: ovo.far_doc_to_text(doc) for task, doc in far.items()} == OVO_FAR_GOLDEN
    assert [(far[t]["id"], far[t]["end"], far[t]["answer"]) for t in ("CRR", "SSR", "REC")] == [
        (1468, 297.0, "No"), (1516, 27.0, "Yes"), (1558, 17.0, "1")]  # fmt: skip
    firsts = first_of_each(docs["streamingbench"], "task")
    assert {task: sb.doc_to_text(doc) for task, doc in firsts.items()} == {t: p + POST for t, p in SB_GOLDEN.items()}
    assert (firsts["Clips Summarize"]["end"], firsts["Clips Summarize"]["sf_answer_letter"]) == (31.0, "C")


# ------------------------------------------------------------------------------------------ real files: scoring
@needs_ovo
@needs_sb
def test_real_files_hand_made_answers(real: dict[str, Any]) -> None:
    ovo, sb, docs = real["ovo"], real["sb"], real["docs"]
    far = first_of_each(docs["forward_active_responding"], "subtask")  # CRR: No, SSR: Yes, REC: 1

    def far_score(task: str, answer: str) -> int:
        return ovo.far_process_results(far[task], [answer])["ovobench_accuracy"]["score"]

    # OVO-Bench's own forward scorer: REC digits joined == count; SSR/CRR exact "Y"/"N" or contains "Yes"/"No"
    assert [far_score("REC", a) for a in ("1", "They did it 1 time.", "10", "1 or 2", "one")] == [1, 1, 0, 0, 0]
    assert [far_score("SSR", a) for a in ("Yes", "Y", "Yes.", "yes", "No", "N")] == [1, 1, 1, 0, 0, 0]
    assert [far_score("CRR", a) for a in ("No", "N", "No, not yet", "Yes", "no")] == [1, 1, 1, 0, 0]
    mc = first_of_each(docs["backward_tracking"], "subtask")  # EPM answer C, HLD B, ASI A
    records = [ovo.process_results(mc[t], [a])["ovobench_track_score"] for t, a in
               (("EPM", "C"), ("EPM", "C. a person with blue shirt"), ("HLD", "A"), ("ASI", "A"), ("ASI", ""))]  # fmt: skip
    assert [r["score"] for r in records] == [1, 1, 0, 1, 0]
    assert ovo.aggregate_track(records) == pytest.approx((100 + 0 + 100) / 3)  # EPM 100, HLD 0, ASI 1/1 answered
    assert ovo.aggregate_track_strict(records) == pytest.approx((100 + 0 + 50) / 3)
    assert ovo.aggregate_reference(records) == pytest.approx(75.0)  # micro, the empty answer excluded
    first = first_of_each(docs["streamingbench"], "task")["Clips Summarize"]  # answer C
    sb_scores = [sb.process_results(first, [a])["streamingbench_accuracy"]["score"] for a in ("C", "C. The", "B", "")]
    assert sb_scores == [1, 1, 0, 0]


@needs_ovo
def test_real_ovo_visual_uses_the_files_own_relative_path(real: dict[str, Any]) -> None:
    doc = real["docs"]["backward_tracking"][0]
    videos = real["root"] / "own_videos"
    touch(videos / "Ego4D" / "clips" / "ec4a3ba3-eb00-4aa8-9b41-36043ece98f7.mp4")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SF_VIDEOS_OVOBENCH", str(videos))
        assert real["ovo"].doc_to_visual(doc) == [
            str(videos / "Ego4D" / "clips" / "ec4a3ba3-eb00-4aa8-9b41-36043ece98f7.mp4"),
            {"video_read_type": "decord", "start": 0.0, "end": 215.0},
        ]


# ------------------------------------------------------------------------------------------ synthetic official files
def ovo_entries() -> list[dict[str, Any]]:
    return [
        {"id": 0, "task": "EPM", "video": "Ego4D/clips/a.mp4", "realtime": 12, "question": "Who?",
         "options": "['a man', 'a dog', \"a cat's toy\"]", "gt": "2", "answer": "a cat's toy (free text)"},
        {"id": 1, "task": "OCR", "video": "AutoEvalMetaData/1.mp4", "realtime": 3.5, "question": "What text?",
         "options": ["ab", "cd"], "gt": 0, "answer": "ab"},
        {"id": 2, "task": "REC", "video": "perception_test/v.mp4", "activity": "clap", "start_times": [1],
         "end_times": [2], "test_info": [{"realtime": 2, "count": 1}, {"realtime": 4.5, "count": 2}]},
        {"id": 3, "task": "CRR", "video": "MovieNet/m.mp4", "question": "What does she do?", "answer": "Sits.",
         "ask_time": 1, "clue_time": 5, "test_info": [{"realtime": 1, "type": 0}, {"realtime": 6, "type": 1}]},
    ]  # fmt: skip


def sb_videos() -> list[dict[str, Any]]:
    return [
        {"video_path": "./videos/sample_1_real.mp4", "video_categories": "cooking", "time": "[0:00:00 - 0:00:10]",
         "questions": [
             {"task_type": "Counting", "question": "How many?", "time_stamp": "00:01:05", "answer": "B",
              "options": ["A. one", "B. two", "C. three", "D. four"], "required_ability": "counting"},
             {"task_type": "Object Recognition", "question": "What is it?", "time_stamp": "0:00:09", "answer": "A",
              "options": ["A cup", "B. plate", "a fork", "a knife"]},
         ]},
    ]  # fmt: skip


def test_ovo_official_layout_list_literal_options_and_string_gt(
    roots: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    anno, _ = roots
    write_json(anno / "OVOBench" / "ovo_bench_new.json", ovo_entries())
    utils = load_utils("sf_ovobench")
    with caplog.at_level(logging.INFO, logger="streamforest.eval.official"):
        backward = list(utils.process_docs_backward_tracking(None))
    assert "reading the official release file" in caplog.text and "layout official" in caplog.text
    assert [(d["id"], d["candidates"], d["answer"], d["sf_answer_letter"], d["end"]) for d in backward] == [
        (0, ["a man", "a dog", "a cat's toy"], "a cat's toy", "C", 12.0)]  # fmt: skip
    assert [d["id"] for d in utils.process_docs_real_time_visual_perception(None)] == [1]
    far = list(utils.process_docs_forward_active_responding(None))
    assert [(d["subtask"], d["probe"], d["end"], d["answer"]) for d in far] == [
        ("REC", 0, 2.0, "1"), ("REC", 1, 4.5, "2"), ("CRR", 0, 1.0, "No"), ("CRR", 1, 6.0, "Yes")]  # fmt: skip
    assert "How many times did they clap?\n" in utils.far_doc_to_text(far[0])
    assert "\nWhat does she do?\n" in utils.far_doc_to_text(far[3])


def test_far_scoring_depends_on_the_layout(roots: tuple[Path, Path]) -> None:
    utils = load_utils("sf_ovobench")
    official_doc = {"question": "q", "answer": "2", "subtask": "REC", "sf_layout": "official"}
    release_doc = {"question": "q", "answer": "2", "subtask": "REC"}
    # "2 or 3": OVO-Bench joins the digits ("23" != "2"), the reference finds two integers (None != 2);
    # "02": OVO-Bench compares strings ("02" != "2"), the reference integers (2 == 2)
    cases = (("2", 1, 1), ("about 2", 1, 1), ("2 or 3", 0, 0), ("one", 0, 0), ("02", 0, 1))
    for pred, official_score, release_score in cases:
        assert utils.far_process_results(official_doc, [pred])["ovobench_accuracy"]["score"] == official_score
        assert utils.far_process_results(release_doc, [pred])["ovobench_accuracy"]["score"] == release_score
    yes_official = {"question": "q", "answer": "Yes", "subtask": "SSR", "sf_layout": "official"}
    yes_release = {"question": "q", "answer": "Yes", "subtask": "SSR"}
    assert utils.far_process_results(yes_official, ["yes"])["ovobench_accuracy"]["score"] == 0  # case-sensitive
    assert utils.far_process_results(yes_release, ["yes"])["ovobench_accuracy"]["score"] == 1  # normalised
    assert set(utils.far_process_results(yes_release, ["Y"])) == {
        "ovobench_accuracy", "ovobench_accuracy_strict", "ovobench_track_score", "ovobench_track_score_strict"}  # fmt: skip


def test_streamingbench_official_layout(roots: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    anno, videos = roots
    write_json(anno / "StreamingBench" / "questions_real.json", sb_videos())
    touch(videos / "StreamingBench" / "videos" / "sample_1_real.mp4")
    utils = load_utils("streamingbench")
    with caplog.at_level(logging.INFO, logger="streamforest.eval.official"):
        docs = list(utils.process_docs_real_time_visual_understanding(None))
    assert "questions_real.json (layout official): 2 docs" in caplog.text
    assert [(d["candidates"], d["answer"], d["end"]) for d in docs] == [
        (["one", "two", "three", "four"], "two", 65.0), (["A cup", "plate", "a fork", "a knife"], "A cup", 9.0)]  # fmt: skip
    assert utils.doc_to_text(docs[1]) == f"What is it?\nA. A cup\nB. plate\nC. a fork\nD. a knife\n{POST}"
    assert utils.doc_to_visual(docs[0]) == [
        str(videos / "StreamingBench" / "videos" / "sample_1_real.mp4"),
        {"video_read_type": "decord", "start": 0.0, "end": 65.0},
    ]
    record = utils.process_results(docs[0], ["B"])["streamingbench_accuracy"]
    assert record["score"] == 1 and record["categories"]["task"] == "Counting"


def test_streamingbench_time_stamps_follow_the_official_rule(caplog: pytest.LogCaptureFixture) -> None:
    assert official.parse_time_stamp("01:02:03", "f") == 3723.0
    assert official.parse_time_stamp("0:03:26", "f") == 206.0
    with caplog.at_level(logging.WARNING):
        assert official.parse_time_stamp("00:24", "f: video 580") == 24.0
        assert official.parse_time_stamp("00:12450", "f: video 276") == 12450.0  # as StreamingBench reads it
    assert "f: video 276: time_stamp '00:12450' is not HH:MM:SS; read as 12450 s" in caplog.text
    with pytest.raises(media.AnnotationError, match=r"f: field 'time_stamp' must be a time 'HH:MM:SS', got '1:xx'"):
        official.parse_time_stamp("1:xx", "f")


@pytest.mark.parametrize(
    ("index", "change", "message"),
    [
        (0, {"options": None}, r"entry 0 \(id 0\): field 'options' is missing"),
        (0, {"options": "[unclosed"}, r"entry 0 \(id 0\): field 'options' is a string but not a Python list literal"),
        (1, {"gt": 2}, r"entry 1 \(id 1\): field 'gt' must be the index \(0\.\.1\) of the correct option, got 2"),
        (1, {"realtime": "soon"}, r"entry 1 \(id 1\): field 'realtime' must be a time in seconds >= 0"),
        (1, {"task": "XYZ"}, r"entry 1 \(id 1\): field 'task' is 'XYZ', not one of"),
        (1, {"question": None}, r"entry 1 \(id 1\): field 'question' is missing"),
    ],
)
def test_ovo_official_bad_entries_name_file_entry_and_field(
    roots: tuple[Path, Path], index: int, change: dict[str, Any], message: str
) -> None:
    anno, _ = roots
    entries = ovo_entries()
    entries[index].update(change)
    write_json(anno / "OVOBench" / "ovo_bench_new.json", [entries[0], entries[1]])
    utils = load_utils("sf_ovobench")
    config = "backward_tracking" if index == 0 else "real_time_visual_perception"  # entries 0 / 1: EPM / OCR
    with pytest.raises(media.AnnotationError, match=r"ovo_bench_new\.json: " + message):
        getattr(utils, f"process_docs_{config}")(None)


def test_official_bad_probe_and_answer_letter(roots: tuple[Path, Path]) -> None:
    anno, _ = roots
    entries = ovo_entries()
    entries[3]["test_info"][1]["type"] = "yes"
    write_json(anno / "OVOBench" / "ovo_bench_new.json", entries)
    with pytest.raises(media.AnnotationError, match=r"entry 3 \(id 3\) test_info\[1\]: field 'type' must be 1"):
        load_utils("sf_ovobench").process_docs_forward_active_responding(None)
    videos = sb_videos()
    videos[0]["questions"][1]["answer"] = "E"
    write_json(anno / "StreamingBench" / "questions_real.json", videos)
    with pytest.raises(media.AnnotationError, match=r"video 0 question 1: field 'answer' must be an option letter A\.\.D"):
        load_utils("streamingbench").process_docs_real_time_visual_understanding(None)


def test_both_layouts_in_one_folder_is_an_error(roots: tuple[Path, Path]) -> None:
    anno, _ = roots
    write_json(anno / "OVOBench" / "ovo_bench_new.json", ovo_entries())
    write_json(anno / "OVOBench" / "backward_tracking.json",
               [{"video": "v.mp4", "question": "q", "candidates": ["a", "b"], "answer": "a"}])  # fmt: skip
    utils = load_utils("sf_ovobench")
    with pytest.raises(media.AnnotationError, match=r"both the official ovo_bench_new\.json and the StreamForest"):
        utils.process_docs_backward_tracking(None)
    assert len(utils.process_docs_real_time_visual_perception(None)) == 1  # that config has only the official file


def test_streamforest_layout_still_read_and_logged(roots: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    anno, _ = roots
    write_json(anno / "StreamingBench" / "real_time_visual_understanding.json",
               [{"video": "s.mp4", "question": "q", "candidates": ["x", "y"], "answer": "y", "start": 0, "end": 3}])  # fmt: skip
    utils = load_utils("streamingbench")
    with caplog.at_level(logging.INFO, logger="streamforest.eval.official"):
        (doc,) = utils.process_docs_real_time_visual_understanding(None)
    assert "reading the StreamForest-release layout" in caplog.text
    assert official.detect_layout("streamingbench", "real_time_visual_understanding") == ("streamforest", None)
    assert doc.get("sf_answer_letter") is None and utils.process_results(doc, ["B"])["streamingbench_accuracy"]["score"] == 1


def test_task_mean_counts_every_record() -> None:
    def rec(score: int, task: str | None, pred: str = "x") -> dict[str, Any]:
        return scoring.make_record(score, pred, "A", {"subtask": task} if task else {})

    records = [rec(1, "OCR"), rec(0, "OCR"), rec(1, "ACR"), rec(0, "ACR", pred=""), rec(1, None)]
    assert scoring.task_mean(records, ("subtask",)) == pytest.approx((50 + 100 + 100) / 3)
    assert scoring.task_mean(records, ("subtask",), strict=True) == pytest.approx((50 + 50 + 100) / 3)
    assert scoring.task_mean([], ("subtask",)) == 0.0
