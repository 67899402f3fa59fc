"""Who may call the server: the bearer token and the same-origin rule for browsers.

* **Token.** With ``--token T`` every route but ``/healthz`` and the page needs ``Authorization: Bearer T``. A
  browser cannot set headers on a WebSocket, so the socket also accepts the token as the subprotocol pair
  ``["bearer", T]`` (``new WebSocket(url, ["bearer", T])``; the server answers with ``bearer``). Tokens never go
  into URLs, where access logs would keep them.
* **Origin.** A request that carries an ``Origin`` header (browsers add it to cross-site requests and to every
  WebSocket) must come from a page of this server: a page on another site could otherwise drive a server on
  127.0.0.1 through the visitor's browser. Clients outside a browser send no ``Origin`` and are not affected.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from streamforest.serve.errors import ApiError
from streamforest.serve.settings import ServeSettings

__all__ = ["WS_AUTH_PROTOCOL", "check_origin", "check_token", "offered_token"]

WS_AUTH_PROTOCOL = "bearer"
"""WebSocket subprotocol that carries the token as the next offered subprotocol."""


def offered_token(subprotocols: list[str]) -> str | None:
    """The token from a WebSocket's offered subprotocols ``["bearer", TOKEN]`` (None when not offered)."""
    if WS_AUTH_PROTOCOL in subprotocols:
        i = subprotocols.index(WS_AUTH_PROTOCOL)
        if i + 1 < len(subprotocols):
            return subprotocols[i + 1]
    return None


def check_token(settings: ServeSettings, authorization: str | None, ws_token: str | None = None) -> None:
    """401 unless the bearer token matches (no-op when the server has no token)."""
    if not settings.token:
        return
    given = ws_token
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "the Authorization header must be 'Bearer TOKEN'", "Authorization")
        given = value.strip()
    if given is None:
        raise ApiError(401, "this server needs a token: send the header 'Authorization: Bearer TOKEN' (a browser "
                            "WebSocket: the subprotocols ['bearer', TOKEN])", "Authorization")  # fmt: skip
    if not hmac.compare_digest(given.encode(), settings.token.encode()):
        raise ApiError(401, "wrong token: use the token the server was started with (--token or "
                            "$STREAMFOREST_TOKEN)", "Authorization")  # fmt: skip


def check_origin(headers: Mapping[str, str]) -> None:
    """403 for a browser request whose ``Origin`` is not this server (``Host``)."""
    origin = headers.get("origin")
    if origin is None:
        return
    host = headers.get("host", "")
    if urlsplit(origin).netloc.lower() != host.lower():
        raise ApiError(403, f"cross-origin request from {origin} refused: use the page this server serves "
                            f"(http://{host}/), or call the API from outside a browser", "Origin")  # fmt: skip
