"""Video: reference frame sampling (golden values), the three backends on index-encoding videos, errors."""

import dataclasses
import random

import numpy as np
import pytest
from helpers_video import decode_index, write_frame_folder, write_index_video

from streamforest.prompts import frame_timestamps, time_message
from streamforest.video import (
    VideoClip,
    VideoError,
    folder_fps,
    get_frame_indices,
    iter_video_frames,
    list_frame_files,
    load_video,
)

FILE_BACKENDS = ["decord", "pyav"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    return {
        "v30": write_index_video(root / "v30.mp4", 37 * 30, fps=30),  # 37.0 s at 30 fps
        "v10": write_index_video(root / "v10.mp4", 95, fps=10),  # 9.5 s at 10 fps
        "avi": write_index_video(root / "v10.avi", 95, fps=10),
        "folder": write_frame_folder(root / "clip_frames", 25, pattern="frame_{}"),  # unpadded numbers
        "jpgs": write_frame_folder(root / "tvqa" / "ep1", 12, ext="jpg", pattern="frame_{:05d}"),
    }


def _decoded(clip: VideoClip) -> list[int]:
    return [decode_index(f) for f in clip.frames]


# ------------------------------------------------------------------------------------------- pure sampling


def test_dynamic_fps1_spec_example_37_frames():
    # decord rule for clip [0, 36] s of a 30-fps video: vlen = int(36 * 30) = 1080, offset 0
    idx = get_frame_indices(2048, 1080, "dynamic_fps1", input_fps=30.0, min_num_frames=4, max_num_frames=2048, local_num_frames=1)
    assert len(idx) == 37
    assert idx[:3] == [14, 43, 72] and idx[-2:] == [1035, 1064]
    sec = frame_timestamps(idx, 30.0)
    assert (sec[0], sec[-1]) == ("0.5", "35.5")
    assert time_message("short_online_v2", sec, 36.0).startswith("\nThe video contains 37 frames sampled from the past 35.0")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"num_frames": 4, "vlen": 10}, [0, 3, 5, 8]),  # middle: bins [0,2) [2,5) [5,7) [7,10)
        ({"num_frames": 4, "vlen": 10, "fix_start": 1}, [1, 3, 6, 8]),
        ({"num_frames": 6, "vlen": 4}, [0, 1, 2, 3, 3, 3]),  # padding repeats the last index
        # 1 s at 30 fps -> 2 frames, raised to min 4
        ({"num_frames": None, "vlen": 30, "sample": "dynamic_fps1", "input_fps": 30, "min_num_frames": 4, "local_num_frames": 1}, [3, 10, 18, 25]),
        # min > vlen is lowered to vlen; 3 frames wanted from 2 -> padded
        ({"num_frames": None, "vlen": 2, "sample": "dynamic_fps1", "min_num_frames": 4, "local_num_frames": 1}, [0, 1, 1]),
        # max cap: 101 frames wanted, 10 allowed
        ({"num_frames": None, "vlen": 100, "sample": "dynamic_fps1", "max_num_frames": 10, "local_num_frames": 1}, list(range(4, 100, 10))),
        # local_num_frames = 8, min 64 > vlen 5 -> min = 0; 8 frames from 5 -> padded
        ({"num_frames": None, "vlen": 5, "sample": "dynamic_fps1", "min_num_frames": 64, "local_num_frames": 8}, [0, 1, 2, 3, 4, 4, 4, 4]),
        ({"num_frames": None, "vlen": 300, "sample": "fps0.5", "input_fps": 30}, [30, 90, 150, 210, 270]),
        ({"num_frames": None, "vlen": 300, "sample": "fps0.5", "input_fps": 30, "max_num_frames": 3}, [30, 90, 150]),
        # (k + 1/2) / 2 s at 10 fps: 2.5, 7.5, ... rounded half to even
        ({"num_frames": None, "vlen": 25, "sample": "fps2", "input_fps": 10}, [2, 8, 12, 18, 22]),
    ],
)
def test_get_frame_indices_golden(kwargs, expected):
    assert get_frame_indices(**kwargs) == expected


def test_dynamic_fps1_is_a_multiple_of_local_num_frames():
    idx = get_frame_indices(None, 300, "dynamic_fps1", input_fps=10, local_num_frames=8)  # 30 s -> floor(31/8)*8
    assert len(idx) == 24


def test_rand_is_reproducible_and_stays_in_its_bins():
    a = get_frame_indices(8, 100, "rand", rng=random.Random(3))
    assert a == get_frame_indices(8, 100, "rand", rng=random.Random(3))
    bins = np.linspace(0, 100, 9).astype(int)
    assert all(bins[i] <= a[i] < bins[i + 1] - 1 for i in range(8))
    draws = {tuple(get_frame_indices(8, 100, "rand", rng=random.Random(s))) for s in range(5)}
    assert len(draws) > 1
    g = get_frame_indices(8, 100, "rand", rng=np.random.default_rng(0))
    assert g == get_frame_indices(8, 100, "rand", rng=np.random.default_rng(0)) and len(g) == 8
    assert get_frame_indices(8, 100, "rand") == get_frame_indices(8, 100, "rand")  # default: fixed seed
    # bins one frame wide -> the reference's sorted random subset
    sub = get_frame_indices(4, 5, "rand", rng=random.Random(0))
    assert len(set(sub)) == 4 and sub == sorted(sub) and all(0 <= i < 5 for i in sub)


def test_get_frame_indices_errors():
    with pytest.raises(ValueError, match="unknown frame sampling"):
        get_frame_indices(4, 10, "uniform")
    with pytest.raises(ValueError, match="num_frames"):
        get_frame_indices(None, 10, "middle")
    with pytest.raises(ValueError, match="fps<rate>"):
        get_frame_indices(None, 10, "fpsx")


# ------------------------------------------------------------------------------------------- video files


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_load_video_spec_clip_example(media, backend):
    clip = load_video(media["v30"], clip=(0.0, 36.0), backend=backend)
    assert clip.frames.shape == (37, 16, 96, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == 30.0 and clip.duration == 36.0
    assert clip.indices[:3] == [14, 43, 72] and clip.indices[-1] == 1064
    assert _decoded(clip) == clip.indices
    assert clip.timestamps[0] == pytest.approx(14 / 30) and clip.timestamps[-1] == pytest.approx(1064 / 30)
    assert frame_timestamps(clip.indices, clip.fps)[-1] == "35.5"


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_load_video_whole_and_clips_exact_indices(media, backend):
    whole = load_video(media["v10"], backend=backend)  # 9.5 s -> floor(10.5) = 10 frames
    assert whole.indices == get_frame_indices(2048, 95, "dynamic_fps1", input_fps=10, min_num_frames=4, max_num_frames=2048, local_num_frames=1)
    assert len(whole) == 10 and whole.duration == 9.5 and _decoded(whole) == whole.indices

    mid = load_video(media["v10"], clip=(2.0, 6.0), backend=backend)  # vlen 40, offset 20, 5 bins of 8
    assert mid.indices == [23, 31, 39, 47, 55] and _decoded(mid) == mid.indices
    assert mid.duration == 4.0 and mid.timestamps == pytest.approx([2.3, 3.1, 3.9, 4.7, 5.5])

    late = load_video(media["v10"], clip=(5.0, 100.0), backend=backend)  # end clamped to 9.4 s
    assert late.duration == pytest.approx(4.4)
    assert late.indices == [53, 62, 71, 80, 89] and _decoded(late) == late.indices

    short = load_video(media["v10"], clip=(2.0, 3.0), backend=backend)  # 2 frames raised to min 4
    assert short.indices == [20, 23, 25, 28] and _decoded(short) == short.indices


def test_backends_agree_on_indices_and_pixels(media):
    kw = {"clip": (1.0, 8.0), "sample": "middle", "num_frames": 9}
    a, b = (load_video(media["v10"], backend=bk, **kw) for bk in FILE_BACKENDS)
    assert a.indices == b.indices and a.timestamps == b.timestamps and a.duration == b.duration
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).max() <= 2


def test_avi_goes_through_pyav_and_gif_is_read(media, tmp_path):
    from helpers_video import index_frame
    from PIL import Image

    avi = load_video(media["avi"], backend="decord")  # reference: .avi files are delegated to PyAV
    assert avi.indices == load_video(media["v10"]).indices and _decoded(avi) == avi.indices

    frames = [Image.fromarray(index_frame(k)) for k in range(6)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    gif = load_video(tmp_path / "a.gif")  # fps fixed to 1: 7 frames wanted from 6 -> padded
    assert gif.indices == [0, 1, 2, 3, 4, 5, 5] and _decoded(gif) == gif.indices and gif.fps == 1.0
    with pytest.raises(VideoError, match="GIF"):
        load_video(tmp_path / "a.gif", clip=(0, 2))


# ------------------------------------------------------------------------------------------- frame folders


def test_frame_folder_numeric_sort_and_fps_heuristics(media, tmp_path):
    names = [p.name for p in list_frame_files(media["folder"])]
    assert names[:3] == ["frame_0.png", "frame_1.png", "frame_2.png"] and names[-1] == "frame_24.png"
    assert folder_fps(media["jpgs"]) == 3.0  # 'tvqa' in the path
    assert folder_fps("/data/GOT-10k/x") == 10.0 and folder_fps("/d/LaSOT/x") == 30.0 and folder_fps("/d/x") == 1.0
    assert folder_fps("/d/tvqa/x", fps=5) == 5.0


def test_frame_folder_clip_includes_both_end_points(media):
    clip = load_video(media["folder"], clip=(1.0, 3.0), fps=5)
    # vlen = 2*5 + 1 = 11, duration 2 s -> 3 frames, raised to min 4; linspace over frames 5..15
    assert clip.indices == [5, 8, 12, 15] and _decoded(clip) == clip.indices
    assert clip.duration == 2.0 and clip.timestamps == pytest.approx([1.0, 1.6, 2.4, 3.0]) and clip.fps == 5.0
    late = load_video(media["folder"], clip=(2.0, 99.0), fps=5)  # end clamped to the last frame (4.8 s)
    assert late.indices[0] == 10 and late.indices[-1] == 24 and _decoded(late) == late.indices


def test_frame_folder_without_clip_keeps_the_reference_1fps_quirk(media):
    clip = load_video(media["folder"], fps=5)
    # every frame, plus the last one again (the folder fps is ignored by the sampler)
    assert clip.indices == list(range(25)) + [24] and _decoded(clip) == clip.indices
    assert clip.duration == pytest.approx(24 / 5) and clip.timestamps[-1] == pytest.approx(4.8)
    jpg = load_video(media["jpgs"], backend="img")
    assert jpg.fps == 3.0 and jpg.indices == list(range(12)) + [11] and _decoded(jpg) == jpg.indices


# ------------------------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_video_errors(media, tmp_path):
    with pytest.raises(VideoError, match="no such video"):
        load_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for backend in FILE_BACKENDS:
        with pytest.raises(VideoError, match="bad.mp4.*valid video"):
            load_video(bad, backend=backend)
    with pytest.raises(VideoError, match=r"clip.start \(5.0 s\) must be smaller than clip.end"):
        load_video(media["v10"], clip=(5.0, 5.0))
    for backend in FILE_BACKENDS:
        with pytest.raises(VideoError, match=r"clip.start \(20.0 s\) is not before the end of the video"):
            load_video(media["v10"], clip=(20.0, 30.0), backend=backend)
    with pytest.raises(VideoError, match="within 0.1 s"):
        load_video(media["v10"], clip=(9.45, 12.0))
    with pytest.raises(VideoError, match="after the last frame"):
        load_video(media["folder"], clip=(30.0, 40.0), fps=5)
    empty = tmp_path / "empty_frames"
    empty.mkdir()
    with pytest.raises(VideoError, match="no .jpg"):
        load_video(empty)
    with pytest.raises(ValueError, match="unknown video backend"):
        load_video(media["v10"], backend="opencv")
    with pytest.raises(VideoError, match="needs a folder of .jpg/.png frames"):
        load_video(media["v10"], backend="frames")
    with pytest.raises(VideoError, match="folder of frames"):
        load_video(media["folder"], backend="decord")


# ------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_iter_video_frames_matches_load_video(media, backend):
    span = list(iter_video_frames(media["v10"], start=2.0, end=6.0, backend=backend))
    ref = load_video(media["v10"], clip=(2.0, 6.0), backend=backend)  # eval defaults; 4 s span: bounds inactive
    assert [t for t, _ in span] == ref.timestamps
    assert [decode_index(f) for _, f in span] == ref.indices

    whole = list(iter_video_frames(media["v10"], backend=backend))
    ref = load_video(media["v10"], min_num_frames=1, max_num_frames=-1, backend=backend)
    assert [t for t, _ in whole] == ref.timestamps and [decode_index(f) for _, f in whole] == ref.indices


def test_iter_video_frames_rate_and_folders(media):
    two = list(iter_video_frames(media["v10"], sample_fps=2.0, start=2.0, end=6.0))
    assert len(two) == 9  # floor(4 s * 2 + 1)
    assert [decode_index(f) for _, f in two] == [round(t * 10) for t, _ in two] == [21, 25, 30, 34, 39, 43, 48, 52, 57]
    folder = list(iter_video_frames(media["folder"], start=1.0, end=3.0))
    ref = load_video(media["folder"], clip=(1.0, 3.0), min_num_frames=1)
    assert [t for t, _ in folder] == ref.timestamps
    with pytest.raises(VideoError, match="sample_fps=1"):
        iter_video_frames(media["folder"], sample_fps=2.0)  # checked at call time
    with pytest.raises(VideoError, match="not before the end"):
        iter_video_frames(media["v10"], start=12.0, end=20.0)


# ------------------------------------------------------------------------------------------- llava compat


def test_llava_video_reader_registry(media):
    from llava.video_utils import VIDEO_READER_FUNCS
    from llava.video_utils import load_video as llava_load_video

    assert set(VIDEO_READER_FUNCS) >= {"decord", "av", "img", "frame", "gif"}
    frames, indices, fps, duration = VIDEO_READER_FUNCS["decord"](
        str(media["v10"]), 2048, sample="dynamic_fps1", min_num_frames=4, max_num_frames=2048, clip=[2.0, 6.0], local_num_frames=1
    )
    assert indices == [23, 31, 39, 47, 55] and fps == 10.0 and duration == 4.0 and frames.shape[0] == 5
    frames, msg, n = llava_load_video(str(media["v10"]), 2048, {"start": 2.0, "end": 6.0, "video_read_type": "decord"})
    assert n == 5 and msg == time_message("short_online_v2", ["2.3", "3.1", "3.9", "4.7", "5.5"], 4.0)
    with pytest.raises(VideoError, match="s3://"):
        VIDEO_READER_FUNCS["decord"]("s3://bucket/v.mp4", 8)


# ------------------------------------------------------------------------------------------- one alias table


def test_read_type_table_is_shared_and_decord_means_auto():
    from llava.video_utils import VIDEO_READER_FUNCS
    from streamforest.data.data_list import VIDEO_READ_TYPES
    from streamforest.video import READ_TYPES, backend_for

    assert backend_for("decord") == backend_for(None) == "auto"
    assert backend_for("av") == "pyav" and backend_for("img") == backend_for("frame") == "frames"
    assert set(VIDEO_READ_TYPES) == set(VIDEO_READER_FUNCS) == {k for k in READ_TYPES if k}
    with pytest.raises(ValueError, match="video_read_type 'opencv'"):
        backend_for("opencv")


def test_decord_read_type_falls_back_to_pyav_when_decord_cannot_open(media, monkeypatch, caplog):
    import decord

    from streamforest.video import backend_for

    ref = load_video(media["v10"], clip=(2.0, 6.0), backend="pyav")

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot find video stream")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    with pytest.raises(VideoError, match="decord cannot open"):
        load_video(media["v10"], backend="decord")  # the explicit backend name stays strict
    with caplog.at_level("WARNING", logger="streamforest.video.decoders"):
        got = load_video(media["v10"], clip=(2.0, 6.0), backend=backend_for("decord"))
    assert "reading it with PyAV instead" in caplog.text and "v10.mp4" in caplog.text
    assert got.indices == ref.indices and _decoded(got) == _decoded(ref)


def test_decord_read_type_without_decord_installed_uses_pyav(media, monkeypatch, caplog):
    from streamforest.data.dataset import backend_for
    from streamforest.video import decoders

    monkeypatch.setattr(decoders, "_decord_available", lambda: False)
    with caplog.at_level("INFO", logger="streamforest.video.decoders"):
        got = load_video(media["v10"], backend=backend_for("decord"))  # what training and evaluation pass
    assert "decord is not installed" in caplog.text
    assert got.indices == load_video(media["v10"], backend="pyav").indices


def test_sampling_spec_eval_preset_is_load_video_default(media):
    from streamforest.video import EVAL_SAMPLING, read_video

    assert (EVAL_SAMPLING.sample, EVAL_SAMPLING.min_num_frames, EVAL_SAMPLING.max_num_frames) == ("dynamic_fps1", 4, 2048)
    a, b = read_video(media["v10"], EVAL_SAMPLING, clip=(2.0, 6.0)), load_video(media["v10"], clip=(2.0, 6.0))
    assert a.indices == b.indices == [23, 31, 39, 47, 55]
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVAL_SAMPLING.min_num_frames = 1  # type: ignore[misc]


def _write_plain_video(path, num_frames: int, width: int, fps: int = 10, height: int = 32):
    """``num_frames`` flat grey frames (frame k has value 8·k) of ``width × height`` px, written with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 8 * k, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("fps", [1, 10])
def test_one_frame_video_says_it_is_too_short(tmp_path, fps):
    """Issue 16: a 1-frame video asked about with a clip said "no whole frame… make clip.end later"."""
    from streamforest.inference import frames_at

    one = _write_plain_video(tmp_path / "one.mp4", 1, 32, fps=fps)
    with pytest.raises(VideoError, match=r"one.mp4: the video is too short for a clip: 1 frame\(s\)"):
        load_video(one, num_frames=8, clip=(0.0, 1.0))
    with pytest.raises(VideoError, match="too short"):
        frames_at(one, at=0.5)
    assert load_video(one, num_frames=8).frames.shape[0] >= 1  # without a clip it is read


@pytest.mark.parametrize("width", [16, 24])
def test_narrow_video_falls_back_to_pyav(tmp_path, width, caplog):
    """Issue 16: decord misreads videos <= 24 px wide (frame 0 with 6 or 4 "channels"); PyAV reads them."""
    pytest.importorskip("decord")
    narrow = _write_plain_video(tmp_path / "narrow.mp4", 30, width)
    with caplog.at_level("WARNING"):
        clip = load_video(narrow, num_frames=4, clip=(0.0, 2.0))
    assert clip.frames.shape == (4, 32, width, 3)
    pyav = load_video(narrow, num_frames=4, clip=(0.0, 2.0), backend="pyav")
    assert clip.indices == pyav.indices and np.array_equal(clip.frames, pyav.frames)
    assert np.all(np.diff([f.mean() for f in clip.frames]) > 0)  # distinct, increasing frames (value 8·k)
    assert "reading it with PyAV instead" in caplog.text
    with pytest.raises(VideoError, match="decord misreads this video"):
        load_video(narrow, num_frames=4, backend="decord")  # the explicit decord backend stays strict
