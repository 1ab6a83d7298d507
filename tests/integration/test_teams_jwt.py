"""Bot Framework token checks with an app id set: a local OpenID metadata
endpoint (served from a thread, as botbuilder fetches it with a blocking call)
and an RSA key generated here sign the tokens Teams would send."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession, web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from adapters.teams import TeamsBot, TeamsCredentials, TeamsEndpoint, authentication
from tests.fakes.bot_connector import teams_activity
from tests.fakes.loopback import serving
from tests.fakes.teams_bot import RecordingBot

APP_ID = "00000000-0000-0000-0000-00000000a99"
ISSUER = "https://api.botframework.com"
SERVICE_URL = "https://smba.trafficmanager.net/emea/"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "test-key-1"


def _metadata_handler(base: list[str]) -> type[BaseHTTPRequestHandler]:
    jwk = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    keys = {"keys": [{**jwk, "kid": KID, "use": "sig", "endorsements": ["msteams"]}]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            metadata = {"issuer": ISSUER, "jwks_uri": f"{base[0]}/keys"}
            body = keys if self.path.endswith("/keys") else metadata
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def metadata_url() -> Iterator[str]:
    base: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _metadata_handler(base))
    base.append(f"http://127.0.0.1:{server.server_address[1]}/{uuid.uuid4().hex}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{base[0]}/.well-known/openidconfiguration"
    server.shutdown()
    server.server_close()


def token(key: rsa.RSAPrivateKey = KEY, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": APP_ID, "serviceurl": SERVICE_URL, "nbf": now - 10}
    body |= {"exp": now + 600, "iat": now - 10, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": KID})


@dataclass
class Secured:
    url: str
    http: ClientSession
    recorder: RecordingBot

    async def post(self, authorization: str | None) -> int:
        headers = {"Authorization": authorization} if authorization is not None else {}
        activity = teams_activity(SERVICE_URL, text="deploy the thing")
        async with self.http.post(self.url, json=activity, headers=headers) as response:
            return response.status


@pytest.fixture
async def secured(metadata_url: str) -> AsyncIterator[Secured]:
    creds = TeamsCredentials(app_id=APP_ID, app_password="pw", openid_metadata_url=metadata_url)
    auth = authentication(creds)
    recorder = RecordingBot()
    endpoint = TeamsEndpoint(auth, TeamsBot(recorder.handle_message, recorder.handle_click))
    app = web.Application()
    app.router.add_post("/api/messages", endpoint.handle)
    async with serving(app) as base, ClientSession() as http:
        yield Secured(f"{base}/api/messages", http, recorder)


async def test_a_token_signed_by_the_channel_is_accepted(secured: Secured):
    assert await secured.post(f"Bearer {token()}") == 200
    assert [m.text for m in secured.recorder.messages] == ["deploy the thing"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer not-a-jwt",
        "Basic dXNlcjpwdw==",
        f"Bearer {token(key=OTHER_KEY)}",
        f"Bearer {token(aud='someone-elses-bot')}",
        f"Bearer {token(iss='https://evil.example')}",
        f"Bearer {token(exp=int(time.time()) - 3600)}",
        f"Bearer {token(serviceurl='https://attacker.example/')}",
    ],
    ids=[
        "missing",
        "empty",
        "no-token",
        "garbage",
        "basic",
        "wrong-key",
        "wrong-audience",
        "wrong-issuer",
        "expired",
        "other-service-url",
    ],
)
async def test_requests_without_a_valid_token_are_401_and_store_nothing(secured: Secured, authorization: str | None):
    assert await secured.post(authorization) == 401
    assert secured.recorder.messages == []
