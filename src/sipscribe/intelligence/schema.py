"""The call analysis: its JSON schemas and the typed value the analyzer works with.

Two schemas, one shape. ``MODEL_SCHEMA`` is what the language model must produce; it goes
to the backend as a constrained-decoding grammar (llama.cpp) or a ``json_schema``
response format (OpenAI-compatible servers), so a reply always parses. It has no item
ids, which the model would only get wrong: ``Analysis.with_ids`` numbers the items
afterwards. ``RESULT_SCHEMA`` describes the document the analyzer returns and the API
serves (ids included, plus engine metadata). Both are written in the subset that
llama.cpp's grammar converter and OpenAI's strict mode share: every property required,
``additionalProperties: false``, nullable fields as ``["string", "null"]``, bounded arrays.

``Analysis.parse`` checks a decoded reply against the model schema by hand, with a
message that names the field and its fault, because a backend that ignores the response
format (some do) must fail loudly rather than store garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

Owner = Literal["agent", "customer"]
Mood = Literal["positive", "neutral", "negative", "mixed"]
OWNERS: tuple[str, ...] = ("agent", "customer")
MOODS: tuple[str, ...] = ("positive", "neutral", "negative", "mixed")

#: Caps on the model's free texts, enforced by the grammar: a small model asked for
#: "three to five sentences" may write ten, and every token costs about 0.1 s on two
#: cores. A text that hits its cap loses its unfinished last sentence
#: (``analyzer.finish_cut``).
MAX_HEADLINE_CHARS = 160
MAX_SUMMARY_CHARS = 700
MAX_NOTE_CHARS = 300
MAX_ACTION_ITEMS = 8
MAX_SMART_ANSWERS = 6
MAX_SMALL_TALK = 4


class AnalysisFormatError(ValueError):
    """A reply that does not have the analysis shape; the message names the field."""


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_STRING: dict[str, Any] = {"type": "string"}
_MOOD: dict[str, Any] = {"type": "string", "enum": list(MOODS)}
_SENTIMENT = _object({"agent": _MOOD, "customer": _MOOD})


def _capped(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_chars}


def _items(item: dict[str, Any], max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": max_items}


_ACTION = {
    "text": _STRING,
    "owner": {"type": "string", "enum": list(OWNERS)},
    "dueDate": {"type": ["string", "null"]},
}
_ANSWER = {"question": _STRING, "answer": _STRING}
_SMALL_TALK = {"topic": _STRING, "description": _STRING}

#: What the model writes for a whole call, or for one chunk of a long one. The order of
#: properties is the order of generation: the headline and summary come first, so the
#: items are written with the gist already decided.
MODEL_SCHEMA: dict[str, Any] = _object(
    {
        "callHeadline": _capped(MAX_HEADLINE_CHARS),
        "summary": _capped(MAX_SUMMARY_CHARS),
        "actionItems": _items(_object(_ACTION), MAX_ACTION_ITEMS),
        "smartAnswers": _items(_object(_ANSWER), MAX_SMART_ANSWERS),
        "smallTalkItems": _items(_object(_SMALL_TALK), MAX_SMALL_TALK),
        "sentiment": _SENTIMENT,
        "note": _capped(MAX_NOTE_CHARS),
    }
)

#: What the model writes when it merges the partial analyses of a long call's chunks
#: (items and sentiment are merged without the model, see ``chunking.py``).
MERGE_SCHEMA: dict[str, Any] = _object(
    {
        "callHeadline": _capped(MAX_HEADLINE_CHARS),
        "summary": _capped(MAX_SUMMARY_CHARS),
        "note": _capped(MAX_NOTE_CHARS),
    }
)

_ID = {"type": "string"}

#: The document ``Analyzer.summarize`` returns (stored and served by the summary API).
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "engine": {"type": "string", "const": "llm"},
        "model": _STRING,
        "callHeadline": _STRING,
        "summary": _STRING,
        "actionItems": {"type": "array", "items": _object({"id": _ID, **_ACTION})},
        "smartAnswers": {"type": "array", "items": _object({"id": _ID, **_ANSWER})},
        "smallTalkItems": {"type": "array", "items": _object({"id": _ID, **_SMALL_TALK})},
        "sentiment": _SENTIMENT,
        "note": _STRING,
        "instructions_applied": {"type": "boolean"},
        "metadata": {
            "type": "object",
            "properties": {
                "chunks": {"type": "integer", "minimum": 0},
                "llm_calls": {"type": "integer", "minimum": 0},
                "repairs": {"type": "integer", "minimum": 0},
                "removed": {
                    "type": "array",
                    "items": _object({"field": _STRING, "text": _STRING, "numbers": _STRING}),
                },
                "prompt_tokens": {"type": "integer", "minimum": 0},
                "completion_tokens": {"type": "integer", "minimum": 0},
                "seconds": {"type": "number", "minimum": 0},
            },
            "required": [
                "chunks",
                "llm_calls",
                "repairs",
                "removed",
                "prompt_tokens",
                "completion_tokens",
                "seconds",
            ],
        },
    },
    "required": [
        "engine",
        "model",
        "callHeadline",
        "summary",
        "actionItems",
        "smartAnswers",
        "smallTalkItems",
        "sentiment",
        "note",
        "instructions_applied",
        "metadata",
    ],
}


@dataclass(frozen=True, slots=True)
class ActionItem:
    """Something a party committed to do after the call."""

    text: str
    owner: Owner
    due_date: str | None = None  # as said ("by Friday"), never computed
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "owner": self.owner, "dueDate": self.due_date}


@dataclass(frozen=True, slots=True)
class SmartAnswer:
    """A question the customer asked and what the agent answered."""

    question: str
    answer: str
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "answer": self.answer}


@dataclass(frozen=True, slots=True)
class SmallTalkItem:
    """Conversation unrelated to the business of the call (weather, sport, family)."""

    topic: str
    description: str
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "description": self.description}


@dataclass(frozen=True, slots=True)
class Sentiment:
    """The mood of each party over the call."""

    agent: Mood = "neutral"
    customer: Mood = "neutral"

    def to_dict(self) -> dict[str, str]:
        return {"agent": self.agent, "customer": self.customer}


@dataclass(frozen=True, slots=True)
class Analysis:
    """One call's (or one chunk's) analysis, as the model wrote it after checking."""

    headline: str
    summary: str
    action_items: tuple[ActionItem, ...] = ()
    smart_answers: tuple[SmartAnswer, ...] = ()
    small_talk: tuple[SmallTalkItem, ...] = ()
    sentiment: Sentiment = field(default_factory=Sentiment)
    note: str = ""

    @classmethod
    def parse(cls, data: Any) -> Analysis:
        """Check a decoded ``MODEL_SCHEMA`` reply (ids optional) and type it."""
        obj = _expect_object(data, "analysis", MODEL_SCHEMA["properties"])
        actions = [
            ActionItem(
                text=_text(item, "text", where),
                owner=cast(Owner, _choice(item, "owner", OWNERS, where)),
                due_date=_optional_text(item, "dueDate", where),
                id=_optional_text(item, "id", where) or "",
            )
            for where, item in _list(obj, "actionItems", _ACTION)
        ]
        answers = [
            SmartAnswer(
                question=_text(item, "question", where),
                answer=_text(item, "answer", where),
                id=_optional_text(item, "id", where) or "",
            )
            for where, item in _list(obj, "smartAnswers", _ANSWER)
        ]
        small_talk = [
            SmallTalkItem(
                topic=_text(item, "topic", where),
                description=_text(item, "description", where),
                id=_optional_text(item, "id", where) or "",
            )
            for where, item in _list(obj, "smallTalkItems", _SMALL_TALK)
        ]
        return cls(
            headline=_text(obj, "callHeadline", "analysis"),
            summary=_text(obj, "summary", "analysis"),
            action_items=tuple(actions),
            smart_answers=tuple(answers),
            small_talk=tuple(small_talk),
            sentiment=parse_sentiment(obj.get("sentiment"), "analysis.sentiment"),
            note=_text(obj, "note", "analysis"),
        )

    def with_ids(self) -> Analysis:
        """Items numbered in order: ``action-1``, ``answer-1``, ``smalltalk-1``."""
        return replace(
            self,
            action_items=tuple(
                replace(a, id=f"action-{i}") for i, a in enumerate(self.action_items, 1)
            ),
            smart_answers=tuple(
                replace(a, id=f"answer-{i}") for i, a in enumerate(self.smart_answers, 1)
            ),
            small_talk=tuple(
                replace(s, id=f"smalltalk-{i}") for i, s in enumerate(self.small_talk, 1)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """The analysis fields of ``RESULT_SCHEMA`` (camelCase, as served)."""
        return {
            "callHeadline": self.headline,
            "summary": self.summary,
            "actionItems": [a.to_dict() for a in self.action_items],
            "smartAnswers": [a.to_dict() for a in self.smart_answers],
            "smallTalkItems": [s.to_dict() for s in self.small_talk],
            "sentiment": self.sentiment.to_dict(),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class MergedGist:
    """The merge step's reply: the whole call's headline, summary and note."""

    headline: str
    summary: str
    note: str

    @classmethod
    def parse(cls, data: Any) -> MergedGist:
        obj = _expect_object(data, "merge", MERGE_SCHEMA["properties"])
        return cls(
            headline=_text(obj, "callHeadline", "merge"),
            summary=_text(obj, "summary", "merge"),
            note=_text(obj, "note", "merge"),
        )


def parse_sentiment(data: Any, where: str) -> Sentiment:
    obj = _expect_object(data, where, _SENTIMENT["properties"])
    return Sentiment(
        agent=cast(Mood, _choice(obj, "agent", MOODS, where)),
        customer=cast(Mood, _choice(obj, "customer", MOODS, where)),
    )


# -- checking helpers --------------------------------------------------------------------


def _expect_object(data: Any, where: str, properties: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AnalysisFormatError(f"{where} is {type(data).__name__}, not an object")
    missing = [name for name in properties if name not in data]
    if missing:
        raise AnalysisFormatError(f"{where} lacks {', '.join(missing)}")
    return data


def _text(obj: dict[str, Any], name: str, where: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise AnalysisFormatError(f"{where}.{name} is {type(value).__name__}, not a string")
    return " ".join(value.split())


def _optional_text(obj: dict[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnalysisFormatError(f"{where}.{name} is {type(value).__name__}, not a string or null")
    return " ".join(value.split()) or None


def _choice(obj: dict[str, Any], name: str, allowed: tuple[str, ...], where: str) -> str:
    value = obj[name]
    if value not in allowed:
        raise AnalysisFormatError(f"{where}.{name} is {value!r}, not one of {', '.join(allowed)}")
    return str(value)


def _list(
    obj: dict[str, Any], name: str, properties: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    value = obj[name]
    if not isinstance(value, list):
        raise AnalysisFormatError(f"analysis.{name} is {type(value).__name__}, not an array")
    out = []
    for i, item in enumerate(value):
        where = f"analysis.{name}[{i}]"
        out.append((where, _expect_object(item, where, properties)))
    return out
