"""Tiny StreamForest checkpoints in exactly the released format, built locally (tests, demo, CI).

Nothing is downloaded: the tokenizer is a byte-level BPE trained here with ``tokenizers`` and saved with
Qwen2's pre-tokenizer (Qwen special tokens ``<|endoftext|>`` (pad/bos), ``<|im_start|>``, ``<|im_end|>`` (eos)),
the weights are random (seeded). Sizes (docs/ARCHITECTURE.md): SigLIP 56² / patch 14 (P = 16), width 64,
4 heads, 3 layers before truncation, MLP 128; Qwen2 width 64, 2 layers, 4 / 2 KV heads, MLP 128.

    python -m streamforest.tiny OUT_DIR [--projector tome729_fstw_pemf] [--seed 0]
    python -m streamforest.tiny --describe-real      # parameter counts of the real architecture (meta device)
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from streamforest.console import say
from streamforest.model.config import RELEASED_PRESETS, SO400M_VISION_CONFIG, LlavaQwenConfig, checkpoint_keys
from streamforest.model.llava_qwen import LlavaQwenForCausalLM
from streamforest.model.loader import load_tokenizer, save_released

logger = logging.getLogger(__name__)

__all__ = [
    "TINY_MEMORY_CONFIG",
    "TINY_VISION_CONFIG",
    "describe_real",
    "make_tiny_checkpoint",
    "make_tiny_tokenizer",
    "real_config",
    "tiny_config",
]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
"""Pre-tokenizer split pattern of Qwen2's ``tokenizer.json`` (digits one by one). The tiny tokenizer.json uses it
(NFC, this split, byte-level without regex) so that prompts — time messages included — split like Qwen2's."""

TINY_VISION_CONFIG: dict[str, Any] = {
    **SO400M_VISION_CONFIG,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": 56,
    "patch_size": 14,
}
"""Tiny SigLIP before truncation (2 layers are kept); grid 4, P = 16 tokens per frame."""

TINY_MEMORY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_heads": 4,
    "now_tokens": 16,
    "short_tokens": 8,
    "long_tokens_per_frame": 4,
    "short_frames": 6,
    "event_window": 4,
    "long_token_quota": 64,
}
"""Memory hyper-parameters scaled to the tiny tower (docs/ARCHITECTURE.md)."""

_CORPUS = """
You are a helpful assistant. The video contains frames sampled from the past seconds ago of the entire video
up to the present moment. The video lasts for seconds, and frames are uniformly sampled from it.
Answer with the option's letter from the given choices directly. A. B. C. D. E. Yes. No.
What colour is the traffic light? The traffic light is red. The traffic light is green. The light is yellow.
How many cars are in front of the ego vehicle? There are two cars. There is one truck and a bus.
Is there a pedestrian crossing the road? A pedestrian is crossing the street at the crosswalk.
The car turns left at the intersection. The car turns right. The vehicle stops. The vehicle moves forward.
What is the person doing? The person is walking. The man is riding a bicycle. The woman is holding a cup.
Describe the scene. A road with trees, buildings, a white line, a blue sky and the sun.
0 1 2 3 4 5 6 7 8 9 10 11 12 20 30 0.5 1.5 12.5 35.0 35.5 seconds frames video image first then next last.
"""


def _train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    # Used (and saved) with Qwen2's normaliser and pre-tokenizer; the merges stay those learned above, so ids
    # equal what transformers 5's Qwen2Tokenizer always gave for these files.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return tok


def make_tiny_tokenizer(
    out_dir: str | Path, texts: Iterable[str] | None = None, vocab_size: int = 1024
) -> Any:
    """Train a byte-level BPE tokenizer on a built-in corpus (+ ``texts``) and save it to ``out_dir``.

    Returns the ``PreTrainedTokenizerFast`` (loadable again with ``streamforest.model.loader.load_tokenizer``).
    ``<|endoftext|>`` is pad (and nominal bos; none is added, like Qwen), ``<|im_end|>`` is eos.
    """
    from transformers import PreTrainedTokenizerFast

    corpus = [line for line in _CORPUS.splitlines() if line.strip()] + [str(t) for t in (texts or [])]
    raw = _train_tokenizer(corpus, vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=32768,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    return tokenizer


def tiny_config(
    projector_type: str = "tome729_fstw_pemf", vocab_size: int = 1024, **overrides: Any
) -> LlavaQwenConfig:
    """Released-format config at tiny sizes: the flat keys of the checkpoint schema
    (:func:`streamforest.model.config.checkpoint_keys`, REFERENCE §3.1) + ``vision_config`` + ``memory_config``."""
    if projector_type not in RELEASED_PRESETS:
        raise ValueError(f"tiny checkpoints exist for {sorted(RELEASED_PRESETS)}, not {projector_type!r}")
    values: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "use_cache": True,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 0,
        **checkpoint_keys(projector_type, mm_hidden_size=TINY_VISION_CONFIG["hidden_size"]),
        "vision_config": dict(TINY_VISION_CONFIG),
        "memory_config": dict(TINY_MEMORY_CONFIG),
    }
    values.update(overrides)
    return LlavaQwenConfig(**values)


def make_tiny_checkpoint(
    out_dir: str | Path,
    *,
    projector_type: str = "tome729_fstw_pemf",
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
    texts: Iterable[str] | None = None,
) -> Path:
    """Build a tiny released-format checkpoint in ``out_dir`` (config.json with ``model_type: qwen2``,
    sharded safetensors with released names, tokenizer files) and return the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is not None:
        tokenizer = load_tokenizer(tokenizer_dir)
        tokenizer.save_pretrained(str(out))
    else:
        tokenizer = make_tiny_tokenizer(out, texts=texts)
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    rows = 64 * ((len(tokenizer) + 63) // 64) + 64  # padded rows beyond the tokenizer, like Qwen2's 152064
    config = tiny_config(
        projector_type,
        vocab_size=rows,
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )
    torch.manual_seed(seed)
    model = LlavaQwenForCausalLM(config).to(torch.bfloat16)
    # ~4 shards like the released checkpoints ("model-0000i-of-0000n.safetensors" + index)
    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    save_released(model, out, model_type="qwen2", max_shard_bytes=max(1, total // 4 + 1))
    logger.info("tiny %s checkpoint written to %s", projector_type, out)
    return out


def real_config(**overrides: Any) -> LlavaQwenConfig:
    """Released-format config of the real StreamForest-Qwen2-7B architecture (REFERENCE §1.2, §3.1).

    SigLIP so400m (1152 wide, 16 heads, 384² / patch 14 → 729 tokens, 27 layers of which 26 are kept),
    the ``tome729_fstw_pemf`` projector with the default memory, Qwen2-7B (3584 wide, 28 layers, 28 heads /
    4 KV heads, MLP 18944, vocabulary 152064). Build it on the meta device or directly on an accelerator:
    the weights are ~16 GB in bf16.
    """
    values: dict[str, Any] = dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_window_layers=28,
        bos_token_id=151643,
        pad_token_id=151643,
        eos_token_id=151645,
        mm_hidden_size=SO400M_VISION_CONFIG["hidden_size"],
        vision_config=dict(SO400M_VISION_CONFIG),
        memory_config={},
    )
    values.update(overrides)
    return tiny_config("tome729_fstw_pemf", **values)


def describe_real() -> dict[str, int]:
    """Parameter counts of the real StreamForest-Qwen2-7B architecture, built on the meta device."""
    with torch.device("meta"):
        model = LlavaQwenForCausalLM(real_config())
    parts = {"vision_tower": 0, "mm_projector": 0, "llm": 0}
    for name, p in model.named_parameters():
        key = next((k for k in ("vision_tower", "mm_projector") if k in name), "llm")
        parts[key] += p.numel()
    parts["total"] = sum(parts.values())
    return parts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", help="directory to write the tiny checkpoint to")
    parser.add_argument("--projector", default="tome729_fstw_pemf", choices=sorted(RELEASED_PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--describe-real", action="store_true", help="print parameter counts of the real model"
    )
    args = parser.parse_args(argv)
    if args.describe_real:
        for key, value in describe_real().items():
            say(f"{key:>14}: {value:,}")
        return 0
    if not args.out_dir:
        parser.error("out_dir is required (or pass --describe-real)")
    say(str(make_tiny_checkpoint(args.out_dir, projector_type=args.projector, seed=args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
