"""The checkpoint schema (streamforest.model.config): one definition of the flat keys that the trainer, the
builder and the tiny checkpoints derive from; one memory-model predicate; one checkpoint lookup; stage 5 = stage 4
plus six keys (``base:``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from streamforest.model.config import (
    RELEASED_KEYS,
    RELEASED_PRESETS,
    STORED_ONLY_KEYS,
    TOWER_KEYS,
    LlavaQwenConfig,
    MultimodalSettings,
    checkpoint_keys,
    is_memory_model,
)
from streamforest.model.loader import is_streamforest_checkpoint, resolve_local_dir
from streamforest.tiny import tiny_config
from streamforest.train.build import stage_config_keys
from streamforest.train.config import ConfigError, ModelConfig, load_config

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "configs" / "train"


def test_every_released_key_is_read_or_declared_stored_only() -> None:
    read = MultimodalSettings.keys()
    assert set(RELEASED_KEYS) <= read | set(STORED_ONLY_KEYS)
    assert not read & set(STORED_ONLY_KEYS)  # a key is either read or stored, never both
    assert set(STORED_ONLY_KEYS) <= set(RELEASED_KEYS)
    for preset in RELEASED_PRESETS.values():
        assert set(preset) <= set(RELEASED_KEYS)


def test_checkpoint_keys_rejects_unknown_and_applies_preset() -> None:
    with pytest.raises(ValueError, match="mm_projetor_type"):
        checkpoint_keys(mm_projetor_type="tome16_mlp")
    keys = checkpoint_keys("tome16_mlp", tower=False)
    assert keys["mm_projector_type"] == "tome16_mlp" and keys["mm_local_num_frames"] == 8
    assert not set(TOWER_KEYS) & set(keys)


@pytest.mark.parametrize("name", ["stage1_init_connector.yaml", "stage3_video_sft.yaml", "stage5_drive_ft.yaml"])
def test_trainer_writes_only_schema_keys(name: str) -> None:
    keys = stage_config_keys(load_config(CFG / name))
    assert set(keys) <= set(RELEASED_KEYS) | MultimodalSettings.keys()
    assert set(keys) == set(RELEASED_KEYS) - set(TOWER_KEYS)  # the full released format, tower kept from the base
    assert keys["mm_close_init"] is True and keys["mm_num_compress_latents"] == 128  # released values, not options


def test_training_options_are_keys_the_model_reads() -> None:
    flat = {f.name for f in dataclasses.fields(ModelConfig) if f.name.startswith("mm_") or f.name == "vision_encode_type"}
    assert flat <= MultimodalSettings.keys()
    assert not flat & set(STORED_ONLY_KEYS)


def test_stored_only_key_in_a_stage_yaml_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"base: {CFG / 'stage4_online_ft.yaml'}\nmodel:\n  mm_close_init: true\n")
    with pytest.raises(ConfigError, match=r"mm_close_init.*never reads.*config_overrides"):
        load_config(cfg)


@pytest.mark.parametrize("projector", sorted(RELEASED_PRESETS))
def test_tiny_config_keys_come_from_the_schema(projector: str) -> None:
    cfg = tiny_config(projector).to_dict()
    expected = checkpoint_keys(projector, mm_hidden_size=64)
    assert {k: cfg[k] for k in expected} == expected


def test_is_memory_model_one_predicate() -> None:
    memory = LlavaQwenConfig(vision_encode_type="image_video_memory_batch", mm_local_num_frames=1)
    clips = LlavaQwenConfig(vision_encode_type="image_video_new", mm_local_num_frames=8)
    assert is_memory_model(memory) and is_memory_model(memory.multimodal) and memory.multimodal.uses_memory
    assert is_memory_model(SimpleNamespace(config=memory))  # a model
    assert not is_memory_model(clips) and not is_memory_model(clips.multimodal)
    assert not is_memory_model(SimpleNamespace(config=LlavaQwenConfig()))  # no multimodal keys
    assert is_memory_model(tiny_config("tome729_fstw_pemf")) and not is_memory_model(tiny_config("tome16_mlp"))


def test_is_streamforest_checkpoint_and_lookup(tmp_path: Path) -> None:
    llm, ckpt = tmp_path / "llm", tmp_path / "ckpt"
    llm.mkdir()
    ckpt.mkdir()
    (llm / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"]}))
    (ckpt / "config.json").write_text(json.dumps({"architectures": ["LlavaQwenForCausalLM"], "model_type": "qwen2"}))
    assert not is_streamforest_checkpoint(llm) and is_streamforest_checkpoint(ckpt)
    assert is_streamforest_checkpoint({"architectures": ["Qwen2ForCausalLM"], "mm_vision_tower": "x"})
    assert resolve_local_dir(str(ckpt)) == ckpt
    with pytest.raises(FileNotFoundError, match="model.vision_tower 'nobody/none' does not exist locally"):
        resolve_local_dir("nobody/none", what="model.vision_tower")
    with pytest.raises(NotADirectoryError, match="is a file"):
        resolve_local_dir(ckpt / "config.json")


def test_stage5_inherits_stage4_and_resolves_as_before() -> None:
    text = (CFG / "stage5_drive_ft.yaml").read_text()
    assert "base: stage4_online_ft.yaml" in text
    stage5 = load_config(CFG / "stage5_drive_ft.yaml").to_dict()
    golden = json.loads((REPO / "tests" / "data" / "stage5_drive_ft.resolved.json").read_text())
    assert stage5 == golden  # the resolved config of the former stand-alone stage-5 YAML
    stage4 = load_config(CFG / "stage4_online_ft.yaml").to_dict()
    diff = {(s, k) for s in stage4 for k in stage4[s] if stage4[s][k] != stage5[s][k]}
    assert diff == {("model", "model_name_or_path"), ("data", "data_path"), ("data", "frames_lowbound"),
                    ("training", "output_dir"), ("training", "gradient_accumulation_steps"),
                    ("training", "dataloader_num_workers")}  # fmt: skip
