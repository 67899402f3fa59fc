"""The installed environment matches ``requirements.lock``, and the lock satisfies ``pyproject.toml``.

``requirements.lock`` pins every package except torch (``make lock``: ``uv pip compile`` of the extras named in
its header). The Makefile installs torch, then the lock with ``--no-deps``, then the project with ``--no-deps``.
These tests fail when the running environment drifts from the lock (a package missing, extra or at another
version) and when a requirement of ``pyproject.toml`` is not met by the version the lock pins. The comparison
is a set of small pure functions, unit-tested on hand-made inputs below.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
FIX = "run `make install` (or `make lock` after changing pyproject.toml)"
# Installed outside the lock on purpose: pip and the venv's own bootstrap packages, and the project itself
# (`pip install --no-deps -e .`). Packages the lock leaves out (`--no-emit-package`, i.e. torch) and whatever
# those packages require that the lock does not pin (a GPU host's CUDA torch: nvidia-*, triton) are added at
# run time from the lock header and the installed metadata.
ALWAYS_ALLOWED = frozenset({"pip", "setuptools", "wheel", "streamforest"})
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#\\]+)")


# ----------------------------------------------------------------------------------------------- pure functions
@dataclass(frozen=True)
class LockHeader:
    """What ``uv pip compile`` recorded in the lock's header: extras, excluded packages, Python version."""

    extras: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()
    python_version: str | None = None


@dataclass
class Drift:
    """Differences between the lock and an installed set (canonical names)."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, str]] = field(default_factory=list)  # (name, locked, installed)

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.mismatched)

    def report(self) -> str:
        lines = []
        if self.missing:
            lines.append("missing (in the lock, not installed): " + ", ".join(self.missing))
        if self.mismatched:
            lines.append(
                "at another version: " + ", ".join(f"{n} (lock {lo}, installed {ins})" for n, lo, ins in self.mismatched)
            )
        if self.extra:
            lines.append(
                "extra (installed, not in the lock): " + ", ".join(self.extra)
                + " -- add them to pyproject.toml and `make lock`, or remove them (`make clean-venv install`)"
            )
        return "environment drifted from requirements.lock; " + FIX + "\n  " + "\n  ".join(lines)


def parse_lock(text: str) -> dict[str, str]:
    """Pinned packages of a requirements-style lock: canonical name -> version. Comments and options skipped."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = _PIN.match(line)
        if m is None:
            raise ValueError(f"requirements.lock: line {raw!r} is not `name==version`; regenerate it with `make lock`")
        pins[canonicalize_name(m.group(1))] = m.group(3)
    return pins


def parse_header(text: str) -> LockHeader:
    """Read the ``uv pip compile`` command line that the lock's header records."""
    for raw in text.splitlines()[:5]:
        line = raw.lstrip("# ").strip()
        if line.startswith("uv pip compile"):
            args = shlex.split(line)
            extras, excluded, python = [], set(), None
            for flag, value in zip(args, args[1:]):
                if flag == "--extra":
                    extras.append(value)
                elif flag == "--no-emit-package":
                    excluded.add(canonicalize_name(value))
                elif flag == "--python-version":
                    python = value
            return LockHeader(tuple(extras), frozenset(excluded), python)
    raise ValueError("requirements.lock: no `uv pip compile` command in its header; regenerate it with `make lock`")


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def compare(lock: Mapping[str, str], installed: Mapping[str, str], allowed_extra: Iterable[str]) -> Drift:
    """Missing / extra / mismatched packages of ``installed`` against ``lock`` (both canonical name -> version)."""
    allowed = set(allowed_extra)
    drift = Drift()
    for name in sorted(lock):
        if name not in installed:
            drift.missing.append(name)
        elif not _same_version(lock[name], installed[name]):
            drift.mismatched.append((name, lock[name], installed[name]))
    drift.extra = sorted(n for n in installed if n not in lock and n not in allowed)
    return drift


def requirement_closure(roots: Iterable[str], requires: Callable[[str], list[str] | None]) -> set[str]:
    """Canonical names of ``roots`` and everything they require, transitively (``requires`` gives a package's
    requirement strings, None when it is not installed; requirements whose markers do not hold are skipped)."""
    seen: set[str] = set()
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def unsatisfied(
    requirements: Iterable[str], lock: Mapping[str, str], outside: Mapping[str, str], env: Mapping[str, str]
) -> list[str]:
    """Requirements (PEP 508 strings) that the lock's pins do not meet. A package the lock leaves out on purpose
    is checked against ``outside`` (its installed version). Requirements whose markers are false are skipped."""
    problems = []
    for spec in requirements:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        source, version = ("lock", lock.get(name)) if name in lock else ("installed", outside.get(name))
        if version is None:
            problems.append(f"{spec!r}: {req.name} is not in the lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{spec!r}: {source} has {req.name}=={version}")
    return problems


def pyproject_requirements(pyproject: Mapping, extras: Iterable[str]) -> list[str]:
    """``[project].dependencies`` plus the named optional-dependency groups."""
    project = pyproject["project"]
    reqs = list(project.get("dependencies", []))
    groups = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in groups:
            raise ValueError(f"requirements.lock was compiled with --extra {extra}, which pyproject.toml lacks")
        reqs += groups[extra]
    return reqs


# ------------------------------------------------------------------------------------------ the real environment
def installed_distributions() -> dict[str, str]:
    """Canonical name -> version of every distribution the running interpreter sees (first on sys.path wins)."""
    found: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def _installed_requires(name: str) -> list[str] | None:
    try:
        return md.requires(name) or []
    except md.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def lock_text() -> str:
    assert LOCK.is_file(), f"{LOCK} is missing; `make lock` generates it"
    return LOCK.read_text()


def test_running_python_is_the_locks(lock_text: str) -> None:
    header = parse_header(lock_text)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert header.python_version == running, (
        f"requirements.lock is for Python {header.python_version}, this is Python {running}: create the venv "
        f"with python{header.python_version} (`make clean-venv install PYTHON=python{header.python_version}`)"
    )


def test_installed_environment_matches_the_lock(lock_text: str) -> None:
    lock, header = parse_lock(lock_text), parse_header(lock_text)
    installed = installed_distributions()
    outside = requirement_closure(header.excluded, _installed_requires) - set(lock)
    drift = compare(lock, installed, ALWAYS_ALLOWED | outside)
    assert not drift, drift.report()


def test_lock_satisfies_pyproject(lock_text: str) -> None:
    lock, header = parse_lock(lock_text), parse_header(lock_text)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = installed_distributions()
    outside = {n: installed[n] for n in header.excluded if n in installed}
    problems = unsatisfied(pyproject_requirements(pyproject, header.extras), lock, outside, default_environment())
    assert not problems, "pyproject.toml asks for what requirements.lock does not pin; run `make lock`:\n  " + (
        "\n  ".join(problems)
    )


def test_lock_is_host_neutral(lock_text: str) -> None:
    """torch's CUDA packages come with a GPU host's own torch; a lock resolved against PyPI's CUDA torch
    would force them onto every host (`make lock` needs the CPU wheel on its find-links)."""
    cuda = sorted(n for n in parse_lock(lock_text) if n.startswith("nvidia-") or n == "triton")
    assert not cuda, f"requirements.lock pins torch's CUDA packages {cuda}; see README, 'The lock'"


def test_lock_keeps_filelock_below_4_3(lock_text: str) -> None:
    """lmms-eval 0.7.3 imports ``filelock._api``, which filelock 4.3 removed (every lmms-eval run died)."""
    assert Version(parse_lock(lock_text)["filelock"]) < Version("4.3")
    import filelock._api  # noqa: F401  (the import lmms-eval makes)


# ----------------------------------------------------------------------------- the pure functions on fake inputs
FAKE_LOCK = """\
# This file was autogenerated by uv via the following command:
#    uv pip compile pyproject.toml - --extra train --extra dev --python-version 3.11 --no-emit-package torch -o x
--find-links /somewhere
Foo_Bar==1.2.0
    # via streamforest (pyproject.toml)
baz[extra]==2.0 ; python_version >= "3.8"
qux==0.1.0 \\
    --hash=sha256:00
"""


def test_parse_lock_and_header_on_fake_text() -> None:
    assert parse_lock(FAKE_LOCK) == {"foo-bar": "1.2.0", "baz": "2.0", "qux": "0.1.0"}
    header = parse_header(FAKE_LOCK)
    assert header == LockHeader(("train", "dev"), frozenset({"torch"}), "3.11")
    with pytest.raises(ValueError, match="not `name==version`"):
        parse_lock("foo>=1\n")
    with pytest.raises(ValueError, match="header"):
        parse_header("foo==1\n")


def test_compare_detects_missing_extra_and_mismatch() -> None:
    lock = parse_lock(FAKE_LOCK)
    assert not compare(lock, {"foo-bar": "1.2", "baz": "2.0.0", "qux": "0.1.0", "pip": "25"}, {"pip"})
    drift = compare(lock, {"foo-bar": "1.3.0", "qux": "0.1.0", "pip": "25", "rogue": "9"}, {"pip"})
    assert drift.missing == ["baz"]
    assert drift.extra == ["rogue"]
    assert drift.mismatched == [("foo-bar", "1.2.0", "1.3.0")]
    message = drift.report()
    for word in ("baz", "rogue", "foo-bar (lock 1.2.0, installed 1.3.0)", "make install", "make lock"):
        assert word in message


def test_requirement_closure_follows_installed_metadata() -> None:
    meta = {
        "torch": ["filelock", "nvidia-cublas==1; platform_system == 'Linux' or platform_system != 'Linux'",
                  "triton==3", "opt-thing; extra == 'opt'"],
        "nvidia-cublas": ["nvidia-cuda-runtime"],
        "nvidia-cuda-runtime": [],
        "triton": [],
        "filelock": [],
    }
    assert requirement_closure(["torch"], meta.get) == {
        "torch", "filelock", "nvidia-cublas", "nvidia-cuda-runtime", "triton"
    }


def test_unsatisfied_flags_pins_outside_the_specifier() -> None:
    lock = {"foo-bar": "1.2.0", "baz": "2.0"}
    env = {**default_environment(), "platform_machine": "x86_64"}
    reqs = ["foo_bar>=1.0", "baz==2.0", "torch==2.13.0", "decord==0.6.0; platform_machine == 'aarch64'"]
    assert unsatisfied(reqs, lock, {"torch": "2.13.0+cpu"}, env) == []
    problems = unsatisfied(["foo-bar<1.2", "missing-pkg", "torch==2.12.0"], lock, {"torch": "2.13.0+cpu"}, env)
    assert problems == [
        "'foo-bar<1.2': lock has foo-bar==1.2.0",
        "'missing-pkg': missing-pkg is not in the lock",
        "'torch==2.12.0': installed has torch==2.13.0+cpu",
    ]
    pyproject = {"project": {"dependencies": ["a"], "optional-dependencies": {"dev": ["b"], "flash": ["c"]}}}
    assert pyproject_requirements(pyproject, ["dev"]) == ["a", "b"]
    with pytest.raises(ValueError, match="--extra train"):
        pyproject_requirements(pyproject, ["train"])
