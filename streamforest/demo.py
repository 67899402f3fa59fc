"""``make demo``: a tiny StreamForest trained from scratch on synthetic driving streams, on CPU, offline.

``python -m streamforest.demo [--out DIR] [--quick] [--force]`` runs, through the project's real entry points:

1. ``data``       synthetic driving videos + QA (:func:`streamforest.synthetic.generate_dataset`);
2. ``init``       a BPE tokenizer trained on the synthetic training text and a random tiny StreamForest
                  checkpoint in the released format (this is also the *untrained* baseline);
3. ``stage2``     ``python -m streamforest.train configs/train/demo/stage2_captions.yaml`` (ViT + connector +
                  LLM on image and video captions);
4. ``stage4``     ``python -m streamforest.train configs/train/demo/stage4_online.yaml`` (memory projector,
                  connector + LLM on online multiple-choice QA at time q over the clip [0, q]);
5. ``eval_untrained`` / ``eval_trained``  ``python -m lmms_eval --model streamforest ... --tasks odvbench`` on the
                  held-out synthetic ODV-Bench split (same videos, questions and scoring for both models);
6. ``stream``     ``python -m streamforest stream VIDEO --model CKPT --ask "T: question" ...`` on one held-out video;
   ``forced_choice`` (option scores of both models), ``watch`` (standing questions, :mod:`streamforest.demo_watch`);
7. a summary: accuracy per sub-task (trained vs untrained vs chance), sample answers with their times, paths
   (``summary.json`` in the output folder).

Each step writes a stamp (``stamps/<step>.json``) keyed by everything it depends on; a re-run skips
finished steps (``--force`` redoes all). The demo runs from a source checkout: ``--source DIR`` (default
``$STREAMFOREST_SOURCE``, else the current directory) holds ``configs/train/demo/`` and ``lmms_eval/tasks/``.
Output: ``demo_runs/`` in the source checkout, or ``--out`` / ``$STREAMFOREST_DEMO_DIR``. ``--quick`` is the
smoke-test size (a few steps; accuracy is meaningless).
Recipe, sizes and measured numbers: ``docs/demo.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import torch
import yaml
from tqdm.auto import tqdm

from streamforest.api import StreamForest
from streamforest.console import say
from streamforest.demo_report import print_summary, summarize
from streamforest.demo_watch import step_watch
from streamforest.eval.scoring import accuracy_reference, accuracy_strict, breakdown
from streamforest.model.llava_qwen import LlavaQwenForCausalLM
from streamforest.model.loader import save_released
from streamforest.synthetic import DatasetPaths, format_mc_prompt, generate_dataset
from streamforest.synthetic.dataset import source_fingerprint
from streamforest.tiny import SPECIAL_TOKENS, make_tiny_tokenizer, tiny_config

logger = logging.getLogger(__name__)

OUT_ENV = "STREAMFOREST_DEMO_DIR"
SOURCE_ENV = "STREAMFOREST_SOURCE"
DEMO_CONFIGS = Path("configs") / "train" / "demo"
"""The demo's stage configs, relative to the source checkout."""
TASKS_DIR = Path("lmms_eval") / "tasks"
"""The lmms-eval task overlay (``--include_path``), relative to the source checkout."""
ODV_TASK = "odvbench"
METRIC = "odvbench_accuracy"
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    "CUDA_VISIBLE_DEVICES": "",
}

LLM_INIT_RANGE = 0.125
"""Weight-init std of the tiny model. Qwen2's 0.02 is ≈ 1/√3584 (its 7B width); at width 64 it leaves the
attention logits ≈ 0 and training sits on a long plateau (measured: no learning in 8,000 steps). 1/√64."""
DEMO_LLM_LAYERS = 4
"""Qwen2 layers of the demo model (the tiny checkpoints have 2; with 2 it did not fit the object kind, docs/demo.md)."""


@dataclass(frozen=True)
class DemoSize:
    """How big the demo run is (``full`` = ``make demo``, ``quick`` = the smoke test)."""

    name: str
    n_train_videos: int
    n_eval_videos: int
    duration_range: tuple[int, int]
    stage2_steps: int
    stage4_steps: int
    max_frames: int = 64
    eval_limit: int | None = None
    """``--limit`` per ODV-Bench config for lmms-eval (None: every question)."""


SIZES: dict[str, DemoSize] = {
    "full": DemoSize("full", 120, 40, (10, 20), stage2_steps=4000, stage4_steps=20000),
    "quick": DemoSize("quick", 8, 12, (12, 16), stage2_steps=6, stage4_steps=6, eval_limit=4),
}


@dataclass
class Ctx:
    """Where things go and what is forced."""

    out: Path
    size: DemoSize
    force: bool = False
    source: Path = Path(".")
    """The source checkout (``configs/train/demo/``, ``lmms_eval/tasks/``); child processes run in it."""

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def init_ckpt(self) -> Path:
        return self.out / "init"

    @property
    def trained_ckpt(self) -> Path:
        return self.out / "runs" / "stage4"

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    def config(self, name: str) -> Path:
        return self.source / DEMO_CONFIGS / name


class DemoError(RuntimeError):
    """A demo step failed; the message names the step, the log file and what to do."""


# ----------------------------------------------------------------------------------------------- console
_PROGRESS = re.compile(r"\d+%\|.*\||\d+/\d+ \[")
_KEEP = re.compile(r"'loss': |'train_loss'|Error|error:|Traceback|FAILED")


def _pump(stream: IO[bytes], log: IO[str], show: Callable[[str], bool]) -> None:
    """Copy a child's output to ``log``; echo progress-bar updates (``\\r``) and selected lines to stderr."""
    buf = b""
    shown_bar = False
    while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
        buf += chunk
        parts = re.split(rb"(\r|\n)", buf)
        buf = parts.pop()  # incomplete tail
        for text, sep in zip(parts[0::2], parts[1::2]):
            line = text.decode("utf-8", "replace")
            if sep == b"\n" or not _PROGRESS.search(line):
                log.write(line + "\n")
            if _PROGRESS.search(line):
                say("\r" + line.strip()[:120].ljust(120), err=True, end="")
                shown_bar = True
            elif line.strip() and show(line):
                say(("\n" if shown_bar else "") + "  " + line.strip()[:200], err=True)
                shown_bar = False
        log.flush()
    if buf:
        log.write(buf.decode("utf-8", "replace") + "\n")
    if shown_bar:
        say(err=True)


def run_logged(cmd: Sequence[str], log_path: Path, *, env: dict[str, str], cwd: Path, step: str) -> None:
    """Run ``cmd``; full output to ``log_path``, progress bars and key lines to the console; raise on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"  $ {' '.join(_short(c, cwd) for c in cmd)}")
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, log, lambda s: bool(_KEEP.search(s))))
        pump.start()
        rc = proc.wait()
        pump.join()
    if rc != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise DemoError(f"step {step!r} failed (exit {rc}); full log: {log_path}\n" + "\n".join(tail))


def _short(arg: str, cwd: Path) -> str:
    arg = arg.replace(str(cwd) + os.sep, "")
    return arg if len(arg) < 90 and "\n" not in arg else repr(arg[:60] + "…")


def child_env(ctx: Ctx) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["SF_DEMO"] = str(ctx.out)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # see main()
    return env


# ----------------------------------------------------------------------------------------------- stamps
def file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()[:16]


def stamp_path(ctx: Ctx, step: str) -> Path:
    return ctx.out / "stamps" / f"{step}.json"


def run_step(ctx: Ctx, step: str, key: dict[str, Any], outputs: Sequence[Path], fn: Callable[[], dict]) -> dict:
    """Run ``fn`` unless a stamp with the same ``key`` exists and every output is present."""
    path = stamp_path(ctx, step)
    if not ctx.force and path.is_file() and all(p.exists() for p in outputs):
        stamp = json.loads(path.read_text(encoding="utf-8"))
        if stamp.get("key") == key:
            say(f"[{step}] done earlier ({stamp['seconds']:.0f} s) — skipped (use --force to redo)")
            return stamp["result"]
    say(f"[{step}] running …")
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "seconds": seconds, "result": result}, indent=1, default=str), encoding="utf-8")
    say(f"[{step}] finished in {seconds:.0f} s")
    return result


# ----------------------------------------------------------------------------------------------- steps
def step_data(ctx: Ctx) -> dict:
    """Synthetic dataset + the demo's stage-2 data list (image captions + video captions)."""
    s = ctx.size
    paths = generate_dataset(
        ctx.data, seed=0, n_train_videos=s.n_train_videos, n_eval_videos=s.n_eval_videos,
        duration_range=s.duration_range, progress=True,
    )  # fmt: skip
    write_stage2_list(paths)
    return {"root": str(paths.root), "manifest": str(paths.manifest), "eval_root": str(paths.eval_root)}


def write_stage2_list(paths: Any) -> Path:
    """``anno/data_list/demo_stage2.yaml``: the synthetic stage-1 image captions and stage-2 video captions."""
    entries = [
        {"json_path": str(paths.anno["stage1"]), "data_root": str(paths.images), "sampling_strategy": "all"},
        {"json_path": str(paths.anno["stage2"]), "data_root": str(paths.videos_train), "sampling_strategy": "all",
         "video_read_type": "decord"},
    ]  # fmt: skip
    target = paths.data_lists["stage1"].parent / "demo_stage2.yaml"
    header = "# make demo, step stage2: image and video captions (written by streamforest.demo)\n"
    target.write_text(header + yaml.safe_dump({"datasets": entries}, sort_keys=False), encoding="utf-8")
    return target


def training_texts(anno_files: Sequence[Path]) -> list[str]:
    """Every conversation turn of the training annotations (``<image>`` removed) — the tokenizer corpus."""
    texts: list[str] = []
    for f in anno_files:
        for record in json.loads(f.read_text(encoding="utf-8")):
            texts += [t["value"].replace("<image>", "") for t in record["conversations"]]
    return texts


def build_init_checkpoint(out: Path, texts: Sequence[str], seed: int = 0) -> Path:
    """Tokenizer trained on ``texts`` + a random tiny StreamForest (memory projector) in the released format.

    Same sizes as :func:`streamforest.tiny.make_tiny_checkpoint` (docs/ARCHITECTURE.md) but
    :data:`DEMO_LLM_LAYERS` Qwen2 layers, fp32, with the weight-init std :data:`LLM_INIT_RANGE`.
    """
    tokenizer = make_tiny_tokenizer(out, texts=texts)
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    config = tiny_config(
        "tome729_fstw_pemf",
        vocab_size=64 * ((len(tokenizer) + 63) // 64) + 64,
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        initializer_range=LLM_INIT_RANGE,
        **{"num_hidden_layers": DEMO_LLM_LAYERS, "max_window_layers": DEMO_LLM_LAYERS},
    )
    torch.manual_seed(seed)
    model = LlavaQwenForCausalLM(config)
    save_released(model, out, model_type="qwen2")
    return out


def step_init(ctx: Ctx) -> dict:
    paths = DatasetPaths.under(ctx.data)
    texts = training_texts([paths.anno[k] for k in ("stage1", "stage2", "stage3", "stage4")])
    build_init_checkpoint(ctx.init_ckpt, texts)
    return {"checkpoint": str(ctx.init_ckpt), "tokenizer_texts": len(texts)}


def step_train(ctx: Ctx, config: str, steps: int, init: Path, output: Path) -> dict:
    """``python -m streamforest.train configs/train/demo/<config> ...`` (the real stage entry point)."""
    cmd = [
        sys.executable, "-m", "streamforest.train", str(ctx.config(config)),
        f"model.model_name_or_path={init}", f"training.output_dir={output}", f"training.max_steps={steps}",
    ]  # fmt: skip
    run_logged(cmd, ctx.log(output.name), env=child_env(ctx), cwd=ctx.source, step=config)
    if not (output / "config.json").is_file():
        raise DemoError(f"training {config} finished but wrote no checkpoint to {output} (log: {ctx.log(output.name)})")
    return {"checkpoint": str(output), "metrics": _train_metrics(output)}


def _train_metrics(output: Path) -> dict:
    state = output / "trainer_state.json"
    if not state.is_file():
        return {}
    logs = json.loads(state.read_text(encoding="utf-8")).get("log_history", [])
    losses = [e["loss"] for e in logs if "loss" in e]
    final = next((e for e in reversed(logs) if "train_loss" in e), {})
    return {"first_logged_loss": losses[0] if losses else None, "last_logged_loss": losses[-1] if losses else None,
            "train_loss": final.get("train_loss"), "train_runtime_s": final.get("train_runtime")}  # fmt: skip


def step_eval(ctx: Ctx, name: str, ckpt: Path) -> dict:
    """``python -m lmms_eval --model streamforest ... --tasks odvbench`` on the synthetic split."""
    paths = DatasetPaths.under(ctx.data)
    out = ctx.out / "eval" / name
    model_args = f"pretrained={ckpt},conv_template=qwen_2,max_frames_num={ctx.size.max_frames},time_msg=short_online_v2"
    cmd = [
        sys.executable, "-m", "lmms_eval", "--model", "streamforest", "--model_args", model_args,
        "--tasks", ODV_TASK, "--batch_size", "1", "--log_samples", "--output_path", str(out),
        "--include_path", str(ctx.source / TASKS_DIR),
    ]  # fmt: skip
    if ctx.size.eval_limit:
        cmd += ["--limit", str(ctx.size.eval_limit)]
    env = child_env(ctx)
    env.update(SF_ANNO_ODVBENCH=str(paths.eval_root), SF_VIDEOS_ODVBENCH=str(paths.videos_eval))
    if out.exists():
        for old in out.rglob("*"):
            if old.is_file() and (old.name.endswith("_results.json") or "_samples_" in old.name):
                old.unlink()
    run_logged(cmd, ctx.log(f"eval_{name}"), env=env, cwd=ctx.out, step=f"eval_{name}")
    results = sorted(out.rglob("*_results.json"))
    if len(results) != 1:  # lmms-eval exits 0 even when a task fails (docs/ARCHITECTURE.md)
        raise DemoError(f"lmms-eval wrote {len(results)} results files under {out}; see {ctx.log(f'eval_{name}')}")
    samples = sorted(str(p) for p in out.rglob("*_samples_*.jsonl"))
    return {"results": str(results[0]), "samples": samples, "scores": score_samples(samples)}


def score_samples(sample_files: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per sub-task and overall: n, empty, accuracy (reference: empties excluded) and strict (empties wrong),
    from the lmms-eval sample records (:mod:`streamforest.eval.scoring`)."""
    records = [json.loads(line)[METRIC] for f in sample_files
               for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]  # fmt: skip
    table = breakdown(records, ["subtask"], scale=1.0).get("subtask", {})
    out = {sub: {"n": int(row["n"]), "empty": int(row["empty"]), "accuracy": row["reference"], "strict": row["strict"]}
           for sub, row in table.items()}  # fmt: skip
    out["overall"] = {"n": len(records), "empty": sum(bool(r["empty"]) for r in records),
                      "accuracy": accuracy_reference(records, 1.0), "strict": accuracy_strict(records, 1.0)}  # fmt: skip
    return out


def stream_questions(ctx: Ctx) -> tuple[Path, list[dict]]:
    """The held-out video with the most questions, and its questions (time, prompt, answer letter)."""
    paths = DatasetPaths.under(ctx.data)
    docs = [d for f in paths.eval_configs.values() for d in json.loads(f.read_text(encoding="utf-8"))]
    by_video: dict[str, list[dict]] = {}
    for d in docs:
        by_video.setdefault(d["video"], []).append(d)
    video = min(by_video, key=lambda v: (-len(by_video[v]), v))
    qs = [{"time": float(d["end"]), "question": format_mc_prompt(d["question"], d["candidates"]),
           "short": d["question"], "answer": d["answer"], "subtask": d["subtask"],
           "letter": chr(ord("A") + d["candidates"].index(d["answer"]))}
          for d in sorted(by_video[video], key=lambda d: d["end"])]  # fmt: skip
    return paths.videos_eval / video, qs


def step_stream(ctx: Ctx) -> dict:
    """``python -m streamforest stream VIDEO --model CKPT --ask "T: question" ...`` (the streaming CLI)."""
    video, qs = stream_questions(ctx)
    out_json = ctx.out / "stream" / "answers.json"
    cmd = [sys.executable, "-m", "streamforest", "stream", str(video), "--model", str(ctx.trained_ckpt),
           "--max-new-tokens", "16", "--json-out", str(out_json)]  # fmt: skip
    for q in qs:
        cmd += ["--ask", f"{q['time']:g}: {q['question']}"]
    run_logged(cmd, ctx.log("stream"), env=child_env(ctx), cwd=ctx.out, step="stream")
    answers = json.loads(out_json.read_text(encoding="utf-8"))["answers"]
    rows = []
    for q, a in zip(qs, answers):
        rows.append({"time": q["time"], "question": q["short"], "subtask": q["subtask"], "expected": q["letter"],
                     "answer_text": q["answer"], "model": str(a.get("text", "")).strip(),
                     "frames": a.get("num_frames"), "latency_ms": round(1e3 * float(a.get("latency_s", 0.0)), 1)})  # fmt: skip
    return {"video": str(video), "answers_json": str(out_json), "answers": rows}


def step_forced_choice(ctx: Ctx) -> dict:
    """Forced-choice accuracy of both models (``StreamForest.option_scores``: the highest-scoring option letter).

    lmms-eval scores the generated text, so a model that never writes a letter (the untrained one) scores 0;
    the forced choice shows where each model stands against chance whatever it writes.
    """
    paths = DatasetPaths.under(ctx.data)
    limit = ctx.size.eval_limit or None  # per config, like lmms-eval's --limit
    docs = [d for f in paths.eval_configs.values() for d in json.loads(f.read_text(encoding="utf-8"))[:limit]]
    out: dict[str, dict[str, float]] = {}
    for name, ckpt in (("untrained", ctx.init_ckpt), ("trained", ctx.trained_ckpt)):
        sf = StreamForest.from_pretrained(ckpt, dtype="float32", max_frames=ctx.size.max_frames)
        hits: dict[str, list[bool]] = {}
        for d in tqdm(docs, desc=f"forced choice ({name})", leave=False):
            letters = "".join(chr(ord("A") + i) for i in range(len(d["candidates"])))
            scores = sf.option_scores(paths.videos_eval / d["video"], format_mc_prompt(d["question"], d["candidates"]),
                                      letters=letters, at=float(d["end"]), start=float(d.get("start", 0.0)))  # fmt: skip
            hit = max(scores, key=scores.get) == letters[d["candidates"].index(d["answer"])]
            hits.setdefault(d["subtask"], []).append(hit)
            hits.setdefault("overall", []).append(hit)
        out[name] = {sub: sum(h) / len(h) for sub, h in hits.items()}
    return out


# ----------------------------------------------------------------------------------------------- driver
def _key(ctx: Ctx, *parts: Any) -> dict:
    """A stamp key as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps({"size": asdict(ctx.size), "parts": [str(p) for p in parts]}))


def run_demo(ctx: Ctx) -> dict:
    """Run (or resume) every step and return the summary."""
    t0 = time.perf_counter()
    res: dict[str, Any] = {"_seconds": {}}
    s = ctx.size
    train_cfgs = (ctx.config("stage2_captions.yaml"), ctx.config("stage4_online.yaml"))
    stage2_out, stage4_out = ctx.out / "runs" / "stage2", ctx.trained_ckpt
    plan: list[tuple[str, dict, list[Path], Callable[[], dict]]] = [
        ("data", _key(ctx, source_fingerprint()), [ctx.data / "manifest.json"], lambda: step_data(ctx)),
        ("init", _key(ctx, LLM_INIT_RANGE, DEMO_LLM_LAYERS), [ctx.init_ckpt / "config.json"], lambda: step_init(ctx)),
        ("stage2", _key(ctx, file_digest(*train_cfgs[:1])), [stage2_out / "config.json"],
         lambda: step_train(ctx, train_cfgs[0].name, s.stage2_steps, ctx.init_ckpt, stage2_out)),
        ("stage4", _key(ctx, file_digest(*train_cfgs)), [stage4_out / "config.json"],
         lambda: step_train(ctx, train_cfgs[1].name, s.stage4_steps, stage2_out, stage4_out)),
        ("eval_untrained", _key(ctx), [ctx.out / "eval" / "untrained"], lambda: step_eval(ctx, "untrained", ctx.init_ckpt)),
        ("eval_trained", _key(ctx, file_digest(*train_cfgs)), [ctx.out / "eval" / "trained"],
         lambda: step_eval(ctx, "trained", ctx.trained_ckpt)),
        ("stream", _key(ctx, file_digest(*train_cfgs)), [ctx.out / "stream" / "answers.json"], lambda: step_stream(ctx)),
        ("forced_choice", _key(ctx, file_digest(*train_cfgs)), [], lambda: step_forced_choice(ctx)),
        ("watch", _key(ctx, file_digest(*train_cfgs)), [ctx.out / "watch" / "watch.json"], lambda: step_watch(ctx)),
    ]  # fmt: skip
    redo = False
    for name, key, outputs, fn in plan:
        if redo:  # a step that ran again invalidates everything after it
            stamp_path(ctx, name).unlink(missing_ok=True)
        before = stamp_path(ctx, name).stat().st_mtime if stamp_path(ctx, name).is_file() else None
        res[name] = run_step(ctx, name, key, outputs, fn)
        stamp = json.loads(stamp_path(ctx, name).read_text(encoding="utf-8"))
        res["_seconds"][name] = stamp["seconds"]
        redo = redo or before != stamp_path(ctx, name).stat().st_mtime
    summary = summarize(ctx, res, time.perf_counter() - t0)
    (ctx.out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def source_dir(arg: str | None) -> Path:
    """The source checkout: ``--source``, else ``$STREAMFOREST_SOURCE``, else the current directory."""
    source = Path(arg or os.environ.get(SOURCE_ENV) or ".").expanduser().resolve()
    missing = [p for p in (DEMO_CONFIGS, TASKS_DIR) if not (source / p).is_dir()]
    if missing:
        raise DemoError(
            f"{source} is not a StreamForest source checkout (no {', '.join(map(str, missing))}); run the demo from "
            f"the repository root (make demo), or pass --source DIR / set ${SOURCE_ENV}"
        )
    return source


def default_out(source: Path) -> Path:
    return Path(os.environ.get(OUT_ENV) or source / "demo_runs")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamforest.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"output folder (default: ${OUT_ENV} or demo_runs/ in the source)")
    parser.add_argument("--source", default=None, help=f"source checkout (default: ${SOURCE_ENV} or the current directory)")
    parser.add_argument("--quick", action="store_true", help="smoke-test size: tiny data, a few training steps")
    parser.add_argument("--force", action="store_true", help="redo every step even if it finished before")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    # One thread per process unless asked otherwise: the tiny model gains nothing from more, and on a loaded 2-core
    # machine OpenMP's spinning threads thrash (stage 2 measured 0.3 it/s with 2 threads vs 21 it/s with 1).
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    size = SIZES["quick" if args.quick else "full"]
    try:
        source = source_dir(args.source)
        out = Path(args.out).expanduser().resolve() if args.out else default_out(source).resolve()
        # a quick run never reuses (or clobbers) a full run's results in the same folder
        ctx = Ctx(out=out / "quick" if args.quick and not args.out else out, size=size, force=args.force, source=source)
        ctx.out.mkdir(parents=True, exist_ok=True)
        say(f"StreamForest demo ({size.name}): output in {ctx.out}")
        summary = run_demo(ctx)
    except DemoError as e:
        say(f"demo failed: {e}")
        return 1
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
