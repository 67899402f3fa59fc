"""The library works when installed: no repository-relative paths in library code, package data found
from the package itself (checked by importing a copy of the package from outside the checkout)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = [REPO / "streamforest", REPO / "llava"]


def test_library_code_has_no_repo_relative_paths() -> None:
    pattern = re.compile(r"REPO_ROOT|__file__\)\.resolve\(\)\.parents|Path\(__file__\)\.parents")
    hits = [f"{path.relative_to(REPO)}:{i}" for root in LIBRARY for path in sorted(root.rglob("*.py"))
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert hits == []


def test_test_only_code_left_the_package() -> None:
    text = (REPO / "streamforest" / "train" / "fixtures.py").read_text(encoding="utf-8")
    assert "SIGKILL" not in text and "CrashAfterCheckpoint" not in text


def test_package_copied_elsewhere_imports_and_finds_its_data(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name in ("streamforest", "llava"):
        shutil.copytree(REPO / name, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import streamforest, streamforest.eval.media as m, streamforest.train.config as c, streamforest.demo as d\n"
        f"assert streamforest.__file__.startswith({str(site)!r}), streamforest.__file__\n"
        f"assert m.DEFAULT_PATHS_FILE.is_file() and str(m.DEFAULT_PATHS_FILE).startswith({str(site)!r})\n"
        "assert m.benchmark_settings('odvbench')['anno']\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
