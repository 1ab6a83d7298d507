"""The Slack endpoint on loopback with a recording bot behind it and the fake Slack Web API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat import Card, Click, ClickResult, Handled, Inbound
from adapters.slack import SlackAdapter, SlackEndpoint, build_app
from tests.fakes.slack_api import FakeSlack, fake_slack, signed_headers

SECRET = "s3cret"


@dataclass
class FakeBot:
    """Stands in for bot.Conversation: records, and dedupes on event_id like the store."""

    messages: dict[str, Inbound] = field(default_factory=dict)
    clicks: list[Click] = field(default_factory=list)

    async def handle_message(self, m: Inbound) -> Handled:
        self.messages.setdefault(m.event_id, m)
        return Handled("task", task_id=len(self.messages))

    async def handle_click(self, c: Click) -> ClickResult:
        self.clicks.append(c)
        return ClickResult(True, "Approved.")

    async def home(self, platform: str, tenant: str, user: str) -> list[Card]:
        return [Card(title=f"Task for {user}")]


@dataclass
class Env:
    url: str
    http: aiohttp.ClientSession
    bot: FakeBot
    slack: FakeSlack

    async def send(self, body: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.http.post(self.url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            return resp

    async def event(self, payload: dict[str, Any], **headers: str) -> aiohttp.ClientResponse:
        body = json.dumps(payload)
        return await self.send(body, {**signed_headers(body, SECRET), **headers})

    async def form(self, fields: dict[str, str]) -> aiohttp.ClientResponse:
        body = urlencode(fields)
        return await self.send(body, signed_headers(body, SECRET, content_type="application/x-www-form-urlencoded"))


@asynccontextmanager
async def running_endpoint() -> AsyncIterator[Env]:
    """The endpoint on loopback, with a fake bot behind it and a fake Slack API."""
    async with fake_slack() as slack:
        bot = FakeBot()
        adapter = SlackAdapter(AsyncWebClient(token="xoxb-t", base_url=slack.base_url))
        app = build_app(
            adapter,
            signing_secret=SECRET,
            on_message=bot.handle_message,
            on_click=bot.handle_click,
            home=bot,
        )
        web_app = web.Application()
        web_app.router.add_post("/slack/events", SlackEndpoint(app, SECRET).handle)
        runner = web.AppRunner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            yield Env(f"http://127.0.0.1:{port}/slack/events", http, bot, slack)
        await runner.cleanup()
