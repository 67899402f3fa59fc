"""End to end: the five tiny stages through ``python -m streamforest.train`` on DeepSpeed with two gloo
processes (ZeRO-2; stage 3 on ZeRO-3), stage chaining, per-group learning rates, skipping, and resume after
a crash. Slow (several torchrun launches); run with ``pytest -m slow tests/test_train_stages.py``."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SF_TINY=str(root), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled", DS_BUILD_OPS="0",
        TORCH_EXTENSIONS_DIR=env.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/streamforest/torch_extensions")),
        **extra,
    )
    return env


def launch(root: Path, config: str, *overrides: str, nproc: int = 2, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node N -m streamforest.train CONFIG overrides`` (the real entry point)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(_free_port()),
           "-m", "streamforest.train", str(TINY / config), *overrides]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(root, **env), capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def history(out_dir: Path) -> list[dict[str, Any]]:
    return [h for h in json.loads((out_dir / "trainer_state.json").read_text())["log_history"] if "loss" in h]


def _check_losses(hist: list[dict[str, Any]], falls: bool = True) -> None:
    losses = [h["loss"] for h in hist]
    assert len(losses) >= 4 and all(math.isfinite(v) for v in losses), losses
    if falls:
        assert sum(losses[-2:]) < sum(losses[:2]), losses


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Fixtures + stages 1 → 5 (each stage starts from the previous one's output)."""
    from streamforest.train.fixtures import make_training_fixtures

    root = tmp_path_factory.mktemp("sf_tiny")
    make_training_fixtures(root)
    runs: dict[str, Any] = {"root": root}
    runs["s1"] = launch(root, "stage1.yaml")
    runs["s2"] = launch(root, "stage2.yaml")
    runs["s3"] = launch(root, "stage3.yaml", "training.deepspeed=scripts/deepspeed/zero3.json")
    runs["s4"] = launch(root, "stage4.yaml")
    runs["s5"] = launch(root, "stage5.yaml")
    return runs


def test_stage1_saves_the_connector_alone(chain: dict[str, Any]) -> None:
    out = chain["root"] / "runs" / "stage1"
    state = torch.load(out / "mm_projector.bin", weights_only=True)
    assert sorted(state) == [f"model.mm_projector.mlp.{i}.{k}" for i in (0, 2) for k in ("bias", "weight")]
    assert (out / "config.json").is_file() and (out / "train_config.yaml").is_file()
    assert not list(out.glob("*.safetensors"))
    _check_losses(history(out))


def test_stage2_loads_stage1_connector_and_uses_the_vision_lr(chain: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from streamforest.train.build import build_stage_model
    from streamforest.train.config import load_config

    root = chain["root"]
    monkeypatch.setenv("SF_TINY", str(root))
    cfg = load_config(TINY / "stage2.yaml", ["training.deepspeed=null"])
    model = build_stage_model(cfg).model
    saved = torch.load(root / "runs" / "stage1" / "mm_projector.bin", weights_only=True)
    for key, value in saved.items():
        torch.testing.assert_close(model.get_parameter(key), value.to(model.get_parameter(key).dtype))
    # the vision tower really trains in stage 2 (its weights moved away from the SigLIP checkpoint's)
    from safetensors.torch import load_file

    from streamforest.model.loader import load_pretrained

    siglip = load_file(str(root / "siglip" / "model.safetensors"))
    trained = load_pretrained(root / "runs" / "stage2", dtype="float32").model.get_vision_tower().vision_tower
    q = "encoder.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(model.get_vision_tower().vision_tower.get_parameter(q), siglip[q])
    assert not torch.allclose(trained.get_parameter(q), siglip[q])
    hist = history(root / "runs" / "stage2")
    _check_losses(hist)
    first = hist[0]
    assert first["lr/mm_vision_tower"] == pytest.approx(6e-4) and first["lr/default"] == pytest.approx(3e-3)
    assert first["text_tokens_per_s"] > 0 and first["samples_per_s"] > 0


def test_stage3_zero3_projector_change_and_checkpoint_loads(chain: dict[str, Any]) -> None:
    from streamforest.model.loader import load_pretrained

    out = chain["root"] / "runs" / "stage3"
    _check_losses(history(out))
    loaded = load_pretrained(out, dtype="float32")
    assert loaded.model.config.mm_projector_type == "tome16_mlp"
    assert loaded.model.config.mm_local_num_frames == 8


def test_stage4_starts_from_stage3_weights_with_the_memory_projector(
    chain: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamforest.model.loader import load_pretrained
    from streamforest.train.build import build_stage_model
    from streamforest.train.config import load_config

    root = chain["root"]
    monkeypatch.setenv("SF_TINY", str(root))
    built = build_stage_model(load_config(TINY / "stage4.yaml", ["training.deepspeed=null"])).model
    prev = load_pretrained(root / "runs" / "stage3", dtype="float32").model
    assert built.config.mm_projector_type == "tome729_fstw_pemf"
    for name, p in prev.get_model().mm_projector.named_parameters():
        torch.testing.assert_close(built.get_model().mm_projector.get_parameter(name), p)
    assert not any(p.requires_grad for p in built.get_vision_tower().parameters())
    _check_losses(history(root / "runs" / "stage4"))
    final = load_pretrained(root / "runs" / "stage4", dtype="float32").model
    assert final.config.mm_projector_type == "tome729_fstw_pemf"
    for name, p in prev.get_vision_tower().named_parameters():  # frozen in stage 4
        torch.testing.assert_close(final.get_vision_tower().get_parameter(name), p)


def test_stage5_runs(chain: dict[str, Any]) -> None:
    _check_losses(history(chain["root"] / "runs" / "stage5"))


def test_resume_after_a_crash_continues_without_redoing_steps(chain: dict[str, Any]) -> None:
    root = chain["root"]
    out = root / "runs" / "stage4_resume"
    crashed = launch(
        root, "stage4.yaml", f"training.output_dir={out}",
        "training.callbacks=[train_callbacks:CrashAfterCheckpoint]", check=False, SF_CRASH_AT_STEP="3",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "tests"), os.environ.get("PYTHONPATH", "")) if p),
    )
    assert crashed.returncode != 0
    assert (out / "checkpoint-3").is_dir() and not (out / "checkpoint-6").exists()
    launch(root, "stage4.yaml", f"training.output_dir={out}")
    resumed, reference = history(out), history(root / "runs" / "stage4")
    assert [h["step"] for h in resumed] == [h["step"] for h in reference] == list(range(1, 7))
    for a, b in zip(resumed, reference):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)


def test_unreadable_video_is_skipped_then_training_stops(chain: dict[str, Any]) -> None:
    root = chain["root"]
    bad_list = root / "anno" / "data_list" / "broken.yaml"
    bad_list.write_text(
        "datasets:\n  - json_path: ../stage4_online.json\n    data_root: ../../media\n"
        "  - json_path: ../broken.json\n    data_root: ../../media\n"
    )
    # a permissive bound: the unreadable sample is skipped (its micro-batch is a zero-loss step), training ends
    tolerant = root / "runs" / "broken_tolerant"
    launch(
        root, "stage4.yaml", f"data.data_path={bad_list}", f"training.output_dir={tolerant}", "data.max_skip_fraction=0.5",
        "data.min_samples_before_skip_check=1", "training.max_steps=5", 'training.save_strategy="no"', nproc=1,
    )
    hist = history(tolerant)
    assert len(hist) == 5 and hist[-1]["skipped_samples"] == 1.0
    assert all(math.isfinite(h["loss"]) for h in hist)
    proc = launch(
        root, "stage4.yaml", f"data.data_path={bad_list}", f"training.output_dir={root / 'runs' / 'broken'}",
        "data.max_skip_fraction=0.0", "data.min_samples_before_skip_check=1", "training.max_steps=5",
        'training.save_strategy="no"', nproc=1, check=False,
    )
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "broken.mp4" in log and "max_skip_fraction" in log
