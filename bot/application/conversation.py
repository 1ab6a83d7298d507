"""The conversation: what the bot does with a message or a click, on every platform.

A message is a command or new work. New work becomes a task row (idempotent on
platform, tenant and the platform's event id) before the adapter acknowledges;
everything a person should see goes out through the outbox. A click decides an
approval if the clicker may; otherwise only the clicker is told why not.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from adapters.chat import Card, Click, ClickResult, Handled, Inbound, Unavailable
from adapters.sanitize import db_id, sanitized
from bot.application import cards
from bot.application.commands import HELP, MAX_TEXT, Command, clean, parse
from tasks.engine.controls import Controls
from tasks.planning.planner import NO_LLM
from tasks.planning.playbooks import Playbook, PlaybookError
from tasks.rules.approvals import Approver
from tasks.rules.policy import Policy
from tasks.rules.states import IllegalTransition
from tasks.skills.arguments import playbook_error
from tasks.skills.base import SkillRegistry
from tasks.store.db import transient
from tasks.store.models import Task
from tasks.store.store import NewTask, NotFound, Store

T = TypeVar("T")

log = logging.getLogger(__name__)


def may_control(task: Task, user: str, policy: Policy) -> bool:
    """The requester and the task's approvers may cancel, pause, resume or retry it."""
    if user == task.requester:
        return True
    rules = policy.rules_for(task.platform, task.tenant, str((task.conversation or {}).get("channel", "")))
    return user in rules.approvers_for(task.requester)


class Conversation:
    def __init__(
        self,
        *,
        store: Store,
        controls: Controls,
        playbooks: dict[str, Playbook],
        policy: Policy,
        llm_enabled: bool,
        base_url: str,
        clock: Callable[[], datetime],
        wake: Callable[[], None] = lambda: None,
        registry: SkillRegistry | None = None,
    ):
        self.store = store
        self.controls = controls
        self.playbooks = playbooks
        self.policy = policy
        self.llm_enabled = llm_enabled
        self.base_url = base_url
        self.clock = clock
        self.wake = wake
        self.registry = registry  # checks playbook parameters against the skills' schemas

    # -- messages -------------------------------------------------------------

    async def handle_message(self, m: Inbound) -> Handled:
        """Decide what a message means and do it; `Unavailable` while the database is down.
        Text no database can store (NUL, lone surrogates) is stored with U+FFFD in its place."""
        return await _or_unavailable(self._handle_message(sanitized(m)))

    async def handle_click(self, c: Click) -> ClickResult:
        """Decide on a button click; `Unavailable` while the database is down."""
        return await _or_unavailable(self._handle_click(sanitized(c)))

    async def _handle_message(self, m: Inbound) -> Handled:
        if m.from_bot:
            return Handled("ignored")
        text = clean(m.text)
        if len(text) > MAX_TEXT:
            return await self._refuse(
                m,
                f"That message is {len(text):,} characters; I take at most {MAX_TEXT:,}. "
                "Put the details in a file or link and mention me again.",
            )
        if not text:
            return await self._reply(m, cards.help_card(HELP, self.playbooks), "command")
        command = parse(text)
        if command is None:
            return await self._new_work(m, text)
        if command.error:
            return await self._refuse(m, command.error)
        return await self._command(m, command)

    async def _new_work(self, m: Inbound, text: str, playbook: str | None = None,
                        params: dict[str, Any] | None = None) -> Handled:  # fmt: skip
        if playbook is None and not self.llm_enabled:
            return await self._refuse(m, NO_LLM)
        book = self.playbooks.get(playbook) if playbook else None
        task_id, created = await self.store.create_task(NewTask(
            platform=m.platform, tenant=m.tenant, dedupe_key=m.event_id, requester=m.user,
            requester_name=m.user_name, conversation=m.conversation.to_json(), text=text,
            playbook=playbook, params=params, budget=book.budget if book and book.budget else None,
        ), self.clock())  # fmt: skip
        if created:
            self.wake()
        return Handled("task", task_id=task_id, text=f"Task #{task_id} is on its way.")

    async def _command(self, m: Inbound, c: Command) -> Handled:
        if c.name == "help":
            return await self._reply(m, cards.help_card(HELP, self.playbooks), "command")
        if c.name == "list":
            tasks = await self.store.list_tasks(requester=m.user, platform=m.platform, tenant=m.tenant, limit=15)
            return await self._reply(m, cards.list_card(tasks, self.clock(), self.base_url), "command")
        if c.name == "run":
            return await self._run(m, c)
        return await self._control(m, c)

    async def _run(self, m: Inbound, c: Command) -> Handled:
        book = self.playbooks.get(c.playbook or "")
        if book is None:
            names = ", ".join(sorted(self.playbooks)) or "none"
            return await self._refuse(m, f"There is no playbook `{c.playbook}`. Playbooks: {names}.")
        try:
            params = book.bind(c.params)
        except PlaybookError as e:
            return await self._refuse(m, str(e))
        wrong = playbook_error(book.name, book.steps, params, self.registry) if self.registry else None
        if wrong is not None:
            return await self._refuse(m, f"{wrong}. Usage: {book.usage()}")
        return await self._new_work(m, clean(m.text), playbook=book.name, params=params)

    async def _control(self, m: Inbound, c: Command) -> Handled:
        assert c.task_id is not None
        task = await self.store.get_task(c.task_id)
        if task is None or (task.platform, task.tenant) != (m.platform, m.tenant):
            return await self._refuse(m, f"There is no task #{c.task_id} here.")
        if c.name == "status":
            view = await self.store.view(c.task_id)
            return await self._reply(m, cards.task_card(view, self.clock(), self.base_url), "command")
        if not may_control(task, m.user, self.policy):
            return await self._refuse(m, f"Only the requester or an approver of task #{task.id} may {c.name} it.")
        action = {"cancel": self.controls.cancel, "pause": self.controls.pause,
                  "resume": self.controls.resume, "retry": self.controls.retry}[c.name]  # fmt: skip
        try:
            await action(c.task_id, m.user, now=self.clock())  # type: ignore[operator]
        except IllegalTransition as e:
            return await self._refuse(
                m, f"Task #{c.task_id} is {e.current.replace('_', ' ')}; it cannot be {_past(c.name)}."
            )
        self.wake()
        return await self._reply(m, cards.text_card(f"Task #{c.task_id} {_past(c.name)}."), "command")

    async def _reply(self, m: Inbound, card: Card, kind: Any) -> Handled:
        await self.store.post(
            platform=m.platform, conversation=m.conversation.to_json(), kind="message",
            payload={"card": card.to_json()}, idempotency_key=f"reply:{m.platform}:{m.tenant}:{m.event_id}",
            now=self.clock(),
        )  # fmt: skip
        self.wake()
        return Handled(kind, text=card.fallback())

    async def _refuse(self, m: Inbound, reason: str) -> Handled:
        await self._reply(m, cards.text_card(reason), "refused")
        return Handled("refused", text=reason)

    # -- clicks -----------------------------------------------------------------

    async def _handle_click(self, c: Click) -> ClickResult:
        if c.action not in ("approve", "reject"):
            return ClickResult(False, f"I do not know the action {c.action!r}.")
        approval_id = db_id(c.value.get("approval_id"))
        if approval_id is None:
            return ClickResult(False, "That button carries no approval.")
        try:
            who = Approver(c.platform, c.tenant, c.user)  # a user id counts only in its own workspace
            result = await self.controls.decide(approval_id, who, c.action == "approve", self.clock())
        except NotFound:
            return ClickResult(False, "That approval does not exist (any more).")
        card = await self.approval_card(approval_id)
        if not result.accepted and c.answered_inline:
            return ClickResult(False, f"Not done: {result.reason}.", card)
        if not result.accepted:
            await self.store.post(platform=c.platform, conversation=c.conversation.to_json(), kind="notice",
                                  payload={"user": c.user, "text": f"Not done: {result.reason}."},
                                  task_id=result.task_id, now=self.clock())  # fmt: skip
            self.wake()
            return ClickResult(False, f"Not done: {result.reason}.", card)
        self.wake()
        verb = {"approved": "Approved", "rejected": "Rejected"}.get(result.state, "Your approval is noted")
        return ClickResult(True, f"{verb}.", card)

    async def approval_card(self, approval_id: int) -> Card | None:
        approval = await self.store.get_approval(approval_id)
        if approval is None:
            return None
        task = await self.store.get_task(approval.task_id)
        return cards.approval_card(approval, task, self.clock(), self.base_url) if task else None


def _past(verb: str) -> str:
    return {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "retry": "retried"}.get(verb, verb)


async def _or_unavailable(work: Awaitable[T]) -> T:
    """The platform should send it again, not hear of an error, while the database is down."""
    try:
        return await work
    except Exception as e:
        if transient(e):
            raise Unavailable(f"the database is unavailable: {e}") from e
        raise
