"""Test-only training callbacks (loaded by the training entry point through ``training.callbacks``).

The resume test runs ``python -m streamforest.train ... training.callbacks=[train_callbacks:CrashAfterCheckpoint]``
with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class CrashAfterCheckpoint(TrainerCallback):
    """Simulates a crash (SIGKILL of this process) right after the checkpoint of step ``$SF_CRASH_AT_STEP``."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= int(os.environ.get("SF_CRASH_AT_STEP", "1")):
            logger.warning("simulated crash after the checkpoint of step %d", state.global_step)
            os.kill(os.getpid(), signal.SIGKILL)
