"""A local Bot Framework authority on loopback, over HTTPS with a certificate made here:

- the channel's OpenID metadata and JWKS (what botbuilder checks inbound tokens with),
  and `sign()` to make the tokens the Bot Connector would send;
- an Entra-style authority at `login_url` (tenant discovery, then a client-credentials
  token endpoint) that hands the bot its outbound token and records each request.

It serves from a thread (botbuilder and MSAL fetch with blocking calls). MSAL takes only
https authorities, so clients must trust `ca_file` (REQUESTS_CA_BUNDLE)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

TENANT = "cowork-test.example"
SCOPE = "https://api.cowork-test.example"
ISSUER = "https://api.cowork-test.example"
KID = "local-key-1"


@dataclass
class Authority:
    base: str
    ca_file: Path
    app_id: str
    app_password: str
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                    key_size=2048))  # fmt: skip
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/v1/.well-known/openidconfiguration"

    @property
    def login_url(self) -> str:
        return f"{self.base}/{TENANT}"

    def sign(self, service_url: str, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        """A token as the channel signs it for this bot (its key, unless another is given)."""
        now = int(time.time())
        body = {"iss": ISSUER, "aud": self.app_id, "serviceurl": service_url, "nbf": now - 10, "iat": now - 10,
                "exp": now + 600, **claims}  # fmt: skip
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": KID})

    def documents(self) -> dict[str, Any]:
        tenant = f"{self.base}/{TENANT}"
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {
            "/v1/.well-known/openidconfiguration": {"issuer": ISSUER, "jwks_uri": f"{self.base}/v1/keys"},
            "/v1/keys": {"keys": [{**jwk, "kid": KID, "use": "sig", "endorsements": ["msteams"]}]},
            f"/{TENANT}/v2.0/.well-known/openid-configuration": {
                "issuer": f"{tenant}/v2.0",
                "authorization_endpoint": f"{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{tenant}/oauth2/v2.0/token",
            },
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        if (form.get("client_id"), form.get("client_secret")) != (self.app_id, self.app_password):
            return 401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
        issued = f"local-{uuid.uuid4().hex}"
        self.issued.append(issued)
        return 200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": issued}


def _handler(authority: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            document = authority.documents().get(self.path.split("?")[0])
            self._answer(200, document) if document else self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if self.path.split("?")[0] != f"/{TENANT}/oauth2/v2.0/token":
                self._answer(404, {"error": "not_found"})
                return
            self._answer(*authority.token(form))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "authority.pem", folder / "authority.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


@contextmanager
def local_authority(folder: Path, app_id: str, app_password: str) -> Iterator[Authority]:
    cert_file, key_file = _certificate(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    authority = Authority(f"https://127.0.0.1:{server.server_address[1]}", cert_file, app_id, app_password)
    server.RequestHandlerClass = _handler(authority)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield authority
    finally:
        server.shutdown()
        server.server_close()
