"""Server settings: every cap the server enforces, and the bind/token rule (docs/ARCHITECTURE.md, serving)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

__all__ = ["TOKEN_ENV", "ServeSettings", "SettingsError", "is_loopback"]

TOKEN_ENV = "STREAMFOREST_TOKEN"
"""Environment variable read when ``--token`` is not given."""
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
"""Characters a token may use (it travels as a WebSocket subprotocol, an HTTP token)."""


class SettingsError(ValueError):
    """An invalid server setting; the message names the option and the fix."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """What ``streamforest serve`` enforces; every field is a command-line option of the same name."""

    host: str = "127.0.0.1"
    """Bind address; anything but loopback needs :attr:`token`."""
    port: int = 8000
    token: str | None = None
    """Bearer token required on every route but ``/healthz`` and the page (None = no auth, loopback only)."""
    mode: str = "bounded"
    """Default session mode (``bounded``: constant memory for endless streams; ``exact``: reference answers)."""
    max_sessions: int = 8
    """Sessions open at once; creating one more answers 429."""
    idle_timeout: float = 300.0
    """Seconds without a request or frame after which a session is closed and its memory freed."""
    queue_depth: int = 8
    """Frames waiting per session; a frame beyond it is dropped and counted (never silently)."""
    max_frame_bytes: int = 8 * 1024 * 1024
    """Largest encoded frame (JPEG/PNG body) accepted."""
    max_frame_pixels: int = 4096 * 4096
    """Largest decoded frame (width × height) accepted; checked from the header before decoding."""
    max_question_chars: int = 2000
    """Longest question (or standing question) in characters."""
    max_pending_questions: int = 4
    """Questions and watch commands waiting per session."""
    max_new_tokens: int = 64
    """Answer length limit."""
    max_fps_hint: float = 30.0
    """Largest ``fps_hint`` a session may ask for."""
    encode_batch_size: int = 1
    """Frames per vision-tower call (1 = each frame is encoded when it arrives)."""
    model_name: str = "streamforest"
    """Shown by ``/healthz``."""

    def __post_init__(self) -> None:
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the option and the fix."""
        from streamforest.streaming import MODES

        if self.mode not in MODES:
            raise SettingsError(f"--mode {self.mode!r} is not one of {sorted(MODES)}")
        positive = ("max_sessions", "queue_depth", "max_frame_bytes", "max_frame_pixels", "max_question_chars",
                    "max_pending_questions", "max_new_tokens", "encode_batch_size")  # fmt: skip
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("idle_timeout", "max_fps_hint"):
            if not float(getattr(self, name)) > 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not 0 <= int(self.port) <= 65535:
            raise SettingsError(f"--port must be 0..65535, got {self.port}")
        if self.token is not None and not _TOKEN_CHARS.fullmatch(self.token):
            raise SettingsError(
                f"--token (or ${TOKEN_ENV}) must be non-empty letters, digits and !#$%&'*+.^_`|~- (no spaces), e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
        if not is_loopback(self.host) and not self.token:
            raise SettingsError(
                f"refusing to bind {self.host}: other machines could reach the server without a password. "
                f"Pass --token T (or set ${TOKEN_ENV}) so that clients must send 'Authorization: Bearer T', "
                "or bind --host 127.0.0.1"
            )
