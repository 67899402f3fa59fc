"""The web page in headless Chromium: fake webcam (a synthetic driving video as y4m) and the file picker.

Chromium is the Debian package (``.ci/run`` installs it when missing); playwright drives it with
``executable_path`` (playwright's own browsers are never downloaded). Set ``STREAMFOREST_SCREENSHOT=PATH`` to keep
the 1280×800 screenshot (the README's is ``docs/serve.png``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
CHROMIUM = os.environ.get("STREAMFOREST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: apt-get install -y chromium (.ci/run does) or set STREAMFOREST_CHROMIUM"
)

from serve_helpers import LiveServer, driving_frames, write_webm, write_y4m  # noqa: E402

from streamforest.serve import ServeSettings, create_app  # noqa: E402
from streamforest.streaming import StreamingSession  # noqa: E402

QUESTION = "What is the car in front doing?"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve_videos")
    frames = driving_frames(40, fps=10, size=(320, 240))
    return {"y4m": write_y4m(folder / "drive.y4m", frames, 10), "webm": write_webm(folder / "drive.webm", frames, 10)}


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Path) -> Any:
    from streamforest.model.loader import load_pretrained

    return load_pretrained(tiny_checkpoint, dtype="float32")


def serve(loaded: Any, **settings: Any) -> LiveServer:
    app = create_app(loaded.model, loaded.tokenizer, ServeSettings(max_new_tokens=8, **settings),
                     image_processor=loaded.image_processor)  # fmt: skip
    return LiveServer(app)


@pytest.fixture(scope="module")
def server(loaded: Any) -> Iterator[str]:
    with serve(loaded) as url:
        yield url


@pytest.fixture(scope="module")
def browser(videos: dict[str, Path]) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={videos['y4m']}", "--autoplay-policy=no-user-gesture-required",
        ])  # fmt: skip
        yield b
        b.close()


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#fps", "5")
    return page, errors


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    page, errors = open_page(browser, server)
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sent_frames(page: Any, at_least: int) -> int:
    page.wait_for_function(f"Number(document.getElementById('sent').textContent) >= {at_least}", timeout=20_000)
    return int(page.inner_text("#sent"))


def ask(page: Any, question: str) -> str:
    page.fill("#question", question)
    page.click("#ask")
    answer = page.locator("#answers li").last
    answer.locator(".meta").wait_for(timeout=30_000)
    return answer.inner_text()


def screenshot(page: Any, tmp_path: Path) -> Path:
    out = Path(os.environ.get("STREAMFOREST_SCREENSHOT") or tmp_path / "serve.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    return out


def test_webcam_stream_answers_a_question(page: Any, tmp_path: Path) -> None:
    page.click("#webcam")
    sent_frames(page, 3)
    assert page.inner_text("#conn") == "streaming" and page.inner_text("#session") != "none"
    text = ask(page, QUESTION)
    assert QUESTION in text and "frames up to" in text and " ms" in text
    assert page.inner_text("#latency").endswith("ms") and int(page.inner_text("#dropped")) == 0
    assert page.inner_text("#notice") == ""
    shot = screenshot(page, tmp_path)
    assert shot.stat().st_size > 10_000
    page.click("#stop")
    page.wait_for_function("document.getElementById('session').textContent === 'none' && "
                           "document.getElementById('conn').textContent === 'offline'", timeout=10_000)


def test_file_picker_stream_answers_with_the_video_time(page: Any, videos: dict[str, Path]) -> None:
    page.set_input_files("#file", str(videos["webm"]))
    sent_frames(page, 2)
    text = ask(page, "How many cars are there?")
    meta = page.locator("#answers li .meta").last.inner_text()
    seconds = float(meta.split("at ")[1].split(" s")[0])
    assert 0 < seconds <= 4.0 and "frames up to" in text  # the 4 s clip's own time, not wall time


def test_page_with_a_token_sends_it_over_rest_and_the_websocket(browser: Any, loaded: Any) -> None:
    with serve(loaded, token="page-s3cret") as url:
        page, errors = open_page(browser, url)
        page.click("#webcam")
        page.locator("#notice").filter(has_text="could not start a session").wait_for(timeout=20_000)
        assert "token" in page.inner_text("#notice")  # 401 names the header
        page.fill("#token", "page-s3cret")
        page.click("#webcam")
        sent_frames(page, 2)
        assert "frames up to" in ask(page, QUESTION)
        page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.mark.skipif(not hasattr(StreamingSession, "watch"), reason="standing questions land with issue 12")
def test_standing_question_raises_an_alert_on_the_page(page: Any, tmp_path: Path) -> None:
    page.click("#webcam")
    sent_frames(page, 1)
    page.fill("#watch-question", "Is the traffic light red?")
    page.fill("#threshold", "0")
    page.click("#add-watch")
    page.locator("#watches li").first.wait_for(timeout=20_000)
    page.locator("#alerts li").first.wait_for(timeout=30_000)
    assert "Is the traffic light red?" in page.inner_text("#alerts")
    ask(page, QUESTION)
    screenshot(page, tmp_path)
