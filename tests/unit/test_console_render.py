"""The console's pure parts: cards and text as HTML, page payloads as neutral
messages and clicks, and the task pages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from adapters.chat import Button, Card, Field
from adapters.console.inbound import parse_post, to_click, to_inbound, without_mention
from adapters.console.pages import task_list_page, task_page
from adapters.console.render import render, render_text, safe_link

APPROVAL = Card(
    title="Approval needed for task #3",
    text="Approval needed for task #3: chat.post",
    tone="warning",
    fields=(Field("Step", "post"), Field("Approvers", "alice")),
    body=("What will be done: chat.post", "Text to be posted:\nhello"),
    buttons=(
        Button("Approve", "approve", {"approval_id": 7, "task_id": 3}, "primary"),
        Button("Reject", "reject", {"approval_id": 7, "task_id": 3}, "danger"),
    ),
    link="http://127.0.0.1:3978/tasks/3",
)


def test_card_renders_title_fields_body_buttons_and_link() -> None:
    html = render(APPROVAL)
    assert html.startswith('<div class="card tone-warning">')
    assert '<div class="card-title">Approval needed for task #3</div>' in html
    assert "<dt>Step</dt><dd>post</dd>" in html
    assert '<p class="card-line">Text to be posted:\nhello</p>' in html
    assert re.findall(r'data-action="(\w+)"', html) == ["approve", "reject"]
    assert 'class="btn btn-primary"' in html and 'class="btn btn-danger"' in html
    assert '<a class="card-link" href="http://127.0.0.1:3978/tasks/3">Open task page →</a>' in html


def test_button_value_round_trips_through_its_attribute() -> None:
    html = render(APPROVAL)
    raw = re.search(r'data-value="([^"]*)"', html)
    assert raw is not None
    assert json.loads(raw.group(1).replace("&quot;", '"')) == {"approval_id": 7, "task_id": 3}


def test_every_card_string_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    card = Card(
        title=evil, fields=(Field(evil, evil),), body=(evil,), steps=(Field(evil, evil),),
        buttons=(Button(evil, evil, {"x": '"><script>'}),), footer=evil, link_label=evil,
        link="https://example.com/?q=\"><script>",
    )  # fmt: skip
    html = render(card)
    assert "<script" not in html
    assert html.count("&lt;script&gt;") == 12  # each of the 12 strings, as text


def test_plain_message_renders_as_text_without_card_chrome() -> None:
    html = render(Card(title="", text="hello <you>", body=("hello <you>",)))
    assert html == '<div class="msg-text"><p class="card-line">hello &lt;you&gt;</p></div>'
    assert "card-title" not in render(Card(title="Cowork", text="Task #1 cancelled.", body=("x",)))


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com/tasks/1", "https://example.com/tasks/1"),
        ("/tasks/1", "/tasks/1"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("data:text/html,<b>", None),
        ("//evil.example/x", None),
        ("", None),
    ],
)
def test_only_web_links_become_hrefs(url: str, safe: str | None) -> None:
    assert safe_link(url) == safe


def test_text_gets_code_spans_and_links_but_no_other_markup() -> None:
    html = render_text('run `help` at https://x.org/a?b=1&c=2. "https://e.com/q" <b>')
    assert "<code>help</code>" in html
    assert '<a href="https://x.org/a?b=1&amp;c=2" target="_blank" rel="noopener">' in html
    assert '&quot;<a href="https://e.com/q"' in html
    assert html.endswith("&lt;b&gt;")


def _post(**kw: Any) -> dict[str, Any]:
    return {"channel": "general", "user": "alice", "text": "hello", **kw}


def test_mention_becomes_an_inbound_in_a_new_thread_on_the_message() -> None:
    m = to_inbound(_post(text="@cowork run noop", channel="#General"), message_id="12", event_id="e1")
    assert m is not None
    assert (m.platform, m.tenant, m.event_id, m.user, m.text) == (
        "console",
        "local",
        "e1",
        "alice",
        "run noop",
    )
    assert (m.conversation.channel, m.conversation.thread, m.direct) == ("general", "12", False)


def test_reply_in_a_thread_stays_in_that_thread() -> None:
    m = to_inbound(_post(text="hey @cowork status 1", thread="5"), message_id="9", event_id="e")
    assert m is not None and m.conversation.thread == "5" and m.text == "hey status 1"


def test_channel_message_without_mention_is_not_for_the_bot() -> None:
    assert to_inbound(_post(text="email@cowork.dev is down"), message_id="1", event_id="e") is None
    assert to_inbound(_post(text="@coworkers hi"), message_id="1", event_id="e") is None


def test_direct_message_is_always_for_the_bot() -> None:
    m = to_inbound(_post(channel="dm-alice", text="help"), message_id="3", event_id="e")
    assert m is not None and m.direct and m.text == "help"


def test_mention_is_removed_wherever_it_is() -> None:
    assert without_mention("please @cowork  run noop @COWORK") == "please run noop"


@pytest.mark.parametrize(
    "payload",
    [
        None, [], "text", _post(user=""), _post(user="Alice Smith"), _post(text="   "),
        _post(text=3), _post(channel="secret"), _post(channel="dm-bob"), _post(thread="abc"),
        _post(thread=True), _post(text="x" * 40_001),
    ],
)  # fmt: skip
def test_malformed_post_raises_value_error(payload: Any) -> None:
    with pytest.raises(ValueError):
        parse_post(payload)


def test_click_carries_the_card_conversation() -> None:
    body = {"user": "bob", "action": "approve", "value": {"approval_id": 7}, "message_id": "4"}
    c = to_click(body, channel="general", thread="2")
    assert (c.user, c.action, c.value, c.message_id) == ("bob", "approve", {"approval_id": 7}, "4")
    assert (c.conversation.platform, c.conversation.channel, c.conversation.thread) == (
        "console", "general", "2",
    )  # fmt: skip


def _task(**kw: Any) -> dict[str, Any]:
    task = {"id": 3, "title": "Task #3: run announce", "state": "succeeded", "label": "Done",
            "final": True, "text": "run announce text=<i>hi</i>", "requester": "alice",
            "cost_text": "$0.0000", "tokens": 0}  # fmt: skip
    return {"task": {**task, **kw}, "steps": [], "approvals": [], "events": []}


def test_task_page_escapes_and_refreshes_only_while_the_task_runs() -> None:
    data = _task()
    data["steps"] = [{"key": "post", "skill": "chat.post", "state": "succeeded", "attempts": 1,
                      "result": {"text": "<i>hi</i>"}}]  # fmt: skip
    data["events"] = [{"at": "2026-11-02T09:00:00+00:00", "actor": "alice", "kind": "task.created"}]
    html = task_page(data)
    assert "<i>" not in html and "&lt;i&gt;hi&lt;/i&gt;" in html
    assert "<code>post</code>" in html and "2026-11-02 09:00:00" in html and "task.created" in html
    assert 'http-equiv="refresh"' not in html
    assert 'http-equiv="refresh"' in task_page(_task(state="running", final=False))


def test_task_list_links_each_task() -> None:
    html = task_list_page([_task()["task"]])
    assert '<a href="/tasks/3">#3</a>' in html and "Done" in html
    assert "None." in task_list_page([])


def test_mentions_are_highlighted_but_email_addresses_are_not() -> None:
    html = render_text("@cowork ask @bob, not ops@example.com")
    assert html.startswith('<span class="mention">@cowork</span> ask <span class="mention">@bob</span>')
    assert html.endswith("not ops@example.com")
