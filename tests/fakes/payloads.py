"""Requests the way each platform sends them, with any value in any place: the
building blocks of the fuzz tests (tests/e2e/test_fuzz.py, tests/e2e/fuzz_random.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from tests.fakes.bot_connector import execute_invoke, teams_activity
from tests.fakes.served import Served

FORM = "application/x-www-form-urlencoded"


def raw_json(value: Any) -> str:
    """JSON as Python writes it: Infinity and NaN included, lone surrogates escaped."""
    return json.dumps(value)


def slack_event(served: Served, text: Any, *, event_id: Any = None, team_id: Any = "T1", **event: Any) -> int:
    """A signed app_mention (or any event, given `type`)."""
    body = {"type": "event_callback", "team_id": team_id, "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
            "event": {"type": "app_mention", "user": "U1", "channel": "C1", "ts": f"1.{uuid.uuid4().int % 10**6}",
                      "text": text, **event}}  # fmt: skip
    return served.slack(raw_json(body))


def slack_action(served: Served, value: str, *, action_id: Any = "approve", **top: Any) -> int:
    """A signed block_actions click; `value` is the button's raw value string."""
    body = {"type": "block_actions", "user": {"id": "U1", "team_id": "T1"}, "team": {"id": "T1"},
            "actions": [{"action_id": action_id, "value": value, "type": "button", "block_id": "b"}],
            "container": {"channel_id": "C1", "message_ts": "1.1"}, "channel": {"id": "C1"}, **top}  # fmt: skip
    return served.slack(urlencode({"payload": raw_json(body)}), FORM)


def slack_payload(served: Served, body: dict[str, Any]) -> int:
    return served.slack(urlencode({"payload": raw_json(body)}), FORM)


def teams_message(served: Served, text: Any, *, id: str | None = None, **extra: Any) -> tuple[int, bytes]:
    activity = teams_activity(served.service_url, id=id or f"t-{uuid.uuid4().hex[:10]}", text=None,
                              conversation_type="personal", mention_bot=False, **extra)  # fmt: skip
    activity["text"] = text
    return served.teams(raw_json(activity).encode())


def teams_click(served: Served, approval_id: Any) -> tuple[int, bytes]:
    invoke = execute_invoke(served.service_url, "approve", {"approval_id": approval_id}, id=f"i-{uuid.uuid4().hex}")
    return served.teams(raw_json(invoke).encode())


def console_post(served: Served, text: Any, user: Any = "alice", **extra: Any) -> int:
    body = raw_json({"user": user, "channel": "general", "text": text, **extra}).encode()
    return served.send("POST", "/api/console/messages", body, {"Content-Type": "application/json"})


def console_click(served: Served, approval_id: Any, message_id: Any = 1) -> int:
    body = raw_json({"user": "alice", "action": "approve", "value": {"approval_id": approval_id},
                     "message_id": message_id}).encode()  # fmt: skip
    return served.send("POST", "/api/console/actions", body, {"Content-Type": "application/json"})


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth
