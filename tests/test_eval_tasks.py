"""The eight benchmarks' lmms-eval task folders (lmms_eval/tasks/): docs in each benchmark's real field layout
go through process_docs → doc_to_visual → doc_to_text → process_results → aggregation; names resolve to our
YAMLs inside the real lmms-eval 0.7.3 TaskManager; Video-MME runs on the real question parquet."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from streamforest.eval import media, scoring

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "lmms_eval" / "tasks"
VIDEOMME_DIR = REPO.parent / "shared" / "data"
POST = "Answer with the option's letter from the given choices directly."


def load_utils(folder: str) -> ModuleType:
    """Import a task folder's utils.py the way lmms-eval does (by file path)."""
    spec = importlib.util.spec_from_file_location(f"sf_test_utils_{folder}", TASKS / folder / "utils.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_json(path: Path, docs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(docs))


def touch(path: Path, folder: bool = False) -> None:
    if folder:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture()
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    anno, videos = tmp_path / "anno", tmp_path / "videos"
    monkeypatch.setenv("SF_EVAL_ANNO_ROOT", str(anno))
    monkeypatch.setenv("SF_EVAL_VIDEO_ROOT", str(videos))
    for key in ("ODVBENCH", "STREAMINGBENCH", "OVBENCH", "OVOBENCH", "VIDEOMME", "MLVU_MC", "MVBENCH", "PERCEPTIONTEST"):
        monkeypatch.delenv(f"SF_ANNO_{key}", raising=False)
        monkeypatch.delenv(f"SF_VIDEOS_{key}", raising=False)
    return anno, videos


def run_docs(utils: ModuleType, config_fn: str, metric: str) -> tuple[list[dict], list[dict]]:
    docs = list(getattr(utils, config_fn)(None))
    return docs, [utils.process_results(d, [r]) for d, r in zip(docs, ["B", ""] + ["A"] * (len(docs) - 2))]


# ------------------------------------------------------------------------------------------ ODV-Bench
def test_odvbench_chain(roots: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    anno, videos = roots
    docs = [
        {"video": "drive/a.mp4", "question": "What is ahead?", "candidates": ["a truck", "a bus"], "answer": "a bus",
         "task": "static", "subtask": "colour", "start": 0, "end": 36},
        {"video": "drive/a.mp4", "question": "Which lane?", "candidates": ["left", "right", "middle"], "answer": "left",
         "task": "static", "subtask": "lane", "subsubtask": "count", "start": 2.5, "end": 10.0},
        {"video": "drive/b.mp4", "question": "Is it raining?", "candidates": ["yes", "no"], "answer": "no",
         "task": "dynamic", "subtask": "weather"},
    ]
    write_json(anno / "ODVBench" / "targeting_single_static_objects_v4.json", docs)
    touch(videos / "ODVBench" / "drive" / "a.mp4")
    touch(videos / "ODVBench" / "drive" / "b.mp4")
    utils = load_utils("odvbench")
    loaded = list(utils.process_docs_targeting_single_static_objects_v4(None))
    assert [d["sf_config"] for d in loaded] == ["targeting_single_static_objects_v4"] * 3
    assert utils.doc_to_visual(loaded[0]) == [
        str(videos / "ODVBench" / "drive" / "a.mp4"),
        {"video_read_type": "decord", "start": 0.0, "end": 36.0},
    ]
    assert utils.doc_to_visual(loaded[2]) == [str(videos / "ODVBench" / "drive" / "b.mp4"), {"video_read_type": "decord"}]
    assert utils.doc_to_text(loaded[1]) == f"Which lane?\nA. left\nB. right\nC. middle\n{POST}"
    results = [utils.process_results(d, [r]) for d, r in zip(loaded, ["B. a bus", "", "A"])]
    assert set(results[0]) == {"odvbench_accuracy", "odvbench_accuracy_strict"}
    records = [r["odvbench_accuracy"] for r in results]
    assert [r["score"] for r in records] == [1, 0, 0]
    assert records[1]["categories"] == {
        "config": "targeting_single_static_objects_v4", "task": "static", "subtask": "lane", "subsubtask": "count"
    }
    with caplog.at_level("INFO"):
        assert utils.aggregate_reference(records) == pytest.approx(50.0)  # the empty answer is excluded
    assert utils.aggregate_strict(records) == pytest.approx(100 / 3)
    assert "subtask=lane" in caplog.text


# ------------------------------------------------------------------------------------------ StreamingBench
def test_streamingbench_jsonl_folder_layout(roots: tuple[Path, Path]) -> None:
    anno, videos = roots
    folder = anno / "StreamingBench" / "real_time_visual_understanding"
    folder.mkdir(parents=True)
    lines = [
        {"video": "sample_1.mp4", "question": "What happens now?", "candidates": ["x", "y", "z", "w"], "answer": "w",
         "task": "Object Perception", "start": 0, "end": 120.0},
        {"video": "sample_2.mp4", "question": "Count?", "candidates": ["1", "2"], "answer": "2", "task": "Counting",
         "start": 0, "end": 5},
    ]
    (folder / "part-0.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    for name in ("sample_1.mp4", "sample_2.mp4"):
        touch(videos / "StreamingBench" / name)
    utils = load_utils("streamingbench")
    docs = list(utils.process_docs_real_time_visual_understanding(None))
    assert utils.doc_to_visual(docs[0])[1] == {"video_read_type": "decord", "start": 0.0, "end": 120.0}
    assert utils.doc_to_text(docs[1]) == f"Count?\nA. 1\nB. 2\n{POST}"
    records = [utils.process_results(d, [r])["streamingbench_accuracy"] for d, r in zip(docs, ["D", "The answer is A"])]
    assert [r["score"] for r in records] == [1, 0]
    assert utils.aggregate_reference(records) == pytest.approx(50.0)


# ------------------------------------------------------------------------------------------ OVBench
def test_ovbench_frame_folders_and_videos(roots: tuple[Path, Path]) -> None:
    anno, videos = roots
    tao_doc = {"video": "v_001", "question": "Where is the car?", "candidates": ["left", "right"], "answer": "right",
               "answer_type": "Spatial", "sub_answer_type": "location", "start": 0, "end": 8, "fps": 5}
    coin_doc = {"video": "coin_7.mp4", "question": "Next step?", "candidates": ["cut", "fold", "glue"], "answer": "glue",
                "answer_type": "Procedure", "sub_answer_type": "next", "start": 3, "end": 30}
    write_json(anno / "OVBench" / "tao.json", [tao_doc])
    write_json(anno / "OVBench" / "coin.json", [coin_doc])
    touch(videos / "OVBench" / "tao" / "frames" / "val" / "v_001", folder=True)
    touch(videos / "OVBench" / "COIN" / "coin_7.mp4")
    utils = load_utils("ovbench")
    tao = list(utils.process_docs_tao(None))[0]
    coin = list(utils.process_docs_coin(None))[0]
    assert utils.doc_to_visual(tao) == [
        str(videos / "OVBench" / "tao" / "frames" / "val" / "v_001"),
        {"video_read_type": "img", "start": 0.0, "end": 8.0, "fps": 5.0},
    ]
    assert utils.doc_to_visual(coin)[1] == {"video_read_type": "decord", "start": 3.0, "end": 30.0}
    record = utils.process_results(coin, ["C"])["ovbench_accuracy"]
    assert record["score"] == 1 and record["categories"]["sub_answer_type"] == "next"
    assert utils.aggregate_strict([record, utils.process_results(tao, ["A"])["ovbench_accuracy"]]) == 50.0


def test_ovbench_requires_answer_type(roots: tuple[Path, Path]) -> None:
    anno, _ = roots
    write_json(anno / "OVBench" / "hirest.json", [{"video": "x.mp4", "question": "q", "candidates": ["a"], "answer": "a"}])
    utils = load_utils("ovbench")
    with pytest.raises(media.AnnotationError, match=r"hirest.json: doc 0 lacks field\(s\) \['answer_type', 'sub_answer_type'\]"):
        utils.process_docs_hirest(None)


# ------------------------------------------------------------------------------------------ OVO-Bench
def test_ovobench_mc_and_far(roots: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    anno, videos = roots
    mc = [{"video": "clip1.mp4", "question": "What is held?", "candidates": ["cup", "pen"], "answer": "pen",
           "subtask": "OCR", "start": 0, "end": 12}]
    far = [
        {"video": "clip2.mp4", "question": "Tell me when the pan is on the stove.", "answer": "Put the pan on the stove",
         "subtask": "SSR", "start": 0, "end": 20},
        {"video": "clip2.mp4", "question": "How many eggs so far?", "answer": "3", "subtask": "REC", "start": 0, "end": 25},
        {"video": "clip2.mp4", "question": "How many now?", "answer": "2", "subtask": "REC", "start": 0, "end": 28},
    ]
    write_json(anno / "OVOBench" / "backward_tracking.json", mc)
    write_json(anno / "OVOBench" / "forward_active_responding.json", far)
    touch(videos / "OVOBench" / "chunked_videos" / "clip1.mp4")
    touch(videos / "OVOBench" / "chunked_videos" / "clip2.mp4")
    utils = load_utils("sf_ovobench")
    mc_doc = list(utils.process_docs_backward_tracking(None))[0]
    far_docs = list(utils.process_docs_forward_active_responding(None))
    assert utils.doc_to_text(mc_doc) == f"What is held?\nA. cup\nB. pen\n{POST}"
    assert utils.far_doc_to_text(far_docs[1]) == "How many eggs so far?"
    assert utils.doc_to_visual(far_docs[1])[1] == {"video_read_type": "decord", "start": 0.0, "end": 25.0}
    records = [utils.process_results(mc_doc, ["B"])["ovobench_accuracy"]]
    records += [
        utils.far_process_results(d, [p])["ovobench_accuracy"]
        for d, p in zip(far_docs, ["ok, now: put the pan on the stove", "I count 3 eggs", "1 or 2"])
    ]
    assert [r["score"] for r in records] == [1, 1, 1, 0]
    with caplog.at_level("INFO"):
        assert utils.aggregate_reference(records) == pytest.approx(75.0)
    assert "macro average over subtasks: 83.33" in caplog.text  # (OCR 100 + SSR 100 + REC 50) / 3


# ------------------------------------------------------------------------------------------ MLVU
def test_mlvu_parquet_and_config_subdir(roots: tuple[Path, Path]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    anno, videos = roots
    (anno / "MLVU_MC").mkdir(parents=True)
    rows = [
        {"video": "count_1.mp4", "question": "How many cats?", "candidates": ["1", "2", "3", "4"], "answer": "3",
         "question_type": "count"},
        {"video": "count_2.mp4", "question": "How many dogs?", "candidates": ["0", "5"], "answer": "0",
         "question_type": "count"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), anno / "MLVU_MC" / "4_count.parquet")
    touch(videos / "MLVU" / "video" / "4_count" / "count_1.mp4")
    touch(videos / "MLVU" / "video" / "4_count" / "count_2.mp4")
    utils = load_utils("sf_mlvu_mc")
    docs = list(utils.process_docs_4_count(None))
    assert utils.doc_to_visual(docs[0]) == [str(videos / "MLVU" / "video" / "4_count" / "count_1.mp4"),
                                            {"video_read_type": "decord"}]
    records = [utils.process_results(d, [p])["mlvu_mc_accuracy"] for d, p in zip(docs, ["C", ""])]
    assert utils.aggregate_reference(records) == 100.0 and utils.aggregate_strict(records) == 50.0


# ------------------------------------------------------------------------------------------ MVBench
def test_mvbench_roots_clip_and_frames(roots: tuple[Path, Path]) -> None:
    anno, videos = roots
    write_json(anno / "MVBench" / "action_sequence.json",
               [{"video": "ZS9XR.mp4", "question": "What did the person do first?", "candidates": ["sat", "ran"],
                 "answer": "ran", "start": 11.1, "end": 19.6}])
    write_json(anno / "MVBench" / "episodic_reasoning.json",
               [{"video": "castle_s07e04_seg02_clip_14", "question": "Why?", "candidates": ["x", "y"], "answer": "x",
                 "start": 0.5, "end": 4.0}])
    touch(videos / "MVBench" / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4")
    touch(videos / "MVBench" / "video" / "tvqa" / "frames_fps3_hq" / "castle_s07e04_seg02_clip_14", folder=True)
    utils = load_utils("sf_mvbench")
    seq = list(utils.process_docs_action_sequence(None))[0]
    epi = list(utils.process_docs_episodic_reasoning(None))[0]
    assert utils.doc_to_visual(seq) == [str(videos / "MVBench" / "video" / "star" / "Charades_v1_480" / "ZS9XR.mp4"),
                                        {"video_read_type": "decord", "start": 11.1, "end": 19.6}]
    assert utils.doc_to_visual(epi)[1] == {"video_read_type": "img", "start": 0.5, "end": 4.0, "fps": 3.0}
    record = utils.process_results(seq, ["(B) ran"])["mvbench_accuracy"]
    assert record["score"] == 1 and record["categories"] == {"config": "action_sequence"}
    # all twenty configs have a process_docs function and a YAML
    names = yaml.safe_load((TASKS / "sf_mvbench" / "sf_mvbench.yaml").read_text().replace("!function", ""))["task"]
    assert len(names) == 20
    for name in names:
        assert hasattr(utils, "process_docs_" + name.removeprefix("sf_mvbench_"))


# ------------------------------------------------------------------------------------------ PerceptionTest
def test_perceptiontest_chain(roots: tuple[Path, Path]) -> None:
    anno, videos = roots
    docs = [
        {"video_name": "video_10909", "question": "What is the person doing?", "options": ["cooking", "reading", "sleeping"],
         "answer_id": 1, "question_id": "q1", "area": "memory", "reasoning": "descriptive", "tag": ["t"]},
        {"video_name": "video_10910", "question": "Which object moved?", "options": ["cup", "box", "pen"],
         "answer_id": 0, "area": "physics", "reasoning": "explanatory"},
    ]
    write_json(anno / "PerceptionTest_Val" / "mc_question_val.json", docs)
    touch(videos / "PerceptionTest" / "videos" / "video_10909.mp4")
    touch(videos / "PerceptionTest" / "videos" / "video_10910.mp4")
    utils = load_utils("sf_perceptiontest_val_mc")
    loaded = list(utils.process_docs_mc_question_val(None))
    assert utils.doc_to_text(loaded[0]) == f"What is the person doing?\nA. cooking\nB. reading\nC. sleeping\n{POST}"
    assert utils.doc_to_visual(loaded[0]) == [str(videos / "PerceptionTest" / "videos" / "video_10909.mp4"),
                                              {"video_read_type": "decord"}]
    good = utils.process_results(loaded[0], ["B"])["accuracy"]
    lower = utils.process_results(loaded[1], ["a"])["accuracy"]  # case-sensitive: "a" is no answer
    assert (good["score"], lower["score"], lower["extracted"]) == (1, 0, None)
    assert utils.aggregate_reference([good, lower]) == 0.5  # a fraction, not a percentage


# ------------------------------------------------------------------------------------------ Video-MME (real parquet)
@pytest.mark.skipif(not (VIDEOMME_DIR / "videomme").is_dir(), reason="shared Video-MME parquet not available")
def test_videomme_real_parquet(roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, videos = roots
    monkeypatch.setenv("SF_ANNO_VIDEOMME", str(VIDEOMME_DIR))
    utils = load_utils("sf_videomme")
    docs = list(utils.process_docs_videomme(None))
    assert len(docs) == 2700
    prompts = [utils.doc_to_text(d, {"post_prompt": utils.DEFAULT_POST_PROMPT}) for d in docs]
    assert len(set(prompts)) == 2699  # two questions of the release share question and options
    for doc, prompt in zip(docs, prompts):
        assert prompt.startswith(scoring.VIDEOMME_OPTION_PROMPT + "\n" + doc["question"] + "\n[")
        assert prompt.endswith(f"]\n\n{POST}") and "A. " in prompt and "D. " in prompt
    assert prompts[0] == (
        f"{scoring.VIDEOMME_OPTION_PROMPT}\n"
        "When demonstrating the Germany modern Christmas tree is initially decorated with apples, candles and "
        "berries, which kind of the decoration has the largest number?\n"
        "['A. Apples.', 'B. Candles.', 'C. Berries.', 'D. The three kinds are of the same number.']\n"
        f"\n{POST}"
    )
    assert prompts[0] == utils.doc_to_text(docs[0])  # default post prompt = the YAML's
    touch(videos / "Video-MME" / "videos" / "fFjv93ACGo8.MP4")
    assert utils.doc_to_visual(docs[0]) == [str(videos / "Video-MME" / "videos" / "fFjv93ACGo8.MP4"),
                                            {"video_read_type": "decord"}]
    # scoring known answers on all 2,700 questions
    right = [utils.process_results(d, [f"The answer is {d['answer']}."])["videomme_percetion_score"] for d in docs]
    always_a = [utils.process_results(d, ["A"])["videomme_percetion_score"] for d in docs]
    silent = [utils.process_results(d, [""])["videomme_percetion_score"] for d in docs]
    assert utils.aggregate_reference(right) == 100.0
    assert utils.aggregate_reference(always_a) == pytest.approx(100 * 677 / 2700)  # 677 answers are "A"
    assert utils.aggregate_reference(silent) == 0.0 == utils.aggregate_strict(silent)  # empty counts wrong
    assert scoring.breakdown(always_a)["duration"].keys() == {"short", "medium", "long"}


# ------------------------------------------------------------------------------------------ errors
def test_missing_annotation_folder_says_what_to_download(roots: tuple[Path, Path]) -> None:
    utils = load_utils("odvbench")
    with pytest.raises(media.AnnotationError, match=r"annotation folder for odvbench not found: .*StreamForest-Annodata.*SF_ANNO_ODVBENCH"):
        utils.process_docs_targeting_single_dynamic_objects_v4(None)


def test_missing_config_and_missing_video(roots: tuple[Path, Path]) -> None:
    anno, _ = roots
    write_json(anno / "ODVBench" / "other.json", [])
    utils = load_utils("odvbench")
    with pytest.raises(media.AnnotationError, match="no annotation for config 'targeting_single_dynamic_objects_v4'"):
        utils.process_docs_targeting_single_dynamic_objects_v4(None)
    doc = {"video": "missing.mp4", "sf_config": "targeting_single_dynamic_objects_v4"}
    with pytest.raises(media.MediaNotFoundError, match=r"video 'missing.mp4' not found under .*SF_VIDEOS_ODVBENCH"):
        utils.doc_to_visual(doc)


def test_malformed_annotations(roots: tuple[Path, Path]) -> None:
    anno, _ = roots
    (anno / "MVBench").mkdir(parents=True)
    (anno / "MVBench" / "action_count.json").write_text("{not json")
    write_json(anno / "MVBench" / "state_change.json",
               [{"video": "a", "question": "q", "candidates": ["x"], "answer": "x", "question_type": 1},
                {"video": "b", "question": "q", "candidates": ["x"], "answer": "x", "question_type": "late"}])
    write_json(anno / "MVBench" / "object_shuffle.json",
               [{"video": "b", "question": "q", "candidates": ["x"], "answer": "x", "start": "late", "end": 4}])
    utils = load_utils("sf_mvbench")
    with pytest.raises(media.AnnotationError, match="action_count.json: not valid JSON"):
        utils.process_docs_action_count(None)
    with pytest.raises(media.AnnotationError, match="field 'question_type' mixes value types"):
        utils.process_docs_state_change(None)
    with pytest.raises(media.AnnotationError, match=r"object_shuffle.json: doc 0: field 'start' = 'late' is not a number"):
        utils.process_docs_object_shuffle(None)


@pytest.mark.parametrize("end", [-3, 0, 2.0])
def test_empty_or_negative_clip_is_rejected_with_the_doc_index(roots: tuple[Path, Path], end: float) -> None:
    """Issue 16: an annotation ``end`` of -3 or 0 (or not after ``start``) was answered '' silently."""
    anno, _ = roots
    good = {"video": "a.mp4", "question": "q", "candidates": ["x", "y"], "answer": "x", "task": "t", "subtask": "s"}
    write_json(anno / "ODVBench" / "targeting_single_static_objects_v4.json", [good, {**good, "start": 2.0, "end": end}])
    utils = load_utils("odvbench")
    with pytest.raises(media.AnnotationError, match=r"objects_v4.json: doc 1: clip start=2.0, end=.* empty or negative"):
        utils.process_docs_targeting_single_static_objects_v4(None)


def test_answer_outside_the_candidates_is_rejected(roots: tuple[Path, Path]) -> None:
    """Issue 16: an ``answer`` not among the ``candidates`` was scored wrong silently."""
    anno, _ = roots
    docs = [{"video": "a", "question": "q", "candidates": ["red", "blue"], "answer": "red"},
            {"video": "b", "question": "q", "candidates": ["red", "blue"], "answer": "Red"}]  # fmt: skip
    write_json(anno / "MVBench" / "action_count.json", docs)
    utils = load_utils("sf_mvbench")
    with pytest.raises(media.AnnotationError, match=r"action_count.json: doc 1: field 'answer' = 'Red' is not one of"):
        utils.process_docs_action_count(None)


def test_paths_yaml_and_benchmarks_yaml_agree() -> None:
    paths = yaml.safe_load((REPO / "streamforest" / "assets" / "eval_paths.yaml").read_text())["benchmarks"]
    benches = yaml.safe_load((REPO / "configs" / "eval" / "benchmarks.yaml").read_text())["benchmarks"]
    assert [b["name"] for b in benches] == [
        "odvbench", "streamingbench", "ovbench", "ovobench", "videomme", "mlvu_mc", "mvbench", "perceptiontest_val_mc"
    ]
    for bench in benches:
        assert bench["paths"] in paths
        folder = TASKS / bench["tasks"]
        assert folder.is_dir(), bench["tasks"]
        utils = load_utils(bench["tasks"])
        for config in bench["configs"]:
            assert hasattr(utils, f"process_docs_{config}"), (bench["name"], config)
        template = folder / "_default_template_yaml"
        text = (template if template.exists() else folder / f"{bench['tasks']}.yaml").read_text()
        assert f"metric: {bench['metric']}\n" in text and f"metric: {bench['metric']}_strict\n" in text


# ------------------------------------------------------------------------------------------ real lmms-eval indexing
@pytest.fixture(scope="module")
def task_manager() -> Any:
    tasks_mod = pytest.importorskip("lmms_eval.tasks")
    return tasks_mod.TaskManager(verbosity="ERROR", include_path=str(TASKS))


def test_no_empty_yaml_and_no_package_marker() -> None:
    assert not (REPO / "lmms_eval" / "__init__.py").exists()
    assert not (TASKS / "__init__.py").exists()
    for path in TASKS.rglob("*.yaml"):
        assert path.read_text().strip(), f"{path} is empty (an empty YAML aborts lmms-eval's task indexing)"


def test_our_names_win_in_lmms_eval_index(task_manager: Any) -> None:
    """Every task/group name resolves to our YAML (a name clashing with upstream would be silently ignored)."""
    ours = {}
    for path in TASKS.rglob("*.yaml"):
        config = yaml.safe_load(path.read_text().replace("!function", ""))
        ours[config.get("task") if "task" in config and isinstance(config["task"], str) else config["group"]] = path
    assert len(ours) == 3 + 1 + 4 + 3 + 1 + 7 + 20 + 1 + 6 + 1  # tasks + groups (+ streamingbench_proactive)
    for name, path in ours.items():
        indexed = task_manager.task_index[name]
        assert Path(indexed["yaml_path"]).resolve() == path.resolve(), name


def test_task_loads_through_lmms_eval(task_manager: Any, roots: tuple[Path, Path]) -> None:
    """The real YAML chain: placeholder json → process_docs → our docs, visuals and prompts."""
    from lmms_eval.tasks import get_task_dict

    anno, videos = roots
    write_json(anno / "PerceptionTest_Val" / "mc_question_val.json",
               [{"video_name": "v1", "question": "Q?", "options": ["a", "b", "c"], "answer_id": 2}])
    touch(videos / "PerceptionTest" / "videos" / "v1.mp4")
    task = get_task_dict(["sf_perceptiontest_val_mc"], task_manager)["sf_perceptiontest_val_mc"]
    docs = task.test_docs()
    assert len(docs) == 1 and docs[0]["sf_config"] == "mc_question_val"
    assert task.doc_to_text(docs[0]) == f"Q?\nA. a\nB. b\nC. c\n{POST}"
    assert task.doc_to_visual(docs[0])[0] == str(videos / "PerceptionTest" / "videos" / "v1.mp4")
    assert task.config.generation_kwargs.get("max_new_tokens") is None  # wrapper default (1024) applies
    assert set(task.aggregation()) == {"accuracy", "accuracy_strict"}


# ------------------------------------------------------------------------------------------ summarize.py
def test_summarize_table_and_check(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "results" / "ckpt"
    out = root / "videomme" / "ckpt"
    out.mkdir(parents=True)
    (out / "20250101_results.json").write_text(json.dumps({
        "results": {"sf_videomme": {"videomme_percetion_score,none": 61.25, "videomme_percetion_score_strict,none": 61.25}},
        "n-samples": {"sf_videomme": {"original": 2700, "effective": 2700}},
    }))  # fmt: skip
    (root / "mvbench" / "x").mkdir(parents=True)
    (root / "mvbench" / "x" / "1_results.json").write_text(json.dumps({"results": {"sf_mvbench_action_count": {}}}))
    script = [sys.executable, str(REPO / "scripts" / "eval" / "summarize.py"), str(root)]
    table = subprocess.run([*script, "--only", "videomme", "mvbench", "odvbench"], capture_output=True, text=True)
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and len(lines) == 4, table.stderr
    assert lines[1].split() == ["odvbench", "odvbench_accuracy", "-", "-", "-", "missing"]
    assert lines[2].split() == ["videomme", "videomme_percetion_score", "61.25", "61.25", "2700", "ok"]
    assert "incomplete" in lines[3]
    assert subprocess.run([*script, "--check", "videomme"], capture_output=True).returncode == 0
    failed = subprocess.run([*script, "--check", "mvbench"], capture_output=True, text=True)
    assert failed.returncode == 1 and "mvbench: incomplete" in failed.stderr
