"""``StreamForestTrainer``: the HF ``Trainer`` with the reference's training behaviour plus our fixes.

* optimizer groups built by us (per-module LRs always apply, logged at start — REFERENCE §4.9);
* the modality-grouped length sampler with ``world = world_size × grad_accum`` (REFERENCE §4.10), seeded;
* loss = per-micro-batch mean, divided by the accumulation steps (the reference's transformers 4.46 path);
* skipped samples counted, the run stops when their fraction passes ``max_skip_fraction``;
* logs: loss, LR of every group, text tokens/s and samples/s per device, skipped samples;
* stage 1 (only ``mm_mlp_adapter`` tunable) saves ``mm_projector.bin`` + ``config.json`` (REFERENCE §4.11);
* checkpoints appear only when complete (written under ``.partial/``, then renamed; ``streamforest.train.safety``);
  a failed write names the path and the cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from streamforest.data.sampler import ModalityLengthGroupedSampler
from streamforest.train.config import StageConfig
from streamforest.train.optim import build_param_groups, make_optimizer
from streamforest.train.safety import PARTIAL_DIR, CheckpointSaveError, describe_save_failure

logger = logging.getLogger(__name__)

MM_PROJECTOR_FILE = "mm_projector.bin"


class DataSkipError(RuntimeError):
    """Too many samples could not be read."""


@dataclass
class SkipTracker:
    """Counts seen / skipped samples of this rank and enforces the bound."""

    max_fraction: float
    min_samples: int
    seen: int = 0
    skipped: int = 0
    recent: list[str] = field(default_factory=list)

    def update(self, seen: int, skipped: int, paths: list[str]) -> None:
        self.seen += seen
        self.skipped += skipped
        self.recent = (self.recent + list(paths))[-5:]
        if self.seen >= self.min_samples and self.skipped > self.max_fraction * self.seen:
            raise DataSkipError(
                f"{self.skipped} of {self.seen} samples could not be read ({self.skipped / self.seen:.1%} > "
                f"data.max_skip_fraction={self.max_fraction:.1%}); last unreadable: {self.recent}. Fix the media "
                "paths (data_root / data_root_map) or raise data.max_skip_fraction"
            )


class StreamForestTrainer(Trainer):
    """HF Trainer for the StreamForest stages. Extra constructor arguments: ``stage`` and ``lengths``."""

    def __init__(self, *args: Any, stage: StageConfig, lengths: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage
        self.lengths = lengths
        self.model_accepts_loss_kwargs = False  # per-micro-batch mean loss, like the reference
        self.skips = SkipTracker(stage.data.max_skip_fraction, stage.data.min_samples_before_skip_check)
        self._tokens = 0
        self._samples = 0
        self._last_log = (time.perf_counter(), 0, 0)
        self._step_lrs: dict[str, float] = {}
        self._sampler: ModalityLengthGroupedSampler | None = None
        self._staging = False

    # ------------------------------------------------------------------------------------------ sampler
    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        if self.stage.training.group_by_modality_length and self.lengths is not None:
            world = self.args.world_size * self.args.gradient_accumulation_steps
            self._sampler = ModalityLengthGroupedSampler(self.lengths, self.args.train_batch_size, world, seed=self.args.seed)
            return self._sampler
        return super()._get_train_sampler(train_dataset)

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        # accelerate's skip_first_batches wrapper (used when resuming mid-epoch) does not forward set_epoch
        # to a custom sampler, which would replay epoch 0's order: set it here from the trainer's epoch
        if self._sampler is not None and "epoch" in kwargs:
            self._sampler.set_epoch(int(kwargs["epoch"]))
        return super()._run_epoch(*args, **kwargs)

    # ------------------------------------------------------------------------------------------ optimizer
    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            t = self.stage.training
            groups = build_param_groups(
                self.model if model is None else model,
                learning_rate=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                mm_projector_lr=t.mm_projector_lr,
                mm_vision_tower_lr=t.mm_vision_tower_lr,
            )
            self.optimizer = make_optimizer(groups, betas=(self.args.adam_beta1, self.args.adam_beta2), eps=self.args.adam_epsilon)
        return self.optimizer

    # ------------------------------------------------------------------------------------------ loss
    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        seen = int(inputs.pop("num_seen", 0))
        skipped = int(inputs.pop("num_skipped", 0))
        paths = inputs.pop("skipped_paths", [])
        all_skipped = bool(inputs.pop("all_skipped", False))
        if model.training:
            self.skips.update(seen, skipped, paths)
            if self.optimizer is not None:  # the LRs this step uses (the scheduler moves them after the step)
                self._step_lrs = {str(g.get("name", i)): float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)}
            if not all_skipped:
                self._tokens += int(inputs["attention_mask"].sum())
                self._samples += int(inputs["input_ids"].shape[0])
        if all_skipped:
            # every sample of this micro-batch was unreadable: a zero loss that still touches the graph
            # so that all ranks take part in the same collective step; nothing is learned from it
            inputs.pop("labels", None)
            outputs = model(**inputs)
            loss = outputs.logits.float().sum() * 0.0
            return (loss, outputs) if return_outputs else loss
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    # ------------------------------------------------------------------------------------------ logging
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.optimizer is not None:
            for name, lr in self._step_lrs.items():
                logs[f"lr/{name}"] = lr
            now = time.perf_counter()
            t0, tok0, n0 = self._last_log
            dt = max(now - t0, 1e-9)
            logs["text_tokens_per_s"] = (self._tokens - tok0) / dt
            logs["samples_per_s"] = (self._samples - n0) / dt
            logs["skipped_samples"] = float(self.skips.skipped)
            self._last_log = (now, self._tokens, self._samples)
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------ saving
    @property
    def adapter_only(self) -> bool:
        return list(self.stage.model.mm_tunable_parts) == ["mm_mlp_adapter"] and not self.stage.lora.enable

    def _get_output_dir(self, trial: Any) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, PARTIAL_DIR) if self._staging else run_dir

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Write ``.partial/checkpoint-N`` then rename it to ``checkpoint-N`` (atomic for readers), then rotate."""
        name = f"checkpoint-{self.state.global_step}"
        run_dir = super()._get_output_dir(trial)
        staged, final = os.path.join(run_dir, PARTIAL_DIR, name), os.path.join(run_dir, name)
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)  # into .partial/ (the Trainer's rotation finds nothing there)
        except Exception as err:  # noqa: BLE001 - torch/safetensors/DeepSpeed each raise their own type for an I/O failure
            if self.args.should_save:
                shutil.rmtree(staged, ignore_errors=True)  # free the space; the last complete checkpoint stays
            raise CheckpointSaveError(describe_save_failure(staged, err)) from err
        finally:
            self._staging = False
        _barrier()  # every rank has written its shards
        if self.args.should_save:
            try:
                if os.path.exists(final):  # a stale checkpoint of the same step (resumed from an older one)
                    shutil.rmtree(final)
                os.replace(staged, final)
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(staged))  # .partial/ when empty
            except OSError as err:
                raise CheckpointSaveError(describe_save_failure(final, err)) from err
            if self.state.best_model_checkpoint == staged:
                self.state.best_model_checkpoint = final
            rotate_checkpoints(
                run_dir, self.args.save_total_limit, best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True
            )
            logger.info("checkpoint complete: %s", final)
        _barrier()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not self.adapter_only:
            super().save_model(output_dir, _internal_call)
            return
        save_mm_projector(self.model, output_dir or self.args.output_dir, is_main=self.args.should_save)


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def save_mm_projector(model: Any, output_dir: str, *, is_main: bool = True) -> str:
    """Write ``output_dir/mm_projector.bin`` (keys ``model.mm_projector.*``) and ``config.json``.

    ZeRO-3 aware: the projector parameters are gathered on every rank, written by the main one.
    """
    from streamforest.train.build import zero3_enabled

    named = [(n, p) for n, p in model.named_parameters() if "mm_projector" in n or "vision_resampler" in n]
    if zero3_enabled():
        import deepspeed

        ctx: Any = deepspeed.zero.GatheredParameters([p for _, p in named])
    else:
        ctx = contextlib.nullcontext()
    with ctx:
        state = {n: p.detach().cpu().clone() for n, p in named}
    target = os.path.join(output_dir, MM_PROJECTOR_FILE)
    if is_main:
        os.makedirs(output_dir, exist_ok=True)
        torch.save(state, target)
        model.config.save_pretrained(output_dir)
        logger.info("saved the connector (%d tensors) to %s", len(state), target)
    return target
