"""Legacy ``llava.model.language_model`` package (re-exports only)."""

from llava.model.language_model.llava_qwen import LlavaQwenConfig, LlavaQwenForCausalLM, LlavaQwenModel

__all__ = ["LlavaQwenConfig", "LlavaQwenForCausalLM", "LlavaQwenModel"]
