"""Adaptive Card rendering of neutral cards: valid 1.5, escaped, approvals as
Universal Actions with an Action.Submit fallback."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from adapters.chat import Button, Card, ClickResult, Field
from adapters.teams import render as cards
from adapters.teams.endpoint import execute_answer
from tests.conftest import SCHEMAS


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft6Validator:
    schema = json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text())
    return jsonschema.Draft6Validator(schema)


def approval_card() -> Card:
    return Card(
        title="Approve chat.post to #general?",
        text="Task 12 waits for approval",
        tone="warning",
        fields=(Field("Task", "#12"), Field("Step", "post")),
        body=("Post *hello* to [the channel](http://x)",),
        buttons=(
            Button("Approve", "approve", {"approval_id": 7}, "primary"),
            Button("Reject", "reject", {"approval_id": 7}, "danger"),
        ),
        link="https://cowork.example/tasks/12",
        footer="expires in 1 h",
    )


def assert_valid(validator: jsonschema.Draft6Validator, content: dict[str, Any]) -> None:
    errors = [e.message for e in validator.iter_errors(content)]
    assert errors == []


def test_every_card_shape_is_a_valid_adaptive_card_1_5(validator: jsonschema.Draft6Validator):
    for card in (approval_card(), Card(title="Done"), Card(title="t", text="only text")):
        content = cards.render(card)
        assert content["version"] == "1.5"
        assert_valid(validator, content)


def test_approval_buttons_are_action_execute_with_verbs_and_ids():
    actions = cards.render(approval_card())["actions"]
    execute = [a for a in actions if a["type"] == "Action.Execute"]
    assert [(a["verb"], a["data"], a["style"]) for a in execute] == [
        ("approve", {"approval_id": 7}, "positive"),
        ("reject", {"approval_id": 7}, "destructive"),
    ]
    assert actions[-1] == {
        "type": "Action.OpenUrl",
        "title": "Open task page",
        "url": "https://cowork.example/tasks/12",
    }


def test_older_clients_fall_back_to_action_submit_carrying_the_verb():
    fallback = cards.render(approval_card())["actions"][0]["fallback"]
    assert fallback["type"] == "Action.Submit"
    assert fallback["data"] == {"approval_id": 7, "verb": "approve"}


def test_user_text_is_shown_literally_not_as_markdown():
    body = cards.render(approval_card())["body"]
    assert body[1]["text"] == r"Post \*hello\* to \[the channel\](http://x)"
    assert cards.escape("- item\n1. first") == "\\- item\n\\1. first"


def test_a_40000_character_text_is_cut_to_what_teams_shows(validator: jsonschema.Draft6Validator):
    content = cards.render(Card(title="x", body=("a" * 40_000,)))
    assert len(content["body"][1]["text"]) == cards.MAX_TEXT
    assert content["body"][1]["text"].endswith("…")
    assert_valid(validator, content)


def test_tone_colours_the_title():
    assert cards.render(Card(title="t", tone="bad"))["body"][0]["color"] == "Attention"
    assert cards.render(Card(title="t", tone="good"))["body"][0]["color"] == "Good"


def test_accepted_click_is_answered_with_the_refreshed_card(validator: jsonschema.Draft6Validator):
    decided = Card(title="Approved by Alice at 10:02", tone="good")
    answer = execute_answer(ClickResult(True, "approved", decided), None)  # type: ignore[arg-type]
    assert answer["statusCode"] == 200
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    assert answer["value"]["body"][0]["text"] == "Approved by Alice at 10:02"
    assert_valid(validator, answer["value"])


def test_refused_click_shows_the_unchanged_card_with_the_reason(
    validator: jsonschema.Draft6Validator,
):
    result = ClickResult(False, "You are not an approver of this step", approval_card())
    answer = execute_answer(result, None)  # type: ignore[arg-type]
    assert answer["value"]["body"][-1]["text"] == "You are not an approver of this step"
    assert answer["value"]["actions"][0]["verb"] == "approve"
    assert_valid(validator, answer["value"])


def test_refused_click_without_a_card_is_answered_with_a_message():
    answer = execute_answer(ClickResult(False, "Already decided"), None)  # type: ignore[arg-type]
    assert answer == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Already decided",
    }
