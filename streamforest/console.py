"""Console output of the entry points (``streamforest``, ``python -m streamforest.demo`` …).

Library code logs (``logging``); what a user runs and reads goes through :func:`say`, the one place that writes
to the terminal, so the print rule (ruff ``T20``) holds everywhere else.
"""

from __future__ import annotations

import sys

__all__ = ["say"]


def say(text: str = "", *, err: bool = False, end: str = "\n") -> None:
    """Write ``text`` to stdout (``err``: stderr) and flush, so it interleaves with child processes' output."""
    print(text, end=end, file=sys.stderr if err else sys.stdout, flush=True)  # noqa: T201 - the console helper
