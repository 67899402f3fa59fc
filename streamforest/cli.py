"""The ``streamforest`` command line (console script and ``python -m streamforest``).

Subcommands are registered in :data:`COMMANDS` (name → ``(add_arguments, run)``); add one there.

    streamforest stream drive.mp4 --model CKPT --ask "12.5: What is the car in front doing?" --ask "40: ..."
    streamforest stream drive.mp4 --questions questions.json --mode bounded --json-out answers.json
    streamforest stream drive.mp4 --model CKPT --mode bounded --watch "Is the traffic light green?" --threshold 0.6

``stream`` plays the video through a :class:`streamforest.streaming.StreamingSession` at ``--fps`` (the
reference ≈1 fps mid-bin rule over ``[--start, --end]``), answers every question when the stream reaches its
time, prints the answers with their times and a final statistics line. ``--end`` defaults to the last
question's time, so the last question sees exactly the frames the benchmark evaluation would sample for it.
Arguments are checked before the model loads (``--json-out`` included); Ctrl-C writes the answers so far to
``--json-out`` (``"interrupted": true``) and exits with status 130.
``--watch`` registers standing questions (``StreamingSession.watch``): their alerts are printed with their
times as they fire, beside the answers; with a watch the whole video is played unless ``--end`` is given.
Heavy imports (torch, transformers) happen only when a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamforest.console import say
from streamforest.prompts import TIME_MSG_KINDS
from streamforest.streaming import StreamError, StreamingSession, format_stats, parse_questions
from streamforest.video import BACKENDS, VideoError

logger = logging.getLogger(__name__)

__all__ = ["COMMANDS", "build_parser", "main"]

MODEL_ENV = "STREAMFOREST_MODEL"
TIME_MSG_CHOICES = (*TIME_MSG_KINDS, "generic", "none")
"""``--time-msg`` values: the named kinds, ``generic`` (lists every frame time) and ``none``."""
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


class CliError(Exception):
    """A user error: printed as ``streamforest: error: …`` with exit status 2 (no traceback)."""


# ----------------------------------------------------------------------------------------------------------
# stream
# ----------------------------------------------------------------------------------------------------------


def parse_ask(text: str) -> dict[str, Any]:
    """``"12.5: What is ahead?"`` → ``{"time": 12.5, "question": "What is ahead?"}``."""
    when, sep, question = text.partition(":")
    try:
        seconds = float(when)
    except ValueError:
        seconds = None
    if not sep or seconds is None or not question.strip():
        raise CliError(f"--ask expects 'TIME: QUESTION' with TIME in seconds (e.g. '12.5: What is ahead?'), got {text!r}")
    return {"time": seconds, "question": question.strip()}


def load_questions_file(path: str) -> list[dict[str, Any]]:
    """Read ``--questions FILE.json``: a list of ``{"time": s, "question": text[, "follow_up": bool]}``."""
    file = Path(path)
    if not file.is_file():
        raise CliError(f"--questions {path}: no such file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CliError(f"--questions {path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise CliError(f'--questions {path}: expected a JSON list of {{"time": 12.5, "question": "..."}}, got {type(data).__name__}')
    return data


def _add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file or folder of frames")
    parser.add_argument("--model", default=None, help=f"checkpoint directory (default: ${MODEL_ENV})")
    parser.add_argument("--ask", action="append", default=[], metavar="'TIME: QUESTION'",
                        help="a question at TIME seconds (repeatable)")
    parser.add_argument("--questions", default=None, metavar="FILE.json",
                        help='JSON list of {"time": 12.5, "question": "...", "follow_up": false}')
    parser.add_argument("--mode", choices=("exact", "bounded"), default="exact",
                        help="exact: answers equal the reference rebuild on the played frames; bounded: constant memory")
    parser.add_argument("--fps", type=float, default=1.0, help="sampling rate of the played frames (reference: 1)")
    parser.add_argument("--start", type=float, default=0.0, help="stream start in the video (s)")
    parser.add_argument("--end", type=float, default=None,
                        help="stream end in the video (s); default: the last question's time (whole video without questions)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit (MC benchmarks use 16)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--dtype", default="auto", help="auto (checkpoint dtype), float32, bfloat16 or float16")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per vision-tower call")
    parser.add_argument("--time-msg", default="short_online_v2", choices=TIME_MSG_CHOICES, metavar="KIND",
                        help=f"time-message kind: {', '.join(TIME_MSG_CHOICES)} ('none': no message)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="video decoder")
    parser.add_argument("--watch", action="append", default=[], metavar="QUESTION",
                        help="a standing yes/no question checked at every frame; alerts are printed (repeatable)")
    parser.add_argument("--threshold", type=float, default=0.5, help="alert when P(yes) of a --watch reaches this")
    parser.add_argument("--cooldown", type=float, default=10.0, help="seconds of stream time between two alerts of a watch")
    parser.add_argument("--watch-every", type=float, default=None, metavar="S",
                        help="probe the watches every S seconds of stream time (default: every frame)")
    parser.add_argument("--prefix-cache", choices=("auto", "on", "off"), default="auto",
                        help="reuse the LLM's KV cache of the prompt head (auto: on in bounded, off in exact)")
    parser.add_argument("--json-out", default=None, metavar="FILE", help="write answers, alerts and stats as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _stream_questions(args: argparse.Namespace) -> list[Any]:
    raw: list[Any] = [parse_ask(text) for text in args.ask]
    try:
        questions = parse_questions(raw, source="--ask")
        if args.questions:
            questions += parse_questions(load_questions_file(args.questions), source=args.questions)
    except StreamError as e:
        raise CliError(str(e)) from e
    return sorted(questions, key=lambda q: q.time)


def _check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise CliError(f"--device {name!r} is not a torch device (e.g. cpu, cuda, cuda:0): {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CliError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")


def _check_json_out(path: str) -> None:
    """Fail before the run, not after it, when ``--json-out`` cannot be written."""
    out = Path(path)
    if out.is_dir():
        raise CliError(f"--json-out {path}: is a folder; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".check"):
            pass
    except OSError as e:
        raise CliError(f"--json-out {path}: cannot write there ({e.strerror or e}); pick a writable place") from None


def _check_stream_args(args: argparse.Namespace) -> str:
    model = args.model or os.environ.get(MODEL_ENV)
    if not model:
        raise CliError(f"no model: pass --model CHECKPOINT_DIR or set ${MODEL_ENV}")
    if not Path(args.video).exists():
        raise CliError(f"video {args.video}: no such file or folder")
    if not 0.0 <= args.threshold <= 1.0:
        raise CliError(f"--threshold must be a probability in [0, 1], got {args.threshold}")
    for name in ("fps", "max_new_tokens", "batch_size"):
        if not getattr(args, name) > 0:
            raise CliError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    for name in ("fps", "start", "end"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise CliError(f"--{name} must be a finite number, got {value}")
    _check_device(args.device)
    if args.json_out:
        _check_json_out(args.json_out)
    return model


def _print_answer(answer: Any) -> None:
    follow = " (follow-up)" if answer.turn > 1 else ""
    say(f"[{answer.time:7.2f} s] Q{follow}: {answer.question}")
    say(f"{'':11} A: {answer.text}   ({answer.num_frames} frames up to {answer.frame_time:.1f} s, "
        f"{1e3 * answer.latency_s:.0f} ms)")


def _write_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file renamed over it)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CliError(f"--json-out {path}: writing failed ({e}); the answers are printed above") from None


def _print_alert(alert: Any) -> None:
    say(f"[{alert.time:7.2f} s] ALERT p={alert.probability:.2f}: {alert.question}")


def _register_watches(session: Any, args: argparse.Namespace) -> list[Any]:
    """Register every ``--watch`` on ``session``; returns the list its alerts are collected into (also printed)."""
    alerts: list[Any] = []
    try:
        for question in args.watch:
            session.watch(question, threshold=args.threshold, cooldown_s=args.cooldown, every_s=args.watch_every)
    except StreamError as e:
        raise CliError(f"--watch: {e}") from e
    session.on_alert(alerts.append)
    session.on_alert(_print_alert)
    return alerts


def run_stream(args: argparse.Namespace) -> int:
    """Play ``args.video`` through a session and answer the questions; returns the exit status.

    Ctrl-C stops the stream: the answers given so far are written to ``--json-out`` (with
    ``"interrupted": true``) and the exit status is 130."""
    model_path = _check_stream_args(args)
    questions = _stream_questions(args)
    end = args.end if args.end is not None else (questions[-1].time if questions and not args.watch else None)

    try:
        session = StreamingSession.from_pretrained(
            model_path, dtype=args.dtype, device=args.device, mode=args.mode,
            time_msg=None if args.time_msg.lower() == "none" else args.time_msg,
            max_new_tokens=args.max_new_tokens, encode_batch_size=args.batch_size,
            start_time=0.0, prefix_cache={"auto": None, "on": True, "off": False}[args.prefix_cache],
        )  # fmt: skip
    except (OSError, ValueError) as e:
        raise CliError(f"--model {model_path}: {e}") from e
    answers: list[Any] = []

    def on_answer(answer: Any) -> None:
        answers.append(answer)
        _print_answer(answer)

    interrupted = False
    alerts = _register_watches(session, args)
    try:
        session.play(
            args.video, questions, fps=args.fps, start=args.start, end=end, backend=args.backend,
            progress=not args.no_progress, on_answer=on_answer,
        )  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
        say(f"\ninterrupted: {len(answers)} of {len(questions)} question(s) answered", err=True)
    except (VideoError, ValueError) as e:  # StreamError, a prompt too long for the context …
        raise CliError(str(e)) from e
    stats = session.stats()
    say(format_stats(stats))
    if args.json_out:
        payload = {"video": str(args.video), "model": str(model_path), "mode": args.mode, "fps": args.fps,
                   "answers": [a.to_dict() for a in answers], "alerts": [a.to_dict() for a in alerts],
                   "stats": stats}  # fmt: skip
        if interrupted:
            payload["interrupted"] = True
        _write_json(args.json_out, payload)
    return INTERRUPTED if interrupted else 0


# ----------------------------------------------------------------------------------------------------------
# Dispatcher
# ----------------------------------------------------------------------------------------------------------

def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    from streamforest.serve.command import add_serve_arguments

    add_serve_arguments(parser)


def _run_serve(args: argparse.Namespace) -> int:
    from streamforest.serve.command import run_serve

    return run_serve(args)


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "stream": ("play a video through an online session and answer timed questions", _add_stream_arguments, run_stream),
    "serve": ("serve live streams over HTTP/WebSocket with a web page", _add_serve_arguments, _run_serve),
}
"""Subcommand name → (help, add_arguments(parser), run(args) -> exit status)."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="streamforest", description="StreamForest streaming video LLM")
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, …)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` (default ``sys.argv[1:]``), run the command, return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        parser.error(f"--log-level {args.log_level!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except CliError as e:
        say(f"streamforest {args.command}: error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        say(f"\nstreamforest {args.command}: interrupted", err=True)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
