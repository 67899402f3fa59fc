"""The official OVO-Bench and StreamingBench files through the real lmms-eval 0.7.3 (slow): the CLI on a tiny
checkpoint (n-samples reports the full doc counts of the unchanged release files) and lmms-eval's own group
consolidation of sf_ovobench (the overall both ways)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from helpers_video import write_index_video
from test_eval_e2e import eval_env
from test_eval_official import (
    OVO_CONFIGS,
    OVO_FILE,
    REPO,
    SB_FILE,
    copy_release,
    needs_ovo,
    needs_sb,
    ovo_entries,
    roots,
)
from test_eval_tasks import write_json

from streamforest.eval import official

__all__ = ["roots"]  # the fixture, imported for the group test


# ------------------------------------------------------------------------------------------ real lmms-eval CLI
@pytest.mark.slow
@needs_ovo
@needs_sb
def test_official_files_through_lmms_eval_cli(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The release files, unchanged, through ``python -m lmms_eval --tasks sf_ovobench,streamingbench --limit 2``:
    n-samples reports the full doc counts; synthetic videos exist only for the docs that run, under the files' own
    relative paths."""
    anno, limit = tmp_path / "anno", 2
    copy_release(anno, "OVOBench", OVO_FILE)
    copy_release(anno, "StreamingBench", SB_FILE)
    ovo, sb = json.loads(OVO_FILE.read_text()), json.loads(SB_FILE.read_text())
    firsts = [
        *official.ovobench_mc_docs(ovo, "", official.OVO_REAL_TIME_TASKS)[:limit],
        *official.ovobench_mc_docs(ovo, "", official.OVO_BACKWARD_TASKS)[:limit],
        *official.ovobench_far_docs(ovo, "")[:limit],
    ]
    for video in {d["video"] for d in firsts}:
        write_index_video(tmp_path / "ovo_videos" / video, 30)
    for video in {d["video"] for d in official.streamingbench_real_docs(sb, "")[:limit]}:
        write_index_video(tmp_path / "sb_videos" / video, 30)
    env = eval_env(tmp_path / "unused_anno", tmp_path / "unused_videos")
    env.update(SF_ANNO_OVOBENCH=str(anno / "OVOBench"), SF_VIDEOS_OVOBENCH=str(tmp_path / "ovo_videos"),
               SF_ANNO_STREAMINGBENCH=str(anno / "StreamingBench"), SF_VIDEOS_STREAMINGBENCH=str(tmp_path / "sb_videos"))  # fmt: skip
    cmd = [
        sys.executable, "-m", "lmms_eval", "--model", "streamforest",
        "--model_args", f"pretrained={tiny_checkpoint},conv_template=qwen_2,max_frames_num=8,time_msg=short_online_v2",
        "--tasks", "sf_ovobench,streamingbench", "--batch_size", "1", "--limit", str(limit), "--log_samples",
        "--output_path", str(tmp_path / "out"), "--include_path", str(REPO / "lmms_eval" / "tasks"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    (results_file,) = list((tmp_path / "out").rglob("*_results.json")) or [None]
    assert results_file is not None, log
    data = json.loads(results_file.read_text())
    counts = {task: row["original"] for task, row in data["n-samples"].items()}
    assert counts == {
        "sf_ovobench_real_time_visual_perception": 837, "sf_ovobench_backward_tracking": 631,
        "sf_ovobench_forward_active_responding": 1567, "streamingbench_real_time_visual_understanding": 2500,
    }, log  # fmt: skip
    assert {row["effective"] for row in data["n-samples"].values()} == {limit}
    assert "reading the official release file" in proc.stderr + proc.stdout
    res = data["results"]
    rt, bt, far = (res[f"sf_ovobench_{t}"] for t in OVO_CONFIGS)
    assert "ovobench_track_score_rt_bt,none" not in far
    group = res["sf_ovobench"]
    for key in ("ovobench_track_score,none", "ovobench_track_score_strict,none"):
        assert group[key] == pytest.approx((rt[key] + bt[key] + far[key]) / 3)  # three-track overall
        two = key.replace("track_score", "track_score_rt_bt")
        assert group[two] == pytest.approx((rt[key] + bt[key]) / 2)  # real-time + backward overall
    assert group["ovobench_accuracy,none"] == pytest.approx(
        (rt["ovobench_accuracy,none"] + bt["ovobench_accuracy,none"] + far["ovobench_accuracy,none"]) / 3
    )  # the reference's sample-weighted group mean (2 samples each under --limit 2)
    assert 0.0 <= res["streamingbench_real_time_visual_understanding"]["streamingbench_accuracy,none"] <= 100.0
    samples = [json.loads(line) for f in (tmp_path / "out").rglob("*_samples_sf_ovobench_forward*.jsonl")
               for line in f.open()]  # fmt: skip
    assert len(samples) == limit and "You're responsible of answering questions" in samples[0]["input"]


@pytest.mark.slow  # TaskManager indexes all of lmms-eval's tasks (~25 s)
def test_group_reports_the_overall_both_ways(roots: tuple[Path, Path]) -> None:
    """lmms-eval's own group consolidation over our sf_ovobench group: ``ovobench_track_score`` is the mean of the
    three track scores, ``ovobench_track_score_rt_bt`` the mean of real-time and backward, ``ovobench_accuracy``
    the sample-weighted mean (the reference's rule)."""
    tasks_mod = pytest.importorskip("lmms_eval.tasks")
    from lmms_eval.evaluator_utils import consolidate_group_results

    anno, _ = roots
    write_json(anno / "OVOBench" / "ovo_bench_new.json", ovo_entries())
    manager = tasks_mod.TaskManager(verbosity="ERROR", include_path=str(REPO / "lmms_eval" / "tasks"))
    task_dict = tasks_mod.get_task_dict(["sf_ovobench"], manager)
    scores = {"real_time_visual_perception": (60.0, 10), "backward_tracking": (30.0, 30),
              "forward_active_responding": (90.0, 60)}  # fmt: skip
    results: defaultdict[str, dict[str, Any]] = defaultdict(dict)  # as lmms-eval's evaluator builds it
    for config, (value, n) in scores.items():
        row: dict[str, Any] = {"alias": config, "samples": n}
        metrics = ["ovobench_accuracy", "ovobench_track_score"]
        metrics += [] if config.startswith("forward") else ["ovobench_track_score_rt_bt"]
        for metric in metrics:
            for name in (metric, f"{metric}_strict"):
                row[f"{name},none"], row[f"{name}_stderr,none"] = value, "N/A"
        results[f"sf_ovobench_{config}"] = row
    results, *_ = consolidate_group_results(results, {}, task_dict)
    group = results["sf_ovobench"]
    assert group["ovobench_track_score,none"] == pytest.approx(60.0)  # (60 + 30 + 90) / 3
    assert group["ovobench_track_score_strict,none"] == pytest.approx(60.0)
    assert group["ovobench_track_score_rt_bt,none"] == pytest.approx(45.0)  # (60 + 30) / 2
    assert group["ovobench_track_score_rt_bt_strict,none"] == pytest.approx(45.0)
    assert group["ovobench_accuracy,none"] == pytest.approx((600 + 900 + 5400) / 100)  # weighted by samples
    assert group["ovobench_accuracy_strict,none"] == pytest.approx(69.0)
