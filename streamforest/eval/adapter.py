"""lmms-eval model ``streamforest`` (REFERENCE §5.2): a thin adapter over the library.

Loading is :func:`streamforest.model.loader.load_pretrained`; frames, pixels, visual tokens, prompt and
generation go through :mod:`streamforest.inference` (the path the notebook API and the online session
share): ≈1 fps ``dynamic_fps1`` frames, min 4 / max ``max_frames_num``, of the visual's ``start``/``end``
clip — the online question time is the clip end; ``<image>`` + time message + question in the ``qwen_2``
template. Defaults without ``--model_args`` are the reference wrapper's
(:data:`~streamforest.inference.WRAPPER_DEFAULTS`: 32 frames, ``short_online``); the released scripts pass
:data:`~streamforest.inference.EVAL_SETTINGS` (2048, ``short_online_v2``). Batch size 1; data
parallel under ``accelerate`` (one model copy per rank). A sample whose video cannot be decoded (or whose prompt
does not fit the model's context) is answered with ``""`` and a warning, so the strict metric counts it wrong and
the run goes on; each task ends with a summary line (failed samples, the first paths) on the console — the
adapter shows the ``streamforest.eval`` logs (:func:`streamforest.eval.media.show_eval_logs`), which lmms-eval
(loguru) would leave invisible.

Imported only by lmms-eval (through the ``lmms_eval.models`` entry point), hence the module-level import.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from streamforest import inference
from streamforest.eval.media import show_eval_logs
from streamforest.video import backend_for

logger = logging.getLogger(__name__)

# accepted for script compatibility with the reference wrapper, not used
_REFERENCE_ONLY_ARGS = {"truncation", "device_map", "truncate_context", "customized_config", "token_strategy",
                        "video_decode_backend", "max_batch_size", "use_cache"}  # fmt: skip


SUMMARY_PATHS = 5
"""Paths named in a task's failed-sample summary."""


def _as_int_or_none(value: Any, name: str) -> int | None:
    """A ``--model_args`` integer (None for empty / ``None``); anything else is an error naming ``name``."""
    if value in (None, "", "None", "none"):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"streamforest: model_args {name}={value!r} is not an integer (e.g. {name}=64)") from None
    if number < 1:
        raise ValueError(f"streamforest: model_args {name}={value!r} must be >= 1")
    return number


class StreamForestLMM(lmms):
    """StreamForest for lmms-eval (``--model streamforest --model_args pretrained=DIR,...``)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        conv_template: str = inference.WRAPPER_DEFAULTS.template,
        max_frames_num: int = inference.WRAPPER_DEFAULTS.max_frames,
        time_msg: str | None = inference.WRAPPER_DEFAULTS.time_msg,
        mm_projector_type: str | None = None,
        mm_local_num_frames: int | None = None,
        vision_encode_type: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        attn_implementation: str | None = None,
        batch_size: int | str = 1,
        model_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - _REFERENCE_ONLY_ARGS)
        if unknown:
            raise ValueError(f"streamforest: unknown model_args {unknown}; see streamforest/eval/adapter.py")
        if int(batch_size) != 1:
            raise ValueError(f"streamforest: batch_size must be 1 (got {batch_size}); use data parallelism")
        if conv_template != "qwen_2":
            raise ValueError(f"streamforest: conv_template={conv_template!r} is not supported; use qwen_2")
        show_eval_logs()  # lmms-eval configures no `logging`: make our warnings and the summaries visible
        from accelerate import Accelerator

        from streamforest.model.loader import load_pretrained

        accelerator = Accelerator()
        self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
        if self._world_size > 1:
            self.accelerator = accelerator
        wants_cuda = device in (None, "", "cuda") or (self._world_size > 1 and str(device).startswith("cuda"))
        if wants_cuda and torch.cuda.is_available():  # one device per rank under data parallelism
            device = f"cuda:{accelerator.local_process_index}"
        self._device = torch.device(device or "cpu")
        self._dtype = dtype or ("bfloat16" if self._device.type == "cuda" else "float32")
        overrides = {"mm_projector_type": mm_projector_type, "vision_encode_type": vision_encode_type}
        overrides["mm_local_num_frames"] = _as_int_or_none(mm_local_num_frames, "mm_local_num_frames")
        frames = _as_int_or_none(max_frames_num, "max_frames_num")
        loaded = load_pretrained(
            pretrained,
            dtype=self._dtype,
            device=self._device,
            attn_implementation=attn_implementation,
            overrides={k: v for k, v in overrides.items() if v is not None} or None,
        )
        self.tokenizer, self.model, self.image_processor = (
            loaded.tokenizer,
            loaded.model,
            loaded.image_processor,
        )
        self.model_name = model_name or str(pretrained).rstrip("/").split("/")[-1]
        self.max_frames_num = frames if frames is not None else inference.WRAPPER_DEFAULTS.max_frames
        self.time_msg = None if time_msg in (None, "", "None", "none") else str(time_msg)
        self.conv_template = conv_template
        self.failed_samples = 0
        self._failures: dict[str, list[str]] = {}  # task → "path: reason" of this call's failed samples
        self._answered: dict[str, int] = {}  # task → answers given in this call
        self._cache: tuple[Any, Any, str] | None = None  # (visual key, projected features, time message)
        logger.info("streamforest: %s on %s (%s), rank %d/%d", self.model_name, self._device, self._dtype,
                    self._rank, self._world_size)  # fmt: skip

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def batch_size(self) -> int:
        return 1

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("streamforest supports generation tasks only (as the reference wrapper)")

    # ------------------------------------------------------------------ visual side
    def _encode_visual(self, visual: list[Any]) -> tuple[Any, str]:
        """``[path]`` or ``[path, media_dict]`` → (projected tokens ``[N,H]``, time message); cached by key.

        A ToMe-clip checkpoint gets whole clips of ``mm_local_num_frames`` frames (``inference.clip_length``;
        the reference always used 1 and crashed)."""
        if not visual or not isinstance(visual[0], str):
            raise NotImplementedError(
                f"streamforest evaluates videos only, got visual {type(visual[0]).__name__}"
            )
        path = visual[0]
        media = dict(visual[1]) if len(visual) > 1 else {"video_read_type": "decord"}
        key = (path, tuple(sorted(media.items())))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        clip = inference.load_clip(
            path,
            (media["start"], media.get("end")) if media.get("start") is not None else None,
            max_frames=self.max_frames_num,
            local_num_frames=inference.clip_length(self.model),
            fps=media.get("fps"),
            backend=backend_for(str(media.get("video_read_type", "decord"))),
        )
        pixels = inference.prepare_pixels(self.image_processor, clip.frames, self._device, self.model.dtype)
        features = inference.video_features(self.model, pixels)
        message = inference.clip_time_message(clip, self.time_msg)  # absolute str(round(index / fps, 1))
        self._cache = (key, features, message)
        return features, message

    # ------------------------------------------------------------------ text side
    def _generate(self, context: str, features: Any, message: str, gen_kwargs: dict[str, Any]) -> str:
        """One answer for ``context`` over already-encoded visual tokens (stripped, special tokens removed)."""
        prompt = inference.make_prompt(self.tokenizer, context, message, visual=features, template=self.conv_template,
                                       device=self._device)  # <image> kept if given  # fmt: skip
        return inference.generate(self.model, self.tokenizer, prompt, template=self.conv_template, **gen_kwargs).text

    def _answer(self, doc_to_visual: Any, doc: Any, context: str, gen_kwargs: dict[str, Any], task: str = "") -> str:
        """Encode + generate; a video that fails to decode or a prompt too long for the context gives ``""``
        (logged, counted, named in the task's summary)."""
        from streamforest.video import VideoError

        visual = doc_to_visual(doc)
        self._answered[task] = self._answered.get(task, 0) + 1
        try:
            features, message = self._encode_visual(visual)
            return self._generate(context, features, message, gen_kwargs)
        except (VideoError, inference.PromptTooLongError) as err:
            self.failed_samples += 1
            self._failures.setdefault(task, []).append(f"{visual[0]}: {err}")
            logger.warning("streamforest: sample failed (%s), answered with an empty string: %s", visual[0], err)
            return ""

    def _summarize(self) -> None:
        """One line per task with failed samples: how many, of how many, and the first paths."""
        for task, failures in self._failures.items():
            shown = "; ".join(failures[:SUMMARY_PATHS]) + (" …" if len(failures) > SUMMARY_PATHS else "")
            logger.warning(
                "streamforest: task %s: %d of %d sample(s) failed and were answered '' (the strict metric counts "
                "them wrong, the reference metric leaves them out): %s", task, len(failures), self._answered.get(task, 0),
                shown,
            )  # fmt: skip
        self._failures, self._answered = {}, {}

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request (context, gen_kwargs, doc_to_visual, doc_id, task, split)."""
        answers: list[str] = []
        for request in tqdm(requests, disable=self.rank != 0, desc="StreamForest answering"):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            answers.append(self._answer(doc_to_visual, doc, context, dict(gen_kwargs or {}), task))
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), answers[-1])
        self._summarize()
        return answers

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Multi-turn over one video: ``doc_to_text(doc, previous_output, round_idx, previous_round_info)``
        returns (visuals, context, terminal, outputs, info); frames encoded once are reused across rounds."""
        results: list[list[str]] = []
        for request in tqdm(requests, disable=self.rank != 0, desc="StreamForest answering (multi-round)"):
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            visual_fn, outputs, info, round_idx = doc_to_visual, [], None, 0
            while True:
                if round_idx > 0:
                    visuals, context, terminal, outputs, info = doc_to_text(
                        doc, previous_output=outputs, round_idx=round_idx, previous_round_info=info
                    )
                    outputs = list(outputs or [])
                    if terminal:
                        break
                    if visuals is not None:
                        visual_fn = lambda _doc, v=visuals: v  # noqa: E731 - this round's visual
                outputs.append(self._answer(visual_fn, doc, context, dict(gen_kwargs or {}), task))
                round_idx += 1
            results.append(outputs)
        self._summarize()
        return results
