"""Prefix-cache benchmark: question latency with and without the KV cache of the prompt head (not a test).

    python benchmarks/prefix_cache_bench.py --quick      # smoke run (~2-4 min on 2 CPU cores)
    python benchmarks/prefix_cache_bench.py              # longer streams, more measured hits

Part 1 — latency (reference default memory: 729 now tokens, 18+ short frames × 128, 5,120-token long memory,
width 1152). A stand-in model: the tiny tokenizer, a random Qwen2 LLM large enough that prefill dominates a
question on this CPU (``--llm-hidden``/``--llm-layers``), the real projector shape 1152→H→H; the vision tower
is bypassed — stand-in features (random, with scene structure, ``streaming_bench.StandInTower``) are injected
in place of the ViT output, the memory position embedding is applied as usual. Two ``bounded`` sessions see
the same 1-fps stream, one with the prefix cache, one without. After the long memory is full, a question is
asked on both at every frame where the long memory did not change since the cached session's previous
lookup (a *hit*); latency = wall time of ``session.ask``.

Part 2 — hit rates over a 1-fps stream (LLM-free: the outcome of a lookup depends only on the memory layout,
so the real memory is driven with stand-in features and each lookup is classified with the cache's own
rules): a question every 10 s, and a probe every frame; over the whole stream and once the long memory is
full. Also the FLOP ratio the same reuse gives Qwen2-7B (28 layers, width 3584, 6.5 B non-embedding
parameters) at the measured prompt lengths (≈ 8-9 K tokens).

Part 3 — greedy agreement: a trained demo checkpoint (``--model``) if given, else the untrained tiny
checkpoint: bounded sessions with and without the cache over a long stream, a question every 10 s; the
share of questions with the same generated ids.

The last line reads ``prefix cache: <N.N>x lower question latency on hits (...)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from streaming_bench import StandInTower, synthetic_frames  # noqa: E402

from streamforest.streaming import StreamingSession  # noqa: E402
from streamforest.streaming.prefix_cache import Run, _classify, _common_tokens  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUESTION = "What is the car in front doing?"
QWEN7B = {"layers": 28, "width": 3584, "params": 6.5e9}


class _NoPixels:
    """Image processor stand-in: the stand-in tower ignores pixels."""

    def preprocess(self, frames: Any, return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.zeros(len(frames), 3, 1, 1)}


def standin_model(tokenizer_dir: Path, hidden: int, layers: int, seed: int = 0) -> tuple[Any, Any]:
    """A random LlavaQwen at the default memory config whose ``encode_frames`` returns stand-in features."""
    from transformers import AutoTokenizer

    from streamforest.model.llava_qwen import LlavaQwenForCausalLM
    from streamforest.tiny import make_tiny_tokenizer, tiny_config

    make_tiny_tokenizer(tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    vision = {"hidden_size": 1152, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 16,
              "image_size": 378, "patch_size": 14}  # fmt: skip
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")}
    cfg = tiny_config("tome729_fstw_pemf", vocab_size=64 * (len(tokenizer) // 64 + 2), hidden_size=hidden,
                      intermediate_size=3 * hidden, num_hidden_layers=layers, num_attention_heads=max(4, hidden // 64),
                      num_key_value_heads=max(2, hidden // 256), mm_hidden_size=1152, vision_config=vision,
                      memory_config=None, bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                      eos_token_id=ids["<|im_end|>"])  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaQwenForCausalLM(cfg).eval()
    tower, counter = StandInTower(seed=seed), [0]

    def encode_frames(pixel_values: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        start = counter[0]
        counter[0] += pixel_values.shape[0]
        return torch.stack([tower.frame(k) for k in range(start, counter[0])])

    model.encode_frames = encode_frames  # the ViT is bypassed: injected stand-in features
    return model, tokenizer


def part1_latency(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for cached in (True, False):
            model, tok = standin_model(Path(tmp) / f"tok{cached}", args.llm_hidden, args.llm_layers)
            sessions[cached] = StreamingSession(model, tok, _NoPixels(), mode="bounded", max_new_tokens=args.new_tokens,
                                                encode_batch_size=1, prefix_cache=cached)  # fmt: skip
        cfg = sessions[True].memory.config
        frame = np.zeros((8, 8, 3), np.uint8)
        lat: dict[bool, list[float]] = {True: [], False: []}
        agree, prompt_tokens, reused, k = 0, [], [], 0
        bar = tqdm(desc="part 1: hits measured", total=args.hits, leave=False)
        previous: list[Any] | None = None
        while len(lat[True]) < args.hits and k < args.max_frames:
            for s in sessions.values():
                s.push(frame, k + 0.5)
            k += 1
            long_ids = [ident for kind, ident, _ in sessions[True].memory.layout() if kind == "long"]
            full = sessions[True].memory.token_counts()["long"] > cfg.long_token_quota - 8 * cfg.long_tokens_per_frame
            if not full:
                continue
            if previous != long_ids:  # prime (or re-prime) the cache on this frame; not a hit
                sessions[True].ask(QUESTION)
                previous = long_ids
                continue
            before = sessions[True]._prefix.reused_tokens
            answers = {}
            for cached, s in sessions.items():
                t0 = time.perf_counter()
                answers[cached] = s.ask(QUESTION)
                lat[cached].append(time.perf_counter() - t0)
            reused.append(sessions[True]._prefix.reused_tokens - before)
            prompt_tokens.append(answers[True].prompt_tokens)
            agree += answers[True].output_ids == answers[False].output_ids
            bar.update(1)
        bar.close()
    if not lat[True]:
        raise SystemExit(f"no cache hit with a full long memory within {args.max_frames} frames; raise --max-frames")
    med = {c: statistics.median(v) for c, v in lat.items()}
    return {"hits": len(lat[True]), "frames": k, "cached_ms": 1e3 * med[True], "uncached_ms": 1e3 * med[False],
            "speedup": med[False] / med[True], "prompt_tokens": statistics.median(prompt_tokens),
            "reused_tokens": statistics.median(reused), "same_ids": agree, "llm_hidden": args.llm_hidden,
            "llm_layers": args.llm_layers, "stats": sessions[True].stats()["prefix_cache"]}  # fmt: skip


def prefill_flops(total: int, reused: int, layers: int, width: int, params: float) -> float:
    """Prefill FLOPs of tokens ``reused..total-1`` given the KV of the first ``reused`` (causal attention)."""
    new = total - reused
    attn = 2 * 2 * layers * width * (new * (reused + total + 1) / 2)  # QK^T and AV over the visible keys
    return 2 * params * new + attn


def part2_hit_rates(args: argparse.Namespace) -> dict[str, Any]:
    from streamforest.memory import EventMemory, MemoryConfig
    from streamforest.pos_embed import memory_pos_embed

    head, tail = Run("text", tuple(range(14)), 14), Run("text", tuple(range(100, 160)), 60)  # ≈ qwen_2 lengths
    memory, tower = EventMemory(MemoryConfig(consolidation="eager")), StandInTower(seed=1)
    schedules = {"question every 10 s": 10, "probe every frame": 1}
    state = {name: {"runs": None, "all": {}, "full": {}, "flops": [0.0, 0.0], "flops_full": [0.0, 0.0]} for name in schedules}
    full_at = None
    with torch.no_grad():
        for k in tqdm(range(args.hit_frames), desc="part 2: hit rates", unit="frame", leave=False):
            memory.add_frames(tower.frame(k)[None] + memory_pos_embed(1, 27, 1152, start=k))
            cfg = memory.config
            if full_at is None and memory.token_counts()["long"] > cfg.long_token_quota - 8 * cfg.long_tokens_per_frame:
                full_at = k
            runs = [head, *(Run(kind, i, n) for kind, i, n in memory.layout()), tail]
            total = sum(r.length for r in runs)
            for name, every in schedules.items():
                if (k + 1) % every:
                    continue
                st = state[name]
                outcome = _classify(st["runs"], runs, "cold")
                reuse = min(_common_tokens(st["runs"], runs), total - 1) if st["runs"] else 0
                cost = [prefill_flops(total, 0, **QWEN7B), prefill_flops(total, reuse, **QWEN7B)]
                for key in ("all", "full") if full_at is not None else ("all",):
                    st[key][outcome] = st[key].get(outcome, 0) + 1
                    flops = st["flops" if key == "all" else "flops_full"]
                    flops[0], flops[1] = flops[0] + cost[0], flops[1] + cost[1]
                st["runs"] = runs[:-1]
                st["last_total"] = total
    out: dict[str, Any] = {"frames": args.hit_frames, "long_full_from_frame": full_at, "schedules": {}}
    for name, st in state.items():
        rows = {}
        for key in ("all", "full"):
            counts = st[key]
            n = sum(counts.values())
            flops = st["flops" if key == "all" else "flops_full"]
            rows[key] = {"lookups": n, "outcomes": counts, "hit_rate": counts.get("hit", 0) / n if n else 0.0,
                         "qwen7b_flop_ratio": flops[0] / flops[1] if flops[1] else 0.0}  # fmt: skip
        out["schedules"][name] = rows
    # one hit on the next frame (long + all but the newest short frame reused) at the typical prompt length
    total = st["last_total"]
    fresh = cfg.short_tokens + cfg.now_tokens + tail.length  # newest short frame, current frame, text
    out["qwen7b_hit_flop_ratio"] = prefill_flops(total, 0, **QWEN7B) / prefill_flops(total, total - fresh, **QWEN7B)
    out["qwen7b_long_only_flop_ratio"] = prefill_flops(total, 0, **QWEN7B) / prefill_flops(total, 14 + cfg.long_token_quota, **QWEN7B)
    out["typical_prompt_tokens"] = total
    return out


def part3_agreement(args: argparse.Namespace) -> dict[str, Any]:
    from streamforest.model.loader import load_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            from streamforest.tiny import make_tiny_checkpoint

            path = make_tiny_checkpoint(Path(tmp) / "tiny")
        loaded = load_pretrained(path, dtype="float32")
    sessions = [StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, mode="bounded",
                                 max_new_tokens=args.new_tokens, prefix_cache=c) for c in (True, False)]  # fmt: skip
    frames = synthetic_frames(args.agree_frames, size=64, seed=2)
    same = total = 0
    for k in tqdm(range(args.agree_frames), desc="part 3: agreement", unit="frame", leave=False):
        for s in sessions:
            s.push(frames[k], k + 0.5)
        if (k + 1) % 10 == 0:
            a, b = (s.ask(QUESTION) for s in sessions)
            same += a.output_ids == b.output_ids
            total += 1
    return {"model": "trained: " + str(args.model) if args.model else "untrained tiny checkpoint (no demo-trained model reachable)",
            "questions": total, "same": same, "agreement": same / total if total else 0.0,
            "stats": sessions[0].stats()["prefix_cache"]}  # fmt: skip


def markdown(p1: dict[str, Any], p2: dict[str, Any], p3: dict[str, Any], argv: list[str]) -> str:
    lines = ["# Prefix-cache benchmark", "", f"`python benchmarks/prefix_cache_bench.py {' '.join(argv)}` — CPU, "
             f"{torch.get_num_threads()} thread(s).", "", "## Question latency on cache hits (long memory full)", "",
             f"Default memory config, stand-in LLM (Qwen2 layout, width {p1['llm_hidden']}, {p1['llm_layers']} layers, "
             "random weights), stand-in ViT features injected; bounded sessions; median over "
             f"{p1['hits']} hits within {p1['frames']} frames; {args_new_tokens(p1)} new tokens.", "",
             "| prompt tokens | reused tokens | without cache ms | with cache ms | speed-up | same ids |",
             "|---|---|---|---|---|---|",
             f"| {p1['prompt_tokens']:.0f} | {p1['reused_tokens']:.0f} | {p1['uncached_ms']:.0f} | {p1['cached_ms']:.0f} "
             f"| {p1['speedup']:.1f}× | {p1['same_ids']}/{p1['hits']} |", "",
             "## Hit rates over a 1-fps stream (default memory, eager consolidation)", "",
             f"{p2['frames']} frames; the long memory is full from frame {p2['long_full_from_frame']}. FLOP ratio = "
             "Qwen2-7B prefill FLOPs without / with the cache over the same lookups.", "",
             "| schedule | part | lookups | hit | extension | merge | cold | hit rate | Qwen2-7B FLOP ratio |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, rows in p2["schedules"].items():
        for key, row in rows.items():
            o = row["outcomes"]
            lines.append(f"| {name} | {'whole stream' if key == 'all' else 'long memory full'} | {row['lookups']} | "
                         f"{o.get('hit', 0)} | {o.get('extension', 0)} | {o.get('merge', 0)} | {o.get('cold', 0)} | "
                         f"{100 * row['hit_rate']:.0f} % | {row['qwen7b_flop_ratio']:.2f}× |")  # fmt: skip
    lines += ["", f"Qwen2-7B at {p2['typical_prompt_tokens']} tokens: a hit on the next frame (long memory + short "
              f"window reused) needs {p2['qwen7b_hit_flop_ratio']:.1f}× fewer prefill FLOPs; reusing only the long "
              f"memory (5,120 tokens) {p2['qwen7b_long_only_flop_ratio']:.1f}×.", "",
              "## Greedy agreement with and without the cache", "",
              f"{p3['model']}: {p3['same']}/{p3['questions']} questions ({100 * p3['agreement']:.1f} %) give the same "
              f"generated ids (bounded, a question every 10 s, cache hit rate {100 * p3['stats']['hit_rate']:.0f} %, "
              f"{100 * reuse_share(p3['stats']):.0f} % of the prompt tokens taken from the cache).", ""]  # fmt: skip
    return "\n".join(lines)


def reuse_share(stats: dict[str, Any]) -> float:
    total = stats["reused_tokens"] + stats["prefilled_tokens"]
    return stats["reused_tokens"] / total if total else 0.0


def args_new_tokens(p1: dict[str, Any]) -> str:
    return str(p1.get("new_tokens", "?"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer hits, frames and questions")
    parser.add_argument("--llm-hidden", type=int, default=256, help="stand-in LLM width")
    parser.add_argument("--llm-layers", type=int, default=2, help="stand-in LLM layers")
    parser.add_argument("--hits", type=int, default=None, help="cache hits measured in part 1 (default 10; quick 3)")
    parser.add_argument("--hit-frames", type=int, default=None, help="part-2 stream length (default 3600; quick 600)")
    parser.add_argument("--agree-frames", type=int, default=None, help="part-3 stream length (default 1800; quick 600)")
    parser.add_argument("--max-frames", type=int, default=400, help="part 1: give up after this many frames")
    parser.add_argument("--new-tokens", type=int, default=4, help="generated tokens per answer")
    parser.add_argument("--model", default=None, help="part 3: a trained checkpoint (default: untrained tiny)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    args.hits = args.hits or (3 if args.quick else 10)
    args.hit_frames = args.hit_frames or (600 if args.quick else 3600)
    args.agree_frames = args.agree_frames or (600 if args.quick else 1800)
    torch.set_num_threads(args.threads)
    p1 = {**part1_latency(args), "new_tokens": args.new_tokens}
    p2 = part2_hit_rates(args)
    p3 = part3_agreement(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "prefix_cache_bench_quick" if args.quick else "prefix_cache_bench"
    text = markdown(p1, p2, p3, argv) + "\n" + headline(p1, p3)
    (args.out / f"{stem}.md").write_text(text + "\n", encoding="utf-8")
    (args.out / f"{stem}.json").write_text(json.dumps({"latency": p1, "hit_rates": p2, "agreement": p3}, indent=1,
                                                      default=str), encoding="utf-8")  # fmt: skip
    print(text)
    return 0


def headline(p1: dict[str, Any], p3: dict[str, Any]) -> str:
    """The last line: ``prefix cache: <N.N>x lower question latency on hits (...)``."""
    return (f"prefix cache: {p1['speedup']:.1f}x lower question latency on hits ({p1['prompt_tokens']:.0f}-token "
            f"prompts, {p1['reused_tokens']:.0f} reused, long memory full, stand-in LLM width {p1['llm_hidden']} x "
            f"{p1['llm_layers']} layers, median of {p1['hits']}; greedy agreement {100 * p3['agreement']:.0f} %)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
