"""LoRA on the LLM only, a short single-process training run with LoRA, adapter save, and merge_lora."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamforest.train.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_lora_run_save_and_merge(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamforest.model.loader import load_pretrained
    from streamforest.train.build import build_stage_model
    from streamforest.train.fixtures import make_training_fixtures
    from streamforest.train.lora import NON_LORA_FILE, apply_lora, lora_target_modules, save_lora
    from streamforest.train.merge_lora import merge_lora

    fx = make_training_fixtures(tmp_path / "fx")
    monkeypatch.setenv("SF_TINY", str(fx.root))
    cfg = load_config(REPO / "configs" / "train" / "tiny" / "stage4.yaml", [
        f"model.model_name_or_path={tiny_checkpoint}", "model.config_overrides={}", "training.deepspeed=null",
        "lora.enable=true", "lora.r=4", "lora.alpha=8", f"training.output_dir={tmp_path / 'run'}",
    ])
    model = build_stage_model(cfg).model
    targets = lora_target_modules(model)
    assert targets and all(t.startswith("model.layers.") for t in targets)
    assert "model.layers.0.self_attn.q_proj" in targets and "model.layers.0.mlp.down_proj" in targets
    wrapped = apply_lora(model, cfg)
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n and "vision_tower" not in n) or "mm_projector" in n for n in trainable)
    assert any("mm_projector" in n for n in trainable)
    with torch.no_grad():  # make the adapter non-trivial, as after training
        for n, p in wrapped.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
            if "mm_projector.mlp.2.bias" in n:
                p.add_(0.25)
    run_dir = tmp_path / "run"
    save_lora(wrapped, str(run_dir))
    (run_dir / "train_config.yaml").write_text(f"model:\n  model_name_or_path: {tiny_checkpoint}\n")
    assert (run_dir / "adapter_config.json").is_file() and (run_dir / NON_LORA_FILE).is_file()
    merged_dir = merge_lora(run_dir, tmp_path / "merged", dtype="float32")
    merged = load_pretrained(merged_dir, dtype="float32").model
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    wrapped.eval()
    with torch.no_grad():
        expected = wrapped(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        merged.get_model().mm_projector.mlp[2].bias, wrapped.base_model.model.get_model().mm_projector.mlp[2].bias
    )
    # and a real (short, single-process, no DeepSpeed) training run with LoRA through run()
    from streamforest.train.run import run

    out = tmp_path / "lora_run"
    cfg_run = load_config(REPO / "configs" / "train" / "tiny" / "stage4.yaml", [
        f"model.model_name_or_path={tiny_checkpoint}", "model.config_overrides={}", "training.deepspeed=null",
        "lora.enable=true", "lora.r=4", "training.max_steps=2", 'training.save_strategy="no"',
        f"training.output_dir={out}", "training.gradient_checkpointing=false",
    ])
    metrics = run(cfg_run)
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert (out / "adapter_model.safetensors").is_file() and (out / NON_LORA_FILE).is_file()
