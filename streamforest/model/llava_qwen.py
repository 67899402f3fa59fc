"""LlavaQwen: SigLIP tower + StreamForest projector + Qwen2 LLM (REFERENCE §1.1, §1.7, §1.8).

``LlavaQwenForCausalLM`` is a ``Qwen2ForCausalLM`` whose inner model (``LlavaQwenModel``) also owns
``vision_tower`` (truncated SigLIP) and ``mm_projector`` (ToMe / memory projector, only ``mlp.{0,2}``
parameters). Visual inputs are encoded per sample and spliced at the ``<image>`` (-200) placeholders.

Calls of the reference keep working::

    out = model(input_ids=ids, images=[frames], modalities=["video"], labels=labels)
    new_tokens = model.generate(ids, images=[frames], modalities=["video"], max_new_tokens=16, do_sample=False)

``generate`` always returns only the new tokens (the reference generates from ``inputs_embeds``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2ForCausalLM, Qwen2Model
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.models.qwen2.modeling_qwen2 import Qwen2PreTrainedModel

from streamforest.constants import IMAGE_TOKEN_INDEX
from streamforest.model.config import MEMORY_PROJECTOR_TYPES, LlavaQwenConfig, MultimodalSettings
from streamforest.model.splice import SpliceResult, count_placeholders, splice_visual_tokens
from streamforest.model.vision import SigLipVisionTower

logger = logging.getLogger(__name__)

__all__ = ["LlavaQwenConfig", "LlavaQwenForCausalLM", "LlavaQwenModel"]


def _build_projector(config: LlavaQwenConfig, tower: SigLipVisionTower) -> nn.Module:
    """The projector named by ``config.mm_projector_type`` (``streamforest.model.projectors``)."""
    from streamforest.model.projectors import build_projector

    settings = config.multimodal
    memory = config.memory_settings() if settings.mm_projector_type in MEMORY_PROJECTOR_TYPES else None
    return build_projector(
        settings.mm_projector_type,
        mm_hidden_size=settings.mm_hidden_size,
        hidden_size=config.hidden_size,
        num_heads=tower.num_heads,
        grid=tower.grid,
        memory_config=memory,
    )


class LlavaQwenModel(Qwen2Model):
    """Qwen2 decoder plus ``vision_tower`` and ``mm_projector`` when the config is multimodal."""

    config_class = LlavaQwenConfig

    def __init__(self, config: LlavaQwenConfig) -> None:
        super().__init__(config)
        if getattr(config, "mm_vision_tower", None) is not None:
            vision = config.vision_settings() if hasattr(config, "vision_settings") else None
            if vision is None:
                from streamforest.model.config import vision_config_of

                vision = vision_config_of(config)
            self.vision_tower = SigLipVisionTower(vision, getattr(config, "_attn_implementation", None))
            mm_hidden = int(getattr(config, "mm_hidden_size", self.vision_tower.hidden_size))
            if mm_hidden != self.vision_tower.hidden_size:
                raise ValueError(
                    f"config.json field 'mm_hidden_size' = {mm_hidden} but the vision tower width is "
                    f"{self.vision_tower.hidden_size}; fix 'mm_hidden_size' or 'vision_config.hidden_size'"
                )
            self.mm_projector = _build_projector(config, self.vision_tower)
            self.post_init()

    def get_vision_tower(self) -> SigLipVisionTower | None:
        return getattr(self, "vision_tower", None)


class LlavaQwenForCausalLM(Qwen2ForCausalLM):
    """StreamForest model (released class name). See the module docstring for the call patterns."""

    config_class = LlavaQwenConfig

    def __init__(self, config: LlavaQwenConfig) -> None:
        Qwen2PreTrainedModel.__init__(self, config)
        self.model = LlavaQwenModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    # ---------------------------------------------------------------- accessors (reference names)
    def get_model(self) -> LlavaQwenModel:
        return self.model

    def get_vision_tower(self) -> SigLipVisionTower:
        tower = self.model.get_vision_tower()
        if tower is None:
            raise ValueError("this checkpoint has no vision tower (config.json lacks 'mm_vision_tower')")
        return tower

    def get_projector(self) -> nn.Module:
        """The ``mm_projector`` module (ToMe or memory projector)."""
        projector = getattr(self.model, "mm_projector", None)
        if projector is None:
            raise ValueError("this checkpoint has no projector (config.json lacks 'mm_vision_tower')")
        return projector

    @property
    def multimodal(self) -> MultimodalSettings:
        return self.config.multimodal

    # ---------------------------------------------------------------- visual encoding
    def encode_frames(self, pixel_values: Tensor, chunk_size: int | None = None) -> Tensor:
        """Vision tower only: ``[T,3,S,S]`` → ``[T,P,C_v]`` in chunks (default ``vision_chunk_size``)."""
        if pixel_values.dim() == 3:
            pixel_values = pixel_values.unsqueeze(0)
        chunk = chunk_size or self.multimodal.vision_chunk_size
        return self.get_vision_tower()(pixel_values, chunk_size=chunk)

    @property
    def projector_dtype(self) -> torch.dtype:
        """dtype of the projector's weights (vision features are cast to it before projection)."""
        params = list(self.get_projector().parameters())
        return params[0].dtype if params else self.dtype

    def embed_frames(self, pixel_values: Tensor, start_index: int = 0) -> Tensor:
        """Vision tower + memory position embedding of a frame batch (memory projector only).

        Args:
            pixel_values: ``[T, 3, S, S]`` preprocessed frames (the vision tower casts them to its device/dtype).
            start_index: stream index of the first frame; frame ``i`` gets temporal position
                ``(start_index + i) mod 512`` (REFERENCE §1.4), so a stream can be embedded batch by batch.

        Returns:
            ``[T, P, C_v]`` in :attr:`projector_dtype`, ready for ``EventMemory.add_frames``.
        """
        projector = self.get_projector()
        if not hasattr(projector, "add_pos_embed"):
            raise ValueError(
                f"embed_frames needs the memory projector ('tome729_fstw_pemf'); this checkpoint's "
                f"'mm_projector_type' is {getattr(self.config, 'mm_projector_type', '?')!r}"
            )
        feats = self.encode_frames(pixel_values).to(self.projector_dtype)
        return projector.add_pos_embed(feats, start_index=start_index)

    def encode_video(self, pixel_values: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One video ``[T, 3, S, S]`` → projected visual tokens ``[N, H]`` with the configured encode type.

        Memory projector: :meth:`embed_frames` → a fresh event memory → MLP. ToMe projectors: clips of
        ``mm_local_num_frames`` frames (``T`` must be a multiple of it).
        """
        settings = self.multimodal
        if settings.uses_memory:
            if settings.mm_local_num_frames not in (-1, 1):
                raise ValueError(
                    f"config.json field 'mm_local_num_frames' = {settings.mm_local_num_frames}: the memory "
                    "projector takes one frame per step; set it to 1"
                )
            if pixel_values.dim() == 3:
                pixel_values = pixel_values.unsqueeze(0)
            return self.get_projector().encode_video(self.embed_frames(pixel_values))
        feats = self.encode_frames(pixel_values).to(self.projector_dtype)
        return self._project_clips(feats, settings, generator)

    def _project_clips(self, feats: Tensor, settings: MultimodalSettings, generator: Any) -> Tensor:
        """``[T,P,C_v]`` → ``[N,H]`` through a ToMe projector, ``mm_local_num_frames`` frames per clip."""
        projector = self.get_projector()
        num_frames, patches, width = feats.shape
        clip = settings.local_num_frames
        if clip < 1:
            raise ValueError(
                "config.json field 'mm_local_num_frames' must be >= 1 to encode video "
                f"(got {settings.mm_local_num_frames}); stage 2 uses 2, stage 3 uses 8"
            )
        if num_frames % clip != 0:
            raise ValueError(
                f"video of {num_frames} frames cannot be cut into clips of mm_local_num_frames={clip}; "
                f"sample a multiple of {clip} frames (video loader: local_num_frames={clip})"
            )
        clips = feats.reshape(num_frames // clip, clip * patches, width)
        out = projector(clips, local_num_frames=clip, is_image=False, generator=generator)
        return out.reshape(-1, out.shape[-1])

    def _project_images(self, feats: Tensor, settings: MultimodalSettings, generator: Any) -> list[Tensor]:
        """``[n,P,C_v]`` → n tensors ``[k,H]`` (one per image)."""
        projector = self.get_projector()
        if settings.uses_memory:
            out = projector(feats, local_num_frames=1, is_image=True, generator=generator)
        else:
            out = projector(feats, local_num_frames=1, is_image=False, generator=generator)
        return list(out.unbind(0))

    def encode_images(
        self, images: Sequence[Tensor], modalities: Sequence[str], generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """Encode each sample's pixels (``[T,3,S,S]`` or ``[3,S,S]``) to projected tokens.

        Returns one ``[N,H]`` tensor per video sample and one ``[k,H]`` tensor per image of an image sample,
        in batch order; ``"text"`` samples (dummy images) are skipped.
        """
        return [feat for sample in self._encode_per_sample(images, modalities, generator) for feat in sample]

    def _encode_per_sample(
        self, images: Sequence[Tensor], modalities: Sequence[str], generator: torch.Generator | None
    ) -> list[list[Tensor]]:
        if len(images) != len(modalities):
            raise ValueError(f"got {len(images)} image tensors but {len(modalities)} modalities")
        settings = self.multimodal
        out: list[list[Tensor]] = []
        for pixels, modality in zip(images, modalities):
            if modality == "text":
                out.append([])
                continue
            if modality not in ("image", "video"):
                raise ValueError(f"modality {modality!r} is not supported; use 'image', 'video' or 'text'")
            if modality == "video":
                out.append([self.encode_video(pixels, generator)])
            else:
                feats = self.encode_frames(pixels).to(self.projector_dtype)
                out.append(self._project_images(feats, settings, generator))
        return out

    def _text_anchor(self, text_images: Sequence[Tensor]) -> Tensor | None:
        """0-valued scalar through ViT + projector for an all-text training batch (keeps DeepSpeed happy)."""
        if not (self.training and torch.is_grad_enabled()) or not text_images:
            return None
        first = text_images[0] if text_images[0].dim() == 4 else text_images[0].unsqueeze(0)
        feats = self.encode_frames(first[:1]).to(self.projector_dtype)
        return self._project_images(feats, self.multimodal, None)[0].sum() * 0.0

    @staticmethod
    def _match_placeholders(per_sample: list[list[Tensor]], counts: list[int]) -> list[Tensor]:
        """Flatten per-sample features; a sample with one placeholder and several images gets them
        concatenated (reference behaviour). Other mismatches are left for the splice to report."""
        if len(per_sample) != len(counts):
            raise ValueError(
                f"got visual inputs for {len(per_sample)} samples but the batch has {len(counts)}"
            )
        flat: list[Tensor] = []
        for feats, count in zip(per_sample, counts):
            if count == 1 and len(feats) > 1:
                flat.append(torch.cat(feats, dim=0))
            else:
                flat.extend(feats)
        return flat

    def prepare_multimodal_inputs(
        self,
        input_ids: Tensor | Sequence[Tensor],
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        labels: Tensor | None = None,
        images: Sequence[Tensor] | Tensor | None = None,
        modalities: Sequence[str] | None = None,
        visual_features: Sequence[Tensor] | None = None,
        padding_side: str | None = None,
        generator: torch.Generator | None = None,
    ) -> SpliceResult:
        """Encode ``images`` (or take ``visual_features``) and splice them at the placeholders."""
        settings = self.multimodal
        anchor = None
        if visual_features is None:
            if images is None:
                raise ValueError(
                    "input_ids contain <image> placeholders but neither images nor visual_features were given"
                )
            if isinstance(images, Tensor):
                images = [images] if images.dim() == 4 else list(images)
            modalities = list(modalities) if modalities is not None else ["image"] * len(images)
            per_sample = self._encode_per_sample(images, modalities, generator)
            if not any(per_sample):
                anchor = self._text_anchor([img for img, m in zip(images, modalities) if m == "text"])
            rows = (
                [r[m.bool()] for r, m in zip(input_ids, attention_mask)]
                if attention_mask is not None
                else input_ids
            )
            feats = self._match_placeholders(per_sample, count_placeholders(rows))
        else:
            feats = list(visual_features)
        return splice_visual_tokens(
            input_ids,
            feats,
            self.get_input_embeddings(),
            labels=labels,
            attention_mask=attention_mask,
            position_ids=position_ids,
            max_length=settings.tokenizer_model_max_length,
            padding_side=padding_side or settings.tokenizer_padding_side,
            anchor=anchor,
        )

    # ---------------------------------------------------------------- forward / generate
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        images: Sequence[Tensor] | Tensor | None = None,
        image_sizes: Any = None,
        modalities: Sequence[str] | None = None,
        visual_features: Sequence[Tensor] | None = None,
        logits_to_keep: int | Tensor = 0,
        **kwargs: Any,
    ) -> Any:
        """Causal-LM forward; visual inputs are spliced first when ``inputs_embeds`` is not given.

        Loss: standard shifted cross-entropy over ``labels`` (-100 ignored).
        """
        kwargs.pop("dpo_forward", None)
        needs_splice = inputs_embeds is None and (images is not None or visual_features is not None)
        if inputs_embeds is None and input_ids is not None and not needs_splice:
            if bool((input_ids == IMAGE_TOKEN_INDEX).any()):
                raise ValueError(
                    "input_ids contain <image> placeholders but no images/visual_features were given"
                )
        if needs_splice:
            spliced = self.prepare_multimodal_inputs(
                input_ids, attention_mask, position_ids, labels, images, modalities, visual_features
            )
            input_ids, inputs_embeds, labels, position_ids = (
                None,
                spliced.inputs_embeds,
                spliced.labels,
                spliced.position_ids,
            )
            attention_mask = spliced.attention_mask.long()
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        inputs: Tensor | None = None,
        images: Sequence[Tensor] | Tensor | None = None,
        image_sizes: Any = None,
        modalities: Sequence[str] | None = None,
        visual_features: Sequence[Tensor] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Generate from ``input_ids`` (with ``-200`` placeholders) and ``images`` or ``visual_features``.

        Returns only the newly generated tokens ``[B, n_new]`` (as the reference, which generates from
        ``inputs_embeds``). Batched prompts are left-padded after splicing.
        """
        if "inputs_embeds" in kwargs:
            raise NotImplementedError("`inputs_embeds` is not supported by LlavaQwenForCausalLM.generate")
        input_ids = inputs if inputs is not None else kwargs.pop("input_ids", None)
        if input_ids is None:
            raise ValueError("generate needs input_ids (the tokenised prompt)")
        attention_mask = kwargs.pop("attention_mask", None)
        kwargs.pop("position_ids", None)
        if images is not None or visual_features is not None:
            spliced = self.prepare_multimodal_inputs(
                input_ids,
                attention_mask,
                None,
                None,
                images,
                modalities,
                visual_features,
                padding_side="left",
            )
            embeds, mask = spliced.inputs_embeds, spliced.attention_mask.long()
        else:
            if bool((input_ids == IMAGE_TOKEN_INDEX).any()):
                raise ValueError(
                    "input_ids contain <image> placeholders but no images/visual_features were given"
                )
            embeds = self.get_input_embeddings()(input_ids)
            mask = attention_mask
        return super().generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)


RELEASED_VISION_PREFIX = "vision_tower.vision_tower.vision_model."
"""Released/transformers-4 key level of the SigLIP weights (``model.`` + this + ``embeddings.…``)."""
NATIVE_VISION_PREFIX = "vision_tower.vision_tower."
"""The same weights under transformers 5's flattened ``SiglipVisionModel``."""

# ``from_pretrained`` maps released names to ours, ``save_pretrained`` writes released names (reverse rule).
register_checkpoint_conversion_mapping(
    "LlavaQwenForCausalLM",
    [WeightRenaming(source_patterns=re.escape(RELEASED_VISION_PREFIX), target_patterns=NATIVE_VISION_PREFIX)],
    overwrite=True,
)
AutoConfig.register("llava_qwen", LlavaQwenConfig, exist_ok=True)
AutoModelForCausalLM.register(LlavaQwenConfig, LlavaQwenForCausalLM, exist_ok=True)
