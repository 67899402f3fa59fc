"""Sin-cos tables: the reference layout (temporal | column | row), wrap at 512, caching."""

import math

import pytest
import torch

from streamforest.pos_embed import (
    memory_pos_embed,
    sincos_1d,
    sincos_3d,
    spatial_pos_embed,
    temporal_pos_embed,
)

C = 1152  # SigLIP so400m: temporal dims [0, 288), column [288, 720), row [720, 1152)


def test_sincos_1d_sines_then_cosines():
    emb = sincos_1d(8, torch.tensor([0.0, 2.0]))
    omega = [10000 ** (-i / 4) for i in range(4)]
    expected = [math.sin(2 * w) for w in omega] + [math.cos(2 * w) for w in omega]
    torch.testing.assert_close(emb[1], torch.tensor(expected))
    assert emb[0, :4].abs().sum() == 0 and (emb[0, 4:] == 1).all()
    assert emb.dtype == torch.float32


def test_spatial_layout_column_then_row():
    table = spatial_pos_embed(27, C)
    assert table.shape == (27, 27, C)
    assert table[..., :288].abs().sum() == 0
    r, c = 3, 11
    assert table[r, c, 288].item() == pytest.approx(math.sin(c))  # first column sine
    assert table[r, c, 288 + 216].item() == pytest.approx(math.cos(c))  # first column cosine
    assert table[r, c, 720].item() == pytest.approx(math.sin(r))  # first row sine
    # column block depends only on the column, row block only on the row
    torch.testing.assert_close(table[0, c, 288:720], table[26, c, 288:720])
    torch.testing.assert_close(table[r, 0, 720:], table[r, 26, 720:])


def test_temporal_table_and_wrap_at_512():
    t = temporal_pos_embed(512, C)
    assert t[:, 288:].abs().sum() == 0
    assert t[5, 0].item() == pytest.approx(math.sin(5))
    assert t[5, 144].item() == pytest.approx(math.cos(5))
    pe = memory_pos_embed(3, 27, C, start=511)
    torch.testing.assert_close(pe[1], memory_pos_embed(1, 27, C, start=0)[0])  # frame 512 -> position 0
    torch.testing.assert_close(pe[0] - spatial_pos_embed(27, C).reshape(729, C), t[511].expand(729, C))


def test_3d_table_image_has_cos_one_in_temporal_cosines():
    table = sincos_3d(1, 27, C)
    assert table.shape == (729, C)
    assert (table[:, :144] == 0).all() and (table[:, 144:288] == 1).all()
    clip = sincos_3d(8, 27, C).reshape(8, 729, C)
    torch.testing.assert_close(clip[:, :, 288:], spatial_pos_embed(27, C).reshape(1, 729, C)[:, :, 288:].expand(8, -1, -1))
    assert clip[3, 0, 0].item() == pytest.approx(math.sin(3))


def test_cache_returns_same_tensor_and_validates_width():
    assert spatial_pos_embed(4, 64) is spatial_pos_embed(4, 64)
    with pytest.raises(ValueError, match="multiple of 16"):
        spatial_pos_embed(4, 40)
