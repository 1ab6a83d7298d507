"""manifest/slack.yaml is a valid Slack app manifest, and everything it
subscribes to (events, the slash command, interactivity) reaches a handler."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, SCHEMAS
from tests.fakes.slack_api import click_payload, mention_event
from tests.fakes.slack_endpoint import Env, running_endpoint

MANIFEST = yaml.safe_load((ROOT / "manifest" / "slack.yaml").read_text())


def test_the_manifest_matches_slacks_schema() -> None:
    schema = json.loads((SCHEMAS / "slack-app-manifest-1.0.0.json").read_text())
    jsonschema.Draft7Validator(schema).validate(MANIFEST)


def test_every_request_url_points_at_the_one_endpoint() -> None:
    urls = [
        MANIFEST["settings"]["event_subscriptions"]["request_url"],
        MANIFEST["settings"]["interactivity"]["request_url"],
        *(c["url"] for c in MANIFEST["features"]["slash_commands"]),
    ]
    assert {u.rsplit("/", 2)[-2:] == ["slack", "events"] for u in urls} == {True}


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running_endpoint() as e:
        yield e


def _event(kind: str) -> dict[str, Any]:
    body = mention_event("help", event_id=f"E-{kind}")
    if kind == "message.im":
        body["event"] = {**body["event"], "type": "message", "channel_type": "im", "channel": "D1"}
    elif kind == "app_home_opened":
        body["event"] = {"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"}
    return body


async def _published(e: Env) -> bool:
    return bool(await e.slack.wait_for("views.publish"))


EFFECT: dict[str, Callable[[Env, str], Any]] = {
    "app_mention": lambda e, kind: f"E-{kind}" in e.bot.messages,
    "message.im": lambda e, kind: e.bot.messages[f"E-{kind}"].direct,
    "app_home_opened": lambda e, kind: _published(e),
}


@pytest.mark.parametrize("kind", MANIFEST["settings"]["event_subscriptions"]["bot_events"])
async def test_every_subscribed_event_has_a_handler(env: Env, kind: str) -> None:
    assert kind in EFFECT, f"the manifest subscribes to {kind} but nothing handles it"
    assert (await env.event(_event(kind))).status == 200
    effect = EFFECT[kind](env, kind)
    assert (await effect) if not isinstance(effect, bool) else effect


@pytest.mark.parametrize("command", [c["command"] for c in MANIFEST["features"]["slash_commands"]])
async def test_every_declared_command_has_a_handler(env: Env, command: str) -> None:
    fields = {"command": command, "text": "help", "team_id": "T1", "channel_id": "C1",
              "user_id": "U1", "trigger_id": "t1"}  # fmt: skip
    assert (await env.form(fields)).status == 200
    assert "command:t1" in env.bot.messages


@pytest.mark.parametrize("action", ["approve", "reject"])
async def test_interactivity_reaches_the_click_handler(env: Env, action: str) -> None:
    assert MANIFEST["settings"]["interactivity"]["is_enabled"]
    payload = json.dumps(click_payload(action, '{"approval_id": 1}'))
    assert (await env.form({"payload": payload})).status == 200
    assert [c.action for c in env.bot.clicks] == [action]
