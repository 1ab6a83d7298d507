"""The shape of a Slack payload, checked before slack-bolt sees it.

bolt's matchers index a payload as Slack sends it (`body["event"]["type"]`,
`body["actions"][0]["action_id"]`, a regex search over those ids) and a listener
error is its 500. A signed payload with another shape ("event": "hello", a
number as a type or an action id, `actions` that is not a list of objects) did
not come from Slack as documented: it is answered 400 and nothing is stored.
Pure; `unreadable` and `problem` say what is wrong, or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_bolt.request.internals import parse_body

from adapters.sanitize import MAX_DEPTH, too_deep

# Ids and names bolt matches on or reads, at the top level: strings when present. bolt
# tests most keys for presence and then indexes them, so null is allowed only where Slack
# sends it (NULLABLE) and bolt looks before it leaps.
TEXT = ("type", "command", "callback_id", "action_id", "block_id", "trigger_id", "team_id", "user_id",
        "channel_id", "enterprise_id", "api_app_id", "event_id", "response_url", "text", "token")  # fmt: skip
OBJECT_OR_TEXT = ("user", "team", "channel", "enterprise")
OBJECTS = ("event", "view", "container", "message", "workflow_step", "function_data", "state", "assistant_thread")
LISTS_OF_OBJECTS = ("actions", "authorizations", "response_urls")
NULLABLE = frozenset({"team", "enterprise", "enterprise_id", "channel", "user", "response_url", "api_app_id",
                      "token", "message", "container", "state", "subtype", "channel_type", "tab", "block_id",
                      "previous_message", "item"})  # fmt: skip
EVENT_TEXT = ("type", "subtype", "channel_type", "tab")  # what bolt matches on; the rest is ours to read
EVENT_OBJECTS = ("message", "previous_message", "item", "assistant_thread")
ACTION_TEXT = ("action_id", "block_id", "type")


def unreadable(raw: str, content_type: str | None) -> str | None:
    """Why bolt could not read this request body (parsed as bolt parses it), or None."""
    try:
        body = parse_body(raw, content_type)
    except (ValueError, RecursionError):
        return "not JSON or a form"
    if not isinstance(body, dict):
        return "not an object"
    return f"nested more than {MAX_DEPTH} levels deep" if too_deep(body) else problem(body)


def _wrong(body: Mapping[str, Any], keys: tuple[str, ...], kinds: tuple[type, ...]) -> str | None:
    for key in keys:
        if key not in body or (body[key] is None and key in NULLABLE):
            continue
        if not isinstance(body[key], kinds):
            return key
    return None


def problem(body: Mapping[str, Any]) -> str | None:
    """What makes this payload unlike anything Slack sends, or None."""
    key = (_wrong(body, TEXT, (str,)) or _wrong(body, OBJECT_OR_TEXT, (str, dict))
           or _wrong(body, OBJECTS, (dict,)) or _wrong(body, LISTS_OF_OBJECTS, (list,)))  # fmt: skip
    if key:
        return f"`{key}` has the wrong type"
    for key in LISTS_OF_OBJECTS:
        if not all(isinstance(item, dict) for item in body.get(key) or []):
            return f"`{key}` must hold objects"
    if body.get("actions") == []:
        return "`actions` is empty"
    event = body.get("event")
    if event is not None:
        key = _wrong(event, EVENT_TEXT, (str,)) or _wrong(event, EVENT_OBJECTS, (dict,))
        if key:
            return f"`event.{key}` has the wrong type"
    for action in body.get("actions") or []:
        key = _wrong(action, ACTION_TEXT, (str,))
        if key:
            return f"`actions[].{key}` has the wrong type"
        if body.get("type") == "block_actions" and "action_id" not in action:
            return "`actions[].action_id` is missing"  # bolt's action matcher reads it unguarded
    view = body.get("view")
    if view is not None and _wrong(view, ("type", "callback_id", "app_installed_team_id"), (str,)):
        return "`view` has the wrong shape"
    return None
