"""``python -m streamforest`` — the ``streamforest`` command line (see :mod:`streamforest.cli`)."""

from __future__ import annotations

import sys

from streamforest.cli import main

if __name__ == "__main__":
    sys.exit(main())
