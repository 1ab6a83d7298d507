"""`cowork doctor`: checks the configuration and every outside service it
names, and says what is wrong in plain words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.assembly.config import Settings

Check = tuple[str, bool, str]


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    from tasks.store.dialects import dialect_of

    return dialect_of(url).file(url)


async def _database(settings: Settings) -> Check:

    from tasks.store import schema
    from tasks.store.db import Database
    from tasks.store.store import Store

    sqlite = _sqlite_file(settings.database_url)
    if sqlite is not None and not sqlite.exists():
        # Looking must not create it: `cowork serve` (or `worker`) creates and migrates it.
        return "database", True, f"no SQLite file at {sqlite} yet: `cowork serve` creates it and migrates it"
    db = Database(settings.database_url)
    try:
        await Store(db).ping()
        rev = await asyncio.to_thread(schema.current, settings.database_url)
    except Exception as e:
        return "database", False, f"cannot connect: {_first_line(e)}"
    finally:
        db.close()
    head = schema.behind(rev)
    if sqlite is not None and (rev is None or head is not None):
        state = "empty" if rev is None else f"at schema revision {rev}"
        return "database", True, f"SQLite at {sqlite} is {state}: `cowork serve` migrates it at start"
    if rev is None:
        return "database", False, "reachable but empty: run `cowork db upgrade`"
    if head is not None:
        return (
            "database",
            False,
            f"schema revision {rev}, older than this Cowork needs ({head}): run `cowork db upgrade`",
        )
    return "database", True, f"reachable, schema revision {rev}"


async def _policy(settings: Settings) -> Check:
    from tasks.rules.policy import PolicyError, load_policy

    if not settings.cowork_policy:
        return "policy", True, "none set: default policy (every effect but read needs the requester's approval)"
    try:
        load_policy(settings.cowork_policy)
    except PolicyError as e:
        return "policy", False, str(e)
    return "policy", True, f"{settings.cowork_policy} is valid"


async def _slack(settings: Settings) -> Check:
    if not settings.slack_bot_token:
        return "slack", True, "not configured (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to enable)"
    if not (settings.slack_signing_secret or settings.slack_app_token):
        return "slack", False, "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET nor SLACK_APP_TOKEN"
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url,
                            timeout=10)  # fmt: skip
    try:
        resp = await client.auth_test()
    except SlackApiError as e:
        return "slack", False, slack_refusal(str(e.response.get("error") or e.response.status_code))
    except Exception as e:
        return "slack", False, f"cannot reach Slack at {settings.slack_api_url}: {_first_line(e)}"
    team = resp.get("team") or resp.get("team_id")
    return "slack", True, f"token works: bot {resp.get('user')} in workspace {team}"


def slack_refusal(error: str) -> str:
    """Pure: what Slack's auth.test error code means for the operator."""
    if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"):
        return f"Slack refused SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token (xoxb-…) again"
    if error == "ratelimited" or error == "429":
        return "Slack is rate limiting auth.test: try again in a minute"
    return f"Slack answered auth.test with an error: {error}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]


async def _teams(settings: Settings) -> Check:
    if not settings.microsoft_app_id:
        return "teams", True, "not configured (set MicrosoftAppId and MicrosoftAppPassword to enable)"
    if settings.microsoft_app_type not in ("MultiTenant", "SingleTenant", "UserAssignedMSI"):
        return (
            "teams",
            False,
            f"MicrosoftAppType {settings.microsoft_app_type!r} is not MultiTenant, SingleTenant or UserAssignedMSI",
        )
    if settings.microsoft_app_type != "UserAssignedMSI" and not settings.microsoft_app_password:
        return "teams", False, "MicrosoftAppId is set but MicrosoftAppPassword is missing"
    if settings.microsoft_app_type != "MultiTenant" and not settings.microsoft_app_tenant_id:
        return "teams", False, f"{settings.microsoft_app_type} needs MicrosoftAppTenantId"
    return "teams", True, "credentials present (validated by Azure at the first message)"


async def _llm(settings: Settings) -> Check:
    if not settings.openai_api_key:
        return "llm", True, "not configured: free-text tasks are off, playbooks work (set OPENAI_API_KEY)"
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url,
                         max_retries=0, timeout=10)  # fmt: skip
    try:
        models = [m.id async for m in client.models.list()]
    except Exception as e:
        where = settings.openai_base_url or "api.openai.com"
        return "llm", False, f"cannot list models at {where}: {_first_line(e)}"
    finally:
        await client.close()
    if models and settings.cowork_model not in models:
        return "llm", False, f"model {settings.cowork_model!r} is not served there (has: {', '.join(models[:8])})"
    return "llm", True, f"endpoint answers; model {settings.cowork_model}"


CHECKS: list[Callable[[Settings], Awaitable[Check]]] = [_database, _policy, _slack, _teams, _llm]


async def run_doctor(settings: Settings) -> int:
    results = await asyncio.gather(*(c(settings) for c in CHECKS))
    for name, ok, message in results:
        print(f"{'ok ' if ok else 'BAD'}  {name:<9} {message}")
    bad = [r for r in results if not r[1]]
    print("all good" if not bad else f"{len(bad)} problem(s) found")
    return 1 if bad else 0
