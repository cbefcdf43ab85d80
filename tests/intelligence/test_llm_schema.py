"""``sipscribe.intelligence.schema``: the schemas agree with the typed checker."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from sipscribe.intelligence.schema import (
    MERGE_SCHEMA,
    MODEL_SCHEMA,
    RESULT_SCHEMA,
    ActionItem,
    Analysis,
    AnalysisFormatError,
    MergedGist,
    Sentiment,
    SmallTalkItem,
    SmartAnswer,
)

from .llm_helpers import action, analysis_json

GOOD = json.loads(
    analysis_json(
        actions=[action("Send a label", "agent", "today"), action("Return the box", "customer")],
        answers=[{"question": "How long?", "answer": "Five days."}],
        small_talk=[{"topic": "Weather", "description": "Rain all week."}],
        agent="positive",
        customer="mixed",
    )
)


def test_a_good_reply_passes_both_checks() -> None:
    jsonschema.validate(GOOD, MODEL_SCHEMA)
    analysis = Analysis.parse(GOOD)
    assert analysis.action_items == (
        ActionItem("Send a label", "agent", "today"),
        ActionItem("Return the box", "customer", None),
    )
    assert analysis.smart_answers == (SmartAnswer("How long?", "Five days."),)
    assert analysis.small_talk == (SmallTalkItem("Weather", "Rain all week."),)
    assert analysis.sentiment == Sentiment("positive", "mixed")


def test_ids_are_numbered_per_list() -> None:
    numbered = Analysis.parse(GOOD).with_ids()
    assert [a.id for a in numbered.action_items] == ["action-1", "action-2"]
    assert [a.id for a in numbered.smart_answers] == ["answer-1"]
    assert [s.id for s in numbered.small_talk] == ["smalltalk-1"]
    out = numbered.to_dict()
    assert out["actionItems"][0] == {
        "id": "action-1",
        "text": "Send a label",
        "owner": "agent",
        "dueDate": "today",
    }
    # Parsing the served form (ids included) gives the same analysis back.
    assert Analysis.parse(out) == numbered


def test_whitespace_is_normalised_and_empty_due_dates_are_null() -> None:
    data = copy.deepcopy(GOOD)
    data["summary"] = "  Two\n lines  "
    data["actionItems"][0]["dueDate"] = "  "
    analysis = Analysis.parse(data)
    assert analysis.summary == "Two lines"
    assert analysis.action_items[0].due_date is None


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["summary"], _DELETE, "analysis lacks summary"),
        (["summary"], 3, "analysis.summary is int, not a string"),
        (["actionItems"], {}, "analysis.actionItems is dict, not an array"),
        (["actionItems", 1], "do it", "analysis.actionItems[1] is str, not an object"),
        (
            ["actionItems", 0, "owner"],
            "boss",
            "analysis.actionItems[0].owner is 'boss', not one of agent, customer",
        ),
        (
            ["actionItems", 0, "dueDate"],
            5,
            "analysis.actionItems[0].dueDate is int, not a string or null",
        ),
        (["smartAnswers", 0, "answer"], _DELETE, "analysis.smartAnswers[0] lacks answer"),
        (
            ["sentiment", "customer"],
            "angry",
            "analysis.sentiment.customer is 'angry', not one of positive, neutral, negative, mixed",
        ),
        (["sentiment"], None, "analysis.sentiment is NoneType, not an object"),
    ],
)
def test_bad_replies_name_the_field(path: list[Any], value: Any, message: str) -> None:
    data = _broken(path, value)
    with pytest.raises(AnalysisFormatError) as excinfo:
        Analysis.parse(data)
    assert str(excinfo.value) == message
    # The JSON schema the model is constrained by rejects the same replies.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, MODEL_SCHEMA)


def test_not_an_object() -> None:
    with pytest.raises(AnalysisFormatError, match=r"^analysis is list, not an object$"):
        Analysis.parse([])


def test_merge_gist() -> None:
    gist = {"callHeadline": "H", "summary": "S", "note": "N"}
    jsonschema.validate(gist, MERGE_SCHEMA)
    assert MergedGist.parse(gist) == MergedGist("H", "S", "N")
    with pytest.raises(AnalysisFormatError, match=r"^merge lacks note$"):
        MergedGist.parse({"callHeadline": "H", "summary": "S"})


def test_schemas_are_strict_subset_friendly() -> None:
    """Every object lists all its properties as required and forbids others: the subset
    both llama.cpp's grammar converter and OpenAI's strict mode accept."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node["required"] == list(node["properties"])
                assert node["additionalProperties"] is False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(MODEL_SCHEMA)
    walk(MERGE_SCHEMA)
    jsonschema.Draft202012Validator.check_schema(RESULT_SCHEMA)
