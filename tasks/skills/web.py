"""Skills that reach the web: `http.fetch` (read a page, within size and time
limits, refusing private and loopback addresses unless the policy allows
them) and `webhook.call` (POST to a webhook the policy names).

Addresses are checked where they are used: a resolver that refuses private
addresses is what the connection resolves names through, so a name cannot
resolve to one address when checked and another when connected; literal IP
hosts are checked on every hop of a redirect.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from tasks.rules.egress import url_host
from tasks.rules.json_types import JSON
from tasks.rules.policy import Policy
from tasks.skills.base import Effect, Skill, SkillError, StepContext, StepResult
from tasks.skills.page_text import page_text

MAX_REDIRECTS = 5


def is_public_address(ip: str) -> bool:
    """Pure: may a fetch connect here when private addresses are refused?"""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class Refused(SkillError):
    def __init__(self, message: str):
        super().__init__(message, retryable=False)


class _GuardedResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        got = await self._inner.resolve(host, port, family)
        bad = [r["host"] for r in got if not is_public_address(r["host"])]
        if bad:
            raise Refused(f"{host} resolves to a private address ({bad[0]}); the policy refuses it")
        return got

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"only http(s) URLs can be fetched, not {url[:200]!r}")
    host = parts.hostname
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if not allow_private and not is_public_address(host):
        raise Refused(f"{host} is a private or loopback address; the policy refuses it")


def _status_error(what: str, status: int, headers: Any) -> SkillError:
    retry_after = headers.get("Retry-After")
    wait = float(retry_after) if retry_after and retry_after.isdigit() else None
    retryable = status in (408, 425, 429) or status >= 500
    return SkillError(f"{what}: HTTP {status}", retryable=retryable, retry_after=wait)


class HttpFetch(Skill):
    name = "http.fetch"
    description = (
        "Fetch a web page or API over HTTP(S) GET. Result: {url, status, content_type, text "
        "(readable text of the page), truncated}."
    )
    args_schema: ClassVar[dict[str, JSON]] = {
        "type": "object",
        "properties": {"url": {"type": "string", "pattern": "^https?://"}},
        "required": ["url"],
        "additionalProperties": False,
    }
    effect = Effect.READ
    idempotent = True
    timeout = 60.0

    def __init__(self, policy: Policy | None = None):
        self.policy = policy or Policy()

    def reaches(self, args: Mapping[str, object]) -> str | None:
        return url_host(args.get("url"))

    def describe(self, args: Mapping[str, JSON]) -> dict[str, JSON]:
        return {"skill": self.name, "target": str(args.get("url") or ""), "args": dict(args)}

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.policy.http_timeout_seconds)
        resolver = None if self.policy.http_allow_private else _GuardedResolver()
        connector = aiohttp.TCPConnector(resolver=resolver)
        headers = {"User-Agent": "Cowork/0.1 (+task bot)"}
        return aiohttp.ClientSession(timeout=timeout, connector=connector, headers=headers)

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        url = str(args.get("url") or "")
        try:
            async with self._session() as session:
                return await self._follow(session, url)
        except TimeoutError as e:
            raise SkillError(f"http.fetch: {url[:200]} took too long", retryable=True) from e
        except aiohttp.ClientError as e:
            raise SkillError(f"http.fetch: {url[:200]}: {e}", retryable=True) from e

    async def _follow(self, session: aiohttp.ClientSession, url: str) -> StepResult:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.policy.http_allow_private)
            async with session.get(url, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = urljoin(url, resp.headers["Location"])
                    continue
                if resp.status >= 400:
                    raise _status_error(f"http.fetch {url[:200]}", resp.status, resp.headers)
                body, truncated = await _read(resp, self.policy.http_max_bytes)
                kind = resp.headers.get("Content-Type", "")
                text = page_text(body.decode(resp.charset or "utf-8", "replace"), kind)
                return StepResult(output={
                    "url": url, "status": resp.status, "content_type": kind, "text": text,
                    "truncated": truncated, "source": url, "untrusted": True,
                })  # fmt: skip
        raise SkillError(f"http.fetch: more than {MAX_REDIRECTS} redirects", retryable=False)


async def _read(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


class WebhookCall(Skill):
    """POST JSON to a webhook named in the policy: only the operator decides
    where webhooks go, never a plan."""

    name = "webhook.call"
    description = "POST a JSON payload to one of the webhooks the policy names. Result: {status, body}."
    effect = Effect.EXTERNAL
    idempotent = False
    max_attempts = 3
    timeout = 30.0

    def __init__(self, policy: Policy | None = None):
        self.policy = policy or Policy()
        names: list[JSON] = [*sorted(self.policy.webhooks)] or [""]
        self.args_schema = {  # type: ignore[misc]
            "type": "object",
            "properties": {
                "webhook": {"type": "string", "enum": names},
                "payload": {"type": "object"},
            },
            "required": ["webhook", "payload"],
            "additionalProperties": False,
        }

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        name = str(args.get("webhook") or "")
        url = self.policy.webhooks.get(name)
        if url is None:
            raise SkillError(f"webhook.call: no webhook named {name!r} in the policy", retryable=False)
        headers = {"Content-Type": "application/json", "Idempotency-Key": ctx.idempotency_key}
        timeout = aiohttp.ClientTimeout(total=self.policy.http_timeout_seconds)
        data = json.dumps(args.get("payload") or {})
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data=data, headers=headers) as resp,
            ):
                if resp.status >= 400:
                    raise _status_error(f"webhook.call {name}", resp.status, resp.headers)
                body, _ = await _read(resp, 10_000)
        except TimeoutError as e:
            raise SkillError(f"webhook.call {name}: no answer in time", retryable=True) from e
        except aiohttp.ClientError as e:
            raise SkillError(f"webhook.call {name}: {e}", retryable=True) from e
        text = body.decode("utf-8", "replace")
        return StepResult(output={"status": resp.status, "body": text},
                          effects=(f"called webhook {name}",))  # fmt: skip

    def describe(self, args: Mapping[str, JSON]) -> dict[str, JSON]:
        payload = json.dumps(args.get("payload") or {}, indent=1)[:2000]
        target = f"webhook {args.get('webhook')}"
        return {"skill": self.name, "target": target, "text": payload, "args": dict(args)}
