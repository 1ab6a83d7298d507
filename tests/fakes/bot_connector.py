"""A fake Bot Connector (the Teams side of the Bot Framework REST API) on
loopback: records every activity the bot posts, replies or updates, answers
with activity ids like the real service, and fails on request (403, 429 with
Retry-After, ...). Activities sent to the bot carry its URL as serviceUrl."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serving
from tests.fakes.rate_limits import Limiter


@dataclass
class Sent:
    method: str  # "post", "reply", "update"
    conversation: str
    activity: dict[str, Any]
    activity_id: str | None = None
    authorization: str = ""
    at: float = 0.0  # wall clock when it arrived


@dataclass
class Fault:
    status: int
    retry_after: str | None = None


@dataclass
class FakeBotConnector:
    sent: list[Sent] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    service_url: str = ""
    limits: Limiter | None = None  # opt in: answer 429 past the published Teams limits
    throttled: list[tuple[float, str]] = field(default_factory=list)  # (when, method) of each 429 sent
    _ids: int = 0

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        self.faults.append(Fault(status, retry_after))

    def posted(self) -> list[Sent]:
        return [s for s in self.sent if s.method in ("post", "reply")]

    def updated(self) -> list[Sent]:
        return [s for s in self.sent if s.method == "update"]

    def cards(self) -> list[dict[str, Any]]:
        """Every Adaptive Card the bot sent, in order."""
        return [
            a["content"]
            for s in self.sent
            for a in s.activity.get("attachments") or []
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"
        ]

    async def _record(self, request: web.Request, method: str) -> web.Response:
        if self.faults:
            fault = self.faults.pop(0)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            error = {"error": {"code": "Fault", "message": f"injected {fault.status}"}}
            return web.json_response(error, status=fault.status, headers=headers)
        if self.limits is not None:
            retry_after = self.limits.check("send", request.match_info, time.monotonic())
            if retry_after:
                self.throttled.append((time.time(), method))
                error = {"error": {"code": "TooManyRequests", "message": "rate limited"}}
                return web.json_response(error, status=429, headers={"Retry-After": str(int(retry_after))})
        activity = await request.json()
        activity_id = request.match_info.get("activity")
        self.sent.append(
            Sent(
                method=method,
                conversation=request.match_info["conversation"],
                activity=activity,
                activity_id=activity_id,
                authorization=request.headers.get("Authorization", ""),
                at=time.time(),
            )
        )
        if method == "update":
            return web.json_response({"id": activity_id})
        self._ids += 1
        return web.json_response({"id": f"msg-{self._ids}"}, status=201)

    async def _post(self, request: web.Request) -> web.Response:
        return await self._record(request, "post")

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._record(request, "reply")

    async def _update(self, request: web.Request) -> web.Response:
        return await self._record(request, "update")

    def app(self) -> web.Application:
        app = web.Application()
        base = "/v3/conversations/{conversation}/activities"
        app.router.add_post(base, self._post)
        app.router.add_post(base + "/{activity}", self._reply)
        app.router.add_put(base + "/{activity}", self._update)
        return app


@asynccontextmanager
async def running_connector() -> AsyncIterator[FakeBotConnector]:
    fake = FakeBotConnector()
    async with serving(fake.app()) as base:
        fake.service_url = f"{base}/"
        yield fake


# -- activities as Teams sends them to the bot ---------------------------------

BOT_ID = "28:cowork-bot"
TENANT = "tenant-1"
CHANNEL = "19:general@thread.tacv2"


def teams_activity(
    service_url: str,
    *,
    type: str = "message",
    id: str = "1700000000001",
    text: str | None = None,
    conversation_type: str = "channel",
    conversation_id: str | None = None,
    user: str = "29:alice",
    aad: str | None = "aad-alice",
    user_name: str = "Alice",
    mention_bot: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A Teams activity: a channel post, group chat or personal chat message."""
    if conversation_id is None:
        conversation_id = {
            "channel": f"{CHANNEL};messageid={id}",
            "groupChat": "19:group-chat@thread.v2",
            "personal": "a:1personal-chat",
        }[conversation_type]
    sender: dict[str, Any] = {"id": user, "name": user_name}
    if aad:
        sender["aadObjectId"] = aad
    activity: dict[str, Any] = {
        "type": type,
        "id": id,
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": sender,
        "recipient": {"id": BOT_ID, "name": "Cowork"},
        "conversation": {
            "id": conversation_id,
            "conversationType": conversation_type,
            "tenantId": TENANT,
        },
        "channelData": {"tenant": {"id": TENANT}},
        "timestamp": "2026-01-01T10:00:00.000Z",
    }
    if text is not None:
        tag = "<at>Cowork</at>"
        activity["text"] = f"{tag} {text}" if mention_bot else text
        if mention_bot:
            mention = {
                "type": "mention",
                "text": tag,
                "mentioned": {"id": BOT_ID, "name": "Cowork"},
            }
            activity["entities"] = [mention]
    activity.update(extra)
    return activity


def execute_invoke(
    service_url: str, verb: str, data: dict[str, Any], *, id: str = "inv-1", **kw: Any
) -> dict[str, Any]:
    """The invoke Teams sends when someone presses an Action.Execute button."""
    value = {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}
    return teams_activity(
        service_url,
        type="invoke",
        id=id,
        name="adaptiveCard/action",
        value=value,
        replyToId="msg-1",
        **kw,
    )


def submit_message(service_url: str, verb: str, data: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The message older clients send for the Action.Submit fallback."""
    return teams_activity(service_url, id="sub-1", value={**data, "verb": verb}, replyToId="msg-1", **kw)
