"""One error type for every refused request, mapped to an HTTP status or a WebSocket close code."""

from __future__ import annotations

from typing import Any

__all__ = ["WS_CLOSE", "ApiError"]

WS_CLOSE = {401: 4401, 403: 4403, 404: 4404, 408: 4408, 429: 4429}
"""HTTP status → WebSocket close code for errors that end a connection (4000 + status; others are sent
as ``{"type": "error", ...}`` messages and the connection stays open)."""


class ApiError(Exception):
    """A refused request: HTTP ``status``, the ``field`` at fault (None when not one field) and the fix."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = int(status), message, field

    def to_dict(self) -> dict[str, Any]:
        """``{"detail": message, "field": field, "status": status}`` (the JSON body of the response)."""
        return {"detail": self.message, "field": self.field, "status": self.status}
