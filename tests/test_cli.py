"""The ``streamforest`` command line: ``stream`` end to end on a tiny checkpoint and a PyAV-written video."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_video import write_index_video

from streamforest.cli import main, parse_ask


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s at 10 fps (frame k encodes k)."""
    return write_index_video(tmp_path_factory.mktemp("cli") / "drive.mp4", 80, fps=10)


def test_stream_end_to_end(tiny_checkpoint: Path, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from streamforest.api import StreamForest

    out = tmp_path / "answers.json"
    rc = main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "6: What is ahead?",
               "--ask", "3.5 : Is the road clear?", "--dtype", "float32", "--max-new-tokens", "6",
               "--batch-size", "3", "--json-out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "[   3.50 s] Q: Is the road clear?" in printed and "[   6.00 s] Q: What is ahead?" in printed
    assert "mode=exact frames=" in printed and "memory tokens" in printed
    payload = json.loads(out.read_text())
    answers = payload["answers"]
    assert [a["time"] for a in answers] == [3.5, 6.0]
    assert [a["num_frames"] for a in answers] == [4, 7]  # the [0, 6] s grid at ≈1 fps, frames up to each time
    assert all(a["frame_time"] <= a["time"] for a in answers)
    assert payload["stats"]["frames"] == 7 and payload["stats"]["questions"] == 2
    # played up to the last question, that question sees the benchmark's frames: same answer as the notebook API
    api = StreamForest.from_pretrained(tiny_checkpoint, dtype="float32")
    ref = api.ask(video, "What is ahead?", at=6.0, max_new_tokens=6)
    assert answers[-1]["text"] == ref.text and answers[-1]["num_frames"] == ref.num_frames


def test_stream_questions_file_and_bounded_mode(tiny_checkpoint: Path, video: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([{"time": 2.5, "question": "Where?"},
                                     {"time": 2.5, "question": "Sure?", "follow_up": True}]))  # fmt: skip
    out = tmp_path / "a.json"
    monkeypatch.setenv("STREAMFOREST_MODEL", str(tiny_checkpoint))
    rc = main(["stream", str(video), "--questions", str(questions), "--mode", "bounded", "--end", "7.9",
               "--max-new-tokens", "4", "--json-out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    payload = json.loads(out.read_text())
    assert payload["mode"] == "bounded" and [a["turn"] for a in payload["answers"]] == [1, 2]
    assert payload["stats"]["frames"] == 8  # --end 7.9 plays past the questions
    assert "(follow-up)" in capsys.readouterr().out


def test_stream_watch_prints_alerts_beside_answers(tiny_checkpoint: Path, video: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "w.json"
    # threshold 0: P(yes) >= 0 at every probe, so the watch alerts at the first frame and never re-arms
    rc = main(["stream", str(video), "--model", str(tiny_checkpoint), "--mode", "bounded", "--watch",
               "Is the traffic light green?", "--threshold", "0", "--cooldown", "100", "--ask", "3: What is ahead?",
               "--max-new-tokens", "4", "--json-out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "[   0.30 s] ALERT p=" in printed and "Is the traffic light green?" in printed
    assert "[   3.00 s] Q: What is ahead?" in printed
    payload = json.loads(out.read_text())
    assert [a["time"] for a in payload["alerts"]] == [pytest.approx(0.3)]  # one alert, at the first frame (100 s cool-down)
    stats = payload["stats"]
    assert stats["frames"] > 4  # a watch plays the whole video, not only up to the last question
    assert stats["watch"]["probes"] == stats["frames"] and stats["prefix_cache"]["enabled"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--ask", "soon: what?"], "TIME: QUESTION"),
        (["--ask", "3:"], "TIME: QUESTION"),
        (["--questions", "missing.json"], "no such file"),
        (["--fps", "0"], "--fps must be > 0"),
        (["--watch", "Green?", "--threshold", "2"], "--threshold must be a probability"),
    ],
)
def test_stream_argument_errors(tiny_checkpoint: Path, video: Path, capsys: pytest.CaptureFixture,
                                extra: list[str], fragment: str) -> None:
    assert main(["stream", str(video), "--model", str(tiny_checkpoint), "--no-progress", *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_stream_input_errors(tiny_checkpoint: Path, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMFOREST_MODEL", raising=False)
    assert main(["stream", str(video), "--ask", "1: q"]) == 2
    assert "STREAMFOREST_MODEL" in capsys.readouterr().err
    assert main(["stream", str(tmp_path / "nope.mp4"), "--model", str(tiny_checkpoint)]) == 2
    assert "no such file" in capsys.readouterr().err
    bad_json = tmp_path / "q.json"
    bad_json.write_text('{"time": 1}')
    assert main(["stream", str(video), "--model", str(tiny_checkpoint), "--questions", str(bad_json)]) == 2
    assert "expected a JSON list" in capsys.readouterr().err
    bad_json.write_text('[{"time": 1, "text": "q"}]')
    assert main(["stream", str(video), "--model", str(tiny_checkpoint), "--questions", str(bad_json)]) == 2
    assert "q.json[0]" in capsys.readouterr().err
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"not a video at all" * 20)
    assert main(["stream", str(corrupt), "--model", str(tiny_checkpoint), "--ask", "1: q", "--no-progress"]) == 2
    assert "broken.mp4" in capsys.readouterr().err
    assert main(["stream", str(video), "--model", str(tmp_path), "--ask", "1: q"]) == 2
    assert "--model" in capsys.readouterr().err


def test_parse_ask() -> None:
    assert parse_ask("12.5: What is the car in front doing?") == {"time": 12.5, "question": "What is the car in front doing?"}
    assert parse_ask("40:a: b") == {"time": 40.0, "question": "a: b"}


def test_python_dash_m_help() -> None:
    done = subprocess.run([sys.executable, "-m", "streamforest", "stream", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0 and "--json-out" in done.stdout and "--mode" in done.stdout
    done = subprocess.run([sys.executable, "-m", "streamforest"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "stream" in done.stdout


# ------------------------------------------------------------------------------------------ issue 16
@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--fps", "inf"], "--fps must be a finite number"),  # was a ZeroDivisionError
        (["--end", "nan"], "--end must be a finite number"),
        (["--device", "banana"], "--device 'banana' is not a torch device"),  # was a traceback
        (["--ask", "2: what\udcff?"], "a lone surrogate"),  # non-UTF-8 argv bytes: was a tokenizers TypeError
    ],
)
def test_stream_refuses_bad_numbers_and_devices(tiny_checkpoint: Path, video: Path, capsys: pytest.CaptureFixture,
                                                extra: list[str], fragment: str) -> None:
    assert main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "1: q", "--no-progress", *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_stream_refuses_cuda_without_cuda(tiny_checkpoint: Path, video: Path, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    assert main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "1: q", "--device", "cuda"]) == 2
    assert "--device cuda: CUDA is not available on this machine" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "fragment"), [(["--backend", "ffmpeg"], "--backend: invalid choice: 'ffmpeg'"),
                                                 (["--time-msg", "bogus"], "--time-msg: invalid choice: 'bogus'")])
def test_stream_refuses_unknown_backend_and_time_message(tiny_checkpoint: Path, video: Path,
                                                         capsys: pytest.CaptureFixture, extra: list[str],
                                                         fragment: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "1: q", "--no-progress", *extra])
    assert exit_.value.code == 2 and fragment in capsys.readouterr().err


def test_stream_checks_json_out_before_the_run(tiny_checkpoint: Path, video: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "1: q", "--no-progress",
               "--json-out", str(blocker / "answers.json")])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 2 and "--json-out" in out.err and "cannot write there" in out.err
    assert "Q:" not in out.out  # refused before any question was answered
    assert main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "1: q", "--json-out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_stream_ctrl_c_writes_the_answers_so_far(tiny_checkpoint: Path, video: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the stream: no traceback, the answers given so far in --json-out, exit status 130."""
    from streamforest.streaming import StreamingSession

    push = StreamingSession.push

    def push_until_ctrl_c(self, frame, timestamp):
        if timestamp > 4.0:
            raise KeyboardInterrupt
        return push(self, frame, timestamp)

    monkeypatch.setattr(StreamingSession, "push", push_until_ctrl_c)
    out = tmp_path / "partial.json"
    try:
        rc = main(["stream", str(video), "--model", str(tiny_checkpoint), "--ask", "2.5: first?", "--ask", "6: second?",
                   "--max-new-tokens", "3", "--json-out", str(out), "--no-progress"])  # fmt: skip
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped from main() (a traceback for the user)")
    assert rc == 130
    printed = capsys.readouterr()
    assert "interrupted: 1 of 2 question(s) answered" in printed.err and "Traceback" not in printed.err
    payload = json.loads(out.read_text())
    assert payload["interrupted"] is True and [a["question"] for a in payload["answers"]] == ["first?"]
