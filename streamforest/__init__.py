"""StreamForest: a streaming video LLM with a Persistent Event Memory Forest.

Importing the package is cheap: heavy modules (transformers, deepspeed, lmms-eval) load on first use.

    >>> from streamforest import StreamForest
    >>> sf = StreamForest.from_pretrained("MCG-NJU/StreamForest-Qwen2-7B", dtype="bfloat16", device="cuda")
    >>> sf.ask("drive.mp4", "What colour is the traffic light?", at=12.5)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:  # pragma: no cover
    from streamforest.api import StreamForest

__all__ = ["StreamForest", "__version__"]


def __getattr__(name: str):
    if name == "StreamForest":
        from streamforest.api import StreamForest

        return StreamForest
    raise AttributeError(f"module 'streamforest' has no attribute {name!r}")
