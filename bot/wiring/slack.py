"""Slack wiring: builds the Slack adapter and endpoint from Settings, hands the
adapter to the delivery loop and mounts POST /slack/events (or opens Socket
Mode when SLACK_APP_TOKEN is set). Also the App Home's data source."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from adapters import sanitize
from adapters.chat import Card
from adapters.slack import SlackAdapter, SlackEndpoint, build_app, socket_mode
from bot.application import cards
from bot.assembly.runtime import Runtime
from tasks.rules.states import FINAL, TaskState

log = logging.getLogger(__name__)
OPEN_STATES = [s.value for s in TaskState if s not in FINAL]
HOME_TASKS = 10


class RuntimeHome:
    """`HomeSource` over the store: approvals waiting for the person, then
    their own open tasks."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def home(self, platform: str, tenant: str, user: str) -> list[Card]:
        tenant, user = sanitize.text(tenant), sanitize.text(user)
        store, now, base = (
            self.runtime.store,
            self.runtime.clock(),
            self.runtime.settings.base_url(),
        )
        waiting = await store.list_tasks(states=[TaskState.WAITING.value], platform=platform, tenant=tenant, limit=50)
        out: list[Card] = []
        for task in waiting:
            view = await store.view(int(task.id or 0))
            for a in view.approvals:
                if a.state == "pending" and user in (a.approvers or [task.requester]):
                    out.append(cards.approval_card(a, task, now, base))
        mine = await store.list_tasks(
            states=OPEN_STATES, requester=user, platform=platform, tenant=tenant, limit=HOME_TASKS
        )
        for task in mine:
            out.append(cards.task_card(await store.view(int(task.id or 0)), now, base))
        return out


def make_adapter(runtime: Runtime) -> SlackAdapter:
    s = runtime.settings
    token = s.slack_bot_token.get_secret_value() if s.slack_bot_token else ""
    base_url = s.slack_api_url if s.slack_api_url.endswith("/") else s.slack_api_url + "/"
    return SlackAdapter(AsyncWebClient(token=token, base_url=base_url))


def mount_slack(app: web.Application, runtime: Runtime) -> SlackAdapter | None:
    """Called by bot.web.server.make_app when Slack is configured."""
    s = runtime.settings
    if s.slack_bot_token is None:
        return None
    adapter = make_adapter(runtime)
    runtime.add_adapter("slack", adapter)
    secret = s.slack_signing_secret.get_secret_value() if s.slack_signing_secret else ""
    conversation = runtime.conversation
    bolt = build_app(
        adapter,
        signing_secret=secret,
        on_message=conversation.handle_message,
        on_click=conversation.handle_click,
        home=RuntimeHome(runtime),
    )
    if secret:
        app.router.add_post("/slack/events", SlackEndpoint(bolt, secret).handle)
    if s.slack_app_token is not None:
        _socket_mode(app, bolt, s.slack_app_token.get_secret_value())
    return adapter


def _socket_mode(app: web.Application, bolt: Any, app_token: str) -> None:
    handler = socket_mode(bolt, app_token)

    async def start(_: web.Application) -> None:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack: connected in Socket Mode")

    async def stop(_: web.Application) -> None:
        await handler.close_async()  # type: ignore[no-untyped-call]

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
