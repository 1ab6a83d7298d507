"""Sovereign clouds and test authorities: the settings COWORK_TEAMS_OPENID_METADATA,
COWORK_TEAMS_TOKEN_ISSUER, COWORK_TEAMS_LOGIN_URL and COWORK_TEAMS_OAUTH_SCOPE point the
whole bot (bot.web.server app, Teams wiring, delivery) at a local authority on loopback.

An activity signed with the authority's key is accepted and answered; a forged one is 401
and stores nothing; the answer goes to the fake Bot Connector with the token the bot got
from the local token endpoint (client-credentials grant, the configured scope)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tests.conftest import Clock
from tests.fakes.authority import ISSUER, SCOPE, Authority, local_authority
from tests.fakes.bot_connector import FakeBotConnector, running_connector, teams_activity

APP_ID = "5b0c3e1a-7f2d-4e8a-9c61-0d2f4a8b6e13"
PASSWORD = "local-authority-secret"


@dataclass
class Cloud:
    url: str
    http: aiohttp.ClientSession
    runtime: Runtime
    connector: FakeBotConnector
    authority: Authority

    async def send(self, text: str, token: str, id: str) -> int:
        activity = teams_activity(self.connector.service_url, id=id, text=text)
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.post(self.url, json=activity, headers=headers) as response:
            return response.status


@pytest.fixture
async def cloud(sqlite_url: str, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cloud]:
    with local_authority(tmp_path, APP_ID, PASSWORD) as authority:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(authority.ca_file))  # the authority's own certificate
        async with running_connector() as connector:
            settings = Settings(DATABASE_URL=sqlite_url, MicrosoftAppId=APP_ID, MicrosoftAppPassword=PASSWORD,
                                COWORK_TEAMS_OPENID_METADATA=authority.metadata_url, COWORK_TEAMS_TOKEN_ISSUER=ISSUER,
                                COWORK_TEAMS_LOGIN_URL=authority.login_url, COWORK_TEAMS_OAUTH_SCOPE=SCOPE,
                                COWORK_CONSOLE=False)  # fmt: skip
            runtime = Runtime(settings, clock=clock)
            runner = web.AppRunner(make_app(runtime))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/messages"
            async with aiohttp.ClientSession() as http:
                yield Cloud(url, http, runtime, connector, authority)
            await runner.cleanup()
            runtime.close()


async def test_a_signed_activity_is_answered_with_a_token_from_the_configured_authority(cloud: Cloud) -> None:
    service_url = cloud.connector.service_url
    assert await cloud.send("help", cloud.authority.sign(service_url), id="1700000000301") == 200
    await cloud.runtime.delivery.drain()
    answers = cloud.connector.posted()
    assert len(answers) == 1 and answers[0].conversation.startswith("19:general@thread.tacv2")
    assert cloud.authority.issued and answers[0].authorization == f"Bearer {cloud.authority.issued[-1]}"
    grant = cloud.authority.token_requests[-1]
    assert grant["grant_type"] == "client_credentials" and grant["client_id"] == APP_ID
    assert grant["scope"] == f"{SCOPE}/.default"


@pytest.mark.parametrize("forgery", ["other-key", "other-issuer", "other-audience", "public-issuer"])
async def test_a_forged_activity_is_401_and_nothing_is_stored_or_sent(cloud: Cloud, forgery: str) -> None:
    service_url = cloud.connector.service_url
    token = {
        "other-key": lambda: cloud.authority.sign(service_url, key=rsa.generate_private_key(65537, 2048)),
        "other-issuer": lambda: cloud.authority.sign(service_url, iss="https://evil.example"),
        "other-audience": lambda: cloud.authority.sign(service_url, aud="someone-elses-bot"),
        "public-issuer": lambda: cloud.authority.sign(service_url, iss="https://api.botframework.com"),
    }[forgery]()
    assert await cloud.send("deploy the thing", token, id="1700000000302") == 401
    await cloud.runtime.delivery.drain()
    assert await cloud.runtime.store.list_tasks() == [] and cloud.connector.sent == []
    assert cloud.authority.token_requests == []


async def test_a_wrong_secret_is_refused_by_the_authority_and_nothing_reaches_the_connector(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloud.authority, "app_password", "rotated-elsewhere")
    assert await cloud.send("help", cloud.authority.sign(cloud.connector.service_url), id="1700000000303") == 200
    await asyncio.wait_for(cloud.runtime.delivery.drain(), 30)
    assert cloud.connector.sent == [] and cloud.authority.issued == []
    assert cloud.authority.token_requests and cloud.authority.token_requests[-1]["client_id"] == APP_ID
