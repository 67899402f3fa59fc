"""Opt-in LoRA / QLoRA for single-GPU fine-tuning of stages 4–5 (peft).

LoRA targets every ``nn.Linear`` of the LLM — full module names, so nothing under ``mm_projector``,
``vision_tower`` or ``vision_resampler``, and never ``lm_head``. (The reference matched by the last name
component, so SigLIP's ``q_proj``/``k_proj``/``v_proj`` received adapters too although the ViT was meant to be
frozen — docs/DEVIATIONS.md.) The projector stays fully trainable when ``mm_mlp_adapter`` is a
tunable part and is saved beside the adapter as ``non_lora_trainables.bin``.

QLoRA (``lora.bits`` 4 or 8) quantises the LLM's Linear layers with bitsandbytes; it needs CUDA and the
``bitsandbytes`` package and fails with a clear message otherwise.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import torch
from torch import nn

from streamforest.train.config import StageConfig
from streamforest.train.optim import NON_LLM_KEYS

logger = logging.getLogger(__name__)

NON_LORA_FILE = "non_lora_trainables.bin"


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full names of the LLM's ``nn.Linear`` modules (no projector, vision tower or ``lm_head``)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not any(k in name for k in NON_LLM_KEYS) and not name.endswith("lm_head")
    ]


def check_qlora_environment(bits: int) -> None:
    """Raise a clear error when QLoRA cannot run here."""
    if bits >= 16:
        return
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"lora.bits={bits} (QLoRA) needs a CUDA GPU and bitsandbytes; this machine has no CUDA. "
            "Use lora.bits=16 (plain LoRA) on CPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError(f"lora.bits={bits} (QLoRA) needs bitsandbytes: pip install bitsandbytes")


def quantize_llm_linears(model: nn.Module, bits: int, *, quant_type: str = "nf4", double_quant: bool = True) -> int:
    """Replace the LLM's Linear layers by bitsandbytes 4-/8-bit layers on CUDA (QLoRA). Returns the count."""
    import bitsandbytes as bnb

    # bitsandbytes quantises the weights when they move to a CUDA device (checked by check_qlora_environment)
    device = torch.device("cuda", torch.cuda.current_device())
    count = 0
    for name in lora_target_modules(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old: nn.Linear = getattr(parent, child)
        if bits == 4:
            new = bnb.nn.Linear4bit(
                old.in_features, old.out_features, bias=old.bias is not None,
                compute_dtype=torch.bfloat16, compress_statistics=double_quant, quant_type=quant_type,
            )
            new.weight = bnb.nn.Params4bit(old.weight.data.cpu(), requires_grad=False, quant_type=quant_type,
                                           compress_statistics=double_quant)
        else:
            new = bnb.nn.Linear8bitLt(old.in_features, old.out_features, bias=old.bias is not None, has_fp16_weights=False)
            new.weight = bnb.nn.Int8Params(old.weight.data.cpu(), requires_grad=False, has_fp16_weights=False)
        if old.bias is not None:
            new.bias = nn.Parameter(old.bias.data, requires_grad=False)
        setattr(parent, child, new.to(device))
        count += 1
    return count


def apply_lora(model: nn.Module, cfg: StageConfig) -> nn.Module:
    """Wrap ``model`` with LoRA adapters on the LLM (and quantise it first for QLoRA)."""
    from peft import LoraConfig, get_peft_model

    lo = cfg.lora
    check_qlora_environment(lo.bits)
    if lo.bits < 16:
        n = quantize_llm_linears(model, lo.bits, quant_type=lo.quant_type, double_quant=lo.double_quant)
        logger.info("QLoRA: %d Linear layers quantised to %d bits", n, lo.bits)
    targets = lora_target_modules(model)
    peft_cfg = LoraConfig(
        r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, bias=lo.bias, target_modules=targets, task_type="CAUSAL_LM"
    )
    wrapped = get_peft_model(model, peft_cfg)
    train_projector = "mm_mlp_adapter" in cfg.model.mm_tunable_parts
    for name, p in wrapped.named_parameters():
        if "mm_projector" in name:
            p.requires_grad_(train_projector)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    logger.info("LoRA r=%d alpha=%d on %d LLM Linear layers; trainable parameters: %d", lo.r, lo.alpha, len(targets), trainable)
    return wrapped


def save_lora(model: Any, output_dir: str, tokenizer: Any = None, *, is_main: bool = True) -> None:
    """Save the adapter (peft format), the non-LoRA trainables (projector) and the base config.

    ``non_lora_trainables.bin`` holds every trainable parameter that is not a LoRA weight, with the model's
    own names (the ``base_model.model.`` prefix of peft removed).
    """
    if not is_main:
        return
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    extra = {
        n.replace("base_model.model.", "", 1): p.detach().cpu()
        for n, p in model.named_parameters()
        if p.requires_grad and "lora_" not in n
    }
    torch.save(extra, os.path.join(output_dir, NON_LORA_FILE))
    model.base_model.model.config.save_pretrained(os.path.join(output_dir, "base_config"))
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
    logger.info("saved LoRA adapter + %d non-LoRA tensors to %s", len(extra), output_dir)
