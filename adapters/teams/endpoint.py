"""The Bot Framework messaging endpoint (`POST /api/messages`).

`TeamsEndpoint.handle` reads and checks the request itself (JSON, activity
shape, token) and then runs the turn through botbuilder's CloudAdapter with
`TeamsBot`, which turns activities into neutral messages and clicks for the
bot's handlers. Replies a person should see go through the bot's outbox and
`TeamsAdapter`; only invoke responses are answered inline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes
from botframework.connector.auth import BotFrameworkAuthentication

from adapters import sanitize
from adapters.chat import Click, ClickResult, Handled, Inbound, Unavailable
from adapters.teams import render as cards
from adapters.teams.auth import AuthUnavailable, Unauthorized, authenticate
from adapters.teams.client import TeamsAdapter
from adapters.teams.inbound import (
    EXECUTE_INVOKE,
    bot_was_added,
    is_from_bot,
    to_click,
    to_inbound,
    user_id,
    welcome,
)

log = logging.getLogger(__name__)
NEEDS_CONVERSATION = {
    ActivityTypes.message,
    ActivityTypes.invoke,
    ActivityTypes.conversation_update,
}


class TeamsBot(ActivityHandler):  # type: ignore[misc]
    """Turn logic: activities -> `Inbound`/`Click` -> the bot's handlers."""

    def __init__(
        self,
        on_message: Callable[[Inbound], Awaitable[Handled]],
        on_click: Callable[[Click], Awaitable[ClickResult]],
        adapter: TeamsAdapter | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_click = on_click
        self._adapter = adapter

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if is_from_bot(activity):
            return
        self._remember(activity)
        click = to_click(activity)
        if click is not None:
            # Action.Submit (older clients): the bot's outbox refreshes the card
            # and tells a refused clicker why (TeamsAdapter.notify).
            await self._on_click(click)
            return
        inbound = to_inbound(activity)
        if inbound is not None:
            await self._on_message(inbound)

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        if bot_was_added(turn_context.activity):
            await self._on_message(welcome(turn_context.activity))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        """Answer Action.Execute ourselves: botbuilder 4.17.1's
        on_adaptive_card_invoke serializes the body twice and answers 500."""
        activity = turn_context.activity
        if activity.name != EXECUTE_INVOKE:
            return _invoke_error(HTTPStatus.BAD_REQUEST, f"unsupported invoke {activity.name!r}")
        click = to_click(activity)
        if click is None:
            return _invoke_error(HTTPStatus.BAD_REQUEST, "the card action has no verb")
        self._remember(activity)
        result = await self._on_click(click)
        return InvokeResponse(status=HTTPStatus.OK, body=execute_answer(result, activity))

    def _remember(self, activity: Activity) -> None:
        if self._adapter is not None and activity.from_property is not None:
            self._adapter.remember_name(user_id(activity), activity.from_property.name or "")


def execute_answer(result: ClickResult, activity: Activity) -> dict[str, Any]:
    """The invoke body: the refreshed card (with the reason if refused), or a
    message when the bot gave no card. Only the clicker sees this answer."""
    if result.card is None:
        return cards.message_answer(result.text or ("Done." if result.accepted else "Refused."))
    content = cards.render(result.card)
    if not result.accepted and result.text:
        content = cards.with_note(content, result.text)
    return cards.card_answer(content)


def _invoke_error(status: HTTPStatus, message: str) -> InvokeResponse:
    body = {"statusCode": int(status), "type": "application/vnd.microsoft.error"}
    return InvokeResponse(status=status, body={**body, "value": {"message": message}})


class TeamsEndpoint:
    """`handle(request)` for POST /api/messages."""

    def __init__(self, auth: BotFrameworkAuthentication, bot: TeamsBot, cloud: CloudAdapter | None = None) -> None:
        self._auth = auth
        self._bot = bot
        self._cloud = cloud or CloudAdapter(auth)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if "application/json" not in request.headers.get("Content-Type", ""):
            return _problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected application/json")
        activity = await _read_activity(request)
        if isinstance(activity, web.Response):
            return activity
        try:
            checked = await authenticate(self._auth, activity, request.headers.get("Authorization"))
        except Unauthorized as error:
            log.info("refused a Bot Framework request: %s", error)
            return _problem(HTTPStatus.UNAUTHORIZED, "invalid or missing Bot Framework token")
        except AuthUnavailable as error:
            log.warning("%s", error)
            return _problem(HTTPStatus.SERVICE_UNAVAILABLE, "cannot check the token now")
        try:
            response = await self._cloud.process_activity(checked, activity, self._bot.on_turn)
        except Unavailable as error:
            log.warning("answered 503, the Bot Connector will send it again: %s", error)
            return _problem(HTTPStatus.SERVICE_UNAVAILABLE, "cannot take messages right now; send it again")
        if response is None:
            return web.Response(status=HTTPStatus.OK)
        return web.json_response(response.body, status=int(response.status))


async def _read_activity(request: web.Request) -> Activity | web.Response:
    try:
        body = sanitize.loads(await request.text())
    except ValueError:  # UnicodeDecodeError and nesting too deep included
        return _problem(HTTPStatus.BAD_REQUEST, "the body is not JSON")
    if not isinstance(body, dict):
        return _problem(HTTPStatus.BAD_REQUEST, "the body is not an activity object")
    try:
        activity = Activity().deserialize(body)
    except Exception:  # msrest raises several types for a wrong shape
        return _problem(HTTPStatus.BAD_REQUEST, "the activity does not parse")
    problem = _shape_problem(activity)
    return _problem(HTTPStatus.BAD_REQUEST, problem) if problem else activity


def _shape_problem(activity: Activity) -> str:
    if not isinstance(activity.type, str) or not activity.type:
        return "the activity has no type"
    if activity.type not in NEEDS_CONVERSATION:
        return ""
    if not activity.service_url or not activity.conversation or not activity.conversation.id:
        return "the activity has no serviceUrl or conversation"
    if activity.from_property is None or activity.recipient is None:
        return "the activity has no from or recipient"
    if activity.type != ActivityTypes.conversation_update and not activity.id:
        return "the activity has no id"
    return ""


def _problem(status: HTTPStatus, message: str) -> web.Response:
    return web.json_response({"error": message}, status=int(status))
