"""Splice of visual tokens at <image> placeholders (REFERENCE §1.8) and the SigLIP image processor (§1.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from streamforest.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from streamforest.model.processor import SigLipImageProcessor
from streamforest.model.splice import count_placeholders, splice_visual_tokens

H = 4
IMG = IMAGE_TOKEN_INDEX


def embed(ids: torch.Tensor) -> torch.Tensor:
    """Embedding whose row for token t is [t, t, t, t] (makes positions readable)."""
    return ids.float().unsqueeze(-1).expand(-1, H).clone()


def feat(n: int, value: float) -> torch.Tensor:
    return torch.full((n, H), value)


def test_single_sample_layout_and_labels() -> None:
    ids = torch.tensor([[5, 6, IMG, 7, 8]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, IMG, 7, 8]])
    out = splice_visual_tokens(ids, [feat(3, -1.0)], embed, labels=labels)
    assert out.inputs_embeds.shape == (1, 7, H)
    assert out.inputs_embeds[0, :, 0].tolist() == [5, 6, -1, -1, -1, 7, 8]
    assert out.labels.tolist() == [[-100, -100, -100, -100, -100, 7, 8]]
    assert out.attention_mask.tolist() == [[True] * 7]
    assert out.position_ids is None


def test_labels_none_when_not_given_and_positions_when_given() -> None:
    ids = torch.tensor([[IMG, 1]])
    out = splice_visual_tokens(ids, [feat(2, 9.0)], embed, position_ids=torch.zeros(1, 2, dtype=torch.long))
    assert out.labels is None
    assert out.position_ids.tolist() == [[0, 1, 2]]


def test_right_and_left_padding() -> None:
    ids = [torch.tensor([1, IMG, 2]), torch.tensor([3, IMG])]
    feats = [feat(1, -1.0), feat(3, -2.0)]
    pos = torch.zeros(2, 3, dtype=torch.long)
    right = splice_visual_tokens(ids, feats, embed, labels=ids, position_ids=pos)
    assert right.inputs_embeds[:, :, 0].tolist() == [[1, -1, 2, 0], [3, -2, -2, -2]]
    assert right.attention_mask.tolist() == [[True, True, True, False], [True] * 4]
    assert right.labels.tolist() == [[1, -100, 2, -100], [3, -100, -100, -100]]
    assert right.position_ids.tolist() == [[0, 1, 2, 0], [0, 1, 2, 3]]
    left = splice_visual_tokens(ids, feats, embed, labels=ids, position_ids=pos, padding_side="left")
    assert left.inputs_embeds[:, :, 0].tolist() == [[0, 1, -1, 2], [3, -2, -2, -2]]
    assert left.attention_mask.tolist() == [[False, True, True, True], [True] * 4]
    assert left.position_ids.tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]


def test_input_padding_removed_by_attention_mask() -> None:
    ids = torch.tensor([[1, IMG, 2, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    out = splice_visual_tokens(ids, [feat(2, -1.0)], embed, attention_mask=mask)
    assert out.inputs_embeds[0, :, 0].tolist() == [1, -1, -1, 2]


def test_truncation_to_max_length() -> None:
    ids = torch.tensor([[1, IMG, 2, 3]])
    out = splice_visual_tokens(ids, [feat(5, -1.0)], embed, labels=ids, max_length=4)
    assert out.inputs_embeds[0, :, 0].tolist() == [1, -1, -1, -1]
    assert out.labels.tolist() == [[1, -100, -100, -100]]


def test_multiple_placeholders_consume_in_order_and_text_only_consumes_nothing() -> None:
    ids = [torch.tensor([IMG, 1, IMG]), torch.tensor([4, 5]), torch.tensor([IMG])]
    feats = [feat(1, -1.0), feat(1, -2.0), feat(2, -3.0)]
    out = splice_visual_tokens(ids, feats, embed)
    assert out.inputs_embeds[:, :, 0].tolist() == [[-1, 1, -2], [4, 5, 0], [-3, -3, 0]]
    assert count_placeholders(ids) == [2, 0, 1]


def test_mismatched_counts_raise_with_counts() -> None:
    ids = torch.tensor([[IMG, 1, IMG]])
    with pytest.raises(ValueError, match=r"2 <image> placeholders .* 1 visual feature"):
        splice_visual_tokens(ids, [feat(1, 0.0)], embed)
    with pytest.raises(ValueError, match=r"1 <image> placeholders .* 2 visual feature"):
        splice_visual_tokens(torch.tensor([[IMG]]), [feat(1, 0.0), feat(1, 0.0)], embed)
    with pytest.raises(ValueError, match="must be"):
        splice_visual_tokens(torch.tensor([[IMG]]), [torch.zeros(2, H + 1)], embed)


def test_features_cast_to_embedding_dtype_and_gradient_flows() -> None:
    weight = torch.randn(10, H, dtype=torch.bfloat16, requires_grad=True)
    visual = torch.randn(2, H, requires_grad=True)  # float32 features
    out = splice_visual_tokens(torch.tensor([[1, IMG]]), [visual], lambda i: weight[i])
    assert out.inputs_embeds.dtype == torch.bfloat16
    out.inputs_embeds.float().sum().backward()
    assert visual.grad is not None and weight.grad is not None


def test_anchor_connects_text_only_samples() -> None:
    param = torch.ones(1, requires_grad=True)
    out = splice_visual_tokens(torch.tensor([[1, 2]]), [], embed, anchor=(param * 0).sum())
    out.inputs_embeds.sum().backward()
    assert param.grad is not None and float(param.grad) == 0.0


def test_bad_padding_side() -> None:
    with pytest.raises(ValueError, match="padding_side"):
        splice_visual_tokens(torch.tensor([[1]]), [], embed, padding_side="middle")


# --------------------------------------------------------------------------- image processor
def test_processor_normalisation_golden_2x2() -> None:
    image = np.array([[[0, 51, 255], [255, 255, 255]], [[127, 128, 0], [10, 20, 30]]], dtype=np.uint8)
    px = SigLipImageProcessor(size=2).preprocess(image)["pixel_values"]
    assert px.shape == (1, 3, 2, 2) and px.dtype == torch.float32
    expected_r = torch.tensor([[-1.0, 1.0], [127 / 127.5 - 1, 10 / 127.5 - 1]])
    assert torch.allclose(px[0, 0], expected_r, atol=1e-6)
    assert px[0, 1, 0, 0].item() == pytest.approx(-0.6, abs=1e-6)  # 51 -> 0.2 -> -0.6
    assert px[0, 2, 0, 0].item() == pytest.approx(1.0)


def test_processor_bicubic_is_pil_golden() -> None:
    """2×2 → 4×4 with PIL bicubic on uint8 (values frozen; torch's bicubic would overshoot to -59/314)."""
    image = np.array([[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    px = SigLipImageProcessor(size=4).preprocess(image)["pixel_values"]
    red = ((px[0, 0] + 1) * 127.5).round().to(torch.int64)
    assert red.tolist() == [[0, 40, 215, 255], [53, 84, 171, 202], [202, 171, 84, 53], [255, 215, 40, 0]]


def test_processor_accepts_pil_stack_and_lists() -> None:
    proc = SigLipImageProcessor(size=8)
    frames = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    stacked = proc(frames)["pixel_values"]
    assert stacked.shape == (3, 3, 8, 8)
    listed = proc([frames[0], Image.fromarray(frames[1]), torch.from_numpy(frames[2])])["pixel_values"]
    assert torch.equal(stacked, listed)
    assert stacked.min() >= -1 and stacked.max() <= 1
    gray = Image.fromarray(frames[0, :, :, 0])
    assert proc(gray)["pixel_values"].shape == (1, 3, 8, 8)


def test_processor_bad_inputs() -> None:
    proc = SigLipImageProcessor(size=8)
    with pytest.raises(TypeError, match="uint8"):
        proc(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[H,W,3\]"):
        proc(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="no images"):
        proc([])
    with pytest.raises(TypeError, match="accepts"):
        proc("frame.png")
