"""The console's HTTP side: the page, its static files and its small JSON API.

GET /                          the chat page
GET /static/...                its script, styles (shipped in the package)
GET /api/console/config        channels, people, the bot's name
GET /api/console/messages      ?channel=&user= the channel as that person sees it
POST /api/console/messages     {channel, thread?, user, text}: a person writes
POST /api/console/actions      {user, action, value, message_id}: a button press
GET /api/console/events        ?user= server-sent events (new and edited messages)

There is no login: the console is for one machine (bound to 127.0.0.1 by
default). Bad input is a 400 with a message, never a 500.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters import sanitize
from adapters.chat import Click, ClickResult, Handled, Inbound, MessageRef
from adapters.console.client import ConsoleAdapter, thread_of
from adapters.console.inbound import (
    BOT,
    CHANNELS,
    USERS,
    channel_name,
    dm_channel,
    dm_owner,
    known_channel,
    parse_action,
    parse_post,
    to_click,
    to_inbound,
    user_name,
)
from adapters.console.live import sse

STATIC = Path(__file__).parent / "static"
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
KEEPALIVE_SECONDS = 15.0
OnMessage = Callable[[Inbound], Awaitable[Handled]]
OnClick = Callable[[Click], Awaitable[ClickResult]]


def bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def json_body(request: web.Request) -> Any:
    try:
        return sanitize.loads(await request.text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"the body is not valid JSON: {e}") from e


class ConsoleEndpoint:
    def __init__(
        self,
        adapter: ConsoleAdapter,
        on_message: OnMessage,
        on_click: OnClick,
        new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ):
        self.adapter = adapter
        self.on_message = on_message
        self.on_click = on_click
        self.new_event_id = new_event_id

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.asset)
        app.router.add_get("/api/console/config", self.config)
        app.router.add_get("/api/console/messages", self.list_messages)
        app.router.add_post("/api/console/messages", self.post_message)
        app.router.add_post("/api/console/actions", self.action)
        app.router.add_get("/api/console/events", self.events)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, _: web.Application) -> None:
        self.adapter.hub.close()

    async def asset(self, request: web.Request) -> web.StreamResponse:
        """The page's files. Names are checked before the file system sees them
        (aiohttp's static route answered 500 for a name longer than the OS allows)."""
        name = request.match_info["name"]
        if not ASSET_NAME.fullmatch(name) or not (STATIC / name).is_file():
            raise web.HTTPNotFound(text="there is no such file")
        return web.FileResponse(STATIC / name)

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response({"bot": BOT, "channels": list(CHANNELS), "users": list(USERS)})

    async def list_messages(self, request: web.Request) -> web.Response:
        try:
            viewer = user_name(request.query.get("user"))
            channel = channel_name(request.query.get("channel") or "general")
        except ValueError as e:
            return bad_request(str(e))
        if not known_channel(channel):
            return bad_request(f"there is no channel `{channel}`")
        if dm_owner(channel) not in (None, viewer):
            return web.json_response({"error": "that is another person's direct message"}, status=403)
        return web.json_response({"channel": channel, "messages": await self.adapter.messages(channel, viewer)})

    async def post_message(self, request: web.Request) -> web.Response:
        try:
            body = await json_body(request)
            post = parse_post(body)
        except ValueError as e:
            return bad_request(str(e))
        record = await self.adapter.receive(post)
        inbound = to_inbound(body, message_id=str(record.id), event_id=self.new_event_id())
        handled = await self.on_message(inbound) if inbound is not None else None
        out: dict[str, Any] = {"id": record.id, "for_bot": inbound is not None}
        if handled is not None:
            out["handled"] = {
                "kind": handled.kind,
                "task_id": handled.task_id,
                "text": handled.text,
            }
        return web.json_response(out, status=201)

    async def action(self, request: web.Request) -> web.Response:
        try:
            body = await json_body(request)
            action = parse_action(body)
        except ValueError as e:
            return bad_request(str(e))
        record = await self.adapter.message(action.message_id)
        if record is None or not record.card:
            return web.json_response({"error": f"there is no card {action.message_id}"}, status=404)
        click = to_click(body, channel=record.channel, thread=thread_of(record))
        result = await self.on_click(click)
        if result.accepted and result.card is not None:
            # show the decision at once; the delivery loop will send the same card
            await self.adapter.update(click.conversation, MessageRef(str(record.id)), result.card)
        return web.json_response({"accepted": result.accepted, "text": result.text})

    async def events(self, request: web.Request) -> web.StreamResponse:
        try:
            viewer = user_name(request.query.get("user"))
        except ValueError as e:
            return bad_request(str(e))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        with self.adapter.hub.subscribe(viewer) as sub:
            await response.write(sse({"type": "hello", "user": viewer, "dm": dm_channel(viewer)}))
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    event = {"type": "ping"}
                if event is None:
                    break
                try:
                    await response.write(sse(event))
                except (ConnectionResetError, RuntimeError):
                    break
        return response
