"""The durable records: every sqlmodel table of Cowork lives here.

Task, Step, Approval, Event (the audit trail), Outbox (chat output written in the
transaction of the state change), Card (the platform message a card key was
delivered as), Schedule (recurring work), Spend (dollars per person per day),
ChatMessage (the console's own chat transcript) and RoleLease (a role one process
holds at a time).
The rest of the code reaches these tables through `tasks.store.store`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import JSON, Column, Index, Table, UniqueConstraint, text
from sqlalchemy.orm import configure_mappers
from sqlmodel import Field, SQLModel

M = TypeVar("M", bound=SQLModel)


# Tasks a worker may claim (tasks.rules.states.CLAIMABLE) and finished tasks
# (tasks.rules.states.FINAL), as SQL with the states written in: each query and its
# partial index share the text, so PostgreSQL and SQLite match the one to the
# other. Being partial, ix_task_finished cannot serve a claim: after a drain it
# would lead it through the dead entries of the tasks that ran.
READY = text("state IN ('planning', 'queued', 'running')")
FINISHED = text("state IN ('cancelled', 'expired', 'failed', 'succeeded')")


def _json(**kw: Any) -> Any:
    return Field(default=None, sa_column=Column(JSON, **kw))


class Task(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("platform", "tenant", "dedupe_key", name="uq_task_dedupe"),
        # The claim's index: runnable tasks in the order they are claimed (migration 0006).
        Index("ix_task_ready", "run_after", "id", postgresql_where=READY, sqlite_where=READY),
        Index("ix_task_finished", "state", "updated_at", postgresql_where=FINISHED, sqlite_where=FINISHED),  # pruning
    )
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    tenant: str = ""
    dedupe_key: str
    requester: str
    requester_name: str = ""
    conversation: dict[str, object] | None = _json()
    text: str = ""
    playbook: str | None = None
    params: dict[str, object] | None = _json()
    state: str = "queued"
    plan: dict[str, object] | None = _json()
    error: str | None = None
    pause_reason: str | None = None
    budget: dict[str, object] | None = _json()
    tokens: int = 0
    cost: float = 0.0
    steps_run: int = 0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_after: datetime | None = None
    lease_holder: str | None = None
    lease_expires_at: datetime | None = None
    version: int = 0


class Step(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("task_id", "key", name="uq_step_key"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    key: str
    skill: str
    args: dict[str, object] | None = _json()
    depends_on: list[str] | None = _json()
    position: int = 0
    state: str = "pending"
    attempts: int = 0
    result: object = _json()
    error: str | None = None
    idempotency_key: str | None = None
    intent_at: datetime | None = None
    wake_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tokens: int = 0
    cost: float = 0.0


class Approval(SQLModel, table=True):
    __table_args__ = (Index("ix_approval_pending", "state", "expires_at"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    step_key: str
    skill: str
    args_hash: str
    summary: dict[str, object] | None = _json()
    approvers: list[str] | None = _json()
    required: int = 1
    decisions: list[dict[str, object]] | None = _json()
    state: str = "pending"
    on_reject: str = "fail"
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    auto_rule: str | None = None
    created_at: datetime


class Event(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    task_id: int | None = Field(default=None, index=True)
    at: datetime
    actor: str
    kind: str
    detail: dict[str, object] | None = _json()


class Outbox(SQLModel, table=True):
    __table_args__ = (
        Index("ix_outbox_pending", "state", "next_attempt_at"),
        Index("ix_outbox_card", "card_key", "id"),
        UniqueConstraint("idempotency_key", name="uq_outbox_idem"),
    )
    id: int | None = Field(default=None, primary_key=True)
    task_id: int | None = Field(default=None, index=True)
    platform: str
    kind: str
    card_key: str | None = None
    conversation: dict[str, object] | None = _json()
    payload: dict[str, object] | None = _json()
    idempotency_key: str | None = None
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None = None
    message: dict[str, object] | None = _json()
    error: str | None = None


class Card(SQLModel, table=True):
    """The platform message that a card key was first delivered as."""

    card_key: str = Field(primary_key=True)
    platform: str
    message: dict[str, object] | None = _json()
    updated_at: datetime


class Schedule(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    cron: str
    timezone: str = "UTC"
    platform: str
    tenant: str = ""
    requester: str
    conversation: dict[str, object] | None = _json()
    text: str = ""
    playbook: str | None = None
    params: dict[str, object] | None = _json()
    enabled: bool = True
    next_fire_at: datetime | None = None
    last_fired_at: datetime | None = None
    created_at: datetime


class Spend(SQLModel, table=True):
    """Dollars spent per person per day, for the per-person daily budget."""

    platform: str = Field(primary_key=True)
    person: str = Field(primary_key=True)
    day: str = Field(primary_key=True)
    cost: float = 0.0
    tokens: int = 0


class ChatMessage(SQLModel, table=True):
    """One message of a chat that Cowork hosts itself (the console): people's
    messages and the bot's rendered cards, so a reload or restart shows the
    same conversation. `private_to` marks a notice only that person sees;
    `key` is the outbox key a bot post was made for (to find it again)."""

    __tablename__ = "chat_message"
    __table_args__ = (
        Index("ix_chat_message_channel", "platform", "channel", "id"),
        Index("ix_chat_message_key", "platform", "key"),
        Index("ix_chat_message_updated", "platform", "updated_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    channel: str
    thread: str | None = None
    user: str
    text: str = ""
    card: dict[str, object] | None = _json()
    html: str = ""
    key: str | None = None
    private_to: str | None = None
    created_at: datetime
    updated_at: datetime


class RoleLease(SQLModel, table=True):
    """Which process holds a role that only one may hold at a time (the delivery
    loop's pacing of rate-limited platforms), until when."""

    __tablename__ = "role_lease"
    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime


TABLES: list[type[SQLModel]] = [Task, Step, Approval, Event, Outbox, Card, Schedule, Spend, ChatMessage, RoleLease]


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy table of a table model (sqlmodel leaves `__table__` untyped)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


# Each table object, once: the statements (tasks/store/statements.py) are written against these.
TASK = table_of(Task)
STEP = table_of(Step)
APPROVAL = table_of(Approval)
EVENT = table_of(Event)
OUTBOX = table_of(Outbox)
CARD = table_of(Card)
SCHEDULE = table_of(Schedule)
SPEND = table_of(Spend)
MESSAGE = table_of(ChatMessage)
LEASE = table_of(RoleLease)


_CONFIGURED = False


class NamedRow(Protocol):
    """A result row that names its columns: SQLAlchemy's `Row`, or the namedtuple rows
    of the prepared fast path (`tasks.store.tx`)."""

    def _asdict(self) -> dict[str, Any]: ...


def from_row(model: type[M], row: NamedRow) -> M:
    """A record from a row of a SQLAlchemy result (see `loaded`)."""
    return loaded(model, row._asdict())


def loaded(model: type[M], values: Mapping[str, object]) -> M:
    """A record read back from the database, built the way SQLAlchemy's ORM
    loads rows: no validation (the values came from the table) and no
    `__init__`, which for a table model costs some 30 times more."""
    global _CONFIGURED
    if not _CONFIGURED:
        configure_mappers()
        _CONFIGURED = True
    obj: M = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    obj.__dict__.update(values)
    return obj
