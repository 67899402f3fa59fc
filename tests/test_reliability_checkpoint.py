"""Issue 16 (checkpoint loading): a damaged checkpoint is refused with the file, the field and the fix —
missing tokenizer files, a truncated safetensors shard, a config that does not match the weights, a number
written as a string, NaN weights — instead of loading and answering ``''``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from streamforest.model.checks import CheckpointError
from streamforest.model.loader import load_pretrained


def _damaged(src: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    out = tmp_path / "ckpt"
    shutil.copytree(src, out)
    damage(out)
    return out


def _shards(ckpt: Path) -> list[Path]:
    return sorted(ckpt.glob("*.safetensors"))


def _set_config(key: str, value: object) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        cfg = json.loads((ckpt / "config.json").read_text())
        cfg[key] = value
        (ckpt / "config.json").write_text(json.dumps(cfg))

    return damage


def test_checkpoint_without_tokenizer_files_is_refused_naming_them(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _damaged(tiny_checkpoint, tmp_path, lambda d: [f.unlink() for f in d.glob("tokenizer*.json")])
    with pytest.raises(CheckpointError, match="no tokenizer") as err:
        load_pretrained(ckpt, dtype="float32")
    assert "tokenizer_config.json" in str(err.value) and "tokenizer.json" in str(err.value) and str(ckpt) in str(err.value)


def test_truncated_safetensors_names_the_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    def truncate(d: Path) -> None:
        shard = _shards(d)[-1]
        shard.write_bytes(shard.read_bytes()[:5000])

    ckpt = _damaged(tiny_checkpoint, tmp_path, truncate)
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_pretrained(ckpt, dtype="float32")
    assert str(_shards(ckpt)[-1]) in str(err.value)


def test_wrong_vocab_size_names_the_tensor_and_the_config_value(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _damaged(tiny_checkpoint, tmp_path, _set_config("vocab_size", 999))
    with pytest.raises(CheckpointError, match=r"vocab_size=999") as err:
        load_pretrained(ckpt, dtype="float32")
    assert "embed_tokens.weight" in str(err.value) or "lm_head.weight" in str(err.value)


def test_number_written_as_a_string_names_the_field(tiny_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = _damaged(tiny_checkpoint, tmp_path, _set_config("hidden_size", "64"))
    with pytest.raises(CheckpointError, match=r"field 'hidden_size' = '64' must be an integer") as err:
        load_pretrained(ckpt, dtype="float32")
    assert str(ckpt / "config.json") in str(err.value)


def test_nan_weights_are_refused_naming_the_tensor(tiny_checkpoint: Path, tmp_path: Path) -> None:
    poisoned: list[str] = []

    def poison(d: Path) -> None:
        shard = _shards(d)[0]
        state = load_file(str(shard))
        name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
        state[name].view(-1)[0] = float("nan")
        save_file(state, str(shard), metadata={"format": "pt"})
        poisoned.append(name)

    ckpt = _damaged(tiny_checkpoint, tmp_path, poison)
    with pytest.raises(CheckpointError, match="NaN") as err:
        load_pretrained(ckpt, dtype="float32")
    assert "(1 of " in str(err.value)


def test_intact_checkpoint_still_loads(tiny_checkpoint: Path) -> None:
    loaded = load_pretrained(tiny_checkpoint, dtype="float32")
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


def test_stream_cli_without_tokenizer_exits_nonzero_naming_the_files(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The issue's reproduction: ``streamforest stream VIDEO --model CKPT --ask "3: hi"`` answered ``''``, exit 0."""
    from helpers_video import write_index_video

    from streamforest.cli import main

    video = write_index_video(tmp_path / "v.mp4", 40, fps=10)
    ckpt = _damaged(tiny_checkpoint, tmp_path, lambda d: [f.unlink() for f in d.glob("tokenizer*.json")])
    assert main(["stream", str(video), "--model", str(ckpt), "--ask", "3: hi", "--no-progress"]) != 0
    assert "tokenizer_config.json" in capsys.readouterr().err
