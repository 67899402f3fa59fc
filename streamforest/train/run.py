"""Run one training stage from a :class:`StageConfig` (what ``python -m streamforest.train`` calls)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from streamforest.train.config import StageConfig, resolve_path, save_config
from streamforest.train.dist import RankZeroFilter, rank, setup_slurm_env
from streamforest.train.safety import (
    TRAINER_STATE,
    CheckpointSaveError,
    OutputDirError,
    OutputDirLock,
    check_output_dir,
    clear_partial_saves,
    describe_save_failure,
    find_resume_checkpoint,
    is_complete,
    single_process_env,
)

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS_DIR = Path.home() / ".cache" / "streamforest" / "torch_extensions"


def setup_logging(level: int = logging.INFO) -> None:
    """Root logging with a timestamp; INFO only on rank 0."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    handler.addFilter(RankZeroFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _use_cpu(cfg: StageConfig) -> bool:
    return cfg.training.use_cpu if cfg.training.use_cpu is not None else not torch.cuda.is_available()


def _deepspeed_config(cfg: StageConfig) -> dict[str, Any] | None:
    from streamforest.train.optim import strip_optimizer_block

    path = cfg.training.deepspeed
    if not path:
        return None
    return strip_optimizer_block(resolve_path(path) or path)


def init_distributed(cfg: StageConfig, ds_config: dict[str, Any] | None) -> None:
    """Process group before anything builds a model (ZeRO-3 ``from_pretrained`` needs it; gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and ds_config is None:
        return
    if ds_config is not None:
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo" if _use_cpu(cfg) else "nccl")


def training_arguments(cfg: StageConfig, ds_config: dict[str, Any] | None) -> Any:
    """``transformers.TrainingArguments`` of a stage."""
    from transformers import TrainingArguments

    t = cfg.training
    use_cpu = _use_cpu(cfg)
    kwargs: dict[str, Any] = dict(
        output_dir=t.output_dir,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler_type,
        max_grad_norm=t.max_grad_norm,
        bf16=t.bf16,
        fp16=t.fp16,
        tf32=t.tf32 if (t.tf32 and not use_cpu) else None,
        save_strategy=t.save_strategy,
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        dataloader_num_workers=t.dataloader_num_workers,
        dataloader_prefetch_factor=2 * t.dataloader_num_workers if t.dataloader_num_workers > 0 else None,
        dataloader_drop_last=t.dataloader_drop_last,
        torch_compile=t.torch_compile,
        report_to=list(t.report_to) or "none",
        run_name=t.run_name,
        seed=t.seed,
        deepspeed=ds_config,
        use_cpu=use_cpu,
        remove_unused_columns=False,
        ddp_timeout=52 * 7 * 24 * 3600,
    )
    kwargs.update(_checkpointing_kwargs(t.gradient_checkpointing))
    kwargs.update(t.extra_args)
    return TrainingArguments(**kwargs)


def _checkpointing_kwargs(enabled: bool) -> dict[str, Any]:
    """Activation (gradient) checkpointing, non-reentrant; transformers 5 renamed the fields."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False} if enabled else None}


def last_checkpoint(cfg: StageConfig) -> str | None:
    """The checkpoint to resume from (``training.resume``: auto = the newest complete one / never / a path)."""
    resume = cfg.training.resume
    if resume == "never":
        return None
    if resume != "auto":
        if not is_complete(Path(resume)):
            raise OutputDirError(
                f"training.resume {resume!r} is an incomplete checkpoint (no {TRAINER_STATE}: its save was "
                "interrupted); use training.resume=auto to pick the newest complete one"
            )
        return resume
    return find_resume_checkpoint(cfg.training.output_dir)


def claim_output_dir(cfg: StageConfig) -> OutputDirLock | None:
    """Check that ``output_dir`` is writable; on rank 0 lock it for this run and drop interrupted saves."""
    out = check_output_dir(cfg.training.output_dir)
    if rank() != 0:
        return None
    lock = OutputDirLock(out).acquire()
    clear_partial_saves(out)
    return lock


def build_data(cfg: StageConfig, tokenizer: Any, image_processor: Any) -> tuple[Any, Any]:
    """Dataset and collator of a stage."""
    from streamforest.data import DataCollator, SupervisedDataset, VideoSampling, load_data_list

    d = cfg.data
    data = load_data_list(resolve_path(d.data_path) or d.data_path, data_root_map=d.data_root_map, check_media=d.check_media)
    sampling = VideoSampling(d.frames_upbound, d.frames_lowbound, d.local_num_frames, d.sample_type, d.time_msg)
    dataset = SupervisedDataset(
        data.records, tokenizer, image_processor, version=cfg.model.version, sampling=sampling, early_mix_text=d.early_mix_text,
        time_msg_insertion=d.time_msg_insertion,
    )
    collator = DataCollator(tokenizer.pad_token_id, cfg.training.model_max_length, dummy_image=dataset.dummy_image())
    logger.info("training data: %d records from %s", len(dataset), d.data_path)
    return dataset, collator


def load_callbacks(names: list[str]) -> list[Any]:
    """Instantiate ``"module:Class"`` callback names (``training.callbacks``)."""
    import importlib

    out = []
    for name in names:
        module, _, cls = name.partition(":")
        if not cls:
            raise ValueError(f"training.callbacks entry {name!r}: write it as 'package.module:ClassName'")
        out.append(getattr(importlib.import_module(module), cls)())
    return out


def run(cfg: StageConfig) -> dict[str, Any]:
    """Train one stage and save its result; returns the HF train metrics (plus ``global_step``).

    ``output_dir`` is checked and locked first (a second run on it fails naming the holder).
    """
    setup_slurm_env()
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(DEFAULT_EXTENSIONS_DIR))
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", os.path.join(cfg.training.output_dir, "runs"))
    ds_config = _deepspeed_config(cfg)
    if ds_config is not None:
        single_process_env()
    lock = claim_output_dir(cfg)
    try:
        return _train(cfg, ds_config)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: StageConfig, ds_config: dict[str, Any] | None) -> dict[str, Any]:
    from streamforest.train.build import build_stage_model
    from streamforest.train.lora import apply_lora, save_lora
    from streamforest.train.trainer import StreamForestTrainer

    init_distributed(cfg, ds_config)
    args = training_arguments(cfg, ds_config)
    if args.should_save:
        save_config(cfg, cfg.training.output_dir)
    built = build_stage_model(cfg)
    model = apply_lora(built.model, cfg) if cfg.lora.enable else built.model
    dataset, collator = build_data(cfg, built.tokenizer, built.image_processor)
    trainer = StreamForestTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=built.tokenizer,
        stage=cfg,
        lengths=dataset.modality_lengths if cfg.training.group_by_modality_length else None,
        callbacks=load_callbacks(cfg.training.callbacks),
    )
    resume = last_checkpoint(cfg)
    if resume:
        logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    model.config.use_cache = True
    try:
        trainer.save_state()
        if cfg.lora.enable:
            save_lora(trainer.model, cfg.training.output_dir, trainer.processing_class, is_main=trainer.args.should_save)
        else:
            trainer.save_model(cfg.training.output_dir)
    except Exception as err:  # noqa: BLE001 - each writer raises its own type for an I/O failure
        raise CheckpointSaveError(describe_save_failure(cfg.training.output_dir, err)) from err
    metrics = dict(result.metrics)
    metrics["global_step"] = trainer.state.global_step
    metrics["skipped_samples"] = trainer.skips.skipped
    logger.info("stage finished: %s", metrics)
    return metrics


def shutdown(synchronise: bool = False) -> None:
    """Destroy the process group (DeepSpeed/gloo leave it open otherwise). ``synchronise`` (after a run that
    finished on this rank): wait for every rank first, so that no rank tears down its communication threads
    while another is still saving (a rank leaving early was seen to abort with "terminate called without an
    active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if synchronise and torch.distributed.get_world_size() > 1:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()
