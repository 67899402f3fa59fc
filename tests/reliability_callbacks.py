"""Test-only trainer callback (imported by ``python -m streamforest.train`` subprocesses through PYTHONPATH=tests):
a SIGKILL in the middle of a checkpoint save, as a crash or an OOM kill would do."""

from __future__ import annotations

import os
import signal
from typing import Any

from transformers import TrainerCallback


class KillDuringSave(TrainerCallback):
    """SIGKILLs this process while the checkpoint of step ``$SF_KILL_IN_SAVE_AT`` is written: after the model
    weights and the tokenizer, before the optimizer and ``trainer_state.json``."""

    def on_step_end(self, args: Any, state: Any, control: Any, processing_class: Any = None, **kwargs: Any) -> None:
        if processing_class is None or state.global_step != int(os.environ.get("SF_KILL_IN_SAVE_AT", "-1")):
            return
        original = processing_class.save_pretrained

        def save_then_die(*a: Any, **k: Any) -> Any:
            original(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)

        processing_class.save_pretrained = save_then_die
