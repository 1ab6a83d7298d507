"""Teams wiring: builds the Bot Framework authentication, the Teams adapter and
endpoint from Settings, hands the adapter to the delivery loop and mounts
POST /api/messages."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from adapters.teams import TeamsAdapter, TeamsBot, TeamsCredentials, TeamsEndpoint, authentication
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime

log = logging.getLogger(__name__)


def credentials(settings: Settings) -> TeamsCredentials:
    password = settings.microsoft_app_password
    return TeamsCredentials(
        app_id=settings.microsoft_app_id,
        app_password=password.get_secret_value() if password else "",
        app_type=settings.microsoft_app_type or "MultiTenant",
        tenant_id=settings.microsoft_app_tenant_id,
        openid_metadata_url=settings.teams_openid_metadata or None,
        token_issuer=settings.teams_token_issuer,
        login_url=settings.teams_login_url,
        oauth_scope=settings.teams_oauth_scope,
    )


def _auth(settings: Settings) -> tuple[TeamsCredentials, Any]:
    creds = credentials(settings)
    try:
        return creds, authentication(creds)
    except ValueError as e:
        raise SystemExit(f"cowork: Teams is misconfigured: {e}") from e


def make_adapter(runtime: Runtime) -> TeamsAdapter:
    """The Teams adapter alone (a worker process's client: no endpoint)."""
    creds, auth = _auth(runtime.settings)
    return TeamsAdapter(auth, creds.app_id)


def mount_teams(app: web.Application, runtime: Runtime) -> TeamsAdapter | None:
    """Called by bot.web.server.make_app when Teams is configured (an app id, or
    COWORK_TEAMS=1 for the Bot Framework Emulator without authentication)."""
    settings = runtime.settings
    if not settings.teams_enabled:
        return None
    creds, auth = _auth(settings)
    if creds.auth_disabled:
        log.warning("teams: no MicrosoftAppId, /api/messages accepts unauthenticated requests")
    adapter = TeamsAdapter(auth, creds.app_id)
    runtime.add_adapter("teams", adapter)
    conversation = runtime.conversation
    bot = TeamsBot(conversation.handle_message, conversation.handle_click, adapter)
    app.router.add_post("/api/messages", TeamsEndpoint(auth, bot).handle)
    return adapter
