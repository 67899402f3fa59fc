"""Stage configs: every shipped YAML parses, validates and matches the reference table (REFERENCE §4.12);
overrides, unknown keys, DeepSpeed JSONs (§4.13), optimizer groups (§4.9), tunable parts (§4.8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from streamforest.train.config import ConfigError, load_config, save_config

REPO = Path(__file__).resolve().parents[1]
CFG = REPO / "configs" / "train"

# REFERENCE §4.12, transcribed: projector, tunable parts, lr, vision lr, batch, accum, max len, deepspeed, attn,
# frames up/low, local frames, sample, time msg, encode type, mm_local, mm_pos, grouped, save steps,
# workers, drop_last, prompt version, init weights
REFERENCE = {
    "stage1_init_connector.yaml": dict(
        projector="tome64_mlp", parts=["mm_mlp_adapter"], lr=1e-3, vlr=None, batch=16, accum=4, max_len=8192,
        ds="zero3.json", attn="sdpa", up=4, low=1, local=1, sample="middle", tmsg="short",
        encode="image_video_new", mm_local=1, mm_pos=8, grouped=False, save="no", save_steps=None, workers=16,
        drop_last=False, version="plain", init="Qwen/Qwen2-7B-Instruct", compile=False,
    ),
    "stage2_visual_pretrain.yaml": dict(
        projector="tome64_mlp", parts=["mm_vision_tower", "mm_mlp_adapter", "mm_language_model"], lr=1e-5, vlr=2e-6,
        batch=1, accum=16, max_len=32768, ds="zero1.json", attn="sdpa", up=8, low=1, local=2, sample="dynamic_fps1",
        tmsg="short", encode="image_video_new", mm_local=2, mm_pos=2, grouped=True, save="steps", save_steps=10000,
        workers=8, drop_last=True, version="qwen_2", init="Qwen/Qwen2-7B-Instruct", compile=True,
    ),
    "stage3_video_sft.yaml": dict(
        projector="tome16_mlp", parts=["mm_vision_tower", "mm_mlp_adapter", "mm_language_model"], lr=1e-5, vlr=2e-6,
        batch=1, accum=8, max_len=32768, ds="zero3.json", attn="flash_attention_2", up=256, low=64, local=8,
        sample="dynamic_fps1", tmsg="short", encode="image_video_new", mm_local=8, mm_pos=8, grouped=True,
        save="steps", save_steps=2000, workers=4, drop_last=True, version="qwen_2", init="outputs/stage2_visual_pretrain",
        compile=True,
    ),
    "stage4_online_ft.yaml": dict(
        projector="tome729_fstw_pemf", parts=["mm_mlp_adapter", "mm_language_model"], lr=1e-5, vlr=2e-6, batch=1,
        accum=4, max_len=32768, ds="zero1.json", attn="flash_attention_2", up=512, low=2, local=1, sample="dynamic_fps1",
        tmsg="short_online_v2", encode="image_video_memory_batch", mm_local=1, mm_pos=1, grouped=True, save="steps",
        save_steps=1000, workers=8, drop_last=True, version="qwen_2", init="MCG-NJU/StreamForest-Pretrain-Qwen2-7B",
        compile=True,
    ),
    "stage5_drive_ft.yaml": dict(
        projector="tome729_fstw_pemf", parts=["mm_mlp_adapter", "mm_language_model"], lr=1e-5, vlr=2e-6, batch=1,
        accum=8, max_len=32768, ds="zero1.json", attn="flash_attention_2", up=512, low=4, local=1, sample="dynamic_fps1",
        tmsg="short_online_v2", encode="image_video_memory_batch", mm_local=1, mm_pos=1, grouped=True, save="steps",
        save_steps=1000, workers=4, drop_last=True, version="qwen_2", init="MCG-NJU/StreamForest-Qwen2-7B", compile=True,
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_stage_yaml_matches_reference_table(name: str) -> None:
    ref = REFERENCE[name]
    c = load_config(CFG / name)
    m, d, t = c.model, c.data, c.training
    got = dict(
        projector=m.mm_projector_type, parts=m.mm_tunable_parts, lr=t.learning_rate, vlr=t.mm_vision_tower_lr,
        batch=t.per_device_train_batch_size, accum=t.gradient_accumulation_steps, max_len=t.model_max_length,
        ds=Path(t.deepspeed or "").name, attn=m.attn_implementation, up=d.frames_upbound, low=d.frames_lowbound,
        local=d.local_num_frames, sample=d.sample_type, tmsg=d.time_msg, encode=m.vision_encode_type,
        mm_local=m.mm_local_num_frames, mm_pos=m.mm_pos_num_frames, grouped=t.group_by_modality_length,
        save=t.save_strategy, save_steps=t.save_steps if t.save_strategy == "steps" else None,
        workers=t.dataloader_num_workers, drop_last=t.dataloader_drop_last, version=m.version,
        init=m.model_name_or_path, compile=t.torch_compile,
    )
    assert got == ref
    # common settings of every stage
    assert (t.num_train_epochs, t.weight_decay, t.warmup_ratio, t.lr_scheduler_type) == (1.0, 0.0, 0.03, "cosine")
    assert t.bf16 and t.tf32 and t.gradient_checkpointing and t.logging_steps == 1 and t.mm_projector_lr is None
    assert d.time_msg_insertion == "train"  # the reference stages keep the reference's training prompt
    assert m.vision_tower == "google/siglip-so400m-patch14-384" and m.mm_vision_select_layer == -2
    assert not m.mm_use_im_start_end and not m.mm_use_im_patch_token
    assert "tensorboard" in t.report_to
    assert (REPO / t.deepspeed).is_file() and (REPO / d.data_path).is_file()
    if name.startswith("stage2"):
        assert m.pretrain_mm_mlp_adapter == "outputs/stage1_init_connector/mm_projector.bin"


def test_tiny_configs_only_change_sizes_paths_and_cpu_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_TINY", "/tmp/sf_tiny_x")
    for i, name in enumerate(sorted(REFERENCE), start=1):
        tiny, real = load_config(CFG / "tiny" / f"stage{i}.yaml"), load_config(CFG / name)
        for key in ("mm_projector_type", "vision_encode_type", "mm_tunable_parts", "version", "mm_local_num_frames"):
            assert getattr(tiny.model, key) == getattr(real.model, key), (i, key)
        assert (tiny.data.sample_type, tiny.data.time_msg, tiny.data.local_num_frames) == (
            real.data.sample_type, real.data.time_msg, real.data.local_num_frames)
        assert tiny.training.output_dir.startswith("/tmp/sf_tiny_x/") and tiny.training.deepspeed.endswith("zero2.json")


def test_overrides_unknown_keys_and_saved_config_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SF_TINY", raising=False)
    c = load_config(CFG / "stage4_online_ft.yaml", [
        "training.learning_rate=2e-5", "model.mm_tunable_parts=[mm_mlp_adapter]", "data.data_root_map.old=/new",
        f"training.output_dir={tmp_path}", "lora.enable=false",
    ])
    assert c.training.learning_rate == 2e-5 and c.model.mm_tunable_parts == ["mm_mlp_adapter"]
    assert c.data.data_root_map == {"old": "/new"}
    saved = save_config(c, tmp_path)
    again = load_config(saved)
    assert again.to_dict() == c.to_dict()
    with pytest.raises(ConfigError, match=r"stage4_online_ft.yaml: training.*unknown key.*learning_rat\b"):
        load_config(CFG / "stage4_online_ft.yaml", ["training.learning_rat=1"])
    with pytest.raises(ConfigError, match="must start with one of"):
        load_config(CFG / "stage4_online_ft.yaml", ["learning_rate=1"])
    with pytest.raises(ConfigError, match="quote the value"):
        load_config(CFG / "stage4_online_ft.yaml", ["training.save_strategy=no"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(CFG / "stage4_online_ft.yaml", ["training.save_steps=often"])
    with pytest.raises(ConfigError, match="mm_tunable_parts"):
        load_config(CFG / "stage4_online_ft.yaml", ["model.mm_tunable_parts=[mm_vision_resampler]"])
    with pytest.raises(ConfigError, match=r"stage4_online_ft.yaml: data.time_msg_insertion 'inference' is not one of"):
        load_config(CFG / "stage4_online_ft.yaml", ["data.time_msg_insertion='inference'"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  projector: tome16_mlp\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model: unknown key\(s\) \['projector'\]"):
        load_config(bad)
    (tmp_path / "env.yaml").write_text("base: " + str(CFG / "tiny" / "stage1.yaml") + "\n")
    with pytest.raises(ConfigError, match="environment variable"):
        load_config(tmp_path / "env.yaml")


def test_deepspeed_jsons_match_reference_and_have_no_optimizer_block() -> None:
    ds = {p.stem: json.loads(p.read_text()) for p in (REPO / "scripts" / "deepspeed").glob("*.json")}
    assert set(ds) == {"zero1", "zero2", "zero3", "zero3_offload"}
    for cfg in ds.values():
        assert "optimizer" not in cfg and "scheduler" not in cfg
        assert cfg["fp16"] == {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                               "hysteresis": 2, "min_loss_scale": 1}
        assert cfg["bf16"] == {"enabled": "auto"} and cfg["gradient_clipping"] == "auto"
    assert ds["zero1"]["zero_optimization"] == {"stage": 1, "reduce_bucket_size": 500000000}
    z2 = ds["zero2"]["zero_optimization"]
    assert z2["stage"] == 2 and z2["overlap_comm"] is False and z2["allgather_bucket_size"] == 200000000
    z3 = ds["zero3"]["zero_optimization"]
    assert z3["stage"] == 3 and z3["stage3_gather_16bit_weights_on_model_save"] is True and z3["sub_group_size"] == 10**9
    assert ds["zero3_offload"]["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert ds["zero3_offload"]["steps_per_print"] == 100000


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Module()
        self.model.vision_tower = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
        self.model.mm_projector = nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 3))
        self.model.layers = nn.Linear(3, 3)
        self.lm_head = nn.Linear(3, 5, bias=False)


def test_tunable_parts_and_per_module_learning_rates() -> None:
    from streamforest.train.optim import (
        build_param_groups,
        make_optimizer,
        set_tunable_parts,
        strip_optimizer_block,
    )

    model = _Toy()
    counts = set_tunable_parts(model, ["mm_mlp_adapter", "mm_language_model"])
    assert counts == {"mm_mlp_adapter": 6 + 3 + 9 + 3, "mm_vision_tower": 0, "mm_language_model": 12 + 15}
    assert not any(p.requires_grad for p in model.model.vision_tower.parameters())
    set_tunable_parts(model, ["mm_vision_tower", "mm_mlp_adapter", "mm_language_model"])
    groups = build_param_groups(model, learning_rate=1e-5, weight_decay=0.1, mm_vision_tower_lr=2e-6)
    by_name = {g.name: g for g in groups}
    assert by_name["mm_vision_tower"].lr == 2e-6 and by_name["mm_vision_tower/no_decay"].lr == 2e-6
    assert by_name["default"].lr == 1e-5 and by_name["default/no_decay"].weight_decay == 0.0
    vt_ids = {id(p) for p in model.model.vision_tower.parameters()}
    assert {id(p) for g in groups if g.name.startswith("mm_vision_tower") for p in g.params} == vt_ids
    # the LayerNorm weight and every bias go without decay; Linear weights with decay
    assert any(p is model.model.vision_tower[1].weight for p in by_name["mm_vision_tower/no_decay"].params)
    assert any(p is model.model.vision_tower[0].weight for p in by_name["mm_vision_tower"].params)
    opt = make_optimizer(groups)
    assert sorted(g["lr"] for g in opt.param_groups) == sorted(g.lr for g in groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in model.parameters())
    assert "optimizer" not in strip_optimizer_block({"optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 1}})


def test_slurm_environment_derivation() -> None:
    from streamforest.train.dist import first_host, setup_slurm_env

    assert first_host("gpu[03-05,9],cpu1") == "gpu03" and first_host("node7") == "node7"
    env = {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "8(x2)",
           "SLURM_STEP_NODELIST": "hpc-[12-13]"}
    assert setup_slurm_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("9", "16", "1", "8")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("hpc-12", "10023")
    assert not setup_slurm_env({"RANK": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "4"})


def test_qlora_refuses_cpu_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamforest.train.lora import check_qlora_environment, lora_target_modules

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        check_qlora_environment(4)
    check_qlora_environment(16)
    assert lora_target_modules(_Toy()) == ["model.layers"]


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamforest.train.__main__ import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  learning_rat: 1\n")
    assert main([str(bad), "--local_rank=0"]) == 2
    assert "learning_rat" in capsys.readouterr().err
    assert main([]) == 2
