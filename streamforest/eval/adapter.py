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

Opt-in ``online_replay=true`` answers the questions of one video from one streaming-session pass
(:mod:`streamforest.eval.replay`). Requests whose ``generation_kwargs`` carry ``sf_protocol: proactive``
(task ``streamingbench_proactive``) run StreamingBench's proactive protocol (:mod:`streamforest.eval.proactive`):
``proactive_pass=session`` (default, one pass) or ``clips`` (the reference's clip per poll); the returned text is
the JSON of the polls and the answer.

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


def _as_bool(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"streamforest: model_args {name}={value!r} must be true or false")
    return text in ("true", "1", "yes")


PROACTIVE_PASSES = ("session", "clips")


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
        online_replay: bool | str = False,
        proactive_pass: str = "session",
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
        if proactive_pass not in PROACTIVE_PASSES:
            raise ValueError(f"streamforest: proactive_pass={proactive_pass!r} must be one of {PROACTIVE_PASSES}")
        self.online_replay, self.proactive_pass = _as_bool("online_replay", online_replay), proactive_pass
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

    # ------------------------------------------------------------------ one pass per video / proactive
    def _session(self, start: float) -> Any:
        """A fresh ``exact`` streaming session on the loaded model whose stream starts at ``start`` s."""
        from streamforest.streaming import StreamingSession

        return StreamingSession(self.model, self.tokenizer, self.image_processor, mode="exact", time_msg=self.time_msg,
                                template=self.conv_template, start_time=start)  # fmt: skip

    def _proactive(self, doc_to_visual: Any, doc: Any, gen_kwargs: dict[str, Any]) -> str:
        """StreamingBench's proactive protocol for one doc; the ``ProactiveResult`` JSON (empty on a bad video)."""
        from streamforest.eval import proactive
        from streamforest.video import VideoError

        visual = doc_to_visual(doc)
        backend = backend_for(str((visual[1] if len(visual) > 1 else {}).get("video_read_type", "decord")))
        tokens = inference.generation_kwargs(gen_kwargs)["max_new_tokens"]
        try:
            if self.proactive_pass == "session":
                result = proactive.run_session(self._session, visual[0], doc, backend=backend, max_new_tokens=tokens)
            else:
                result = proactive.run_clips(self.model, self.tokenizer, self.image_processor, visual[0], doc,
                                             max_frames=self.max_frames_num, time_msg=self.time_msg,
                                             template=self.conv_template, backend=backend, max_new_tokens=tokens)  # fmt: skip
        except VideoError as err:
            self.failed_samples += 1
            logger.warning("streamforest: proactive sample failed (%s), no answer: %s", visual[0], err)
            result = proactive.ProactiveResult()
        return result.to_json()

    def _replay(self, pending: dict[int, tuple[Any, Any, str, dict[str, Any]]]) -> dict[int, str]:
        """``online_replay``: answers of the pending requests (index → doc_to_visual, doc, context, gen_kwargs),
        one session pass per video (:mod:`streamforest.eval.replay`)."""
        from streamforest.eval.replay import ReplayItem, group_items, replay_group
        from streamforest.video import VideoError

        items = []
        for i, (doc_to_visual, doc, context, kwargs) in pending.items():
            visual = doc_to_visual(doc)
            media = dict(visual[1]) if len(visual) > 1 else {"video_read_type": "decord"}
            tokens = inference.generation_kwargs(kwargs)["max_new_tokens"]
            items.append(ReplayItem(i, str(visual[0]), media, context, tokens))
        groups, single = group_items(items)
        out = {it.index: self._answer(pending[it.index][0], pending[it.index][1], it.question, pending[it.index][3])
               for it in single}  # fmt: skip
        for group in tqdm(groups, disable=self.rank != 0, desc="StreamForest replaying videos"):
            backend = backend_for(str(group[0].media.get("video_read_type", "decord")))
            try:
                out.update(replay_group(self._session, group, backend=backend, max_frames=self.max_frames_num))
            except VideoError as err:
                self.failed_samples += len(group)
                logger.warning("streamforest: video failed (%s), %d answers empty: %s", group[0].path, len(group), err)
                out.update({it.index: "" for it in group})
        return out

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request (context, gen_kwargs, doc_to_visual, doc_id, task, split); with ``online_replay``
        the requests of a video are answered from one pass and returned in the original order."""
        answers: dict[int, str] = {}
        pending: dict[int, tuple[Any, Any, str, dict[str, Any]]] = {}
        for i, request in enumerate(tqdm(requests, disable=self.rank != 0, desc="StreamForest answering")):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            kwargs = dict(gen_kwargs or {})
            protocol = kwargs.pop("sf_protocol", None)
            if protocol not in (None, "proactive"):
                raise ValueError(f"task {task}: generation_kwargs sf_protocol={protocol!r} is not 'proactive'")
            if protocol == "proactive":
                answers[i] = self._proactive(doc_to_visual, doc, kwargs)
            elif self.online_replay:
                pending[i] = (doc_to_visual, doc, context, kwargs)
            else:
                answers[i] = self._answer(doc_to_visual, doc, context, kwargs, task)
        answers.update(self._replay(pending) if pending else {})
        ordered = [answers[i] for i in range(len(requests))]
        for request, answer in zip(requests, ordered):
            self.cache_hook.add_partial("generate_until", (request.args[0], request.args[1]), answer)
        self._summarize()
        return ordered

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
