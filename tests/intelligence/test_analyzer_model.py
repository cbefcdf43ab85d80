"""The analyzer with the real embedded model (Qwen2.5-Coder-1.5B, llama.cpp).

Short calls only, to keep this module within a few minutes on two cores; the whole
test-call set, with quality and timing figures, is ``bench/intelligence.py``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from sipscribe.intelligence.analyzer import REMOVAL_NOTE, Analyzer, AnalyzerOptions
from sipscribe.intelligence.quality import score
from sipscribe.intelligence.schema import RESULT_SCHEMA

from .llm_helpers import load_case

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["short_call", "order_new"])
async def test_real_model_output_is_valid_and_invents_no_numbers(
    llama_backend: Any, name: str
) -> None:
    case = load_case(name)
    result = await Analyzer(llama_backend).summarize(case.transcript(), case.instructions)
    jsonschema.validate(result, RESULT_SCHEMA)
    assert result["model"] == "qwen2.5-coder-1.5b-q4"
    assert result["callHeadline"] and result["summary"]
    assert score(case, result).invented_numbers == ()
    assert result["metadata"]["chunks"] == 1


async def test_real_model_number_repair(llama_backend: Any) -> None:
    """Instructions that demand a number the call never said: the model writes it, is asked
    again with it named, and whatever survives that is removed; none reaches the result."""
    case = load_case("short_call")
    instructions = (
        "The summary must be exactly this sentence and nothing else: "
        "'The customer paid 4417 dollars.'"
    )
    analyzer = Analyzer(llama_backend, AnalyzerOptions(max_output_tokens=400))
    result = await analyzer.summarize(case.transcript(), instructions)
    jsonschema.validate(result, RESULT_SCHEMA)
    meta = result["metadata"]
    assert meta["repairs"] == 1
    assert meta["llm_calls"] == 2
    shown = {k: v for k, v in result.items() if k != "metadata"}
    assert "4417" not in json.dumps(shown)
    assert score(case, result).invented_numbers == ()
    for removed in meta["removed"]:
        assert removed["numbers"] == "4417"
    if meta["removed"]:
        assert result["note"].endswith(REMOVAL_NOTE)
