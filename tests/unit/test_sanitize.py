"""adapters/sanitize.py and the Slack payload check: pure functions at the edge."""

from __future__ import annotations

import json

import pytest

from adapters import sanitize
from adapters.chat import ConversationRef, Inbound
from adapters.slack.shapes import problem, unreadable
from bot.application.commands import parse


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), ("42", 42), (" #7 ", 7), (12.0, 12), (2**31 - 1, 2**31 - 1), (2**31, None), (10**30, None),
     (float("inf"), None), (float("nan"), None), (1e308, None), (0, None), (-3, None), (True, None),
     ("²", None), ("9" * 20, None), ("1e3", None), (None, None), ([1], None)],
)  # fmt: skip
def test_db_id_takes_only_ids_every_database_holds(value: object, expected: int | None) -> None:
    assert sanitize.db_id(value) == expected


def test_unstorable_characters_become_the_replacement_character_everywhere() -> None:
    ref = ConversationRef("slack", "T\x00", "C1", extra={"k\ud800": ["a\x00", {"b": "\udfff"}]})
    m = Inbound("slack", "T\x00", "Ev\x00", "U1", "hi \ud800 there", ref, user_name="A\x00")
    clean = sanitize.sanitized(m)
    assert clean.text == "hi \ufffd there" and clean.event_id == "Ev\ufffd" and clean.user_name == "A\ufffd"
    assert (
        clean.conversation.extra == {"k\ufffd": ["a\ufffd", {"b": "\ufffd"}]} and clean.conversation.tenant == "T\ufffd"
    )
    json.dumps(clean.conversation.to_json()).encode("utf-8")  # storable
    plain = Inbound("slack", "T1", "Ev1", "U1", "hi", ConversationRef("slack", "T1", "C1"))
    assert sanitize.sanitized(plain) is plain


def test_json_nested_past_the_limit_is_a_value_error() -> None:
    assert sanitize.loads('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    for depth in (sanitize.MAX_DEPTH + 1, 5000):
        with pytest.raises(ValueError, match="nested"):
            sanitize.loads("[" * depth + "]" * depth)


def test_a_task_number_no_database_holds_is_a_polite_error() -> None:
    assert parse("status 12").task_id == 12  # type: ignore[union-attr]
    assert parse("status 99999999999999999999").error == "There is no task #99999999999999999999."  # type: ignore[union-attr]
    assert parse("cancel ²").error == "There is no task #²."  # type: ignore[union-attr]


def test_slack_payload_shapes() -> None:
    mention = {"type": "event_callback", "team_id": "T1", "event": {"type": "app_mention", "text": "x", "user": {}}}
    assert problem(mention) is None
    assert problem({"type": "block_actions", "team": None, "actions": [{"action_id": "approve"}]}) is None
    assert problem({"type": "event_callback", "event": "hello"}) == "`event` has the wrong type"
    assert (
        problem({"type": "block_actions", "actions": [{"action_id": None}]})
        == "`actions[].action_id` has the wrong type"
    )
    assert problem({"type": "block_actions", "actions": []}) == "`actions` is empty"
    assert problem({"type": "block_actions", "actions": [{}]}) == "`actions[].action_id` is missing"
    assert unreadable("payload=" + json.dumps({"type": "block_actions", "actions": "x"}), None) is not None
    assert unreadable("[" * 100 + "]" * 100, "application/json") == "not an object"
    assert unreadable('{"a":' * 100 + "1" + "}" * 100, "application/json") == "nested more than 64 levels deep"
