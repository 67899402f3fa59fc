"""Training sections of ``benchmarks/gpu_check.py``: one stage-4 step at real size under DeepSpeed on one device.

The model is built at random init (as the inference sections); the stage-4 settings come from the project's
own config (``configs/train/stage4_online_ft.yaml``: tunable parts, LoRA r/alpha, gradient checkpointing), the
optimizer groups from ``streamforest.train.optim`` and the ZeRO settings from ``scripts/deepspeed/*.json``
with HF's ``"auto"`` values filled in as the HF Trainer would. The sample is one stage-4 video sample: frames
through the frozen ViT and the event memory (≈ 8K visual tokens at full size) spliced into a prompt with a
supervised answer.
"""

from __future__ import annotations

import gc
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check_lib import Ctx, ScenePixels, build_model, text_ids

REPO = Path(__file__).resolve().parents[1]
STAGE4 = REPO / "configs" / "train" / "stage4_online_ft.yaml"
DS_DIR = REPO / "scripts" / "deepspeed"


class Skip(Exception):
    """A section that cannot run here (recorded as ``skipped`` with the message)."""


def init_single_process(cuda: bool) -> None:
    """A one-process group (nccl on CUDA, gloo on CPU) for DeepSpeed, unless one exists."""
    import deepspeed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")


def ds_config(name: str, hidden: int, bf16: bool, clip: float) -> dict[str, Any]:
    """``scripts/deepspeed/<name>`` (optimizer block stripped) with batch 1 and the ``"auto"`` values filled."""
    from streamforest.train.optim import strip_optimizer_block

    cfg = strip_optimizer_block(str(DS_DIR / name))
    cfg.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1, train_batch_size=1, gradient_clipping=clip)
    cfg["bf16"] = {"enabled": bf16}
    cfg["fp16"] = {"enabled": False}
    zero = cfg.get("zero_optimization", {})
    autos = {"reduce_bucket_size": hidden * hidden, "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
             "stage3_param_persistence_threshold": 10 * hidden}  # fmt: skip
    for key, value in autos.items():
        if zero.get(key) == "auto":
            zero[key] = value
    if zero.get("offload_optimizer", {}).get("device") == "cpu":
        cfg["zero_force_ds_cpu_optimizer"] = False  # keep the project's torch AdamW groups (no JIT-built CPU Adam)
    return cfg


def stage_config(lora: bool) -> Any:
    from streamforest.train.config import load_config

    return load_config(STAGE4, [f"lora.enable={'true' if lora else 'false'}", "training.deepspeed=null"])


def sample(ctx: Ctx, model: Any) -> dict[str, Any]:
    """One stage-4 sample: ``[prefix, <image>, question, answer]`` ids, answer-only labels, the video frames."""
    from streamforest.constants import IMAGE_TOKEN_INDEX

    s, vocab, dev = ctx.scale, model.config.vocab_size, ctx.device
    image = torch.full((1, 1), IMAGE_TOKEN_INDEX, device=dev)
    parts = [text_ids(s.text_prefix, vocab, 0, dev), image, text_ids(s.text_suffix, vocab, 1, dev),
             text_ids(s.train_answer, vocab, 2, dev)]  # fmt: skip
    ids = torch.cat(parts, dim=1)
    labels = ids.clone()
    labels[:, : ids.shape[1] - s.train_answer] = -100
    pixels = ScenePixels(model.get_vision_tower().image_size, dev, seed=5).next(s.train_frames)
    return {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
            "images": [pixels.to(model.dtype)], "modalities": ["video"]}  # fmt: skip


def release() -> None:
    """Free what the last training step left (DeepSpeed engines hold reference cycles)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_step(ctx: Ctx, *, lora: bool, zero: str, compile_model: bool = False, steps: int = 2) -> dict[str, Any]:
    """Build, wrap with DeepSpeed, run ``steps`` steps; the last one is timed."""
    import deepspeed

    from streamforest.train.lora import apply_lora
    from streamforest.train.optim import build_param_groups, make_optimizer, set_tunable_parts

    ctx.release_model()  # the inference model is not needed any more
    init_single_process(ctx.cuda)
    cfg = stage_config(lora)
    dtype = ctx.dtype if ctx.cuda else torch.float32  # CPU: fp32 as the tiny training configs
    model, _ = build_model(ctx.device, dtype, ctx.tiny)
    model.train()
    counts = set_tunable_parts(model, cfg.model.mm_tunable_parts)
    if cfg.training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        model = apply_lora(model, cfg)
    t = cfg.training
    groups = build_param_groups(model, learning_rate=t.learning_rate, weight_decay=t.weight_decay,
                                mm_projector_lr=t.mm_projector_lr, mm_vision_tower_lr=t.mm_vision_tower_lr)  # fmt: skip
    trainable = sum(p.numel() for g in groups for p in g.params)
    config = ds_config(zero, model.config.hidden_size, dtype == torch.bfloat16, t.max_grad_norm)
    engine, *_ = deepspeed.initialize(model=model, optimizer=make_optimizer(groups), config=config)
    if compile_model:
        engine.compile()
    batch = sample(ctx, engine.module)
    times, losses, seq = [], [], 0
    for _ in range(steps):
        ctx.reset_peak()
        ctx.sync()
        t0 = time.perf_counter()
        out = engine(**batch)
        seq, loss = int(out.logits.shape[1]), out.loss
        del out
        engine.backward(loss)
        engine.step()
        ctx.sync()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    peak = ctx.peak_gib()
    if hasattr(engine, "destroy"):
        engine.destroy()  # removes DeepSpeed's hooks so that the model can be freed
    del engine, model
    return {"variant": (f"LoRA r={cfg.lora.r}" if lora else "full fine-tune") + f", {zero}"
            + (", torch.compile" if compile_model else ""), "frames": ctx.scale.train_frames, "sequence": seq,
            "visual_tokens": seq - batch["input_ids"].shape[1] + 1, "trainable_params": trainable,
            "base_trainable_parts": counts, "first_step_s": times[0], "step_s": times[-1],
            "tokens_per_s": seq / times[-1], "loss": losses[-1], "peak_gib": peak,
            "gradient_checkpointing": bool(cfg.training.gradient_checkpointing)}  # fmt: skip


def section_train_lora(ctx: Ctx) -> dict[str, Any]:
    """Stage-4 step, LoRA on the LLM (+ the projector MLP), ZeRO-2, gradient checkpointing."""
    try:
        row = train_step(ctx, lora=True, zero="zero2.json")
    finally:
        release()
    return {"rows": [row], "notes": [_train_note(ctx)]}


def host_ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def section_train_full(ctx: Ctx) -> dict[str, Any]:
    """Stage-4 step, full fine-tune of projector + LLM with ZeRO-3 (CPU offload at full size)."""
    if ctx.tiny:
        zero = "zero3.json"  # the offload path would JIT-build DeepSpeed's CPU Adam op: minutes on a CPU box
        note = "--tiny: ZeRO-3 without offload (scripts/deepspeed/zero3.json)"
    else:
        zero = "zero3_offload.json"
        from streamforest.tiny import describe_real

        params = describe_real()["total"]
        need = 16 * params * 1.1 / 2**30  # bf16 param + grad, fp32 master + Adam m, v on the host
        if host_ram_gib() < need:
            raise Skip(f"ZeRO-3 CPU offload needs ≈ {need:.0f} GiB host RAM for {params / 1e9:.1f} B parameters "
                       f"(fp32 master + Adam states + bf16 params/grads); this host has {host_ram_gib():.0f} GiB")  # fmt: skip
        note = "optimizer: the project's torch AdamW groups on the host (zero_force_ds_cpu_optimizer=false)"
    try:
        row = train_step(ctx, lora=False, zero=zero)
    finally:
        release()
    return {"rows": [row], "notes": [_train_note(ctx), note]}


def section_train_compile(ctx: Ctx) -> dict[str, Any]:
    """The LoRA step with ``torch_compile`` on (DeepSpeed ``engine.compile()``)."""
    if ctx.tiny:
        raise Skip("--tiny: torch.compile (inductor) takes minutes on a CPU; measured on GPU runs only")
    try:
        row = train_step(ctx, lora=True, zero="zero2.json", compile_model=True, steps=3)
    finally:
        release()
    return {"rows": [row], "notes": [_train_note(ctx), "first_step_s includes compilation"]}


def _train_note(ctx: Ctx) -> str:
    return (f"one stage-4 sample: {ctx.scale.train_frames} simulated frames → frozen ViT → event memory (the "
            "model's memory config) → MLP, spliced into a prompt with a supervised answer; step = forward + backward + optimizer "
            "step, the second of two steps is timed (first_step_s includes allocation/warm-up); tokens_per_s = "
            "sequence / step_s; DeepSpeed on one process")  # fmt: skip
