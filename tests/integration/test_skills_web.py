"""http.fetch and webhook.call against loopback servers that record what
they receive: limits, private-address refusal, redirects, named webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tasks.rules.policy import Policy, Rules
from tasks.skills.base import SkillError, StepContext
from tasks.skills.web import HttpFetch, WebhookCall, check_url, is_public_address
from tasks.store.db import Database
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness, person
from tests.fakes.loopback import serving

OPEN = Policy(http_allow_private=True, http_max_bytes=1000)


class Site:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<p>Hello <b>there</b></p>", content_type="text/html")

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(text="x" * 5000, content_type="text/plain")

    async def hop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query.get("to", "/page"))

    async def busy(self, request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "12"})

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append({"body": await request.json(), "headers": dict(request.headers)})
        return web.json_response({"ok": True})


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    app = web.Application()
    for path, handler in [("/page", s.page), ("/big", s.big), ("/hop", s.hop), ("/busy", s.busy)]:
        app.router.add_get(path, handler)
    app.router.add_post("/hook", s.hook)
    async with serving(app) as s.url:
        yield s


def ctx(key: str = "task-1-a") -> StepContext:
    return StepContext(
        task_id=1,
        step_key="a",
        idempotency_key=key,
        requester="alice",
        conversation={"channel": "eng"},
        now=datetime.now(UTC),
        attempt=1,
    )


async def test_fetch_returns_the_readable_text_of_a_page(site: Site) -> None:
    got = await HttpFetch(OPEN).run(ctx(), {"url": f"{site.url}/page"})
    assert got.output["text"] == "Hello there" and got.output["status"] == 200
    assert got.output["untrusted"] is True


async def test_fetch_stops_at_the_size_limit(site: Site) -> None:
    got = await HttpFetch(OPEN).run(ctx(), {"url": f"{site.url}/big"})
    assert len(got.output["text"]) == 1000 and got.output["truncated"] is True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_fetch_refuses_loopback_unless_the_policy_allows(site: Site, host: str) -> None:
    port = site.url.rsplit(":", 1)[1]
    with pytest.raises(SkillError, match="private") as e:
        await HttpFetch(Policy()).run(ctx(), {"url": f"http://{host}:{port}/page"})
    assert e.value.retryable is False


async def test_redirects_are_followed_and_every_hop_is_checked(site: Site) -> None:
    got = await HttpFetch(OPEN).run(ctx(), {"url": f"{site.url}/hop?to=/page"})
    assert got.output["text"] == "Hello there" and got.output["url"].endswith("/page")
    check_url("https://example.com/x", allow_private=False)
    for url in ("http://10.1.2.3/secret", "http://[::1]/", "file:///etc/passwd", "ftp://x/"):
        with pytest.raises(SkillError):
            check_url(url, allow_private=False)


async def test_busy_server_is_retried_after_its_retry_after(site: Site) -> None:
    with pytest.raises(SkillError) as e:
        await HttpFetch(OPEN).run(ctx(), {"url": f"{site.url}/busy"})
    assert e.value.retryable and e.value.retry_after == 12


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("2606:4700::1111", True),
        ("224.0.0.1", False),
        ("nope", False),
    ],
)
def test_public_addresses_are_told_from_private_ones(ip: str, public: bool) -> None:
    assert is_public_address(ip) is public


async def test_webhook_goes_only_to_a_named_webhook_with_an_idempotency_key(site: Site) -> None:
    hook = WebhookCall(Policy(webhooks={"deploys": f"{site.url}/hook"}))
    got = await hook.run(ctx("task-7-notify"), {"webhook": "deploys", "payload": {"v": 2}})
    assert got.output["status"] == 200 and got.effects == ("called webhook deploys",)
    (seen,) = site.received
    assert seen["body"] == {"v": 2} and seen["headers"]["Idempotency-Key"] == "task-7-notify"
    with pytest.raises(SkillError, match="no webhook named 'evil'"):
        await hook.run(ctx(), {"webhook": "evil", "payload": {}})
    assert hook.args_schema["properties"]["webhook"]["enum"] == ["deploys"]


async def test_webhook_waits_for_approval_then_calls_once(db: Database, clock: Clock, site: Site) -> None:
    policy = Policy(webhooks={"deploys": f"{site.url}/hook"}, defaults=Rules(approvers=("bob",)))
    h = Harness(db, clock, policy=policy)
    steps = [{"key": "n", "skill": "webhook.call", "args": {"webhook": "deploys", "payload": {}}}]
    task_id = await h.submit(steps=steps)
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    assert site.received == [] and approval.summary["target"] == "webhook deploys"
    await h.controls.decide(approval.id, person("bob"), True, clock())
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]
    assert len(site.received) == 1
