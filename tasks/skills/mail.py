"""`email.send`: send an email through SMTP (the policy's `email.smtp_url`,
else COWORK_SMTP_URL), with smtplib in a thread. The Message-ID comes from the
step's idempotency key, so a receiving system can tell a resend."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, ClassVar, cast
from urllib.parse import unquote, urlsplit

from tasks.rules.json_types import JSON
from tasks.rules.policy import Policy
from tasks.skills.base import Effect, Skill, SkillError, StepContext, StepResult

_ADDRESS: dict[str, JSON] = {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+$"}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool = False  # smtps:// (TLS from the start)
    starttls: bool = False  # smtp://...?starttls=1
    user: str = ""
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """smtp://user:pass@host:25, smtps://host:465, smtp://host:587?starttls=1. Pure."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an smtp:// or smtps:// URL: {url!r}")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname, port=parts.port or (465 if tls else 25), tls=tls,
            starttls="starttls=1" in parts.query, user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )  # fmt: skip


def build_message(sender: str, args: Mapping[str, JSON], message_id: str) -> EmailMessage:
    """Pure: the email for the step's args."""
    to, cc = args["to"], args.get("cc")  # by the schema: an address or a list of them; a list of them
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(cast("list[str]", to if isinstance(to, list) else [to]))
    if cc:
        msg["Cc"] = ", ".join(cast("list[str]", cc))
    msg["Subject"] = str(args["subject"])
    msg["Message-ID"] = f"<{message_id}@cowork>"
    msg.set_content(str(args["body"]))
    return msg


def _send(server: SmtpServer, msg: EmailMessage, timeout: float) -> None:
    smtp_cls = smtplib.SMTP_SSL if server.tls else smtplib.SMTP
    kw: dict[str, Any] = {"context": ssl.create_default_context()} if server.tls else {}
    with smtp_cls(server.host, server.port, timeout=timeout, **kw) as smtp:
        if server.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if server.user:
            smtp.login(server.user, server.password)
        smtp.send_message(msg)


class EmailSend(Skill):
    name = "email.send"
    description = "Send an email. Result: {sent_to, message_id}."
    args_schema: ClassVar[dict[str, JSON]] = {
        "type": "object",
        "properties": {
            "to": {"oneOf": [_ADDRESS, {"type": "array", "items": _ADDRESS, "minItems": 1}]},
            "cc": {"type": "array", "items": _ADDRESS},
            "subject": {"type": "string", "minLength": 1, "maxLength": 300},
            "body": {"type": "string", "minLength": 1},
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    }
    effect = Effect.EXTERNAL
    idempotent = False
    max_attempts = 3
    timeout = 60.0

    def __init__(self, policy: Policy | None = None):
        self.policy = policy or Policy()

    def server(self) -> SmtpServer:
        url = self.policy.smtp_url or os.environ.get("COWORK_SMTP_URL")
        if not url:
            raise SkillError("email.send: no SMTP server (set email.smtp_url or COWORK_SMTP_URL)",
                             retryable=False)  # fmt: skip
        try:
            return SmtpServer.from_url(url)
        except ValueError as e:
            raise SkillError(f"email.send: {e}", retryable=False) from e

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        msg = build_message(self.policy.email_from, args, ctx.idempotency_key)
        try:
            await asyncio.to_thread(_send, self.server(), msg, self.timeout / 2)
        except smtplib.SMTPRecipientsRefused as e:
            raise SkillError(f"email.send: recipients refused: {sorted(e.recipients)}",
                             retryable=False) from e  # fmt: skip
        except smtplib.SMTPResponseException as e:
            retry = 400 <= e.smtp_code < 500  # 4xx is temporary in SMTP
            raise SkillError(f"email.send: SMTP {e.smtp_code}", retryable=retry) from e
        except (OSError, smtplib.SMTPException) as e:
            raise SkillError(f"email.send: {e}", retryable=True) from e
        return StepResult(output={"sent_to": msg["To"], "message_id": msg["Message-ID"]},
                          effects=(f"emailed {msg['To']}: {msg['Subject']}",))  # fmt: skip

    def describe(self, args: Mapping[str, JSON]) -> dict[str, JSON]:
        return {"skill": self.name, "target": f"email to {args.get('to')}",
                "text": f"Subject: {args.get('subject', '')}\n\n{args.get('body', '')}",
                "args": dict(args)}  # fmt: skip
