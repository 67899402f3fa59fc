"""Inference sections of ``benchmarks/gpu_check.py``: frame intake, question latency, streams, numerics.

Each section takes a :class:`gpu_check_lib.Ctx` and returns ``{"rows": [...], "notes": [...]}``; rows are flat
dicts (one table row each). Peak memory is ``torch.cuda.max_memory_allocated`` reset at the start of the
measured step (None = n/a on CPU).
"""

from __future__ import annotations

import importlib.util
import math
import time
from typing import Any

import torch
from gpu_check_lib import (
    Ctx,
    ScenePixels,
    StreamAdapter,
    camera_frames,
    cast,
    diff_stats,
    percentiles_ms,
    text_ids,
)
from torch import Tensor


def flash_available(ctx: Ctx) -> bool:
    return ctx.cuda and importlib.util.find_spec("flash_attn") is not None


def _no_flash_note(ctx: Ctx) -> str:
    why = "flash-attn is not installed" if ctx.cuda else "CPU run"
    return f"flash_attention_2 skipped: {why}"


# ----------------------------------------------------------------------------------------------------------
# 1. Frame intake
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def section_intake(ctx: Ctx) -> dict[str, Any]:
    """Batch-1 intake (processor + ViT + pos-embed + memory update, ``exact`` memory) and batched ViT throughput."""
    s = ctx.scale
    frames = camera_frames(s.warmup + s.intake_frames, s.frame_hw)
    stream = StreamAdapter(ctx.model, "exact")
    parts: dict[str, list[float]] = {"processor": [], "vit_pos": [], "memory": [], "total": []}
    ctx.reset_peak()
    for k in range(frames.shape[0]):
        t_proc, pixels = ctx.timed(lambda k=k: ctx.processor.preprocess(frames[k])["pixel_values"])
        t_vit, feats = ctx.timed(lambda p=pixels: stream.encode(p))
        t_mem, _ = ctx.timed(lambda f=feats: stream.add(f))
        if k >= s.warmup:
            for key, value in zip(parts, (t_proc, t_vit, t_mem, t_proc + t_vit + t_mem)):
                parts[key].append(value)
    rows: list[dict[str, Any]] = []
    for key, values in parts.items():
        stats = percentiles_ms(values)
        rows.append({"measure": f"intake batch 1: {key}", "frames": len(values), **stats,
                     "target": "≤ 8 ms p50 (H100-class)" if key == "total" else "",
                     "peak_gib": ctx.peak_gib() if key == "total" else None})  # fmt: skip
    rows += vit_throughput(ctx)
    notes = [f"camera frames {s.frame_hw[0]}×{s.frame_hw[1]} uint8 through the SigLIP processor (PIL bicubic, CPU); "
             f"memory = default config, exact (deferred) consolidation; {s.warmup} warm-up frames excluded"]
    if not flash_available(ctx):
        notes.append(_no_flash_note(ctx))
    return {"rows": rows, "notes": notes}


def vit_throughput(ctx: Ctx) -> list[dict[str, Any]]:
    from gpu_check_lib import build_tower

    towers = [("sdpa", ctx.model.get_vision_tower())]
    if flash_available(ctx):
        towers.append(("flash_attention_2", build_tower(ctx.model, "flash_attention_2")))
    size = towers[0][1].image_size
    rows = []
    for attn, tower in towers:
        for batch in ctx.scale.vit_batches:
            pixels = ScenePixels(size, ctx.device).next(batch).to(ctx.dtype)
            tower(pixels)  # warm-up (kernels, allocator)
            ctx.reset_peak()
            seconds, _ = ctx.timed(lambda t=tower, p=pixels: [t(p) for _ in range(ctx.scale.timing_reps)])
            rows.append({"measure": f"ViT batch {batch} ({attn})", "frames": batch * ctx.scale.timing_reps,
                         "frames_per_s": batch * ctx.scale.timing_reps / seconds,
                         "ms_per_frame": 1e3 * seconds / (batch * ctx.scale.timing_reps), "peak_gib": ctx.peak_gib()})  # fmt: skip
    return rows


# ----------------------------------------------------------------------------------------------------------
# 2. Question latency
# ----------------------------------------------------------------------------------------------------------


class Prompt:
    """``[text prefix | visual tokens | text suffix]`` as input embeddings (random ids of the right lengths)."""

    def __init__(self, ctx: Ctx, visual: Tensor, seed: int = 0) -> None:
        embed = ctx.model.get_input_embeddings()
        vocab = ctx.model.config.vocab_size
        pre = embed(text_ids(ctx.scale.text_prefix, vocab, seed, ctx.device))
        suf = embed(text_ids(ctx.scale.text_suffix, vocab, seed + 1, ctx.device))
        self.prefix = torch.cat([pre, visual.to(pre.dtype).unsqueeze(0)], dim=1)  # [1, Lp, H]
        self.suffix = suf
        self.length = self.prefix.shape[1] + suf.shape[1]

    @property
    def full(self) -> Tensor:
        return torch.cat([self.prefix, self.suffix], dim=1)


def _logits(model: Any, embeds: Tensor, cache: Any = None) -> Any:
    return model(inputs_embeds=embeds, past_key_values=cache, use_cache=cache is not None, logits_to_keep=1)


def prefill_and_decode(ctx: Ctx, prompt: Prompt, new_tokens: int) -> dict[str, float]:
    """TTFT of the full prefill, TTFT of the suffix given a cached prefix, decode tokens/s (greedy).

    ``peak_gib``: the maximum since the caller's :meth:`Ctx.reset_peak`."""
    from transformers import DynamicCache

    model, reps = ctx.model, ctx.scale.timing_reps
    _logits(model, prompt.full)  # warm-up
    full = sorted(ctx.timed(lambda: _logits(model, prompt.full))[0] for _ in range(reps))
    cache = DynamicCache(config=model.config)
    _logits(model, prompt.prefix, cache)
    cached_len = cache.get_seq_length()
    hits = []
    for _ in range(reps):
        if cache.get_seq_length() > cached_len:
            cache.crop(cached_len - cache.get_seq_length())  # drop the previous suffix (negative = tokens to remove)
        seconds, out = ctx.timed(lambda: _logits(model, prompt.suffix, cache))
        hits.append(seconds)
    token = out.logits[:, -1:].argmax(-1)

    def decode() -> None:
        nonlocal token
        for _ in range(new_tokens):
            token = model(input_ids=token, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)

    decode_s, _ = ctx.timed(decode)
    return {"tokens": prompt.length, "ttft_full_ms": 1e3 * full[len(full) // 2], "ttft_full_min_ms": 1e3 * full[0],
            "ttft_cached_prefix_ms": 1e3 * sorted(hits)[len(hits) // 2], "decode_tok_per_s": new_tokens / decode_s,
            "peak_gib": ctx.peak_gib()}  # fmt: skip


@torch.no_grad()
def section_ttft(ctx: Ctx) -> dict[str, Any]:
    """LLM latency at the 8K default budget and the 1K budget (visual tokens = the budget's maximum)."""
    from streamforest.memory import MemoryConfig

    hidden = ctx.model.config.hidden_size
    mem = ctx.model.get_projector().memory_config
    budgets = [("default (8K)", mem.max_tokens, "≤ 300 ms (paper: 0.78–1.50 s on A100)"),
               ("demo_online (1K)", MemoryConfig.demo_online(hidden_size=mem.hidden_size, num_heads=mem.num_heads).max_tokens
                if not ctx.tiny else max(1, mem.max_tokens // 8), "≤ 40 ms")]  # fmt: skip
    rows = []
    gen = torch.Generator(device=ctx.device).manual_seed(0)
    for name, n_visual, target in budgets:
        visual = torch.randn(n_visual, hidden, generator=gen, device=ctx.device, dtype=ctx.dtype)
        ctx.reset_peak()
        rows.append({"budget": name, "visual_tokens": n_visual, **prefill_and_decode(ctx, Prompt(ctx, visual), ctx.scale.decode_tokens),
                     "target_ttft": target})  # fmt: skip
    notes = [f"TTFT = LLM prefill to the first token's logits, median of {ctx.scale.timing_reps} (synthetic token ids of the prompt lengths; visual tokens "
             "random at the budget's maximum length). 'cached prefix' = HF past_key_values holding [system + time "
             "message + visual tokens], then only the question suffix is prefilled: the computation a session prefix "
             "KV cache performs on a hit", f"decode = {ctx.scale.decode_tokens} greedy tokens, batch 1, KV cache"]  # fmt: skip
    if ctx.tiny:
        notes.append("--tiny: the 1K row uses 1/8 of the tiny memory budget")
    return {"rows": rows, "notes": notes}


QUESTION_RESERVE_S = 20.0
"""Seconds kept for the question after a stream that hit its time cap (full runs)."""


def _stream_to(ctx: Ctx, stream: StreamAdapter, pixels: ScenePixels, frames: int, deadline: float = math.inf) -> float:
    """Push simulated frames through the real ViT + memory until ``frames`` (or until ``deadline`` minus
    :data:`QUESTION_RESERVE_S`; at least one batch: the row then shows the frames reached); returns seconds spent."""
    t0 = time.perf_counter()
    while stream.frames < frames and (stream.frames == 0 or time.perf_counter() < deadline - QUESTION_RESERVE_S):
        stream.ingest(pixels.next(min(ctx.scale.stream_batch, frames - stream.frames)))
    ctx.sync()
    return time.perf_counter() - t0


def ask(ctx: Ctx, stream: StreamAdapter) -> dict[str, Any]:
    """A question now: memory read-out + MLP (timed) then the LLM prefill/decode of :func:`prefill_and_decode`."""
    ctx.reset_peak()
    read_s, visual = ctx.timed(stream.visual_tokens)
    llm = prefill_and_decode(ctx, Prompt(ctx, visual), ctx.scale.decode_tokens)
    return {"visual_tokens": int(visual.shape[0]), "read_mlp_ms": 1e3 * read_s,
            "ttft_ms": 1e3 * read_s + llm["ttft_full_ms"], **llm, "memory_state_mib": stream.nbytes() / 2**20}  # fmt: skip


@torch.no_grad()
def section_sessions(ctx: Ctx) -> dict[str, Any]:
    """``exact`` and ``bounded`` streams at 1 fps, a question after each of ``stream_minutes``."""
    rows, notes = [], []
    modes = ("exact", "bounded")
    for k, mode in enumerate(modes):
        stream = StreamAdapter(ctx.model, mode)
        pixels = ScenePixels(stream.model.get_vision_tower().image_size, ctx.device, seed=1)
        now = time.perf_counter()
        deadline = now + (ctx.deadline - now) / (len(modes) - k)  # an equal share of the section's time cap
        spent = 0.0
        for minutes in ctx.scale.stream_minutes:
            wanted = int(round(60 * minutes))
            spent += _stream_to(ctx, stream, pixels, wanted, deadline)
            rows.append({"mode": mode, "minutes": stream.frames / 60, "frames": stream.frames, **ask(ctx, stream),
                         "ingest_ms_per_frame": 1e3 * spent / stream.frames})  # fmt: skip
            if stream.frames < wanted:
                notes.append(f"{mode}: stopped at {stream.frames} of {wanted} frames (section time cap)")
                break
    notes += ["simulated frames (pixels made on the device, scene cuts every 3–20 frames) through the real ViT in "
             f"batches of {ctx.scale.stream_batch}, position embedding and the memory; the image processor is "
             "excluded (see intake). ttft_ms = read-out + MLP + full LLM prefill"]  # fmt: skip
    return {"rows": rows, "notes": notes}


# ----------------------------------------------------------------------------------------------------------
# 3. Peak memory of a long bounded stream
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def section_hour(ctx: Ctx) -> dict[str, Any]:
    """A bounded stream of ``hour_minutes`` at 1 fps through the real ViT, then a question; peak memory."""
    stream = StreamAdapter(ctx.model, "bounded")
    pixels = ScenePixels(stream.model.get_vision_tower().image_size, ctx.device, seed=2)
    frames = int(round(60 * ctx.scale.hour_minutes))
    ctx.reset_peak()
    spent = _stream_to(ctx, stream, pixels, frames, ctx.deadline)
    notes = [] if stream.frames == frames else [f"stopped at {stream.frames} of {frames} frames (section time cap)"]
    stream_peak = ctx.peak_gib()
    answer = ask(ctx, stream)
    weights = sum(p.numel() * p.element_size() for p in ctx.model.parameters()) / 2**30
    row = {"minutes": stream.frames / 60, "frames": stream.frames, "ingest_s": spent, "stream_peak_gib": stream_peak,
           "question_peak_gib": answer["peak_gib"], "weights_gib": weights, "visual_tokens": answer["visual_tokens"],
           "ttft_ms": answer["ttft_ms"], "memory_state_mib": answer["memory_state_mib"],
           "target": "≤ 18 GB peak for inference (paper ≈ 17 GB flat)"}  # fmt: skip
    notes.append(f"simulated frames through the real ViT (not injected features), batches of {ctx.scale.stream_batch}; "
                 "peak = torch.cuda.max_memory_allocated")
    return {"rows": [row], "notes": notes}


# ----------------------------------------------------------------------------------------------------------
# 4. Numerics
# ----------------------------------------------------------------------------------------------------------


def _first_logits(ctx: Ctx, visual: Tensor) -> Tensor:
    return _logits(ctx.model, Prompt(ctx, visual).full).logits[0, -1].float()


@torch.no_grad()
def section_numerics(ctx: Ctx) -> dict[str, Any]:
    """bf16 vs fp32 (same bf16-rounded weights), sdpa vs flash-attention, batch-invariance of the ViT."""
    s, model = ctx.scale, ctx.model
    pixels = ScenePixels(model.get_vision_tower().image_size, ctx.device, seed=3).next(s.numerics_frames)
    rows: list[dict[str, Any]] = []
    same = StreamAdapter(model).encode(pixels)
    rows += batch_invariance(ctx, pixels, same)
    rows += attention_rows(ctx, pixels, same)
    out: dict[torch.dtype, tuple[Tensor, Tensor, Tensor]] = {}
    visual: Tensor | None = None
    for dtype in (torch.bfloat16, torch.float32):  # weights are bf16 values: the casts are lossless
        with cast(model, dtype):
            feats = StreamAdapter(model).encode(pixels)
            tokens = model.get_projector().project(feats)
            if visual is None:  # the same input embeddings (bf16 values) for both logit passes
                visual = tokens.reshape(-1, tokens.shape[-1])[: s.numerics_prompt]
            out[dtype] = (feats, tokens, _first_logits(ctx, visual.to(dtype)))
    (f16, t16, l16), (f32, t32, l32) = out[torch.bfloat16], out[torch.float32]
    assert visual is not None
    rows.append({"check": "ViT+pos features: bf16 vs fp32", **diff_stats(f16, f32)})
    rows.append({"check": "visual tokens (MLP out): bf16 vs fp32", **diff_stats(t16, t32)})
    rows.append({"check": f"first-token logits ({visual.shape[0]} visual tokens): bf16 vs fp32", **diff_stats(l16, l32),
                 "argmax_equal": bool(l16.argmax() == l32.argmax())})  # fmt: skip
    notes = [f"{s.numerics_frames} simulated frames; fp32 = the same (bf16-rounded) weights upcast, so only compute "
             "precision differs; max_rel = max|a-b| / max|b|, mean_rel = mean|a-b| / mean|b|"]  # fmt: skip
    if not flash_available(ctx):
        notes.append(_no_flash_note(ctx) + "; the attention comparison uses eager vs sdpa (same code)")
    for row in rows:
        if any(isinstance(v, float) and not math.isfinite(v) for v in row.values()):
            notes.append(f"NON-FINITE values in {row['check']}")
    return {"rows": rows, "notes": notes}


def attention_rows(ctx: Ctx, pixels: Tensor, reference: Tensor) -> list[dict[str, Any]]:
    """ViT features and first-token logits with flash-attention 2 (eager where it is absent) vs sdpa."""
    from gpu_check_lib import build_tower

    model = ctx.model
    alt = "flash_attention_2" if flash_available(ctx) else "eager"
    feats = StreamAdapter(model).encode(pixels, tower=build_tower(model, alt))
    rows = [{"check": f"ViT features ({ctx.dtype}): {alt} vs sdpa", **diff_stats(feats, reference)}]
    tokens = model.get_projector().project(reference)
    visual = tokens.reshape(-1, tokens.shape[-1])[: ctx.scale.numerics_prompt]
    sdpa = _first_logits(ctx, visual)
    before = model.config._attn_implementation
    model.config._attn_implementation = alt  # the LLM's attention layers read it at every forward
    try:
        other = _first_logits(ctx, visual)
    finally:
        model.config._attn_implementation = before
    rows.append({"check": f"first-token logits ({ctx.dtype}, LLM): {alt} vs sdpa", **diff_stats(other, sdpa),
                 "argmax_equal": bool(other.argmax() == sdpa.argmax())})  # fmt: skip
    return rows


def batch_invariance(ctx: Ctx, pixels: Tensor, batched: Tensor) -> list[dict[str, Any]]:
    """ViT features of each frame alone (batch 1) and at larger batches vs the batch of all frames."""
    stream = StreamAdapter(ctx.model)
    single = torch.cat([stream.encode(pixels[i : i + 1], start=i) for i in range(pixels.shape[0])])
    rows = [{"check": f"ViT ({ctx.dtype}) batch 1 vs batch {pixels.shape[0]}", **diff_stats(single, batched),
             "bit_identical": bool(torch.equal(single, batched))}]  # fmt: skip
    big = max(ctx.scale.vit_batches)
    extra = ScenePixels(pixels.shape[-1], ctx.device, seed=4).next(big - pixels.shape[0])
    wide = stream.encode(torch.cat([pixels, extra.to(pixels.dtype)]))[: pixels.shape[0]]
    rows.append({"check": f"ViT ({ctx.dtype}) batch {big} vs batch {pixels.shape[0]} (same frames)", **diff_stats(wide, batched),
                 "bit_identical": bool(torch.equal(wide, batched))})  # fmt: skip
    return rows
