"""Issue 16 (training): interrupted and failed checkpoint saves, resume from the newest complete checkpoint,
the ``output_dir`` lock, workers that die with their launcher, single-process runs without a launcher, and
clear errors for bad config values, data lists and output folders.

The fast tests exercise the pieces directly; the ``slow`` ones run ``python -m streamforest.train`` (DeepSpeed
ZeRO-2 on gloo, one process) on the tiny fixtures: ``pytest -m slow tests/test_reliability_train.py``."""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streamforest.data.data_list import DataListError, load_data_list
from streamforest.train.config import ConfigError, load_config
from streamforest.train.safety import (
    PARTIAL_DIR,
    OutputDirError,
    OutputDirLock,
    check_output_dir,
    clear_partial_saves,
    describe_save_failure,
    find_resume_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny"


# ----------------------------------------------------------------------------------------------- config / data
@pytest.mark.parametrize(
    ("override", "field"),
    [("training.gradient_accumulation_steps=0", "gradient_accumulation_steps"), ("training.learning_rate=-1", "learning_rate"),
     ("training.per_device_train_batch_size=0", "per_device_train_batch_size"), ("training.save_steps=0", "save_steps")],
)
def test_bad_training_numbers_name_the_field(override: str, field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_TINY", str(tmp_path))
    with pytest.raises(ConfigError, match=rf"training\.{field} = .* must be"):
        load_config(TINY / "stage2.yaml", [override])


def _data_list(tmp_path: Path, json_path: Any) -> Path:
    path = tmp_path / "list.yaml"
    path.write_text(json.dumps({"datasets": [{"json_path": json_path}]}), encoding="utf-8")
    return path


def test_json_path_list_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DataListError, match=r"'json_path' must be one path .* got \[1, 2\]"):
        load_data_list(_data_list(tmp_path, [1, 2]))


def test_non_utf8_annotation_file_is_named(tmp_path: Path) -> None:
    anno = tmp_path / "anno.json"
    anno.write_bytes('[{"id": "a", "conversations": [{"from": "human", "value": "caf\u00e9"}]}]'.encode("latin-1"))
    with pytest.raises(DataListError, match="not UTF-8") as err:
        load_data_list(_data_list(tmp_path, "anno.json"))
    assert str(anno) in str(err.value)


# ----------------------------------------------------------------------------------------------- output_dir
def test_uncreatable_output_dir_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "out"
    with pytest.raises(OutputDirError, match="cannot be written") as err:
        check_output_dir(target)
    assert str(target) in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_dir_is_named(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    with pytest.raises(OutputDirError, match="cannot be written"):
        check_output_dir(target)


def test_second_lock_on_output_dir_names_the_holder(tmp_path: Path) -> None:
    first = OutputDirLock(tmp_path).acquire()
    try:
        with pytest.raises(OutputDirError, match="in use by another training run") as err:
            OutputDirLock(tmp_path).acquire()
        assert f'"pid": {os.getpid()}' in str(err.value) and socket.gethostname() in str(err.value)
    finally:
        first.release()
    OutputDirLock(tmp_path).acquire().release()  # released: free again


@pytest.mark.parametrize(("code", "cause"), [(errno.EFBIG, "file-size limit"), (errno.ENOSPC, "disk is full"), (errno.EACCES, "permission")])
def test_save_failure_names_the_path_and_the_cause(code: int, cause: str, tmp_path: Path) -> None:
    for err in (OSError(code, os.strerror(code)), RuntimeError(f"I/O error: {os.strerror(code)} (os error {code})")):
        msg = describe_save_failure(tmp_path / "checkpoint-40", err)
        assert str(tmp_path / "checkpoint-40") in msg and cause in msg and "last complete checkpoint" in msg


# ----------------------------------------------------------------------------------------------- resume choice
def _checkpoint(out: Path, step: int, complete: bool) -> Path:
    path = out / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if complete:
        (path / "trainer_state.json").write_text("{}")
    return path


def test_resume_picks_the_newest_complete_checkpoint_and_logs_the_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _checkpoint(tmp_path, 20, True)
    _checkpoint(tmp_path, 10, True)
    bad = _checkpoint(tmp_path, 40, False)
    (tmp_path / PARTIAL_DIR / "checkpoint-60").mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        assert clear_partial_saves(tmp_path) == [str(tmp_path / PARTIAL_DIR / "checkpoint-60")]
        assert find_resume_checkpoint(tmp_path) == str(good)
    assert not (tmp_path / PARTIAL_DIR).exists()
    assert f"skipping incomplete checkpoint {bad}" in caplog.text and "checkpoint-60" in caplog.text
    assert find_resume_checkpoint(tmp_path / "missing") is None


# ----------------------------------------------------------------------------------------------- parent death
_FAKE_LAUNCHER = """
import os, subprocess, sys, time
env = dict(os.environ, TORCHELASTIC_RUN_ID="test")
code = "from streamforest.train.safety import die_with_launcher; die_with_launcher(); import time; time.sleep(120)"
child = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_worker_in_its_own_session_dies_with_its_launcher() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", _FAKE_LAUNCHER], stdout=subprocess.PIPE, text=True, cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    worker = int(launcher.stdout.readline())  # type: ignore[union-attr]
    time.sleep(3.0)  # the worker imports and arms the signal
    assert _alive(worker)
    launcher.kill()
    launcher.wait()
    deadline = time.time() + 10
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    if _alive(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its launcher")


# ----------------------------------------------------------------------------------------------- end to end (slow)
def _env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SF_TINY=str(root), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled", DS_BUILD_OPS="0", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
        TORCH_EXTENSIONS_DIR=env.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/streamforest/torch_extensions")),
        **extra,
    )
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)
    return env


def _cmd(config: str, *overrides: str, torchrun: bool) -> list[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(port)] if torchrun else []
    return [sys.executable, *launcher, "-m", "streamforest.train", str(TINY / config), *overrides]


def _train(root: Path, config: str, *overrides: str, torchrun: bool = False, fsize: int | None = None, **env: str) -> subprocess.CompletedProcess:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(_cmd(config, *overrides, torchrun=torchrun), cwd=REPO, env=_env(root, **env), capture_output=True,
                          text=True, timeout=400, preexec_fn=limit)


@pytest.fixture(scope="module")
def fixtures_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from streamforest.train.fixtures import make_training_fixtures

    root = tmp_path_factory.mktemp("sf_tiny_rel")
    make_training_fixtures(root)
    return root


@pytest.mark.slow
def test_killed_save_then_disk_full_then_resume(fixtures_root: Path) -> None:
    """SIGKILL inside the save of checkpoint-6 → only checkpoint-3 is visible; a run without a launcher under
    ``ulimit -f`` resumes from it, fails the next save naming the path and the cause and keeps checkpoint-3;
    the next run resumes from checkpoint-3 again (skipping a foreign incomplete checkpoint-9) and finishes."""
    out = fixtures_root / "runs" / "killed_save"
    common = (f"training.output_dir={out}", "model.pretrain_mm_mlp_adapter=null", "training.save_total_limit=3")
    killed = _train(fixtures_root, "stage2.yaml", *common, "training.callbacks=[reliability_callbacks:KillDuringSave]",
                    torchrun=True, SF_KILL_IN_SAVE_AT="6")
    assert killed.returncode != 0, killed.stderr[-3000:]
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()
    assert not (out / "checkpoint-6").exists() and (out / PARTIAL_DIR / "checkpoint-6" / "tokenizer.json").is_file()
    (out / "checkpoint-9").mkdir()  # what an interrupted save of an older version leaves: config files only
    (out / "checkpoint-9" / "config.json").write_text("{}")

    full = _train(fixtures_root, "stage2.yaml", *common, fsize=256 * 1024)
    log = full.stdout + full.stderr
    assert full.returncode == 1, log[-4000:]
    assert f"resuming from {out / 'checkpoint-3'}" in log and "skipping incomplete checkpoint" in log
    assert f"{out / PARTIAL_DIR / 'checkpoint-6'}: an interrupted checkpoint save" in log
    assert f"error: writing checkpoint {out / PARTIAL_DIR / 'checkpoint-6'} failed" in log and "file-size limit" in log, log[-4000:]
    assert (out / "checkpoint-3" / "trainer_state.json").is_file() and not (out / "checkpoint-6").exists()

    done = _train(fixtures_root, "stage2.yaml", *common)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert f"resuming from {out / 'checkpoint-3'}" in done.stdout + done.stderr
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and not (out / PARTIAL_DIR).exists()


@pytest.mark.slow
def test_output_dir_is_locked_and_the_worker_dies_with_torchrun(fixtures_root: Path) -> None:
    out = fixtures_root / "runs" / "locked"
    overrides = (f"training.output_dir={out}", 'training.save_strategy="no"')
    first = subprocess.Popen(_cmd("stage1.yaml", *overrides, "training.max_steps=100000", torchrun=True), cwd=REPO,
                             env=_env(fixtures_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        holder: dict[str, Any] = {}
        deadline = time.time() + 240
        while not holder and time.time() < deadline and first.poll() is None:
            time.sleep(0.5)
            text = (out / "train.lock").read_text() if (out / "train.lock").is_file() else ""
            holder = json.loads(text) if text.strip() else {}
        assert holder, "the first run never locked its output_dir"
        second = _train(fixtures_root, "stage1.yaml", *overrides, "training.max_steps=1")
        assert second.returncode != 0
        assert "is in use by another training run" in second.stderr and f'"pid": {holder["pid"]}' in second.stderr, second.stderr[-3000:]
        os.killpg(first.pid, signal.SIGKILL)  # the launcher's process group; the worker runs in its own session
        first.wait()
        deadline = time.time() + 15
        while _alive(holder["pid"]) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(holder["pid"]), "the worker outlived torchrun"
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        if "holder" in locals() and holder and _alive(holder["pid"]):
            os.kill(holder["pid"], signal.SIGKILL)
