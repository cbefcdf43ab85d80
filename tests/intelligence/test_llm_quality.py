"""``sipscribe.intelligence.quality`` and the test-call set in ``tests/data/calls``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipscribe.intelligence.numbercheck import TranscriptNumbers, unsupported_numbers
from sipscribe.intelligence.quality import CallCase, CaseError, load_cases, match_actions, score

from .llm_helpers import CALLS_DIR, load_case

ALL = load_cases(CALLS_DIR)


def test_the_set_covers_the_required_kinds_of_call() -> None:
    names = {c.name for c in ALL}
    assert len(ALL) >= 8
    assert {
        "order_new",
        "refund_double_charge",
        "address_change",
        "cancellation_retention",
        "complaint_missed_technician",
        "small_talk_hotel",
        "short_call",
        "long_billing_review",
    } <= names
    durations = {c.name: c.duration_s for c in ALL}
    assert durations["short_call"] < 30
    assert 270 <= durations["cancellation_retention"] <= 330  # the 5-minute call
    assert durations["long_billing_review"] >= 20 * 60
    assert [c.name for c in ALL] == sorted(names, key=lambda n: durations[n])


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_every_case_is_consistent(case: CallCase) -> None:
    segments = case.transcript()
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
    assert all(s["end"] > s["start"] for s in segments)
    assert {s["role"] for s in segments} == {"agent", "customer"}
    assert case.facts
    said = TranscriptNumbers.of(s["text"] for s in segments)
    # Expectations never rely on a number the call did not say.
    for fact in case.facts:
        for alternative in fact.any:
            assert unsupported_numbers(alternative, said) == [], (case.name, alternative)
    for item in case.action_items:
        assert item.owner in ("agent", "customer")
        assert unsupported_numbers(item.text, said) == [], (case.name, item.text)


def test_the_long_call_file_is_what_its_script_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_long_call", CALLS_DIR / "build_long_call.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stored = json.loads((CALLS_DIR / "long_billing_review.json").read_text())
    assert stored == json.loads(json.dumps(module.build()))


def test_hold_pauses_stretch_the_timeline() -> None:
    case = CallCase.parse(
        {
            "name": "x",
            "turns": [["agent", "one two"], ["customer", "three", 30]],
            "facts": [],
            "action_items": [],
            "small_talk": False,
        }
    )
    first, second = case.transcript()
    assert second["start"] - first["end"] == pytest.approx(30 + case.gap_s)


RESULT = {
    "callHeadline": "Duplicate charge refunded",
    "summary": "The customer was charged twice for order 40817. A refund of $64.20 was issued; "
    "it takes 5 to 7 business days.",
    "note": "Refund reference RF-5521.",
    "actionItems": [
        {
            "id": "action-1",
            "text": "Refund the duplicate charge",
            "owner": "agent",
            "dueDate": None,
        },
        {"id": "action-2", "text": "Send a gift card of $15", "owner": "agent", "dueDate": None},
        {
            "id": "action-3",
            "text": "Call back if the refund is late",
            "owner": "agent",
            "dueDate": None,
        },
    ],
    "smartAnswers": [],
    "smallTalkItems": [],
}


def test_score_counts_facts_actions_and_invented_numbers() -> None:
    result = score(load_case("refund_double_charge"), RESULT)
    assert (result.facts_found, result.facts_total, result.missing_facts) == (5, 5, ())
    # "Call back" has the wrong owner (the customer calls back), so only one item matches.
    assert (result.actions_matched, result.actions_expected, result.actions_produced) == (1, 3, 3)
    assert result.action_recall == pytest.approx(1 / 3)
    assert result.action_precision == pytest.approx(1 / 3)
    assert result.invented_numbers == ("15",)
    assert result.fact_recall == 1.0


def test_match_actions_is_one_to_one() -> None:
    case = load_case("complaint_missed_technician")
    produced = [{"text": "Credit the account and book a visit", "owner": "agent"}]
    assert match_actions(case.action_items, produced) == [(0, 0)]


def test_empty_expectations_score_as_perfect() -> None:
    result = score(load_case("short_call"), {"callHeadline": "", "summary": "", "note": ""})
    assert (result.action_recall, result.action_precision) == (1.0, 1.0)
    assert result.fact_recall == 0.0


def test_bad_case_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(CaseError, match=r"^bad.json cannot be read as JSON"):
        CallCase.load(bad)
    with pytest.raises(CaseError, match=r"^case lacks or misshapes 'facts'$"):
        CallCase.parse({"name": "x", "turns": [], "action_items": [], "small_talk": False})
    with pytest.raises(CaseError, match=r"^case: turn role 'bot' is not agent or customer$"):
        CallCase.parse(
            {
                "name": "x",
                "turns": [["bot", "hi"]],
                "facts": [],
                "action_items": [],
                "small_talk": False,
            }
        )
