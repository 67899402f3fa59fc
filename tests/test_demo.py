"""``make demo`` (``streamforest.demo``).

Fast: the demo's pieces — its training configs load and validate through the real config loader, the
initial checkpoint loads through the real loader with the demo's init std, scoring of lmms-eval sample
records (reference and strict accuracy per sub-task), chance levels from the synthetic manifest, the
stamp/skip logic. Slow (``-m slow``): the whole pipeline at the ``--quick`` size through the real entry points
(data → two training stages → lmms-eval on the trained and the untrained model → streaming CLI), its outputs
and summary fields (not the accuracy: the quick run trains for a few steps), then a re-run that skips every step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamforest import demo
from streamforest.demo_report import chance_levels

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- fast
@pytest.mark.parametrize("name", ["stage2_captions.yaml", "stage4_online.yaml"])
def test_demo_configs_validate(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from streamforest.train.config import load_config

    monkeypatch.setenv("SF_DEMO", str(tmp_path))
    cfg = load_config(REPO / demo.DEMO_CONFIGS / name, ["training.max_steps=7"])
    assert cfg.model.mm_projector_type == "tome729_fstw_pemf"
    assert cfg.model.vision_encode_type == "image_video_memory_batch"
    assert cfg.model.mm_local_num_frames == 1 and cfg.data.local_num_frames == 1
    assert cfg.data.time_msg == "short_online_v2" and cfg.data.sample_type == "dynamic_fps1"
    assert cfg.data.time_msg_insertion == "eval"  # trained on the prompt the demo's inference paths write
    assert cfg.training.max_steps == 7 and cfg.training.deepspeed is None
    assert cfg.training.output_dir.startswith(str(tmp_path))
    parts = set(cfg.model.mm_tunable_parts)
    if name.startswith("stage4"):  # stage 4 recipe: the ViT stays frozen
        assert parts == {"mm_mlp_adapter", "mm_language_model"}
        assert cfg.model.model_name_or_path == f"{tmp_path}/runs/stage2"
    else:  # stage 2 recipe: everything trains
        assert parts == {"mm_vision_tower", "mm_mlp_adapter", "mm_language_model"}
        assert cfg.model.pretrain_mm_mlp_adapter is None


def test_init_checkpoint_loads_with_demo_init_std(tmp_path: Path) -> None:
    import torch

    from streamforest.model.loader import load_pretrained

    texts = ["What colour is the traffic light now?", "A. red\nB. yellow\nC. green", "B"]
    ckpt = demo.build_init_checkpoint(tmp_path / "init", texts)
    loaded = load_pretrained(ckpt, dtype="float32")
    cfg = loaded.model.config
    assert cfg.initializer_range == demo.LLM_INIT_RANGE
    assert cfg.mm_projector_type == "tome729_fstw_pemf" and cfg.hidden_size == 64
    assert cfg.num_hidden_layers == demo.DEMO_LLM_LAYERS == len(loaded.model.model.layers) == 4
    q = loaded.model.model.layers[0].self_attn.q_proj.weight
    assert 0.09 < float(q.std()) < 0.16  # drawn with std 0.125, not Qwen2's 0.02
    assert loaded.tokenizer.convert_tokens_to_ids("<|im_end|>") == cfg.eos_token_id
    assert loaded.model.dtype == torch.float32


def _sample(subtask: str, score: int, pred: str) -> str:
    record = {"score": score, "empty": pred == "", "pred": pred, "gt": "A", "categories": {"subtask": subtask}}
    return json.dumps({"doc_id": 0, demo.METRIC: record})


def test_score_samples_reference_and_strict(tmp_path: Path) -> None:
    f1, f2 = tmp_path / "a_samples_x.jsonl", tmp_path / "b_samples_y.jsonl"
    f1.write_text("\n".join([_sample("light", 1, "A"), _sample("light", 0, "B"), _sample("light", 0, "")]) + "\n")
    f2.write_text(_sample("kind", 1, "C") + "\n")
    scores = demo.score_samples([str(f1), str(f2)])
    assert scores["light"] == {"n": 3, "empty": 1, "accuracy": 0.5, "strict": pytest.approx(1 / 3)}
    assert scores["kind"]["accuracy"] == 1.0
    assert scores["overall"] == {"n": 4, "empty": 1, "accuracy": pytest.approx(2 / 3), "strict": 0.5}


def test_chance_levels_from_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"eval": {
        "cfg_a": {"n": 6, "chance": 0.3, "subtasks": {"light": {"n": 3, "chance": 1 / 3}, "color": {"n": 3, "chance": 0.25}}},
        "overall": {"n": 6, "chance": 0.29},
    }}))  # fmt: skip
    assert chance_levels(manifest) == {"overall": 0.29, "light": pytest.approx(1 / 3), "color": 0.25}


def test_run_step_skips_when_stamp_and_outputs_match(tmp_path: Path) -> None:
    ctx = demo.Ctx(out=tmp_path, size=demo.SIZES["quick"])
    out = tmp_path / "thing.txt"
    calls: list[int] = []

    def work() -> dict:
        calls.append(1)
        out.write_text("x")
        return {"n": len(calls)}

    assert demo.run_step(ctx, "s", {"k": 1}, [out], work) == {"n": 1}
    assert demo.run_step(ctx, "s", {"k": 1}, [out], work) == {"n": 1}  # skipped
    assert demo.run_step(ctx, "s", {"k": 2}, [out], work) == {"n": 2}  # key changed
    out.unlink()
    assert demo.run_step(ctx, "s", {"k": 2}, [out], work) == {"n": 3}  # output missing
    ctx.force = True
    assert demo.run_step(ctx, "s", {"k": 2}, [out], work) == {"n": 4}  # --force


def test_demo_needs_a_source_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(demo.SOURCE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(demo.DemoError, match=r"not a StreamForest source checkout.*--source DIR"):
        demo.source_dir(None)
    assert demo.source_dir(str(REPO)) == REPO
    monkeypatch.setenv(demo.SOURCE_ENV, str(REPO))
    assert demo.source_dir(None) == REPO


def test_failed_child_names_step_and_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    with pytest.raises(demo.DemoError, match=r"step 'boom' failed \(exit 3\); full log: .*x\.log"):
        demo.run_logged([sys.executable, "-c", "import sys; print('oops'); sys.exit(3)"], log,
                        env=dict(os.environ), cwd=tmp_path, step="boom")  # fmt: skip
    assert "oops" in log.read_text()


def test_score_alerts_detection_delay_false_late() -> None:
    from streamforest.demo_watch import score_alerts

    fps = 4.0  # truth per video frame: "yes" over [1.0, 3.0) and from 6.0 s on
    truth = [1.0 <= k / fps < 3.0 or k / fps >= 6.0 for k in range(40)]
    alerts = [{"time": t} for t in (0.5, 1.5, 2.75, 9.0, 4.0)]
    s = score_alerts(alerts, truth, fps)
    assert s["changes"] == [1.0, 6.0]
    assert s["detected"] == 1 and s["delays"] == [0.5]  # 6.0 s is not detected: no alert in [6, 8]
    assert s["false"] == 2  # 0.5 s and 4.0 s: the answer is "no" there
    assert s["late"] == 2  # 2.75 s (already detected change) and 9.0 s (too late for the 6.0 s change)
    assert score_alerts([], truth, fps)["detected"] == 0
    assert score_alerts([{"time": 0.2}], [True] * 8, fps) == {"changes": [0.0], "detected": 1, "delays": [0.2],
                                                            "false": 0, "late": 0}  # fmt: skip


def test_watch_measurement_on_a_tiny_checkpoint(tmp_path: Path) -> None:
    """The watch step's measurement streams a real synthetic video through a session on the demo's init
    checkpoint; every alert is counted exactly once (detected + false + late) against the scene truth."""
    from streamforest import demo_watch
    from streamforest.synthetic import Scene, SceneConfig, format_mc_prompt
    from streamforest.synthetic.writer import write_video

    scene = Scene(SceneConfig(duration=6.0), seed=5)
    video = write_video(tmp_path / "v.mp4", (scene.render_frame(k) for k in range(scene.config.n_frames)), scene.config.fps)
    texts = [demo_watch._question(*w[:2]) + "\nAnswer yes or no." for w in demo_watch.WATCHES] + ["Yes", "No", "A", "B", "C"]
    texts.append(format_mc_prompt("What colour is the traffic light now?", ["red", "yellow", "green"]))
    ckpt = demo.build_init_checkpoint(tmp_path / "init", texts)
    session, ids = demo_watch.open_session(ckpt, prefix_cache=True)
    m = demo_watch.measure_alerts(session, ids, [(video, scene)], "test")
    (row,) = m["per_video"]
    n_alerts = sum(len(q["alerts"]) for q in row["questions"].values())
    assert m["detected"] + m["false_alerts"] + m["late_alerts"] == n_alerts
    assert m["changes"] == sum(len(q["changes"]) for q in row["questions"].values()) >= 1
    assert m["probes"] == len(demo_watch.WATCHES) * session.stats()["frames"] > 0  # one probe per watch per frame
    assert 0.0 <= m["detection_rate"] <= 1.0 and m["stream_minutes"] == 0.1
    cost = demo_watch.probe_cost(ckpt, [(video, scene)])
    assert cost["prefix_cache_on"]["probes"] == cost["prefix_cache_off"]["probes"] == m["probes"]
    assert cost["prefix_cache_on"]["prefix_cache"]["enabled"] and not cost["prefix_cache_off"]["prefix_cache"]["enabled"]


# ------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, **demo.OFFLINE_ENV}
    cmd = [sys.executable, "-m", "streamforest.demo", "--quick", "--out", str(out), "--source", str(REPO)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"size", "out_dir", "trained_checkpoint", "untrained_checkpoint", "accuracy",
                            "eval_results", "training", "stream", "watch", "step_seconds", "total_seconds"}  # fmt: skip
    assert summary["size"]["name"] == "quick"
    for key in ("trained_checkpoint", "untrained_checkpoint"):
        assert (Path(summary[key]) / "config.json").is_file()
    for path in summary["eval_results"].values():
        assert json.loads(Path(path).read_text())["results"]["odvbench"]
    rows = {r["subtask"]: r for r in summary["accuracy"]}
    assert "overall" in rows and len(rows) >= 3
    for r in rows.values():
        assert set(r) >= {"n", "chance", "untrained", "trained"} and r["n"] >= 1
        assert 0.0 <= r["trained"] <= 1.0 and 0.0 < r["chance"] < 1.0
        assert r["trained_forced"] is None or 0.0 <= r["trained_forced"] <= 1.0
    assert rows["overall"]["untrained_forced"] is not None and rows["overall"]["trained_forced"] is not None
    stream = summary["stream"]
    assert Path(stream["video"]).name.startswith("eval_") and Path(stream["answers_json"]).is_file()
    assert stream["answers"] and all({"time", "question", "expected", "model", "frames"} <= set(a) for a in stream["answers"])
    assert set(summary["step_seconds"]) == {"data", "init", "stage2", "stage4", "eval_untrained", "eval_trained", "stream",
                                            "forced_choice", "watch"}
    assert "untrained" in proc.stdout and "Streaming session" in proc.stdout
    watch = summary["watch"]  # standing questions: the example video's alerts against its true changes, both models
    assert set(watch["example"]["questions"]) == set(watch["watches"]) and (out / "watch" / "watch.json").is_file()
    for name in ("trained", "untrained"):
        assert {"detection_rate", "median_delay_s", "false_per_min", "probes"} <= set(watch[name]) and watch[name]["probes"] > 0
    assert watch["probe_cost"]["prefix_cache_on"]["ms_per_probe"] > 0 and watch["probe_cost"]["prefix_cache_off"]["ms_per_probe"] > 0
    assert "Standing questions on" in proc.stdout and "false / min" in proc.stdout and "probe cost" in proc.stdout
    # a re-run skips every finished step
    t0 = time.perf_counter()
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout[-2000:]
    assert again.stdout.count("skipped") == 9, again.stdout
    assert time.perf_counter() - t0 < 60
