"""Block Kit rendering: neutral cards -> blocks that Slack accepts, user text escaped,
over-long text cut with a pointer to the task page, never rejected."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from adapters.chat import Button, Card, Field
from adapters.slack.home import render_home
from adapters.slack.render import CUT, MAX_BLOCKS, clip, escape, render
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"


def parsed(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Round-trip through slack_sdk's models: it raises on over-long fields."""
    assert len(blocks) <= MAX_BLOCKS
    out = []
    for b in blocks:
        model = Block.parse(b)
        assert model is not None
        out.append(model.to_dict())
    return out


def approval_card() -> Card:
    return Card(
        title="Approve: post to #eng",
        text="Approve: post to #eng",
        tone="warning",
        body=("Task #7 wants to post a message. <!channel> & <@U999> should stay text.",),
        fields=(Field("Requested by", "<@U123>"), Field("Skill", "chat.post")),
        steps=(Field("post", "waiting for approval"),),
        buttons=(
            Button("Approve", "approve", {"approval_id": 3}, "primary"),
            Button("Reject", "reject", {"approval_id": 3}, "danger"),
        ),
        link="https://cowork.example/tasks/7",
        footer="expires in 1 h",
    )


def decided_card() -> Card:
    return Card(
        title="Approved: post to #eng",
        text="Task #7 may post.",
        tone="good",
        fields=(Field("Decided by", "alice"), Field("At", "2026-11-02 09:05 UTC")),
        link="https://cowork.example/tasks/7",
    )


@pytest.mark.parametrize("name, card", [("approval", approval_card()), ("decided", decided_card())])
def test_cards_render_like_the_golden_snapshot(name: str, card: Card) -> None:
    blocks = parsed(render(card))
    path = GOLDEN / f"slack_{name}.json"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.write_text(json.dumps(blocks, indent=2, ensure_ascii=False) + "\n")
    assert blocks == json.loads(path.read_text())


def test_approval_buttons_carry_action_ids_and_json_values() -> None:
    actions = [b for b in render(approval_card()) if b["type"] == "actions"][0]["elements"]
    assert [(e["action_id"], e.get("value")) for e in actions[:2]] == [
        ("approve", '{"approval_id":3}'),
        ("reject", '{"approval_id":3}'),
    ]
    assert actions[2]["url"] == "https://cowork.example/tasks/7"


def test_the_fallback_text_is_shown_only_when_nothing_else_says_it() -> None:
    assert "Approve: post to #eng" not in json.dumps(render(approval_card())[1:])
    assert render(Card(title="", text="hi", body=("hi",))) == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    ]
    assert render(Card(title="t", text="only me"))[1]["text"]["text"] == "only me"


def test_decided_card_has_no_decision_buttons() -> None:
    ids = [e["action_id"] for b in render(decided_card()) if b["type"] == "actions" for e in b["elements"]]
    assert ids == ["open_task"]


def test_mention_injection_is_escaped_as_text() -> None:
    text = json.dumps(render(approval_card()))
    assert "<!channel>" not in text and "<@U999>" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U999&gt;" in text


def test_a_long_section_is_cut_with_a_pointer_to_the_task_page() -> None:
    blocks = parsed(render(Card(title="t", text="x" * 40_000)))
    section = blocks[1]["text"]["text"]
    assert len(section) <= 3000 and section.endswith(CUT)


def test_cutting_never_splits_an_escape_sequence() -> None:
    out = clip("&" * 2000, 3000)
    assert out.endswith(CUT)
    assert out.removesuffix(CUT) == "&amp;" * ((3000 - len(CUT)) // 5)


def test_too_many_steps_and_paragraphs_stay_within_fifty_blocks() -> None:
    card = Card(
        title="big",
        body=tuple(f"para {i}" for i in range(80)),
        steps=tuple(Field(f"s{i}", "done " * 200) for i in range(100)),
        buttons=(Button("Approve", "approve", {"approval_id": 1}),),
        footer="f",
    )
    blocks = parsed(render(card))
    assert len(blocks) == MAX_BLOCKS
    assert blocks[-2]["type"] == "actions" and blocks[-1]["type"] == "context"
    assert "truncated, see task page" in json.dumps(blocks[-3])


def test_an_over_long_title_and_button_label_are_shortened() -> None:
    card = Card(title="T" * 500, buttons=(Button("B" * 200, "approve", {"approval_id": 1}),))
    blocks = parsed(render(card))
    assert len(blocks[0]["text"]["text"]) <= 150


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(max_size=300),
    text=st.text(max_size=4000),
    fields=st.lists(st.tuples(st.text(max_size=300), st.text(max_size=2500)), max_size=14),
    footer=st.text(max_size=4000),
)
def test_any_card_renders_to_blocks_slack_accepts(
    title: str, text: str, fields: list[tuple[str, str]], footer: str
) -> None:
    card = Card(
        title=title or "t",
        text=text,
        fields=tuple(Field(a, b) for a, b in fields),
        footer=footer,
        link="https://x.example/t/1",
    )
    blocks = parsed(render(card))
    assert "<!" not in json.dumps(blocks)


def test_home_view_lists_cards_within_the_view_limit() -> None:
    view = render_home([approval_card()] * 40)
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    parsed_ = [Block.parse(b) for b in view["blocks"]]
    assert all(p is not None for p in parsed_)
    assert "more" in json.dumps(view["blocks"][-1])


def test_escape_handles_slacks_three_control_characters() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
