"""Fixtures of the intelligence tests: the real embedded language model (session-wide)."""

from .llm_helpers import llama_backend, model_path

__all__ = ["llama_backend", "model_path"]
