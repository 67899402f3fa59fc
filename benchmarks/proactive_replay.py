"""Benchmarks of issue 14 §2–§3: one streaming pass vs. the reference's per-poll / per-question clips.

``proactive``: StreamingBench's proactive protocol (:mod:`streamforest.eval.proactive`) run both ways on synthetic
videos, every poll of the window probed (no stop at the first "yes"): how often the session pass and the clip per
poll reach the same decision, the mean |Δp|, and the wall time of both on a 2-minute synthetic video.

``replay``: the ODV-Bench synthetic split through ``python -m lmms_eval`` with and without ``online_replay=true``:
accuracy both ways, the answers that changed, and the wall-time ratio.

    python benchmarks/proactive_replay.py proactive --data DIR [--model CKPT] --out benchmarks/results
    python benchmarks/proactive_replay.py replay --data DIR [--model CKPT] --out benchmarks/results

``DIR`` is made by ``python -m streamforest.synthetic DIR --quick`` (created if missing); without ``--model`` an
*untrained* tiny memory checkpoint is made (``streamforest.tiny``), whose probabilities sit near one value, so
decisions at 0.5 agree trivially; the report therefore also gives the agreement at the median probability.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from streamforest.console import say

REPO = Path(__file__).resolve().parents[1]


def _model(path: str | None) -> tuple[Path, str]:
    if path:
        return Path(path), "given"
    from streamforest.tiny import make_tiny_checkpoint

    out = Path(tempfile.mkdtemp(prefix="sf_tiny_")) / "tiny"
    return make_tiny_checkpoint(out, projector_type="tome729_fstw_pemf"), "untrained tiny (streamforest.tiny)"


def _synthetic(data: Path, *extra: str) -> None:
    if not (data / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "streamforest.synthetic", str(data), *extra], check=True)


def _duration(path: Path) -> float:
    from streamforest.video import load_video

    return float(load_video(path, num_frames=1, sample="middle", min_num_frames=1).duration)


def _runs(loaded: Any, video: Path, doc: dict[str, Any]) -> tuple[Any, Any, float, float]:
    from streamforest.eval import proactive
    from streamforest.streaming import StreamingSession

    def make(start: float) -> StreamingSession:
        return StreamingSession(loaded.model, loaded.tokenizer, loaded.image_processor, start_time=start)

    t0 = time.perf_counter()
    clips = proactive.run_clips(loaded.model, loaded.tokenizer, loaded.image_processor, video, doc, stop_at_yes=False)
    t1 = time.perf_counter()
    one = proactive.run_session(make, video, doc, stop_at_yes=False)
    return clips, one, t1 - t0, time.perf_counter() - t1


def run_proactive(args: argparse.Namespace) -> dict[str, Any]:
    from streamforest.model.loader import load_pretrained

    data, (ckpt, kind) = Path(args.data), _model(args.model)
    _synthetic(data, "--quick")
    loaded = load_pretrained(ckpt, dtype="float32", device="cpu")
    pairs: list[tuple[float | None, float | None, bool]] = []
    videos = sorted((data / "videos" / "eval").glob("*.mp4"))[: args.videos]
    for video in videos:
        end = _duration(video)
        for start in (0.0, 3.0):
            doc = {"question": "When a red car appears, output \"red car\".", "ground_truth_output": "red car",
                   "start": start, "ground_truth_time": end - 5.0}  # fmt: skip
            clips, one, _, _ = _runs(loaded, video, doc)
            pairs += [(a.probability, b.probability, a.frames == b.frames) for a, b in zip(clips.polls, one.polls)]
    ps = [a for a, _, _ in pairs if a is not None]
    median = statistics.median(ps)
    def agree(th: float) -> float:
        return sum((a is not None and a >= th) == (b is not None and b >= th) for a, b, _ in pairs) / len(pairs)
    long_dir = Path(args.data + "_2min")
    _synthetic(long_dir, "--train-videos", "1", "--eval-videos", "1", "--min-seconds", "120", "--max-seconds", "120")
    (long_video,) = sorted((long_dir / "videos" / "eval").glob("*.mp4"))[:1]
    doc = {"question": "When a red car appears, output \"red car\".", "ground_truth_output": "red car",
           "start": 0.0, "ground_truth_time": _duration(long_video) - 4.0}  # fmt: skip
    clips, one, clip_s, one_s = _runs(loaded, long_video, doc)
    return {
        "model": kind, "videos": len(videos), "polls": len(pairs),
        "same_frame_count_fraction": sum(same for *_, same in pairs) / len(pairs),
        "agreement_at_0.5": agree(0.5), "median_probability": median, "agreement_at_median": agree(median),
        "mean_abs_dp": statistics.fmean(abs(a - b) for a, b, _ in pairs if a is not None and b is not None),
        "two_minute": {"seconds": _duration(long_video), "polls": len(one.polls),
                       "frames_encoded_clips": sum(p.frames for p in clips.polls),
                       "frames_encoded_session": one.polls[-1].frames, "clips_s": clip_s, "session_s": one_s,
                       "speedup": clip_s / one_s},
    }  # fmt: skip


def _lmms_eval(ckpt: Path, data: Path, out: Path, replay: bool) -> tuple[dict[str, Any], float]:
    env = {**os.environ, "SF_ANNO_ODVBENCH": str(data / "eval" / "ODVBench"),
           "SF_VIDEOS_ODVBENCH": str(data / "videos" / "eval"), "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    margs = f"pretrained={ckpt},conv_template=qwen_2,max_frames_num=2048,time_msg=short_online_v2,dtype=float32"
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "streamforest",
           "--model_args", margs + (",online_replay=true" if replay else ""), "--tasks", "odvbench",
           "--batch_size", "1", "--log_samples", "--output_path", str(out),
           "--include_path", str(REPO / "lmms_eval" / "tasks")]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (results,) = list(out.rglob("*_results.json"))
    answers = {}
    for f in out.rglob("*_samples_*.jsonl"):
        for line in f.open():
            s = json.loads(line)
            resp = s["filtered_resps"] if isinstance(s["filtered_resps"], str) else s["filtered_resps"][0]
            answers[(f.name.split("_samples_")[1], s["doc_id"])] = resp
    return {"results": json.loads(results.read_text())["results"], "answers": answers}, wall


ODV_CONFIGS = ("targeting_single_static_objects_v4", "targeting_single_dynamic_objects_v4",
               "targeting_multi_object_interaction_scenarios_or_events_v4")


def _adapter_seconds(ckpt: Path, data: Path) -> dict[str, Any]:
    """Model-side time: the adapter's ``generate_until`` over every ODV-Bench request, in process, both ways
    (the CLI wall time also holds lmms-eval's start-up and task indexing)."""
    from lmms_eval.api.instance import Instance

    from streamforest.eval import media
    from streamforest.eval.adapter import StreamForestLMM
    from streamforest.eval.mcq_task import MultipleChoiceTask

    os.environ.update(SF_ANNO_ODVBENCH=str(data / "eval" / "ODVBench"), SF_VIDEOS_ODVBENCH=str(data / "videos" / "eval"))
    task = MultipleChoiceTask(bench="odvbench", metric="odvbench_accuracy")
    docs = [{**d, "sf_config": c} for c in ODV_CONFIGS for d in media.load_docs("odvbench", c, task.required)]
    gen = {"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    requests = [Instance(request_type="generate_until", arguments=(task.doc_to_text(d), gen, task.doc_to_visual, i, "t",
                         "test"), idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1}) for i, d in enumerate(docs)]  # fmt: skip
    out: dict[str, Any] = {"requests": len(requests), "videos": len({d["video"] for d in docs})}
    answers = {}
    for replay in (False, True):
        lmm = StreamForestLMM(pretrained=str(ckpt), max_frames_num=2048, time_msg="short_online_v2", dtype="float32",
                              device="cpu", online_replay=str(replay))  # fmt: skip
        lmm.task_dict = {"t": {"test": docs}}
        t0 = time.perf_counter()
        answers[replay] = lmm.generate_until(requests)
        out["online_replay_s" if replay else "per_question_s"] = time.perf_counter() - t0
    out["ratio"] = out["per_question_s"] / out["online_replay_s"]
    out["same_answers"] = sum(a == b for a, b in zip(answers[False], answers[True]))
    return out


def run_replay(args: argparse.Namespace) -> dict[str, Any]:
    data, (ckpt, kind) = Path(args.data), _model(args.model)
    _synthetic(data, "--quick")
    work = Path(tempfile.mkdtemp(prefix="sf_replay_"))
    plain, plain_s = _lmms_eval(ckpt, data, work / "plain", False)
    replay, replay_s = _lmms_eval(ckpt, data, work / "replay", True)
    key = "odvbench_accuracy,none"
    acc = {name: {t: r[key] for t, r in run["results"].items() if key in r} for name, run in
           (("per_question", plain), ("online_replay", replay))}  # fmt: skip
    same = sum(plain["answers"][k] == replay["answers"].get(k) for k in plain["answers"])
    return {"model": kind, "questions": len(plain["answers"]), "same_answers": same, "accuracy": acc,
            "cli_per_question_s": plain_s, "cli_online_replay_s": replay_s, "cli_wall_ratio": plain_s / replay_s,
            "adapter": _adapter_seconds(ckpt, data)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("proactive", "replay"))
    p.add_argument("--data", required=True, help="synthetic dataset folder (made with --quick if missing)")
    p.add_argument("--model", default=None, help="checkpoint (default: an untrained tiny memory checkpoint)")
    p.add_argument("--videos", type=int, default=6, help="proactive: synthetic videos for the agreement")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)
    report = run_proactive(args) if args.what == "proactive" else run_replay(args)
    out = Path(args.out) / f"{args.what}_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    say(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
