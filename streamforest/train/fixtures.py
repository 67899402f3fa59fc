"""Tiny, fully local training fixtures for the five stages (tests, CI, and trying the pipeline on CPU).

``python -m streamforest.train.fixtures OUT_DIR`` (or :func:`make_training_fixtures`) writes:

* ``llm/``      a tiny plain Qwen2 LLM (random weights) + a tokenizer trained locally (``streamforest.tiny``);
* ``siglip/``   a tiny SigLIP vision model (84², patch 7 → 144 patches, width 64, 3 layers, with its head);
* ``media/``    synthetic PNG images and MP4 videos (PyAV), plus ``broken.mp4`` (not a video);
* ``anno/``     annotation JSONs in the reference record format and ``data_list/stage{1..5}.yaml``.

The tiny stage configs under ``configs/train/tiny/`` refer to these files through ``${SF_TINY}``::

    python -m streamforest.train.fixtures /tmp/sf_tiny
    SF_TINY=/tmp/sf_tiny python -m streamforest.train configs/train/tiny/stage1.yaml

The answers are short and repeated, so a few steps of training visibly reduce the loss.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamforest.tiny import make_tiny_tokenizer

logger = logging.getLogger(__name__)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
VIDEO_SIZE = (48, 64)  # H, W (even, for the encoder)
VIDEO_FPS = 4
VIDEO_SECONDS = 6
TRAIN_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": 84,
    "patch_size": 7,
}
"""Tiny SigLIP for training: grid 12 → P = 144 patches, so that tome64 (64/frame) and tome16 really merge
(the 56²/14 tiny tower of ``streamforest.tiny`` has only 16 patches, fewer than tome64 keeps)."""
TRAIN_MEMORY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_heads": 4,
    "now_tokens": 144,
    "short_tokens": 32,
    "long_tokens_per_frame": 16,
    "short_frames": 6,
    "event_window": 4,
    "long_token_quota": 128,
}
"""Memory hyper-parameters for :data:`TRAIN_VISION_CONFIG` (used by ``configs/train/tiny/stage4.yaml``)."""


@dataclass
class TrainingFixtures:
    """Paths of the generated fixture tree."""

    root: Path
    llm: Path
    siglip: Path
    data_lists: dict[int, Path]


# ----------------------------------------------------------------------------------------------- media
def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 56)) -> None:
    """A solid-colour PNG with a white square (size = H, W; deliberately not square)."""
    from PIL import Image

    img = np.zeros((*size, 3), dtype=np.uint8)
    img[:] = colour
    img[5:15, 5:15] = 255
    Image.fromarray(img).save(path)


def write_video(path: Path, colour: tuple[int, int, int], *, seconds: int = VIDEO_SECONDS, fps: int = VIDEO_FPS) -> None:
    """An MP4 whose frames are ``colour`` with a white bar moving right (one position per second)."""
    import av

    h, w = VIDEO_SIZE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            frame = np.zeros((h, w, 3), dtype=np.uint8)
            frame[:] = colour
            x = (i // fps * 8) % (w - 8)
            frame[:, x : x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ----------------------------------------------------------------------------------------------- models
def write_tiny_llm(out: Path, texts: list[str], seed: int = 0) -> Any:
    """Tiny Qwen2 causal LM (random, seeded) + locally trained tokenizer, saved as an HF model directory."""
    from transformers import Qwen2Config, Qwen2ForCausalLM


    tokenizer = make_tiny_tokenizer(out, texts=texts)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")}
    config = Qwen2Config(
        vocab_size=64 * ((len(tokenizer) + 63) // 64) + 64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(str(out))
    return tokenizer


def write_tiny_siglip(out: Path, seed: int = 0) -> None:
    """Tiny SigLIP vision model (:data:`TRAIN_VISION_CONFIG`, full depth, with head) saved as an HF model directory."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed + 1)
    SiglipVisionModel(SiglipVisionConfig(**TRAIN_VISION_CONFIG)).save_pretrained(str(out))


# ----------------------------------------------------------------------------------------------- records
def _turns(question: str, answer: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def stage_records(names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Annotation files (name → records) for all stages; media paths are relative to ``media/``."""
    img = [{"id": f"img{i}", "image": f"images/{c}.png", "conversations": _turns("<image>\nDescribe the image.", f"The image is {c}.")}
           for i, c in enumerate(names)]
    vid = [{"id": f"vid{i}", "video": f"videos/{c}.mp4", "conversations": _turns("<image>\nWhat colour is the video?", f"The video is {c}.")}
           for i, c in enumerate(names)]
    multi = [{"id": "multi0", "image": [f"images/{names[0]}.png", f"images/{names[1]}.png"],
              "conversations": _turns("<image>\nDescribe the images.", f"{names[0]} then {names[1]}.")}]
    text = [{"id": f"txt{i}", "conversations": _turns(f"What is {i} plus {i}?", f"It is {2 * i}.")} for i in range(1, 3)]
    online = [{"id": f"on{i}", "video": f"videos/{c}.mp4", "start": 0, "end": 2 + i,
               "conversations": _turns("<image>\nWhat colour is the video now?", f"It is {c} now.")}
              for i, c in enumerate(names)]
    drive = [{"id": f"drv{i}", "video": f"videos/{c}.mp4", "start": 1, "end": 5,
              "conversations": _turns("<image>\nWhat colour is the traffic light?", f"The traffic light is {c}.")}
             for i, c in enumerate(names)]
    multi_turn = [{"id": "mt0", "video": f"videos/{names[0]}.mp4",
                   "conversations": [*_turns("<image>\nWhat colour is the video?", f"The video is {names[0]}."),
                                     *_turns("Is it moving?", "Yes.")]}]
    broken = [{"id": "broken0", "video": "videos/broken.mp4", "conversations": _turns("<image>\nWhat is this?", "Nothing.")}]
    return {
        "stage1_images.json": img,
        "stage2_images.json": img + multi,
        "stage2_videos.json": vid,
        "stage2_text.json": text,
        "stage3_videos.json": vid + multi_turn,
        "stage3_images.json": img,
        "stage4_online.json": online,
        "stage5_drive.json": drive,
        "broken.json": broken,
    }


DATA_LISTS: dict[int, list[tuple[str, str]]] = {
    1: [("stage1_images.json", "all")],
    2: [("stage2_images.json", "all"), ("stage2_videos.json", "all"), ("stage2_text.json", "all")],
    3: [("stage3_videos.json", "all"), ("stage3_images.json", "first:2")],
    4: [("stage4_online.json", "all")],
    5: [("stage5_drive.json", "all")],
}


def write_data_list(path: Path, entries: list[tuple[str, str]], media_root: str = "../../media") -> None:
    """A data list in the reference format (paths relative to the YAML file)."""
    import yaml

    doc = {"datasets": [{"json_path": f"../{name}", "sampling_strategy": strat, "data_root": media_root} for name, strat in entries]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def make_training_fixtures(root: str | Path, *, seed: int = 0) -> TrainingFixtures:
    """Write the whole fixture tree under ``root`` (idempotent: existing models are kept)."""
    root = Path(root)
    names = list(COLOURS)
    (root / "media" / "images").mkdir(parents=True, exist_ok=True)
    (root / "media" / "videos").mkdir(parents=True, exist_ok=True)
    (root / "anno" / "data_list").mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        write_image(root / "media" / "images" / f"{name}.png", colour)
        write_video(root / "media" / "videos" / f"{name}.mp4", colour)
    (root / "media" / "videos" / "broken.mp4").write_bytes(b"this is not a video\n")
    records = stage_records(names)
    for fname, recs in records.items():
        (root / "anno" / fname).write_text(json.dumps(recs, indent=1), encoding="utf-8")
    lists = {}
    for stage, entries in DATA_LISTS.items():
        lists[stage] = root / "anno" / "data_list" / f"stage{stage}.yaml"
        write_data_list(lists[stage], entries)
    texts = [t["value"] for recs in records.values() for r in recs for t in r["conversations"]]
    if not (root / "llm" / "config.json").is_file():
        write_tiny_llm(root / "llm", texts, seed)
    if not (root / "siglip" / "config.json").is_file():
        write_tiny_siglip(root / "siglip", seed)
    logger.info("training fixtures written to %s", root)
    return TrainingFixtures(root=root, llm=root / "llm", siglip=root / "siglip", data_lists=lists)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    make_training_fixtures(args.out_dir, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
