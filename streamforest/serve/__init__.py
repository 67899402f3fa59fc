"""``streamforest serve``: frames in over HTTP or a WebSocket, answers and alerts out, a web page (docs/ARCHITECTURE.md).

* :mod:`~streamforest.serve.settings` — the caps and the bind/token rule (:class:`ServeSettings`);
* :mod:`~streamforest.serve.app` — the FastAPI app (:func:`create_app`): routes, auth, errors;
* :mod:`~streamforest.serve.registry` — sessions, the shared model worker, bounded queues, idle expiry;
* :mod:`~streamforest.serve.protocol` — request/message validation and the WebSocket protocol;
* :mod:`~streamforest.serve.ws` — the WebSocket connection; :mod:`~streamforest.serve.images` — frame decoding;
* :mod:`~streamforest.serve.command` — the ``serve`` subcommand; ``static/`` — the web page.

FastAPI and uvicorn are the ``serve`` extra: ``pip install 'streamforest[serve]'``.
"""

from __future__ import annotations

from streamforest.serve.errors import ApiError
from streamforest.serve.settings import ServeSettings, SettingsError

__all__ = ["ApiError", "ServeSettings", "SettingsError", "create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - forwards to streamforest.serve.app.create_app
    """See :func:`streamforest.serve.app.create_app` (imported lazily: FastAPI is an optional extra)."""
    from streamforest.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
