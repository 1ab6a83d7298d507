"""email.send through a local SMTP server (aiosmtpd) that records what it got."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tasks.rules.policy import Policy, Rules
from tasks.skills.base import SkillError, StepContext
from tasks.skills.mail import EmailSend, SmtpServer
from tasks.store.db import Database
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness, person


class Inbox:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.got.append(
            {
                "to": envelope.rcpt_tos,
                "from": envelope.mail_from,
                "message": message_from_bytes(envelope.content),
            }
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, f"smtp://127.0.0.1:{port}"
    controller.stop()


def ctx() -> StepContext:
    return StepContext(
        task_id=3,
        step_key="mail",
        idempotency_key="task-3-mail",
        requester="alice",
        conversation={},
        now=datetime.now(UTC),
        attempt=1,
    )


async def test_email_is_sent_through_the_policys_smtp_server(smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    skill = EmailSend(Policy(smtp_url=url, email_from="bot@example.com"))
    args = {"to": ["ann@example.com", "bo@example.com"], "subject": "Hi", "body": "Hello"}
    got = await skill.run(ctx(), args)
    (mail,) = inbox.got
    assert mail["to"] == ["ann@example.com", "bo@example.com"] and mail["from"] == "bot@example.com"
    assert mail["message"]["Subject"] == "Hi" and mail["message"]["Message-ID"] == "<task-3-mail@cowork>"
    assert mail["message"].get_payload().strip() == "Hello"
    assert got.effects == ("emailed ann@example.com, bo@example.com: Hi",)


async def test_smtp_url_comes_from_the_environment_when_the_policy_has_none(
    smtp: tuple[Inbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, url = smtp
    monkeypatch.setenv("COWORK_SMTP_URL", url)
    await EmailSend(Policy()).run(ctx(), {"to": "ann@example.com", "subject": "S", "body": "B"})
    assert len(inbox.got) == 1


async def test_no_smtp_server_is_a_clear_non_retryable_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COWORK_SMTP_URL", raising=False)
    with pytest.raises(SkillError, match="no SMTP server") as e:
        await EmailSend(Policy()).run(ctx(), {"to": "a@b.c", "subject": "S", "body": "B"})
    assert not e.value.retryable


async def test_unreachable_smtp_server_is_retryable() -> None:
    skill = EmailSend(Policy(smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    with pytest.raises(SkillError) as e:
        await skill.run(ctx(), {"to": "a@b.c", "subject": "S", "body": "B"})
    assert e.value.retryable


def test_smtp_urls_are_read() -> None:
    s = SmtpServer.from_url("smtps://me%40x.com:p%2Fw@mail.x.com")
    assert (s.host, s.port, s.tls, s.user, s.password) == (
        "mail.x.com",
        465,
        True,
        "me@x.com",
        "p/w",
    )
    assert SmtpServer.from_url("smtp://h:587?starttls=1").starttls
    with pytest.raises(ValueError):
        SmtpServer.from_url("http://h")


async def test_email_needs_approval_and_shows_what_will_be_sent(
    db: Database, clock: Clock, smtp: tuple[Inbox, str]
) -> None:
    inbox, url = smtp
    h = Harness(db, clock, policy=Policy(smtp_url=url, defaults=Rules()))
    args = {"to": "ann@example.com", "subject": "Report", "body": "Numbers"}
    task_id = await h.submit(steps=[{"key": "mail", "skill": "email.send", "args": args}])
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    assert inbox.got == [] and "Subject: Report" in approval.summary["text"]
    await h.controls.decide(approval.id, person("alice"), True, clock())
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]
    assert len(inbox.got) == 1
