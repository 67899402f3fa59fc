"""``benchmarks/gpu_check.py --tiny``: the GPU validation harness runs end to end on the CPU with the tiny configs,
so that it cannot rot between sessions that have a GPU. The DeepSpeed training sections run in a slow test."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
INFERENCE = ("intake", "ttft", "sessions", "hour", "numerics")
TRAIN = ("train_lora", "train_full", "train_compile")


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("gpu_check")
    assert _load().main(["--tiny", "--out", str(out)]) == 0
    (js,) = out.glob("gpu_*.json")
    (md,) = out.glob("gpu_*.md")
    return json.loads(js.read_text()), md.read_text()


def test_every_section_is_reported(tiny_run: tuple[dict[str, Any], str]) -> None:
    doc, _ = tiny_run
    sections = doc["sections"]
    assert list(sections) == [*INFERENCE, *TRAIN]
    for name in INFERENCE:
        assert sections[name]["status"] == "ok", (name, sections[name].get("reason"), sections[name].get("traceback"))
        assert sections[name]["rows"] and sections[name]["elapsed_s"] >= 0
    for name in TRAIN:  # documented skip: --tiny runs training only with --train (see the slow test)
        assert sections[name]["status"] == "skipped" and "--train" in sections[name]["reason"]
    env = doc["environment"]
    assert env["torch"] and env["scale"] == "tiny" and env["dtype"] == "float32"


def test_intake_and_latency_numbers_are_sane(tiny_run: tuple[dict[str, Any], str]) -> None:
    sections = tiny_run[0]["sections"]
    intake = sections["intake"]["rows"]
    per_frame = [r for r in intake if r["measure"].startswith("intake batch 1")]
    assert {r["measure"].split(": ")[1] for r in per_frame} == {"processor", "vit_pos", "memory", "total"}
    for row in per_frame:
        assert row["frames"] == 40 and 0 < row["p50_ms"] <= row["p95_ms"]
        assert row["peak_gib"] is None  # CUDA-only: n/a on the CPU
    throughput = [r for r in intake if r["measure"].startswith("ViT batch")]
    assert len(throughput) == 2 and all(r["frames_per_s"] > 0 for r in throughput)
    ttft = sections["ttft"]["rows"]
    assert [r["budget"] for r in ttft] == ["default (8K)", "demo_online (1K)"]
    for row in ttft:
        for key in ("ttft_full_ms", "ttft_cached_prefix_ms", "decode_tok_per_s"):
            assert _finite(row[key]) and row[key] > 0, (key, row)
    assert ttft[0]["visual_tokens"] > ttft[1]["visual_tokens"]
    sessions = sections["sessions"]["rows"]
    assert [(r["mode"], r["frames"]) for r in sessions] == [("exact", 30), ("exact", 90), ("bounded", 30), ("bounded", 90)]
    assert all(r["visual_tokens"] > 0 and r["ttft_ms"] >= r["read_mlp_ms"] > 0 for r in sessions)
    (hour,) = sections["hour"]["rows"]
    assert hour["frames"] == 120 and hour["visual_tokens"] > 0 and hour["stream_peak_gib"] is None


def test_numerics_are_finite_and_measured(tiny_run: tuple[dict[str, Any], str]) -> None:
    rows = {r["check"]: r for r in tiny_run[0]["sections"]["numerics"]["rows"]}
    assert any(k.startswith("ViT (torch.float32) batch 1 vs") for k in rows)
    assert any("first-token logits" in k for k in rows)
    assert any(k.startswith("visual tokens") and "fp32" in k for k in rows)
    # flash-attention is absent on the CPU: the same comparison runs with eager attention
    assert {"ViT features (torch.float32): eager vs sdpa", "first-token logits (torch.float32, LLM): eager vs sdpa"} <= set(rows)
    assert rows["first-token logits (torch.float32, LLM): eager vs sdpa"]["max_rel"] < 1e-3
    for row in rows.values():
        assert all(_finite(row[k]) and row[k] >= 0 for k in ("max_abs", "max_rel", "mean_rel")), row
    bf16 = rows[next(k for k in rows if k.startswith("visual tokens"))]
    assert 0 < bf16["max_rel"] < 0.1  # bf16 rounding is visible but small


def test_markdown_has_targets_and_skips(tiny_run: tuple[dict[str, Any], str]) -> None:
    md = tiny_run[1]
    assert "| measure | target | measured |" in md
    assert "≤ 8 ms" in md and "≤ 300 ms" in md and "≤ 40 ms" in md and "≤ 18 GB" in md
    assert "n/a (CPU)" in md  # the peak-memory target on a CPU run
    assert "## Skipped or failed" in md and "`train_lora` — **skipped**" in md
    for title in ("1. Frame intake", "2a. Question latency", "3. Peak memory", "4. Numerics"):
        assert f"## {title}" in md


def test_a_failing_section_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gc = _load()

    def boom(ctx: Any) -> dict[str, Any]:
        raise RuntimeError("kaboom")

    def fine(ctx: Any) -> dict[str, Any]:
        return {"rows": [{"x": 1.0}], "notes": []}

    monkeypatch.setattr(gc, "SECTIONS", {"a": (boom, 1, "A"), "b": (fine, 1, "B"), "c": (fine, 10_000, "C")})
    ctx = gc.Ctx(scale=gc.FULL, device=gc.torch.device("cpu"), dtype=gc.torch.bfloat16, tiny=False)
    results = gc.run_sections(ctx, ["a", "b", "c"], budget_s=100, train=False)
    assert results["a"]["status"] == "failed" and "kaboom" in results["a"]["reason"]
    assert results["b"]["status"] == "ok" and results["b"]["rows"] == [{"x": 1.0}]
    assert results["c"]["status"] == "skipped" and "time budget" in results["c"]["reason"]


def test_gpu_only_paths_work_on_the_tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """What only a GPU run reaches: a second tower with another attention implementation (flash-attention 2
    there; eager here, same code), the dtype round trip of the numerics, the host-RAM skip of ZeRO-3 offload."""
    gc = _load()
    import gpu_check_lib as lib
    import gpu_check_train as train
    import torch

    model, _ = lib.build_model(torch.device("cpu"), torch.float32, tiny=True)
    pixels = lib.ScenePixels(model.get_vision_tower().image_size, torch.device("cpu")).next(3)
    stream = lib.StreamAdapter(model)
    other = stream.encode(pixels, tower=lib.build_tower(model, "eager"))
    torch.testing.assert_close(other, stream.encode(pixels), rtol=1e-4, atol=1e-4)
    def tensors() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in [*model.named_parameters(), *model.named_buffers()]}

    before = tensors()
    with lib.cast(model, torch.bfloat16):
        assert model.dtype == torch.bfloat16
    after = tensors()
    assert any("inv_freq" in k for k in before)  # fp32 RoPE frequencies are restored, not rounded
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    monkeypatch.setattr(train, "host_ram_gib", lambda: 64.0)
    ctx = gc.Ctx(scale=gc.FULL, device=torch.device("cpu"), dtype=torch.bfloat16, tiny=False)
    with pytest.raises(train.Skip, match="host RAM"):
        train.section_train_full(ctx)


def test_a_stream_stops_at_the_section_time_cap() -> None:
    gc = _load()
    import gpu_check_sections as sections
    import torch

    ctx = gc.Ctx(scale=gc.TINY, device=torch.device("cpu"), dtype=torch.float32, tiny=True)
    ctx.model  # noqa: B018 - build before the clock starts
    ctx.deadline = gc.time.perf_counter() + sections.QUESTION_RESERVE_S  # no time left for streaming
    out = sections.section_hour(ctx)
    (row,) = out["rows"]
    assert row["frames"] == gc.TINY.stream_batch < 60 * gc.TINY.hour_minutes  # one batch, then the question
    assert row["visual_tokens"] > 0 and "time cap" in out["notes"][0]


def test_tiny_refuses_to_write_into_the_repository() -> None:
    with pytest.raises(SystemExit):
        _load().parse_args(["--tiny"])


@pytest.mark.slow
def test_tiny_training_steps_run_under_deepspeed(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_BUILD_OPS="0", TOKENIZERS_PARALLELISM="false")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/streamforest/torch_extensions"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--train", "--out", str(tmp_path), "--only", *TRAIN]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    sections = json.loads(next(tmp_path.glob("gpu_*.json")).read_text())["sections"]
    assert list(sections) == list(TRAIN)
    for name in ("train_lora", "train_full"):
        (row,) = sections[name]["rows"]
        assert sections[name]["status"] == "ok"
        assert row["step_s"] > 0 and row["tokens_per_s"] > 0 and _finite(row["loss"])
        assert row["visual_tokens"] > 0 and row["sequence"] > row["visual_tokens"]
        assert row["gradient_checkpointing"] is True
    lora, full = sections["train_lora"]["rows"][0], sections["train_full"]["rows"][0]
    assert 0 < lora["trainable_params"] < full["trainable_params"]
    assert sections["train_compile"]["status"] == "skipped"
