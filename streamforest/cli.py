"""The ``streamforest`` command line (console script and ``python -m streamforest``).

Subcommands are registered in :data:`COMMANDS` (name → ``(add_arguments, run)``); add one there.

    streamforest stream drive.mp4 --model CKPT --ask "12.5: What is the car in front doing?" --ask "40: ..."
    streamforest stream drive.mp4 --questions questions.json --mode bounded --json-out answers.json
    streamforest stream drive.mp4 --model CKPT --mode bounded --watch "Is the traffic light green?" --threshold 0.6

``stream`` plays the video through a :class:`streamforest.streaming.StreamingSession` at ``--fps`` (the
reference ≈1 fps mid-bin rule over ``[--start, --end]``), answers every question when the stream reaches its
time, prints the answers with their times and a final statistics line. ``--end`` defaults to the last
question's time, so the last question sees exactly the frames the benchmark evaluation would sample for it.
``--watch`` registers standing questions (``StreamingSession.watch``): their alerts are printed with their
times as they fire, beside the answers; with a watch the whole video is played unless ``--end`` is given.
Heavy imports (torch, transformers) happen only when a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamforest.console import say
from streamforest.streaming import StreamError, StreamingSession, format_stats, parse_questions
from streamforest.video import VideoError

logger = logging.getLogger(__name__)

__all__ = ["COMMANDS", "build_parser", "main"]

MODEL_ENV = "STREAMFOREST_MODEL"


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
    parser.add_argument("--time-msg", default="short_online_v2", help="time-message kind ('none' for no message)")
    parser.add_argument("--backend", default="auto", help="video decoder: auto, decord, pyav, frames")
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
    return model


def _print_answer(answer: Any) -> None:
    follow = " (follow-up)" if answer.turn > 1 else ""
    say(f"[{answer.time:7.2f} s] Q{follow}: {answer.question}")
    say(f"{'':11} A: {answer.text}   ({answer.num_frames} frames up to {answer.frame_time:.1f} s, "
        f"{1e3 * answer.latency_s:.0f} ms)")


def _print_alert(alert: Any) -> None:
    say(f"[{alert.time:7.2f} s] ALERT p={alert.probability:.2f}: {alert.question}")


def run_stream(args: argparse.Namespace) -> int:
    """Play ``args.video`` through a session and answer the questions; returns the exit status."""
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
    alerts: list[Any] = []
    try:
        for question in args.watch:
            session.watch(question, threshold=args.threshold, cooldown_s=args.cooldown, every_s=args.watch_every)
    except StreamError as e:
        raise CliError(f"--watch: {e}") from e
    session.on_alert(alerts.append)
    session.on_alert(_print_alert)
    try:
        answers = session.play(
            args.video, questions, fps=args.fps, start=args.start, end=end, backend=args.backend,
            progress=not args.no_progress, on_answer=_print_answer,
        )  # fmt: skip
    except (VideoError, StreamError) as e:
        raise CliError(str(e)) from e
    stats = session.stats()
    say(format_stats(stats))
    if args.json_out:
        payload = {"video": str(args.video), "model": str(model_path), "mode": args.mode, "fps": args.fps,
                   "answers": [a.to_dict() for a in answers], "alerts": [a.to_dict() for a in alerts],
                   "stats": stats}  # fmt: skip
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


# ----------------------------------------------------------------------------------------------------------
# Dispatcher
# ----------------------------------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "stream": ("play a video through an online session and answer timed questions", _add_stream_arguments, run_stream),
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


if __name__ == "__main__":
    sys.exit(main())
