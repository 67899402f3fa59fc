"""LlavaQwen model on tiny checkpoints: encode paths, forward/backward, generation, tower truncation, config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from streamforest.model.config import LlavaQwenConfig, MultimodalSettings
from streamforest.model.loader import load_pretrained
from streamforest.model.vision import SigLipVisionTower
from streamforest.tiny import TINY_VISION_CONFIG

IMG = -200


def _load(ckpt: Path, **kw):  # noqa: ANN202
    return load_pretrained(ckpt, dtype=kw.pop("dtype", "float32"), **kw).model


def _pixels(t: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(t, 3, 56, 56, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


def _loss_backward(model, **inputs) -> torch.Tensor:  # noqa: ANN001
    model.train()
    out = model(**inputs)
    assert torch.isfinite(out.loss), out.loss
    out.loss.backward()
    return out.loss


@pytest.fixture(scope="module")
def memory_model(tiny_checkpoint: Path):  # noqa: ANN201
    return _load(tiny_checkpoint)


def test_encode_frames_shape_and_chunking(memory_model) -> None:  # noqa: ANN001
    pixels = _pixels(5)
    full = memory_model.encode_frames(pixels, chunk_size=128)
    assert full.shape == (5, 16, 64)
    chunked = memory_model.encode_frames(pixels, chunk_size=2)
    assert torch.allclose(full, chunked, atol=1e-5)


def test_embed_frames_in_batches_equals_one_batch_and_feeds_encode_video(memory_model) -> None:  # noqa: ANN001
    """``embed_frames(pixels, start_index)`` continues the temporal positions, so a stream embedded batch by
    batch equals the whole clip; ``encode_video`` = a fresh memory over those frames + MLP (= ``encode_images``)."""
    pixels = _pixels(5)
    with torch.no_grad():
        whole = memory_model.embed_frames(pixels)
        parts = torch.cat([memory_model.embed_frames(pixels[:2]), memory_model.embed_frames(pixels[2:], start_index=2)])
        assert whole.shape == (5, 16, 64) and whole.dtype == memory_model.projector_dtype
        assert torch.equal(whole, parts)
        assert not torch.equal(whole[2:], memory_model.embed_frames(pixels[2:]))  # the temporal index matters
        memory = memory_model.get_projector().new_memory()
        memory.add_frames(parts)
        by_hand = memory_model.get_projector().project(memory.read())
        assert torch.equal(memory_model.encode_video(pixels), by_hand)
        assert torch.equal(memory_model.encode_images([pixels], ["video"])[0], by_hand)


def test_embed_frames_needs_the_memory_projector(tiny_checkpoint_tome16: Path) -> None:
    model = _load(tiny_checkpoint_tome16)
    with pytest.raises(ValueError, match="tome729_fstw_pemf"):
        model.embed_frames(_pixels(2))


def test_vision_tower_is_layer_minus_two_without_post_layernorm() -> None:
    """Our tower = hidden state after layer L-1 of the full L-layer SigLIP, before post_layernorm."""
    torch.manual_seed(0)
    full_cfg = SiglipVisionConfig(**TINY_VISION_CONFIG, vision_use_head=False)
    full_cfg._attn_implementation = "eager"
    full = SiglipVisionModel(full_cfg).eval()
    tower = SigLipVisionTower(TINY_VISION_CONFIG, "eager").eval()
    missing = tower.vision_tower.load_state_dict(full.state_dict(), strict=False)
    assert missing.missing_keys == [] and all(
        k.startswith("encoder.layers.2.") for k in missing.unexpected_keys
    )
    pixels = _pixels(2)
    with torch.no_grad():
        ref = full(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        ours = tower(pixels)
    assert ours.shape == (2, 16, 64) and len(tower.vision_tower.encoder.layers) == 2
    assert torch.allclose(ours, ref, atol=1e-5)
    assert not torch.allclose(ours, full.post_layernorm(ref), atol=1e-3)
    with pytest.raises(ValueError, match="pixel_values"):
        tower(torch.zeros(1, 3, 48, 48))


def test_memory_video_forward_backward(memory_model) -> None:  # noqa: ANN001
    ids = torch.tensor([[1, 2, IMG, 3, 4, 5]])
    labels = torch.tensor([[-100, -100, IMG, 3, 4, 5]])
    memory_model.zero_grad()
    _loss_backward(memory_model, input_ids=ids, labels=labels, images=[_pixels(9)], modalities=["video"])
    grad = memory_model.get_projector().mlp[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    memory_model.eval()


def test_image_forward_backward(memory_model) -> None:  # noqa: ANN001
    ids = torch.tensor([[IMG, 7, 8, 9]])
    memory_model.zero_grad()
    _loss_backward(memory_model, input_ids=ids, labels=ids.clone(), images=[_pixels(1)], modalities=["image"])
    memory_model.eval()


def test_text_only_sample_in_multimodal_batch(memory_model) -> None:  # noqa: ANN001
    ids = torch.tensor([[1, IMG, 3, 4], [5, 6, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    labels = torch.tensor([[-100, IMG, 3, 4], [5, 6, 7, -100]])
    images = [_pixels(4), torch.zeros(1, 3, 56, 56)]
    loss = _loss_backward(
        memory_model,
        input_ids=ids,
        attention_mask=mask,
        labels=labels,
        images=images,
        modalities=["video", "text"],
    )
    assert loss.item() > 0
    memory_model.eval()


def test_all_text_training_batch_keeps_projector_in_graph(memory_model) -> None:  # noqa: ANN001
    memory_model.zero_grad()
    ids = torch.tensor([[5, 6, 7, 8]])
    _loss_backward(
        memory_model, input_ids=ids, labels=ids, images=[torch.zeros(1, 3, 56, 56)], modalities=["text"]
    )
    grad = memory_model.get_projector().mlp[2].weight.grad
    assert grad is not None and float(grad.abs().sum()) == 0.0
    memory_model.eval()


def test_tome16_video_clips_forward_backward(tiny_checkpoint_tome16: Path) -> None:
    model = _load(tiny_checkpoint_tome16)
    ids = torch.tensor([[1, IMG, 2, 3]])
    feats = model.encode_images([_pixels(16)], ["video"])
    assert len(feats) == 1 and feats[0].shape == (2 * 16 * 8, 64)  # 2 clips × 16 tokens × 8 frames
    _loss_backward(model, input_ids=ids, labels=ids.clone(), images=[_pixels(16)], modalities=["video"])
    with pytest.raises(ValueError, match="mm_local_num_frames=8"):
        model.encode_images([_pixels(12)], ["video"])


def test_stage1_image_encode_type_runs_as_one_frame_clips(tiny_checkpoint_tome16: Path) -> None:
    model = _load(tiny_checkpoint_tome16, overrides={"vision_encode_type": "image", "mm_local_num_frames": 1})
    feats = model.encode_images([_pixels(3), _pixels(1)], ["video", "image"])
    assert [f.shape for f in feats] == [(3 * 16, 64), (16, 64)]
    ids = torch.tensor([[IMG, 1, 2]])
    _loss_backward(model, input_ids=ids, labels=ids.clone(), images=[_pixels(1)], modalities=["image"])


def test_greedy_generation_is_deterministic_and_visual_features_bypass(memory_model) -> None:  # noqa: ANN001
    ids = torch.tensor([[1, 2, IMG, 3]])
    pixels = _pixels(6)
    kw = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    first = memory_model.generate(ids, images=[pixels], modalities=["video"], **kw)
    second = memory_model.generate(ids, images=[pixels], modalities=["video"], **kw)
    assert torch.equal(first, second) and first.shape == (1, 6)
    feats = memory_model.encode_images([pixels], ["video"])
    bypass = memory_model.generate(ids, visual_features=feats, **kw)
    assert torch.equal(first, bypass)
    text_only = memory_model.generate(torch.tensor([[1, 2, 3]]), **kw)
    assert text_only.shape == (1, 6)


def test_generate_matches_forward_argmax(memory_model) -> None:  # noqa: ANN001
    ids = torch.tensor([[4, IMG, 5]])
    pixels = _pixels(3)
    with torch.no_grad():
        logits = memory_model(input_ids=ids, images=[pixels], modalities=["video"]).logits
    out = memory_model.generate(ids, images=[pixels], modalities=["video"], max_new_tokens=1, do_sample=False)
    assert out[0, 0].item() == logits[0, -1].argmax().item()


def test_placeholder_errors(memory_model) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="placeholders"):
        memory_model(input_ids=torch.tensor([[1, IMG]]))
    with pytest.raises(ValueError, match="placeholders"):
        memory_model(input_ids=torch.tensor([[1, IMG, IMG]]), images=[_pixels(2)], modalities=["video"])
    with pytest.raises(NotImplementedError):
        memory_model.generate(torch.tensor([[1]]), inputs_embeds=torch.zeros(1, 1, 64))
    with pytest.raises(ValueError, match="modality"):
        memory_model.encode_images([_pixels(1)], ["audio"])


def test_bf16_on_cpu(tiny_checkpoint: Path) -> None:
    model = _load(tiny_checkpoint, dtype="bfloat16")
    ids = torch.tensor([[1, IMG, 2]])
    with torch.no_grad():
        out = model(input_ids=ids, images=[_pixels(3)], modalities=["video"])
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()
    gen = model.generate(ids, images=[_pixels(3)], modalities=["video"], max_new_tokens=2, do_sample=False)
    assert gen.shape == (1, 2)


def test_multimodal_settings_defaults_and_validation() -> None:
    settings = MultimodalSettings.from_config(LlavaQwenConfig())
    assert settings.vision_encode_type == "image" and settings.local_num_frames == 1
    assert settings.tokenizer_padding_side == "right" and settings.vision_chunk_size == 128
    cfg = LlavaQwenConfig(vision_encode_type="image_video_memory_batch", mm_local_num_frames=1)
    assert cfg.multimodal.uses_memory
    with pytest.raises(ValueError, match="vision_encode_type"):
        LlavaQwenConfig(vision_encode_type="video").multimodal  # noqa: B018
    assert LlavaQwenConfig().vision_settings()["hidden_size"] == 1152  # so400m default when absent
    assert LlavaQwenConfig().model_type == "llava_qwen"


def test_memory_config_from_config(tiny_checkpoint: Path) -> None:
    model = _load(tiny_checkpoint, memory_config={"long_token_quota": 32})
    assert model.config.memory_settings().long_token_quota == 32
    with pytest.raises((ValueError, TypeError), match="unknown|unexpected"):
        LlavaQwenConfig(memory_config={"no_such_field": 1}).memory_settings()


def test_real_architecture_parameter_counts_on_meta_device() -> None:
    """so400m minus its last layer and the MLP match REFERENCE §1.2 / §1.6 exactly (no weights built)."""
    from streamforest.tiny import describe_real

    counts = describe_real()
    assert counts["vision_tower"] == 26 * 15_239_504 + 678_528 + 839_808 + 2_304  # 397,747,744
    assert counts["mm_projector"] == 16_980_992
    assert counts["llm"] == 7_615_616_512  # Qwen2-7B, 152,064 untied rows
