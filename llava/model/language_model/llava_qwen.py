"""Legacy ``llava.model.language_model.llava_qwen`` (re-exports ``streamforest.model.llava_qwen``)."""

from streamforest.model.llava_qwen import LlavaQwenConfig, LlavaQwenForCausalLM, LlavaQwenModel

__all__ = ["LlavaQwenConfig", "LlavaQwenForCausalLM", "LlavaQwenModel"]
