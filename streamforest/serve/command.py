"""``streamforest serve --model CKPT``: load the model once and serve sessions (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from streamforest.serve.settings import TOKEN_ENV, ServeSettings, SettingsError

logger = logging.getLogger(__name__)

__all__ = ["add_serve_arguments", "run_serve", "settings_from_args"]

MODEL_ENV = "STREAMFOREST_MODEL"
CAPS = {
    "max_sessions": (int, "sessions open at once"),
    "idle_timeout": (float, "seconds without traffic before a session is closed and freed"),
    "queue_depth": (int, "frames waiting per session; more are dropped and counted"),
    "max_frame_bytes": (int, "largest JPEG/PNG frame in bytes"),
    "max_frame_pixels": (int, "largest frame in pixels (width x height)"),
    "max_question_chars": (int, "longest question in characters"),
    "max_pending_questions": (int, "questions waiting per session"),
    "max_new_tokens": (int, "answer length limit in tokens"),
    "encode_batch_size": (int, "frames per vision-tower call"),
}
"""``ServeSettings`` caps exposed as options: name → (type, help)."""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``streamforest serve`` (one per :class:`ServeSettings` cap, plus model loading)."""
    d = ServeSettings.__dataclass_fields__
    parser.add_argument("--model", default=None, help=f"checkpoint directory (default: ${MODEL_ENV})")
    parser.add_argument("--host", default=d["host"].default, help="bind address (default 127.0.0.1; others need --token)")
    parser.add_argument("--port", type=int, default=d["port"].default, help="TCP port")
    parser.add_argument("--token", default=None, help=f"bearer token for every route but /healthz and / (default: ${TOKEN_ENV})")
    parser.add_argument("--mode", choices=("bounded", "exact"), default=d["mode"].default,
                        help="default session mode (bounded: constant memory; exact: the reference's answers)")
    for name, (kind, text) in CAPS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=d[name].default,
                            help=f"{text} (default {d[name].default})")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--dtype", default="auto", help="auto (checkpoint dtype), float32, bfloat16 or float16")


def settings_from_args(args: argparse.Namespace, model_name: str) -> ServeSettings:
    """:class:`ServeSettings` from parsed options (raises :class:`SettingsError` naming the option)."""
    fields = {f.name for f in dataclasses.fields(ServeSettings)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return ServeSettings(**values, model_name=model_name)


def run_serve(args: argparse.Namespace) -> int:
    """Check the settings, load the model, run uvicorn until interrupted; returns the exit status."""
    from streamforest.cli import CliError

    model_path = args.model or os.environ.get(MODEL_ENV)
    if not model_path:
        raise CliError(f"no model: pass --model CHECKPOINT_DIR or set ${MODEL_ENV}")
    try:
        settings = settings_from_args(args, Path(model_path).name)
    except SettingsError as e:
        raise CliError(str(e)) from e
    try:
        import uvicorn

        from streamforest.serve.app import create_app
    except ImportError as e:
        raise CliError(f"serving needs FastAPI and uvicorn ({e}); install them with pip install 'streamforest[serve]'") from e
    from streamforest.model.loader import load_pretrained

    try:
        loaded = load_pretrained(model_path, dtype=args.dtype, device=args.device)
    except (OSError, ValueError) as e:
        raise CliError(f"--model {model_path}: {e}") from e
    app = create_app(loaded.model, loaded.tokenizer, settings, image_processor=loaded.image_processor)
    logger.warning("serving %s on http://%s:%d/ (token %s)", model_path, settings.host, settings.port,
                   "required" if settings.token else "off")  # fmt: skip
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level.lower(),
                ws_max_size=settings.max_frame_bytes + 64 * 1024)  # fmt: skip
    return 0
