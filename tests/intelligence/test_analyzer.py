"""``sipscribe.intelligence.analyzer``: prompts, number repair, chunked analysis.

The analyzer's control flow is driven here by ``ScriptedBackend`` (a test double that
answers with scripted replies), so every path (repair, strip, retry, re-chunk, merge) is
exercised exactly. ``test_analyzer_model.py`` runs the real embedded model.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from sipscribe.api.services import SummaryEngine
from sipscribe.intelligence.analyzer import (
    DEFAULT_INSTRUCTIONS,
    EXCERPT_HINT,
    REMOVAL_NOTE,
    SYSTEM_PROMPT,
    Analyzer,
    AnalyzerOptions,
    find_violations,
    finish_cut,
    repair_note,
)
from sipscribe.intelligence.chunking import chunk_turns, estimate_tokens, turns_from_transcript
from sipscribe.intelligence.llm import ChatCompletion, ContextOverflow, LlmError
from sipscribe.intelligence.numbercheck import TranscriptNumbers
from sipscribe.intelligence.quality import score
from sipscribe.intelligence.schema import (
    MAX_SUMMARY_CHARS,
    MERGE_SCHEMA,
    MODEL_SCHEMA,
    RESULT_SCHEMA,
    Analysis,
)

from .llm_helpers import ScriptedBackend, action, analysis_json, load_case

REFUND = load_case("refund_double_charge")


async def test_one_call_one_request_and_a_result_in_the_served_shape() -> None:
    reply = analysis_json(
        headline="Duplicate charge refunded",
        summary="The customer was charged twice for order 40817. The agent refunded $64.20.",
        actions=[action("Refund the duplicate charge", "agent", "today")],
        answers=[{"question": "How long until I see it?", "answer": "5 to 7 business days."}],
        customer="positive",
    )
    backend = ScriptedBackend([reply])
    result = await Analyzer(backend).summarize(REFUND.transcript(), None)
    jsonschema.validate(result, RESULT_SCHEMA)
    assert result["engine"] == "llm"
    assert result["model"] == "scripted"
    assert result["callHeadline"] == "Duplicate charge refunded"
    assert result["actionItems"] == [
        {
            "id": "action-1",
            "text": "Refund the duplicate charge",
            "owner": "agent",
            "dueDate": "today",
        }
    ]
    assert result["smartAnswers"][0]["id"] == "answer-1"
    assert result["sentiment"] == {"agent": "neutral", "customer": "positive"}
    assert result["instructions_applied"] is False
    meta = result["metadata"]
    assert (meta["chunks"], meta["llm_calls"], meta["repairs"], meta["removed"]) == (1, 1, 0, [])
    assert (meta["prompt_tokens"], meta["completion_tokens"]) == (100, 20)

    (request,) = backend.requests
    assert request.json_schema == MODEL_SCHEMA
    assert request.temperature == 0.0
    assert request.messages[0].content == SYSTEM_PROMPT
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    prompt = backend.user_prompt()
    assert "Agent: Thanks for calling Pine and Post, this is Jordan speaking." in prompt
    assert "Customer: Sure, it's #### #### #### ####." in prompt
    assert prompt.endswith(f"Summary instructions: {DEFAULT_INSTRUCTIONS}")
    assert EXCERPT_HINT not in prompt


def test_the_analyzer_is_a_summary_engine() -> None:
    assert isinstance(Analyzer(ScriptedBackend()), SummaryEngine)


async def test_instructions_reach_the_prompt() -> None:
    backend = ScriptedBackend([analysis_json()])
    result = await Analyzer(backend).summarize(REFUND.transcript(), "Use British English.")
    assert backend.user_prompt().endswith("Summary instructions: Use British English.")
    assert result["instructions_applied"] is True


async def test_blank_instructions_are_the_default() -> None:
    backend = ScriptedBackend([analysis_json()])
    result = await Analyzer(backend).summarize(REFUND.transcript(), "  \n ")
    assert backend.user_prompt().endswith(f"Summary instructions: {DEFAULT_INSTRUCTIONS}")
    assert result["instructions_applied"] is False


async def test_an_empty_transcript_asks_nothing() -> None:
    backend = ScriptedBackend([])
    result = await Analyzer(backend).summarize([{"channel": 0, "start": 0, "text": " "}], None)
    jsonschema.validate(result, RESULT_SCHEMA)
    assert backend.requests == []
    assert result["summary"] == ""
    assert result["note"] == "The call has no transcribed speech, so there is nothing to summarise."
    assert result["metadata"]["chunks"] == 0


async def test_invented_numbers_are_named_in_a_second_request() -> None:
    invented = analysis_json(summary="A refund of $70 was issued for order 40817.")
    fixed = analysis_json(summary="A refund of $64.20 was issued for order 40817.")
    backend = ScriptedBackend([invented, fixed])
    result = await Analyzer(backend).summarize(REFUND.transcript(), None)
    assert len(backend.requests) == 2
    second = backend.user_prompt(1)
    assert second.endswith(repair_note(["70"]))
    # The repaired prompt starts like the first, so a prompt cache can reuse it.
    assert second.startswith(backend.user_prompt(0))
    assert result["summary"] == "A refund of $64.20 was issued for order 40817."
    assert result["metadata"]["repairs"] == 1
    assert result["metadata"]["removed"] == []
    assert result["metadata"]["llm_calls"] == 2


async def test_numbers_still_invented_after_repair_are_removed_and_recorded() -> None:
    bad = analysis_json(
        headline="Refund of $70 issued",
        summary="The customer was charged twice. A refund of $70 was issued. It takes 10 days.",
        actions=[
            action("Refund the duplicate charge", "agent", "within 4 days"),
            action("Call back if the refund is late", "customer"),
        ],
        answers=[
            {"question": "How long?", "answer": "10 days."},
            {"question": "Will it happen again?", "answer": "No, the glitch is fixed."},
        ],
        note="Refund RF-5521 issued.",
    )
    backend = ScriptedBackend([bad, bad])
    result = await Analyzer(backend).summarize(REFUND.transcript(), None)
    assert backend.user_prompt(1).endswith(repair_note(["70", "70", "10", "4", "10"]))
    assert result["summary"] == "The customer was charged twice."
    # The headline lost its only sentence: the summary's first sentence stands in.
    assert result["callHeadline"] == "The customer was charged twice."
    assert [a["text"] for a in result["actionItems"]] == ["Call back if the refund is late"]
    assert [a["id"] for a in result["actionItems"]] == ["action-1"]
    assert [q["question"] for q in result["smartAnswers"]] == ["Will it happen again?"]
    assert result["note"] == f"Refund RF-5521 issued. {REMOVAL_NOTE}"
    assert result["metadata"]["repairs"] == 1
    assert result["metadata"]["removed"] == [
        {"field": "callHeadline", "text": "Refund of $70 issued", "numbers": "70"},
        {"field": "summary", "text": "A refund of $70 was issued.", "numbers": "70, 10"},
        {"field": "summary", "text": "It takes 10 days.", "numbers": "70, 10"},
        {
            "field": "actionItems[0]",
            "text": "Refund the duplicate charge / within 4 days",
            "numbers": "4",
        },
        {"field": "smartAnswers[0]", "text": "How long? / 10 days.", "numbers": "10"},
    ]
    assert score(REFUND, result).invented_numbers == ()
    jsonschema.validate(result, RESULT_SCHEMA)


async def test_more_repairs_when_configured() -> None:
    bad = analysis_json(summary="Refund of $70.")
    backend = ScriptedBackend([bad, bad, analysis_json(summary="Refund issued.")])
    analyzer = Analyzer(backend, AnalyzerOptions(max_repairs=2))
    result = await analyzer.summarize(REFUND.transcript(), None)
    assert result["summary"] == "Refund issued."
    assert result["metadata"]["repairs"] == 2


async def test_no_repairs_strips_at_once() -> None:
    backend = ScriptedBackend([analysis_json(summary="Charged twice. Refund of $70.")])
    result = await Analyzer(backend, AnalyzerOptions(max_repairs=0)).summarize(
        REFUND.transcript(), None
    )
    assert result["summary"] == "Charged twice."
    assert len(backend.requests) == 1


def test_find_violations_lists_fields_and_items() -> None:
    said = TranscriptNumbers.of(["order 40817 for $64.20"])
    analysis = Analysis.parse(
        json.loads(
            analysis_json(
                summary="Order 40817, $64.20, 12 items.",
                actions=[action("Ship it", "agent", "in 2 days"), action("Pay $64.20")],
                note="All fine.",
            )
        )
    )
    found = find_violations(analysis, said)
    assert [(v.field, v.index, v.numbers) for v in found] == [
        ("summary", None, "12"),
        ("actionItems", 0, "2"),
    ]


async def test_a_reply_that_is_not_json_is_asked_again() -> None:
    backend = ScriptedBackend(["Sure! Here is the summary: ...", analysis_json()])
    result = await Analyzer(backend).summarize(REFUND.transcript(), None)
    assert result["metadata"]["llm_calls"] == 2
    retry = backend.requests[1].messages[-1]
    assert retry.role == "user"
    assert retry.content == (
        "Your reply could not be used (not JSON: Expecting value at character 0). "
        "Answer again with only the JSON object the form asks for."
    )


async def test_a_reply_of_the_wrong_shape_is_asked_again_then_fails() -> None:
    wrong = json.dumps({"callHeadline": "x"})
    backend = ScriptedBackend([wrong, wrong])
    with pytest.raises(LlmError) as excinfo:
        await Analyzer(backend).summarize(REFUND.transcript(), None)
    assert str(excinfo.value) == (
        "the model's reply is not a usable analysis: analysis lacks summary, actionItems, "
        "smartAnswers, smallTalkItems, sentiment, note"
    )
    assert "analysis lacks summary" in backend.requests[1].messages[-1].content


async def test_backend_errors_propagate() -> None:
    backend = ScriptedBackend([LlmError("server on fire")])
    with pytest.raises(LlmError, match=r"^server on fire$"):
        await Analyzer(backend).summarize(REFUND.transcript(), None)


def _partial(summary: str, actions: list, customer: str, answers: list | None = None) -> str:
    return analysis_json(
        headline=summary.split(".")[0],
        summary=summary,
        actions=actions,
        answers=answers or [],
        customer=customer,
        note=summary.split(".")[0] + ".",
    )


async def test_a_long_call_is_mapped_in_chunks_and_reduced() -> None:
    case = load_case("cancellation_retention")
    budget = 500
    chunks = chunk_turns(turns_from_transcript(case.transcript()), budget)
    assert len(chunks) >= 3
    label = {"text": "Send a prepaid return kit", "owner": "agent", "dueDate": None}
    partials = [
        _partial("The customer asked to cancel.", [], "negative"),
        _partial(
            "The agent offered $49.99 for 12 months.",
            [label],
            "neutral",
            [{"question": "What happens after the 12 months?", "answer": "It goes back up."}],
        ),
    ]
    partials += [
        _partial(
            "The service stops on March 31st.",
            [dict(label, dueDate="within 5 business days")],
            "positive",
            [{"question": "what happens after the 12 months", "answer": "Standard price."}],
        )
    ] * (len(chunks) - 2)
    merged = json.dumps(
        {
            "callHeadline": "Customer cancels the bundle",
            "summary": "The customer cancelled; the service stops on March 31st.",
            "note": "Return kit on its way.",
        }
    )
    backend = ScriptedBackend([*partials, merged])
    analyzer = Analyzer(backend, AnalyzerOptions(chunk_tokens=budget))
    result = await analyzer.summarize(case.transcript(), None)

    assert len(backend.requests) == len(chunks) + 1
    for request in backend.requests[:-1]:
        assert EXCERPT_HINT in request.messages[-1].content
        assert request.json_schema == MODEL_SCHEMA
    merge = backend.requests[-1]
    assert merge.json_schema == MERGE_SCHEMA
    assert "- Headline: The customer asked to cancel\n" in merge.messages[-1].content
    assert "Summary: The agent offered $49.99 for 12 months." in merge.messages[-1].content

    assert result["callHeadline"] == "Customer cancels the bundle"
    assert result["summary"] == "The customer cancelled; the service stops on March 31st."
    # Repeated items are merged; the due date the first mention lacked is filled in.
    assert result["actionItems"] == [
        {
            "id": "action-1",
            "text": "Send a prepaid return kit",
            "owner": "agent",
            "dueDate": "within 5 business days",
        }
    ]
    assert [q["question"] for q in result["smartAnswers"]] == ["What happens after the 12 months?"]
    assert result["sentiment"] == {"agent": "neutral", "customer": "mixed"}
    assert result["metadata"]["chunks"] == len(chunks)
    jsonschema.validate(result, RESULT_SCHEMA)


async def test_the_merge_step_is_number_checked_too() -> None:
    case = load_case("cancellation_retention")
    budget = 900
    n = len(chunk_turns(turns_from_transcript(case.transcript()), budget))
    assert n >= 2
    partials = [_partial("The customer cancelled.", [], "neutral")] * n
    invented = json.dumps(
        {"callHeadline": "Cancelled", "summary": "Saved $730 a year.", "note": "Done."}
    )
    clean = json.dumps({"callHeadline": "Cancelled", "summary": "Cancelled.", "note": "Done."})
    backend = ScriptedBackend([*partials, invented, clean])
    result = await Analyzer(backend, AnalyzerOptions(chunk_tokens=budget)).summarize(
        case.transcript(), None
    )
    assert backend.requests[-1].messages[-1].content.endswith(repair_note(["730"]))
    assert result["summary"] == "Cancelled."
    assert result["metadata"]["repairs"] == 1


async def test_context_overflow_halves_the_chunk_budget() -> None:
    case = load_case("address_change")
    turns = turns_from_transcript(case.transcript())
    assert len(chunk_turns(turns, 400)) == 1
    halved = len(chunk_turns(turns, 200))
    assert halved >= 2
    replies = [ContextOverflow("too long")] + [analysis_json()] * halved
    replies.append(json.dumps({"callHeadline": "H", "summary": "S.", "note": "N."}))
    backend = ScriptedBackend(replies)
    result = await Analyzer(backend, AnalyzerOptions(chunk_tokens=400)).summarize(
        case.transcript(), None
    )
    assert result["metadata"]["chunks"] == halved
    # Counters start over with the new chunking: the failed attempt is not counted.
    assert result["metadata"]["llm_calls"] == halved + 1


async def test_a_reply_cut_off_by_max_tokens_rechunks() -> None:
    truncated = ChatCompletion(text='{"callHeadline": "Cust', model="m", finish_reason="length")
    case = load_case("short_call")
    backend = ScriptedBackend([truncated, analysis_json()])
    result = await Analyzer(backend, AnalyzerOptions(chunk_tokens=200)).summarize(
        case.transcript(), None
    )
    assert result["metadata"]["chunks"] == 1


async def test_overflowing_every_time_gives_up() -> None:
    backend = ScriptedBackend([ContextOverflow("too long")] * 40 + [analysis_json()] * 40)
    analyzer = Analyzer(backend, AnalyzerOptions(chunk_tokens=5000))
    with pytest.raises(LlmError, match=r"the call does not fit the model even in chunks of 625"):
        await analyzer.summarize(load_case("short_call").transcript(), None)


def test_chunk_budget_leaves_room_for_prompt_and_reply() -> None:
    analyzer = Analyzer(ScriptedBackend(context_tokens=4096))
    budget = analyzer.chunk_budget(DEFAULT_INSTRUCTIONS)
    assert 1500 < budget < 4096 - 768
    longer = analyzer.chunk_budget("x" * 3600)
    assert longer == budget - 1000 + estimate_tokens(DEFAULT_INSTRUCTIONS)
    assert Analyzer(ScriptedBackend(), AnalyzerOptions(chunk_tokens=99)).chunk_budget("") == 99


async def test_aclose_closes_the_backend() -> None:
    backend = ScriptedBackend()
    await Analyzer(backend).aclose()
    assert backend.closed


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("One. Two is cut o", 17, "One."),
        ("One. Two is cut o", 40, "One. Two is cut o"),  # under the cap: left alone
        ("One. Two.", 9, "One. Two."),  # at the cap but finished
        ("Only one unfinished sentence", 28, "Only one unfinished sentence"),
    ],
)
def test_finish_cut_drops_an_unfinished_last_sentence(text: str, limit: int, expected: str) -> None:
    assert finish_cut(text, limit) == expected


async def test_a_summary_cut_by_its_cap_ends_on_a_full_sentence() -> None:
    summary = ("The customer was charged twice. " * 30)[:MAX_SUMMARY_CHARS].strip()
    backend = ScriptedBackend([analysis_json(summary=summary)])
    result = await Analyzer(backend).summarize(REFUND.transcript(), None)
    assert result["summary"].endswith("charged twice.")
    assert len(result["summary"]) < MAX_SUMMARY_CHARS
