"""The lmms-eval model adapter and the end-to-end path.

Fast: the adapter (``streamforest.eval.adapter``) with a recording stand-in model over the real tokenizer,
image processor, video loader and prompts — prompt text, generation settings, visual-token reuse across
rounds, failed samples. Slow (``-m slow``): the tiny checkpoint answers a tiny ODV-Bench-format task through
the real ``python -m lmms_eval`` CLI (entry-point discovery, synthetic videos written with PyAV, annotations
in the real layout), and eval_all.sh fails loudly when a benchmark produces no results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ODV_CONFIGS = (
    "targeting_single_static_objects_v4",
    "targeting_multi_object_interaction_scenarios_or_events_v4",
    "targeting_single_dynamic_objects_v4",
)



def write_video(path: Path, seconds: int = 3, fps: int = 10) -> None:
    """A tiny mpeg4 video whose brightness ramps over time."""
    av = pytest.importorskip("av")
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            frame = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
            frame[:, : 8 + i % 50] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def odv_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Annotation root (all three ODV-Bench configs) and video root, in the real layout."""
    root = tmp_path_factory.mktemp("odv")
    anno, videos = root / "anno", root / "videos"
    write_video(videos / "ODVBench" / "drive" / "clip_a.mp4", seconds=3)
    write_video(videos / "ODVBench" / "drive" / "clip_b.mp4", seconds=2)
    docs = [
        {"video": "drive/clip_a.mp4", "question": "What colour is the light?", "candidates": ["red", "green"],
         "answer": "green", "task": "static", "subtask": "traffic light", "start": 0, "end": 2.5},
        {"video": "drive/clip_b.mp4", "question": "How many cars?", "candidates": ["1", "2", "3"], "answer": "2",
         "task": "static", "subtask": "count", "subsubtask": "cars", "start": 0.5, "end": 1.9},
    ]
    for config in ODV_CONFIGS:
        path = anno / "ODVBench" / f"{config}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(docs))
    return anno, videos


def eval_env(anno: Path, videos: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_ANNO_", "SF_VIDEOS_"))}
    env.update(
        SF_EVAL_ANNO_ROOT=str(anno),
        SF_EVAL_VIDEO_ROOT=str(videos),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        CUDA_VISIBLE_DEVICES="",
        PYTHON=sys.executable,
    )
    return env


@pytest.mark.slow
def test_lmms_eval_cli_with_tiny_checkpoint(tiny_checkpoint: Path, odv_data: tuple[Path, Path], tmp_path: Path) -> None:
    _, videos = odv_data
    task = "odvbench_targeting_single_static_objects_v4"
    # a corrupt video among the good ones: answered '' and counted, and the summary must reach the console
    (videos / "ODVBench" / "drive" / "broken.mp4").write_bytes(b"not a video at all")
    docs = json.loads((odv_data[0] / "ODVBench" / f"{ODV_CONFIGS[0]}.json").read_text())
    docs.append({**docs[0], "video": "drive/broken.mp4"})
    anno = tmp_path / "anno"
    (anno / "ODVBench").mkdir(parents=True)
    (anno / "ODVBench" / f"{ODV_CONFIGS[0]}.json").write_text(json.dumps(docs))
    cmd = [
        sys.executable, "-m", "lmms_eval",
        "--model", "streamforest",
        "--model_args", f"pretrained={tiny_checkpoint},conv_template=qwen_2,max_frames_num=16,time_msg=short_online_v2",
        "--tasks", task, "--batch_size", "1", "--log_samples",
        "--output_path", str(tmp_path / "out"), "--include_path", str(REPO / "lmms_eval" / "tasks"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=eval_env(anno, videos), capture_output=True, text=True, timeout=170)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    results_files = list((tmp_path / "out").rglob("*_results.json"))
    assert len(results_files) == 1, log
    data = json.loads(results_files[0].read_text())
    row = data["results"][task]
    assert 0.0 <= row["odvbench_accuracy,none"] <= 100.0
    assert 0.0 <= row["odvbench_accuracy_strict,none"] <= row["odvbench_accuracy,none"] + 1e-9
    assert data["n-samples"][task]["effective"] == 3
    samples = [json.loads(line) for f in (tmp_path / "out").rglob(f"*_samples_{task}.jsonl") for line in f.open()]
    assert len(samples) == 3
    summary = [line for line in proc.stderr.splitlines() if f"task {task}: 1 of 3 sample(s) failed" in line]
    assert len(summary) == 1 and "broken.mp4" in summary[0], log  # issue 16: was invisible under lmms-eval
    assert row["odvbench_accuracy_strict,none"] <= 100.0 * 2 / 3 + 1e-9  # the failed sample counts wrong
    record = samples[0]["odvbench_accuracy"]
    assert set(record) >= {"score", "empty", "pred", "gt", "categories"}
    assert record["gt"] in ("A", "B")
    assert "<image>" not in samples[0]["input"]  # the adapter inserts the image token, not the task


@pytest.mark.slow
def test_eval_all_fails_loudly_naming_the_benchmark(
    tiny_checkpoint: Path, odv_data: tuple[Path, Path], tmp_path: Path
) -> None:
    anno, videos = odv_data  # StreamingBench annotations are absent on purpose
    env = eval_env(anno, videos)
    env.update(CKPT_PATH=str(tiny_checkpoint), MAX_FRAMES="8", BENCHMARKS="odvbench streamingbench",
               RESULTS_DIR=str(tmp_path / "results"))  # fmt: skip
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "eval" / "eval_all.sh"), "--limit", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "FAILED benchmarks (no results): streamingbench" in proc.stderr, proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.rfind("benchmark ") :]
    assert "odvbench_accuracy" in table and " ok" in table.splitlines()[1], table
    assert "missing" in table.splitlines()[2], table
    assert list((tmp_path / "results" / tiny_checkpoint.name / "odvbench").rglob("*_results.json"))


# ------------------------------------------------------------------------------------------ adapter (fast)
class RecordingModel:
    """Stand-in for LlavaQwenForCausalLM: records encodes and generate calls, answers a fixed text."""

    dtype = None

    def __init__(self, tokenizer, answer: str = "B<|im_end|>") -> None:
        import torch

        self.dtype = torch.float32
        self.tokenizer, self.answer = tokenizer, answer
        self.encoded: list[tuple] = []
        self.calls: list[tuple] = []

    def encode_images(self, images, modalities):
        self.encoded.append((tuple(images[0].shape), tuple(modalities)))
        return [images[0].flatten(1)[:, :4]]  # [T, 4] stand-in visual tokens

    def generate(self, input_ids, **kwargs):
        self.calls.append((input_ids, kwargs))
        return self.tokenizer(self.answer, return_tensors="pt", add_special_tokens=False).input_ids


@pytest.fixture()
def adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("lmms_eval")
    from streamforest.eval import adapter as adapter_mod
    from streamforest.model import loader
    from streamforest.model.processor import SigLipImageProcessor
    from streamforest.tiny import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer(tmp_path / "tok")
    model = RecordingModel(tokenizer)

    def fake_load(path, **kwargs):
        fake_load.kwargs = kwargs
        return loader.LoadedModel(tokenizer, model, SigLipImageProcessor(size=56), 32768)

    monkeypatch.setattr(loader, "load_pretrained", fake_load)
    lmm = adapter_mod.StreamForestLMM(pretrained=str(tmp_path / "ckpt"), max_frames_num=16, time_msg="short_online_v2",
                                      device="cpu", mm_local_num_frames="1")  # fmt: skip
    lmm.load_kwargs = fake_load.kwargs
    return lmm, model, tokenizer


def _request(kind: str, args: tuple):
    from lmms_eval.api.instance import Instance

    return Instance(request_type=kind, arguments=args, idx=0, metadata={"task": "t", "doc_id": 0, "repeats": 1})


def _decode_prompt(tokenizer, ids) -> str:
    parts, chunk = [], []
    for token in ids[0].tolist():
        if token == -200:
            parts.append(tokenizer.decode(chunk))
            chunk = []
        else:
            chunk.append(token)
    return "<image>".join([*parts, tokenizer.decode(chunk)])


def test_adapter_prompt_generation_and_reuse(adapter, tmp_path: Path) -> None:
    lmm, model, tokenizer = adapter
    assert lmm.load_kwargs["overrides"] == {"mm_local_num_frames": 1}
    assert lmm.load_kwargs["dtype"] == "float32" and str(lmm.load_kwargs["device"]) == "cpu"
    video = tmp_path / "v.mp4"
    write_video(video, seconds=3, fps=10)
    visual = [str(video), {"video_read_type": "decord", "start": 0.0, "end": 2.5}]
    lmm.task_dict = {"t": {"train": [{"id": 0}, {"id": 1}]}}
    gen = {"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False, "until": ["\n\n"]}
    requests = [_request("generate_until", ("Q1?", dict(gen), lambda doc: visual, i, "t", "train")) for i in (0, 1)]
    assert lmm.generate_until(requests) == ["B", "B"]
    assert len(model.encoded) == 1  # same (video, clip): frames encoded once
    # clip [0, 2.5] s of a 10-fps video (REFERENCE §5.3): n_clip = 25, N = floor(2.5 + 1) = 3 raised to min 4;
    # bins [0,6,12,18,25] -> mid indices 2, 8, 14, 21 -> "0.2", "0.8", "1.4", "2.1" s
    assert model.encoded[0] == ((4, 3, 56, 56), ("video",))
    ids, kwargs = model.calls[0]
    prompt = _decode_prompt(tokenizer, ids)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n\n"
        "The video contains 4 frames sampled from the past 1.9 seconds ago (0.2s of the entire video) up to the "
        "present moment (2.1s of the entire video). Q1?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert kwargs["max_new_tokens"] == 16 and kwargs["do_sample"] is False and kwargs["num_beams"] == 1
    assert "until" not in kwargs and "temperature" not in kwargs and kwargs["modalities"] == ["video"]
    assert kwargs["visual_features"][0].shape == (4, 4)


def test_adapter_failed_sample_is_empty_and_run_goes_on(adapter, tmp_path: Path, caplog) -> None:
    lmm, model, _ = adapter
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    good = tmp_path / "good.mp4"
    write_video(good, seconds=2)
    lmm.task_dict = {"t": {"train": [{}, {}]}}
    requests = [
        _request("generate_until", ("Q?", {}, lambda doc: [str(broken)], 0, "t", "train")),
        _request("generate_until", ("Q?", {}, lambda doc: [str(good)], 1, "t", "train")),
    ]
    with caplog.at_level("WARNING"):
        assert lmm.generate_until(requests) == ["", "B"]
    assert lmm.failed_samples == 1 and "broken.mp4" in caplog.text
    assert model.calls[0][1]["max_new_tokens"] == 1024  # wrapper default without task generation kwargs


def test_adapter_failure_summary_reaches_the_console(adapter, tmp_path: Path, capfd, monkeypatch) -> None:
    """Issue 16: under lmms-eval (loguru; `logging` unconfigured) the adapter's warnings were invisible. The
    adapter shows the streamforest.eval logs and ends each task with a summary: failed count and first paths."""
    import logging

    from streamforest.eval.adapter import StreamForestLMM

    root, eval_log = logging.getLogger(), logging.getLogger("streamforest.eval")
    monkeypatch.setattr(root, "handlers", [])  # as under lmms-eval: no handler on the root logger
    monkeypatch.setattr(eval_log, "handlers", [])
    monkeypatch.setattr(eval_log, "level", logging.NOTSET)
    lmm, _, _ = adapter
    lmm = StreamForestLMM(pretrained=str(tmp_path / "ckpt"), max_frames_num=16, device="cpu")  # shows the logs
    good = tmp_path / "good.mp4"
    write_video(good, seconds=2)
    lmm.task_dict = {"t1": {"test": [{}] * 4}, "t2": {"test": [{}]}}
    visuals = [[str(tmp_path / f"broken{k}.mp4")] for k in range(3)] + [[str(good)], [str(good)]]
    for k in range(3):
        (tmp_path / f"broken{k}.mp4").write_bytes(b"not a video")
    requests = [_request("generate_until", ("Q?", {}, lambda doc, v=v: v, i % 4, "t1" if i < 4 else "t2", "test"))
                for i, v in enumerate(visuals)]  # fmt: skip
    capfd.readouterr()
    assert lmm.generate_until(requests) == ["", "", "", "B", "B"]
    err = capfd.readouterr().err
    summary = [line for line in err.splitlines() if "task t1:" in line]
    assert len(summary) == 1 and "3 of 4 sample(s) failed" in summary[0], err
    assert all(f"broken{k}.mp4" in summary[0] for k in range(3))
    assert "task t2" not in err  # no failures, no summary


def test_adapter_names_a_bad_integer_model_arg(adapter) -> None:
    """Issue 16: max_frames_num=abc gave "invalid literal for int()" without naming the argument."""
    from streamforest.eval.adapter import StreamForestLMM

    with pytest.raises(ValueError, match="max_frames_num='abc' is not an integer"):
        StreamForestLMM(pretrained="x", max_frames_num="abc")
    with pytest.raises(ValueError, match="mm_local_num_frames='0' must be >= 1"):
        StreamForestLMM(pretrained="x", mm_local_num_frames="0")


def test_adapter_multi_round_reuses_visual_tokens(adapter, tmp_path: Path) -> None:
    lmm, model, _ = adapter
    video = tmp_path / "v.mp4"
    write_video(video, seconds=3)
    visual = [str(video), {"video_read_type": "decord"}]
    lmm.task_dict = {"t": {"test": [{"rounds": ["first?", "second?"]}]}}

    def doc_to_text(doc, previous_output=None, round_idx=None, previous_round_info=None):
        if round_idx == len(doc["rounds"]):
            return None, None, True, previous_output, None
        return visual, doc["rounds"][round_idx], False, previous_output, None

    request = _request("generate_until_multi_round", ("first?", {}, lambda doc: visual, doc_to_text, 0, "t", "test"))
    assert lmm.generate_until_multi_round([request]) == [["B", "B"]]
    assert len(model.encoded) == 1 and len(model.calls) == 2


def test_adapter_rejects_bad_args(adapter) -> None:
    from streamforest.eval.adapter import StreamForestLMM

    with pytest.raises(ValueError, match="unknown model_args"):
        StreamForestLMM(pretrained="x", frames=3)
    with pytest.raises(ValueError, match="batch_size must be 1"):
        StreamForestLMM(pretrained="x", batch_size=4)
    with pytest.raises(ValueError, match="conv_template"):
        StreamForestLMM(pretrained="x", conv_template="vicuna")


def test_entry_point_manifest() -> None:
    pytest.importorskip("lmms_eval")
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="lmms_eval.models") if e.name == "streamforest"]
    (manifest,) = ep.load()()
    assert manifest.model_id == "streamforest"
    assert manifest.simple_class_path == "streamforest.eval.adapter.StreamForestLMM"
    from lmms_eval.models import get_model

    assert get_model("streamforest").__name__ == "StreamForestLMM"


def test_adapter_samples_whole_clips_for_tome_clip_checkpoints(adapter, tmp_path: Path) -> None:
    """A ToMe-clip checkpoint (L = 8, StreamForest-Pretrain) gets a multiple of 8 frames (reference bug 21 fixed);
    the memory model keeps the reference L = 1 sampling (floor(3 s) + 1 = 4 frames)."""
    from types import SimpleNamespace

    lmm, model, _ = adapter
    video = tmp_path / "v.mp4"
    write_video(video, seconds=3)
    lmm.task_dict = {"t": {"train": [{}]}}
    request = _request("generate_until", ("Q?", {}, lambda doc: [str(video)], 0, "t", "train"))
    model.multimodal = SimpleNamespace(uses_memory=True, local_num_frames=1)
    lmm.generate_until([request])
    model.multimodal = SimpleNamespace(uses_memory=False, local_num_frames=8)
    lmm._cache = None
    lmm.generate_until([request])
    assert [shape[0] for shape, _ in model.encoded] == [4, 8]
