"""Run safety for training: the ``output_dir`` lock, a usable ``output_dir``, workers that die with their
launcher, single-process runs without a launcher, atomic checkpoints and picking the checkpoint to resume.

Checkpoints are written to ``output_dir/.partial/checkpoint-N`` and renamed to ``output_dir/checkpoint-N``
only once every rank has finished writing (the Trainer's rotation then runs on complete checkpoints only).
So a ``checkpoint-N`` directory is always complete; a save that was interrupted (SIGKILL, disk full) leaves
its files under ``.partial/``, which the next run logs and removes. Resume picks the newest ``checkpoint-N``
that holds ``trainer_state.json`` (the Trainer writes it last), logging any it skips.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
"""Sub-folder of ``output_dir`` where a checkpoint is written before it is renamed into place."""
LOCK_FILE = "train.lock"
TRAINER_STATE = "trainer_state.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class OutputDirError(RuntimeError):
    """``training.output_dir`` cannot be used (not creatable, not writable, or held by another run)."""


class CheckpointSaveError(RuntimeError):
    """Writing a checkpoint failed; the message names the path and the cause."""


# ----------------------------------------------------------------------------------------------- output_dir
def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check that files can be written in it; errors name the path and the fix."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputDirError(
            f"training.output_dir {str(out)!r} cannot be written: {err.strerror or err} (errno {err.errno}); "
            "choose a writable folder (training.output_dir=...) or fix its permissions"
        ) from err
    return out


class OutputDirLock:
    """An exclusive ``flock`` on ``output_dir/train.lock`` held for the whole run (released on exit or crash).

    The file records the holder (pid, host, start time, command) so that a second run can name it.
    """

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> OutputDirLock:
        import fcntl

        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the run
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            f.seek(0)
            holder = f.read().strip() or "unknown holder"
            f.close()
            raise OutputDirError(
                f"training.output_dir {str(self.path.parent)!r} is in use by another training run ({holder}); "
                "wait for it to finish or stop it, or use another training.output_dir"
            ) from err
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                  "command": " ".join(sys.argv)}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder) + "\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


# ----------------------------------------------------------------------------------------------- processes
PR_SET_PDEATHSIG = 1


def die_with_launcher(sig: int = signal.SIGKILL) -> bool:
    """Under ``torchrun`` (Linux): ask the kernel to send ``sig`` to this worker when its launcher dies.

    torchrun starts workers in their own session, so killing the launcher's process group does not reach
    them; without this an orphaned worker keeps training and writing ``output_dir``. Returns True when set.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d); this worker may outlive its launcher", ctypes.get_errno())
        return False
    if parent == 1 or os.getppid() != parent:  # the launcher died before the signal was armed
        os.kill(os.getpid(), sig)
    return True


def single_process_env(env: dict[str, str] | Any = None) -> bool:
    """Without a launcher (plain ``python -m streamforest.train``): set a world of one process.

    DeepSpeed otherwise tries MPI discovery (``No module named 'mpi4py'``). Returns True when set here.
    """
    env = os.environ if env is None else env
    if "RANK" in env or "WORLD_SIZE" in env:
        return False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("MASTER_PORT", str(port))
    logger.info("no launcher: running as a single process (world size 1); use torchrun for several")
    return True


# ----------------------------------------------------------------------------------------------- checkpoints
def is_complete(checkpoint: Path) -> bool:
    """A checkpoint the Trainer finished writing (``trainer_state.json`` is written last)."""
    return (checkpoint / TRAINER_STATE).is_file()


def find_resume_checkpoint(output_dir: str | os.PathLike[str]) -> str | None:
    """The newest complete ``checkpoint-N`` of ``output_dir`` (None if none); skipped ones are logged."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))), reverse=True
    )
    for _, path in found:
        if is_complete(path):
            return str(path)
        logger.warning("skipping incomplete checkpoint %s (no %s: its save was interrupted)", path, TRAINER_STATE)
    return None


def clear_partial_saves(output_dir: str | os.PathLike[str]) -> list[str]:
    """Remove the interrupted saves left under ``output_dir/.partial`` (logged); returns their paths."""
    partial = Path(output_dir) / PARTIAL_DIR
    if not partial.is_dir():
        return []
    removed = sorted(str(p) for p in partial.iterdir())
    for p in removed:
        logger.warning("removing %s: an interrupted checkpoint save (never completed, not resumable)", p)
    shutil.rmtree(partial, ignore_errors=True)
    return removed


def describe_save_failure(path: str | os.PathLike[str], err: BaseException) -> str:
    """A message for a failed checkpoint write: the path, the cause and what to do."""
    code = getattr(err, "errno", None)
    if code is None:  # libraries that wrap the OS error in their own type (safetensors: "... (os error 27)")
        m = re.search(r"os error (\d+)", str(err))
        code = int(m.group(1)) if m else None
    cause = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EFBIG: "a file exceeded the file-size limit (ulimit -f)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
    }.get(code or -1)
    facts = []
    try:
        usage = shutil.disk_usage(Path(path).parent if not Path(path).exists() else path)
        facts.append(f"{usage.free / 2**20:.0f} MiB free on the device")
        if usage.free < 64 * 2**20:
            cause = cause or "the disk is (nearly) full"
    except OSError:
        pass
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        facts.append(f"file-size limit {limit} bytes")
        cause = cause or "a file may have exceeded the file-size limit (ulimit -f)"
    if cause is None and not os.access(Path(path).parent, os.W_OK):
        cause = "the folder is not writable"
    detail = f"{cause}; " if cause else ""
    extra = f" ({', '.join(facts)})" if facts else ""
    return (
        f"writing checkpoint {path} failed: {detail}{type(err).__name__}: {err}{extra}. Free space or fix the "
        "permissions of training.output_dir, then run again: it resumes from the last complete checkpoint"
    )

