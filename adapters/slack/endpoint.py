"""The Slack endpoint: a slack-bolt AsyncApp whose listeners translate payloads
and hand them to the bot, behind one aiohttp handler for POST /slack/events.

Events, interactivity and the slash command share the URL. The signature is
checked before anything is parsed (401, nothing stored); a body that will not
parse is a 400. The app runs with `process_before_response=True`, so the bot
writes the task (or the decision) before Slack gets its ack — in milliseconds,
as nothing slow sits on that path — and a redelivered event finds its task by
the dedupe key instead of making a second one.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.error import BoltError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from adapters.chat import Click, ClickResult, DeliveryError, Handled, Inbound, Unavailable
from adapters.slack import shapes
from adapters.slack.client import SlackAdapter
from adapters.slack.home import HomeSource, render_home
from adapters.slack.inbound import PLATFORM, command_to_inbound, to_click, to_inbound

log = logging.getLogger(__name__)
COMMAND = "/cowork"
DECISIONS = frozenset({"approve", "reject"})
EVENTS = ("app_mention", "message", "app_home_opened")
Authorize = Callable[..., Awaitable[AuthorizeResult]]
OnMessage = Callable[[Inbound], Awaitable[Handled]]
OnClick = Callable[[Click], Awaitable[ClickResult]]


class Listeners:
    """The bolt listeners: translate, hand to the bot, ack."""

    def __init__(
        self,
        adapter: SlackAdapter,
        on_message: OnMessage,
        on_click: OnClick,
        home: HomeSource | None,
    ):
        self.adapter = adapter
        self.on_message = on_message
        self.on_click = on_click
        self.home = home

    async def message(self, body: dict[str, Any], context: Mapping[str, Any]) -> None:
        inbound = to_inbound(body, str(context.get("bot_user_id") or ""))
        if inbound is not None:
            async with _unless_unavailable():
                await self.on_message(inbound)

    async def command(self, ack: Any, body: dict[str, Any]) -> None:
        inbound = command_to_inbound(body)
        if inbound is None:
            await ack(text="Sorry, I could not read that command.", response_type="ephemeral")
            return
        async with _unless_unavailable():
            await self.on_message(inbound)
        await ack()  # the answer is posted from the outbox, like every reply

    async def decision(self, ack: Any, body: dict[str, Any]) -> None:
        click = to_click(body, DECISIONS)
        if click is not None:
            async with _unless_unavailable():
                await self.on_click(click)
        await ack()

    async def ack_only(self, ack: Any) -> None:
        await ack()

    async def publish_home(self, body: dict[str, Any]) -> None:
        """Lazy: runs after the ack. For app_home_opened, and after a click on the Home."""
        user = _home_user(body)
        if self.home is None or user is None:
            return
        team = str(body.get("team_id") or (body.get("team") or {}).get("id") or "")
        cards = await self.home.home(PLATFORM, team, user)
        try:
            await self.adapter.publish_home(user, render_home(cards), tenant=team)
        except DeliveryError as e:  # the next event that shows the Home draws it again
            log.info("App Home of %s not refreshed: %s", user, e.reason)


def _home_user(body: Mapping[str, Any]) -> str | None:
    event = body.get("event") or {}
    if event.get("type") == "app_home_opened":
        return str(event["user"]) if event.get("tab") == "home" and event.get("user") else None
    view = body.get("view") or {}
    user = (body.get("user") or {}).get("id")
    return str(user) if view.get("type") == "home" and user else None


def cached_authorize(client: Any) -> Authorize:
    """Bolt's single-workspace authorize, without failing requests while Slack's
    Web API is unreachable: auth.test is asked until it answers once, and until
    then requests go on with the configured token (the bot's own and other
    bots' messages are still ignored by `to_inbound`). A function, not an
    object: bolt passes arguments by the names in its signature."""
    cache: list[AuthorizeResult] = []

    async def authorize(enterprise_id: str | None = None, team_id: str | None = None) -> AuthorizeResult:
        token = str(client.token or "")
        if not cache:
            try:
                resp = await client.auth_test(token=token)
            except Exception as e:
                log.warning("slack auth.test failed (%s); going on with the configured token", e)
                return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)
            cache.append(AuthorizeResult.from_auth_test_response(auth_test_response=resp, bot_token=token))
        return cache[0]

    return authorize


def build_app(
    adapter: SlackAdapter,
    *,
    signing_secret: str,
    on_message: OnMessage,
    on_click: OnClick,
    home: HomeSource | None = None,
    authorize: Authorize | None = None,
) -> AsyncApp:
    """The bolt app. `authorize` replaces the lazy auth.test (benchmarks, tests)."""
    app = AsyncApp(
        client=adapter.client,
        signing_secret=signing_secret,
        authorize=authorize or cached_authorize(adapter.client),
        process_before_response=True,
        name="slack_bolt.cowork",  # bolt sets the level of the logger named so; not ours ("cowork")
    )
    ls = Listeners(adapter, on_message, on_click, home)
    app.event("app_mention")(ls.message)
    app.event("message")(ls.message)
    app.event("app_home_opened")(ack=ls.ack_only, lazy=[ls.publish_home])
    app.command(COMMAND)(ls.command)
    app.action(re.compile(r"^(approve|reject)(#\d+)?$"))(ack=ls.decision, lazy=[ls.publish_home])
    app.action(re.compile(r".*"))(ls.ack_only)  # the task-page link, unknown actions
    app.event(re.compile(r".*"))(ls.ack_only)  # events we do not use: ack, never 404
    return app


# Set per request by `SlackEndpoint.handle`: whether the bot said it was unavailable
# (bolt turns a listener's exception into a 500; Slack should hear 503 and retry).
_UNAVAILABLE: ContextVar[list[str] | None] = ContextVar("cowork_slack_unavailable", default=None)


@contextlib.asynccontextmanager
async def _unless_unavailable() -> AsyncIterator[None]:
    try:
        yield
    except Unavailable as e:
        seen = _UNAVAILABLE.get()
        if seen is not None:
            seen.append(str(e))
        raise


class SlackEndpoint:
    """`handle` is the aiohttp handler for POST /slack/events."""

    def __init__(self, app: AsyncApp, signing_secret: str):
        self.app = app
        self.verifier = SignatureVerifier(signing_secret)

    def _signed(self, body: str, headers: Mapping[str, str]) -> bool:
        try:
            return self.verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            )
        except ValueError:  # a timestamp that is not a number
            return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.text()
        except UnicodeDecodeError:
            return web.json_response({"error": "body is not text"}, status=400)
        if not self._signed(body, request.headers):
            return web.json_response({"error": "invalid signature"}, status=401)
        if wrong := shapes.unreadable(body, request.content_type):  # before bolt reads it
            return web.json_response({"error": f"malformed payload: {wrong}"}, status=400)
        try:
            bolt_req = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
        except (ValueError, TypeError, AttributeError, LookupError, BoltError, RecursionError):
            return web.json_response({"error": "malformed payload"}, status=400)
        unavailable: list[str] = []
        token = _UNAVAILABLE.set(unavailable)
        try:
            response = await self.app.async_dispatch(bolt_req)
        finally:
            _UNAVAILABLE.reset(token)
        if unavailable:
            log.warning("answered 503, Slack will send it again: %s", unavailable[0])
            return web.json_response({"error": "unavailable; send it again"}, status=503, headers={"Retry-After": "1"})
        return await to_aiohttp_response(response)


def socket_mode(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Socket Mode (SLACK_APP_TOKEN): the same app over a WebSocket, aiohttp client."""
    return AsyncSocketModeHandler(app, app_token)
