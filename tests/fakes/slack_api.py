"""A fake Slack Web API on loopback: answers like Slack (ok, ts, channel,
errors, 429 with Retry-After), keeps the messages it was sent (with metadata
and threads, so conversations.replies/history work) and records every request
whole, for tests to read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.loopback import serving
from tests.fakes.rate_limits import Limiter

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T1"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str
    at: float = 0.0  # wall clock when it arrived
    status: int = 200  # 429 when the rate limits refused it


@dataclass
class Fault:
    error: str = ""
    status: int = 200
    retry_after: int | None = None


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    base_url: str = ""
    _ts: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # what came to a command's response_url
    frames: list[dict[str, Any]] = field(default_factory=list)  # what Socket Mode clients sent
    limits: Limiter | None = None  # opt in: answer 429 past Slack's published limits
    # The workspace's named channels: a post to any other #name is channel_not_found.
    channels: list[dict[str, Any]] = field(default_factory=lambda: [
        {"id": "C0GENERAL", "name": "general", "is_member": True, "is_private": False},
        {"id": "C0ENG", "name": "eng", "is_member": False, "is_private": False},
        {"id": "C0SECRET", "name": "secret", "is_member": False, "is_private": True},
    ])  # fmt: skip

    # -- what the tests use --------------------------------------------------

    def fail(self, method: str, error: str = "", *, status: int = 200, retry_after: int | None = None) -> None:
        """The next call of `method` fails like this."""
        self.faults.setdefault(method, []).append(Fault(error, status, retry_after))

    async def until(self, predicate: Callable[[], bool], *, within: float = 20.0) -> None:
        """Wait until `predicate()` holds, checking whenever a request or frame arrives."""
        async with asyncio.timeout(within):
            while not predicate():
                await self._arrived.wait()
                self._arrived.clear()

    async def wait_for(self, method: str, count: int = 1, *, within: float = 20.0) -> list[Call]:
        """The calls of `method` once there are `count` of them (work done after an ack)."""
        await self.until(lambda: len(self.called(method)) >= count, within=within)
        return self.called(method)

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.get(channel, []) if m.get("thread_ts", m["ts"]) == ts]

    # -- the API ---------------------------------------------------------------

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        raw = await request.text()
        if request.content_type == "application/json" and raw:
            args.update(json.loads(raw))
        elif raw:
            args.update(parse_qsl(raw, keep_blank_values=True))
        return args

    def response_url(self, command: str) -> str:
        """A slash command's response_url on this fake (see `hook`)."""
        return f"{self.base_url.removesuffix('/api/')}/hooks/{command}"

    async def hook(self, request: web.Request) -> web.Response:
        """A command's response_url: takes the ephemeral answers, like Slack's hooks."""
        self.responses.append({"hook": request.match_info["command"], **(await request.json())})
        self._arrived.set()
        return web.Response(text="ok")

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        call = Call(method, args, token, at=time.time())
        self.calls.append(call)
        self._arrived.set()
        if self.limits is not None:
            retry_after = self.limits.check(method, args, time.monotonic())
            if retry_after:
                call.status = 429
                body = {"ok": False, "error": "ratelimited"}
                return web.json_response(body, status=429, headers={"Retry-After": str(int(retry_after))})
        queued = self.faults.get(method)
        if queued:
            f = queued.pop(0)
            headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
            status = 429 if f.retry_after is not None else f.status
            return web.json_response({"ok": False, "error": f.error or "ratelimited"}, status=status, headers=headers)
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _next_ts(self) -> str:
        self._ts += 1
        return f"1700000000.{self._ts:06d}"

    def m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.base_url.replace("http://", "ws://") + "socket"}

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then take acks (envelope ids) from the client."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1})
        self._arrived.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.frames.append(json.loads(msg.data))
                self._arrived.set()
        return ws

    def m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "team_id": TEAM,
            "user": "cowork",
        }

    def channel(self, ref: str) -> dict[str, Any] | None:
        """The channel an id or a #name names, as Slack knows it; None for an unknown
        #name or a gone id (any other id is a channel the tests made up, and exists)."""
        if ref.startswith("#"):
            return next((c for c in self.channels if c["name"] == ref[1:].lower()), None)
        if ref == "CGONE":
            return None
        return next((c for c in self.channels if c["id"] == ref),
                    {"id": ref, "name": ref.lower(), "is_member": True, "is_private": False})  # fmt: skip

    def m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self.channel(str(args.get("channel", "")))
        return {"ok": True, "channel": found} if found else {"ok": False, "error": "channel_not_found"}

    def m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channels": list(self.channels), "response_metadata": {"next_cursor": ""}}

    def m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args["channel"])
        known = self.channel(channel)
        if known is None or known.get("is_archived"):
            return {"ok": False, "error": "channel_not_found" if known is None else "is_archived"}
        if known.get("is_private") and not known.get("is_member"):
            return {"ok": False, "error": "not_in_channel"}
        msg: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "bot_id": BOT_ID,
            "user": BOT_USER,
            "text": args.get("text", ""),
        }
        if args.get("thread_ts"):
            msg["thread_ts"] = str(args["thread_ts"])
        for k in ("blocks", "metadata"):  # JSON, or form fields holding JSON
            if args.get(k):
                msg[k] = json.loads(args[k]) if isinstance(args[k], str) else args[k]
        self.messages.setdefault(channel, []).append(msg)
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": msg}

    def m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args["channel"]), str(args["ts"])
        for msg in self.messages.get(channel, []):
            if msg["ts"] == ts:
                msg.update(text=args.get("text", ""), blocks=args.get("blocks"))
                return {"ok": True, "channel": channel, "ts": ts}
        return {"ok": False, "error": "message_not_found"}

    def m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": {"id": "V1"}}

    def _page(self, msgs: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        keep_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = [m if keep_meta else {k: v for k, v in m.items() if k != "metadata"} for m in msgs]
        return {"ok": True, "messages": shown, "has_more": False}

    def m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._page(self.thread(str(args["channel"]), str(args["ts"])), args)

    def m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._page(list(reversed(self.messages.get(str(args["channel"]), []))), args)


@asynccontextmanager
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_get("/api/socket", fake.socket)
    app.router.add_route("*", "/api/{method}", fake.api)
    app.router.add_post("/hooks/{command}", fake.hook)
    async with serving(app) as base:
        fake.base_url = f"{base}/api/"
        try:
            yield fake
        finally:
            for ws in fake.sockets:
                await ws.close()


def signed_headers(
    body: str, secret: str, *, timestamp: int | None = None, content_type: str = "application/json"
) -> dict[str, str]:
    """Headers Slack would send with `body`, signed like Slack signs them."""
    from slack_sdk.signature import SignatureVerifier

    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(signature),
        "Content-Type": content_type,
    }


def mention_event(
    text: str,
    *,
    event_id: str = "Ev1",
    user: str = "U1",
    channel: str = "C1",
    ts: str = "1699999999.000100",
    **extra: object,
) -> dict[str, object]:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        **extra,
    }
    return {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1699999999,
        "event": event,
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def click_payload(
    action: str,
    value: str,
    *,
    user: str = "U1",
    channel: str = "C1",
    message_ts: str = "1700000000.000001",
    thread_ts: str | None = None,
) -> dict[str, object]:
    message: dict[str, object] = {"ts": message_ts, "type": "message"}
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user, "username": user.lower()},
        "channel": {"id": channel},
        "trigger_id": "tr1",
        "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
        "message": message,
        "actions": [{"type": "button", "action_id": action, "value": value, "block_id": "b"}],
    }
