"""Released checkpoint format (REFERENCE §3): tiny checkpoints, key names both ways, loader errors, round trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from streamforest.model.loader import (
    from_released_key,
    load_pretrained,
    resolve_dtype,
    save_released,
    to_released_key,
)

_QWEN_LAYER = [
    "input_layernorm.weight",
    "mlp.down_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "post_attention_layernorm.weight",
    "self_attn.k_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.q_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.v_proj.weight",
]
_SIGLIP_LAYER = [
    "layer_norm1.bias",
    "layer_norm1.weight",
    "layer_norm2.bias",
    "layer_norm2.weight",
    "mlp.fc1.bias",
    "mlp.fc1.weight",
    "mlp.fc2.bias",
    "mlp.fc2.weight",
    "self_attn.k_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.out_proj.bias",
    "self_attn.out_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.q_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.v_proj.weight",
]
_VT = "model.vision_tower.vision_tower.vision_model."
GOLDEN_KEYS = sorted(
    [
        "lm_head.weight",
        "model.embed_tokens.weight",
        "model.norm.weight",
        "model.mm_projector.mlp.0.bias",
        "model.mm_projector.mlp.0.weight",
        "model.mm_projector.mlp.2.bias",
        "model.mm_projector.mlp.2.weight",
        _VT + "embeddings.patch_embedding.bias",
        _VT + "embeddings.patch_embedding.weight",
        _VT + "embeddings.position_embedding.weight",
        _VT + "post_layernorm.bias",
        _VT + "post_layernorm.weight",
    ]
    + [f"model.layers.{i}.{name}" for i in range(2) for name in _QWEN_LAYER]
    + [f"{_VT}encoder.layers.{i}.{name}" for i in range(2) for name in _SIGLIP_LAYER]  # 3 layers - 1 removed
)
"""Frozen key list of the tiny released-format checkpoint (REFERENCE §3.2 names; 68 tensors)."""


def _stored_keys(ckpt: Path) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in sorted(ckpt.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def test_tiny_checkpoint_is_released_format(tiny_checkpoint: Path) -> None:
    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    assert cfg["model_type"] == "qwen2"
    assert cfg["architectures"] == ["LlavaQwenForCausalLM"]
    assert cfg["torch_dtype"] == "bfloat16"
    assert cfg["mm_projector_type"] == "tome729_fstw_pemf"
    assert cfg["vision_encode_type"] == "image_video_memory_batch"
    assert cfg["mm_local_num_frames"] == 1 and cfg["mm_hidden_size"] == 64
    assert cfg["mm_vision_select_layer"] == -2 and cfg["mm_patch_merge_type"] == "flat"
    assert cfg["tokenizer_model_max_length"] == 32768 and cfg["tie_word_embeddings"] is False
    assert cfg["vision_config"]["num_hidden_layers"] == 3 and cfg["vision_config"]["image_size"] == 56
    index = json.loads((tiny_checkpoint / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in tiny_checkpoint.glob("model-*.safetensors"))
    assert len(shards) > 1 and set(index["weight_map"].values()) == set(shards)
    assert (tiny_checkpoint / "tokenizer.json").is_file() and (
        tiny_checkpoint / "tokenizer_config.json"
    ).is_file()


def test_tiny_checkpoint_frozen_key_list(tiny_checkpoint: Path) -> None:
    shapes = _stored_keys(tiny_checkpoint)
    assert sorted(shapes) == GOLDEN_KEYS
    assert shapes["model.mm_projector.mlp.0.weight"] == (64, 64)
    assert shapes[_VT + "embeddings.position_embedding.weight"] == (16, 64)
    assert not any(k.startswith(_VT + "head") for k in shapes)
    assert shapes["lm_head.weight"] == shapes["model.embed_tokens.weight"]


def test_tiny_checkpoint_loads_without_missing_or_unexpected(tiny_checkpoint: Path) -> None:
    tokenizer, model, processor, context_len = load_pretrained(tiny_checkpoint)
    assert model.dtype == torch.bfloat16  # "auto" = the checkpoint's torch_dtype
    assert context_len == 32768
    assert processor.size == 56
    assert not model.training
    # no load-time resize to the tokenizer length (reference bug 16)
    assert model.get_input_embeddings().weight.shape[0] == model.config.vocab_size > len(tokenizer)
    stored = load_file(str(next(tiny_checkpoint.glob("model-*.safetensors"))))
    ours = {to_released_key(k): v for k, v in model.state_dict().items()}
    for key, value in stored.items():
        assert torch.equal(ours[key], value), key
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer("<|im_start|>user\n").input_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_key_mapping_both_directions() -> None:
    ours = "model.vision_tower.vision_tower.encoder.layers.0.mlp.fc1.weight"
    released = "model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight"
    assert to_released_key(ours) == released
    assert from_released_key(released) == ours
    assert to_released_key(released) == released  # idempotent
    for name in ("model.layers.0.mlp.up_proj.weight", "lm_head.weight", "model.mm_projector.mlp.0.bias"):
        assert to_released_key(name) == name == from_released_key(name)


def test_hf_save_pretrained_writes_released_names_and_round_trips(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from streamforest.model.llava_qwen import LlavaQwenForCausalLM

    _, model, _, _ = load_pretrained(tiny_checkpoint, dtype="float32")
    model.save_pretrained(tmp_path / "hf", max_shard_size="100KB")
    assert sorted(_stored_keys(tmp_path / "hf")) == GOLDEN_KEYS
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "llava_qwen"
    again = LlavaQwenForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)


def test_save_released_round_trip_logits_fp32(tiny_checkpoint: Path, tmp_path: Path) -> None:
    _, model, _, _ = load_pretrained(tiny_checkpoint, dtype="float32")
    with torch.no_grad():
        model.lm_head.weight.add_(0.01)  # make sure weights really travel
    out = save_released(model, tmp_path / "ours", max_shard_bytes=50_000)
    shutil.copy(tiny_checkpoint / "tokenizer.json", out)
    shutil.copy(tiny_checkpoint / "tokenizer_config.json", out)
    assert sorted(_stored_keys(out)) == GOLDEN_KEYS
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava_qwen"
    _, again, _, _ = load_pretrained(out, dtype="auto")
    assert again.dtype == torch.float32
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)


def test_native_flattened_names_also_load(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint written with transformers-5 names (no ``vision_model.``) loads to the same weights."""
    ckpt = tmp_path / "native"
    shutil.copytree(tiny_checkpoint, ckpt)
    for shard in ckpt.glob("model-*.safetensors"):
        save_file({from_released_key(k): v for k, v in load_file(str(shard)).items()}, str(shard))
    index_path = ckpt / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"] = {from_released_key(k): v for k, v in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))
    _, a, _, _ = load_pretrained(tiny_checkpoint)
    _, b, _, _ = load_pretrained(ckpt)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def _edit_first_shard(ckpt: Path, edit) -> None:  # noqa: ANN001
    shard = sorted(ckpt.glob("model-*.safetensors"))[0]
    tensors = load_file(str(shard))
    edit(tensors)
    save_file(tensors, str(shard))


def test_missing_and_unexpected_keys_are_reported(tiny_checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    shutil.copytree(tiny_checkpoint, missing)
    removed: list[str] = []
    _edit_first_shard(missing, lambda t: removed.append(sorted(t)[0]) or t.pop(sorted(t)[0]))
    with pytest.raises(ValueError, match="missing") as err:
        load_pretrained(missing)
    assert removed[0] in str(err.value)

    extra = tmp_path / "extra"
    shutil.copytree(tiny_checkpoint, extra)
    _edit_first_shard(
        extra, lambda t: t.update({"model.image_newline": torch.zeros(64, dtype=torch.bfloat16)})
    )
    with pytest.raises(ValueError, match=r"unexpected \(first: model.image_newline"):
        load_pretrained(extra)


def _with_config(ckpt: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(ckpt, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_loader_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path / "empty")
    bad_arch = _with_config(tiny_checkpoint, tmp_path / "arch", architectures=["LlavaLlamaForCausalLM"])
    with pytest.raises(ValueError, match="architectures"):
        load_pretrained(bad_arch)
    bad_proj = _with_config(tiny_checkpoint, tmp_path / "proj", mm_projector_type="ablation_woSTFW_PEMF")
    with pytest.raises(ValueError, match="mm_projector_type"):
        load_pretrained(bad_proj)
    with pytest.raises(ValueError, match="vision_encode_type"):
        load_pretrained(tiny_checkpoint, overrides={"vision_encode_type": "video_image"})
    with pytest.raises(ValueError, match="dtype"):
        load_pretrained(tiny_checkpoint, dtype="int8")


def test_model_type_llava_qwen_accepted_and_dispatch_on_architectures(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    ours = _with_config(tiny_checkpoint, tmp_path / "llava_qwen", model_type="llava_qwen")
    _, model, _, _ = load_pretrained(ours, dtype="float16", overrides={"vision_chunk_size": 2})
    assert model.dtype == torch.float16
    assert model.config.multimodal.vision_chunk_size == 2


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", {"torch_dtype": "bfloat16"}) == torch.bfloat16
    assert resolve_dtype("auto", {"dtype": "float16"}) == torch.float16
    assert resolve_dtype("auto", {}) == torch.float32
    assert resolve_dtype("bf16") == torch.bfloat16 and resolve_dtype(torch.float16) == torch.float16


def test_llava_builder_returns_tuple_and_reference_forward(tiny_checkpoint: Path) -> None:
    from llava.model.builder import load_pretrained_model
    from llava.model.language_model.llava_qwen import LlavaQwenForCausalLM

    tokenizer, model, processor, context_len = load_pretrained_model(
        str(tiny_checkpoint), None, "tiny", device_map="cpu", torch_dtype="float32"
    )
    assert isinstance(model, LlavaQwenForCausalLM) and context_len == 32768
    frames = torch.randint(0, 256, (5, 40, 30, 3), dtype=torch.uint8).numpy()
    pixels = processor.preprocess(frames, return_tensors="pt")["pixel_values"]
    ids = torch.tensor([[1, 2, -200, 3]])
    with torch.no_grad():
        out = model(input_ids=ids, images=[pixels], modalities=["video"])
    assert out.logits.shape[0] == 1 and torch.isfinite(out.logits).all()


def test_llava_compat_files_are_thin() -> None:
    root = Path(__file__).resolve().parents[1] / "llava"
    for path in root.rglob("*.py"):
        assert len(path.read_text().splitlines()) < 100, path


def test_released_checkpoint_with_other_tower_and_no_memory_config(tmp_path: Path) -> None:
    """A released-format checkpoint with a 32-wide, 4-head SigLIP (54 px / patch 2 = 729 patches) and no
    ``memory_config``: the memory takes width and heads from the tower (REFERENCE §2.1) and answers a video question."""
    from llava.model.builder import load_pretrained_model
    from streamforest.model.llava_qwen import LlavaQwenForCausalLM
    from streamforest.prompts import build_inference_prompt, time_message, tokenizer_image_token
    from streamforest.tiny import TINY_VISION_CONFIG, make_tiny_tokenizer, tiny_config

    tokenizer = make_tiny_tokenizer(tmp_path)
    vision = {
        **TINY_VISION_CONFIG,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "image_size": 54,
        "patch_size": 2,
    }
    config = tiny_config(
        vocab_size=64 * ((len(tokenizer) + 63) // 64),
        mm_hidden_size=32,
        vision_config=vision,
        memory_config={},
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    torch.manual_seed(0)
    save_released(LlavaQwenForCausalLM(config).to(torch.bfloat16), tmp_path, model_type="qwen2")
    raw = json.loads((tmp_path / "config.json").read_text())
    raw.pop("memory_config")
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert raw["model_type"] == "qwen2" and any(k.startswith(_VT) for k in _stored_keys(tmp_path))

    tok, model, processor, _ = load_pretrained_model(
        str(tmp_path), None, "other", device_map="cpu", torch_dtype="float32"
    )
    memory = model.get_model().mm_projector.memory_config
    assert (memory.hidden_size, memory.num_heads, memory.now_tokens, memory.short_tokens) == (32, 4, 729, 128)
    frames = torch.randint(
        0, 256, (6, 40, 30, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    pixels = processor.preprocess(frames.numpy())["pixel_values"]
    assert pixels.shape == (6, 3, 54, 54)
    msg = time_message("short_online_v2", [str(float(i)) for i in range(6)], 6.0)
    ids = tokenizer_image_token(
        build_inference_prompt("What is the person doing?", msg), tok, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(
            ids[None], images=[pixels], modalities=["video"], max_new_tokens=3, do_sample=False
        )
    assert out.shape == (1, 3) and isinstance(tok.decode(out[0]), str)
