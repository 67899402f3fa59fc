"""Projectors: token counts, state-dict keys, memory-projector parity with the oracle, policies, builders."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from llava.model.multimodal_projector.builder import build_vision_projector
from streamforest.memory import MemoryConfig
from streamforest.model.projectors import PROJECTOR_TYPES, MemoryProjector, build_projector
from streamforest.pos_embed import memory_pos_embed, sincos_3d
from streamforest.tome import merge_tokens
from tests.memory_reference import reference_tokens

TINY_MEMORY = MemoryConfig(
    hidden_size=64, num_heads=4, now_tokens=16, short_tokens=8, long_tokens_per_frame=4,
    short_frames=6, event_window=4, long_token_quota=64,
)  # fmt: skip
TINY = dict(mm_hidden_size=64, hidden_size=32, num_heads=4, grid=4)  # P = 16
MLP_KEYS = ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"]


def _memory_projector(**overrides) -> MemoryProjector:
    return build_projector("tome729_fstw_pemf", **{**TINY, "memory_config": TINY_MEMORY, **overrides})


def _frames(t: int, p: int = 16, c: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scenes = torch.randn(t // 3 + 1, p, c, generator=gen).repeat_interleave(3, dim=0)[:t]
    return scenes + 0.3 * torch.randn(t, p, c, generator=gen)


# --------------------------------------------------------------------------- ToMe projectors
@pytest.mark.parametrize(
    ("kind", "frames", "expected"),
    [("tome16_mlp", 8, 128), ("tome64_mlp", 2, 128), ("tome16_mlp", 1, 16), ("tome64_mlp", 1, 64)],
)
def test_tome_projectors_reference_token_counts(kind, frames, expected):
    torch.manual_seed(0)
    proj = build_projector(kind, mm_hidden_size=1152, hidden_size=8, num_heads=16, grid=27)
    x = torch.randn(1, frames * 729, 1152)  # 5832 -> 128 and 1458 -> 128 are the stage-3 / stage-2 clips
    with torch.no_grad():
        out = proj(x, local_num_frames=frames)
    assert out.shape == (1, expected, 8)


def test_tome_projector_is_pos_embed_then_merge_then_mlp():
    torch.manual_seed(0)
    proj = build_projector("tome16_mlp", mm_hidden_size=64, hidden_size=32, num_heads=4, grid=9)  # P = 81
    x = torch.randn(3, 2 * 81, 64)
    out = proj(x, local_num_frames=2)
    expected = proj.mlp(merge_tokens(x + sincos_3d(2, 9, 64), 32, 4))
    assert out.shape == (3, 32, 32) and torch.equal(out, expected)
    assert not torch.allclose(out, proj.mlp(merge_tokens(x, 32, 4)))  # the position embedding matters
    # t restarts at 0 for every clip: two clips with the same content give the same tokens
    twice = proj(x[:1].expand(2, -1, -1), local_num_frames=2)
    assert torch.equal(twice[0], twice[1]) and torch.allclose(twice[0], out[0])


def test_tome_projector_rejects_bad_shapes():
    proj = build_projector("tome64_mlp", **TINY)
    with pytest.raises(ValueError, match="local_num_frames"):
        proj(torch.randn(1, 40, 64), local_num_frames=2)
    with pytest.raises(ValueError, match="mm_hidden_size"):
        proj(torch.randn(1, 16, 32))
    with pytest.raises(ValueError, match="clips"):
        proj(torch.randn(16, 64))


# --------------------------------------------------------------------------- parameters / state dict
@pytest.mark.parametrize("kind", ["tome16_mlp", "tome64_mlp", "tome729_fstw_pemf", "mlp2x_gelu"])
def test_state_dict_is_only_the_mlp(kind):
    proj = build_projector(kind, **TINY, memory_config=TINY_MEMORY if "fstw" in kind else None)
    assert list(proj.state_dict()) == MLP_KEYS
    assert isinstance(proj.mlp[1], torch.nn.GELU) and proj.mlp[1].approximate == "none"
    assert [tuple(p.shape) for p in proj.parameters()] == [(32, 64), (32,), (32, 32), (32,)]
    assert list(proj.buffers()) == []


def test_reference_mlp_size_and_legacy_types():
    proj = build_projector("tome729_fstw_pemf", mm_hidden_size=1152, hidden_size=3584, num_heads=16, grid=27)
    assert sum(p.numel() for p in proj.parameters()) == 16_980_992  # REFERENCE §1.6
    assert proj.memory_config == MemoryConfig()
    linear = build_projector("linear", **TINY)
    assert list(linear.state_dict()) == ["mlp.0.weight", "mlp.0.bias"]
    assert linear(torch.randn(2, 5, 64)).shape == (2, 5, 32)
    identity = build_projector("identity", **TINY)
    x = torch.randn(2, 5, 64)
    assert identity(x) is x and list(identity.parameters()) == []


def test_unknown_projector_type_lists_the_known_ones():
    with pytest.raises(ValueError, match="tome16_mlp, tome64_mlp, tome729_fstw_pemf"):
        build_projector("ablation_woSTFW_PEMF", **TINY)
    assert len(PROJECTOR_TYPES) == 6


# --------------------------------------------------------------------------- memory projector
def test_memory_projector_video_equals_oracle_memory_plus_mlp():
    proj = _memory_projector()
    x = _frames(40)
    out = proj(x)
    tokens = reference_tokens(x + memory_pos_embed(40, 4, 64), TINY_MEMORY)
    assert out.shape == (1, tokens.shape[0], 32)
    assert torch.equal(out, proj.mlp(tokens).unsqueeze(0))
    assert not torch.allclose(out[0, -16:], proj.mlp(x[-1]))  # position embedding really added


def test_memory_projector_streaming_helpers():
    proj = _memory_projector()
    x = _frames(12)
    whole = proj.add_pos_embed(x)
    assert torch.equal(proj.add_pos_embed(x[5:], start_index=5), whole[5:])
    assert torch.equal(proj.add_pos_embed(x[:3], start_index=512), proj.add_pos_embed(x[:3]))  # wraps at 512
    assert not torch.equal(proj.add_pos_embed(x[:3], start_index=3), whole[:3])
    memory = proj.new_memory()
    memory.add_frames(whole)
    assert torch.equal(proj.project(memory.read()).unsqueeze(0), proj(x))
    assert proj.new_memory("eager").config.consolidation == "eager"
    assert proj.memory_config.consolidation == "deferred"


def test_memory_projector_image_policies():
    proj = _memory_projector()
    images = _frames(3)
    proj.train()
    draws = [proj(images, is_image=True, generator=torch.Generator().manual_seed(s)).shape[1] for s in range(12)]
    again = [proj(images, is_image=True, generator=torch.Generator().manual_seed(s)).shape[1] for s in range(12)]
    assert draws == again and set(draws) == {16, 8}  # P or short_tokens, reproducible with a seed
    proj.eval()
    outs = [proj(images, is_image=True) for _ in range(4)]
    assert all(o.shape == (3, 16, 32) and torch.equal(o, outs[0]) for o in outs)
    proj.image_token_policy = "compressed"
    assert proj(images, is_image=True).shape == (3, 8, 32)
    with pytest.raises(ValueError, match="image_token_policy"):
        MemoryProjector(**TINY, memory_config=TINY_MEMORY, image_token_policy="sometimes")


def test_memory_projector_rejects_bad_input():
    proj = _memory_projector()
    with pytest.raises(ValueError, match="4x4 patches"):
        proj(torch.randn(5, 20, 64))
    with pytest.raises(ValueError, match="one frame per step"):
        proj(torch.randn(5, 16, 64), local_num_frames=2)
    with pytest.raises(ValueError, match="T = 0"):
        proj(torch.randn(0, 16, 64))
    with pytest.raises(ValueError, match="does not match the vision tower"):
        build_projector("tome729_fstw_pemf", **{**TINY, "num_heads": 8}, memory_config=TINY_MEMORY)
    with pytest.raises(ValueError, match="now_tokens=729 exceeds"):
        build_projector("tome729_fstw_pemf", **TINY)  # reference defaults need 729 patches per frame


@pytest.mark.parametrize("kind", ["tome729_fstw_pemf", "tome16_mlp"])
def test_gradient_reaches_mlp_and_input(kind):
    proj = build_projector(kind, **TINY, memory_config=TINY_MEMORY if "fstw" in kind else None)
    x = _frames(30).requires_grad_(True)
    inputs = x if "fstw" in kind else x.reshape(15, 32, 64)
    out = proj(inputs, local_num_frames=1 if "fstw" in kind else 2)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())
    assert x.grad is not None and (x.grad.flatten(1).abs().sum(1) > 0).all()


# --------------------------------------------------------------------------- legacy builder
def test_legacy_builder_with_attribute_configs():
    vision = SimpleNamespace(image_size=56, patch_size=14, num_attention_heads=4)
    config = SimpleNamespace(mm_projector_type="tome16_mlp", mm_hidden_size=64, hidden_size=32, mm_pos_num_frames=8)
    proj = build_vision_projector(config, vision)
    assert proj(torch.randn(2, 16, 64)).shape == (2, 16, 32)
    config = SimpleNamespace(
        mm_projector_type="tome729_fstw_pemf", mm_hidden_size=64, hidden_size=32, mm_pos_num_frames=8,
        memory_config=TINY_MEMORY.to_dict(),
    )  # fmt: skip
    proj = build_vision_projector(config, vision, delay_load=True)
    assert proj.memory_config == TINY_MEMORY and list(proj.state_dict()) == MLP_KEYS
    default = build_vision_projector(SimpleNamespace(mm_projector_type="mlp2x_gelu", mm_hidden_size=1152, hidden_size=16))
    assert default(torch.randn(1, 3, 1152)).shape == (1, 3, 16)
    with pytest.raises(ValueError, match="unknown MemoryConfig keys"):
        build_vision_projector(SimpleNamespace(**{**vars(config), "memory_config": {"quota": 1}}), vision)


def test_legacy_packages_are_import_light():
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, llava, llava.model, llava.model.multimodal_projector; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    builder = Path(__file__).resolve().parents[1] / "llava/model/multimodal_projector/builder.py"
    assert len(builder.read_text().splitlines()) < 60
