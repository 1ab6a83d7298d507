"""The SQL statements of Cowork, in one place; the store, checkpoints,
controls, outbox, roles and transcript run them (`Tx`), the differences
between SQLite and PostgreSQL come from `tasks.store.dialects`.

The engine's hot path: building SQLAlchemy expressions per call costs more
than running them, so the frequent updates and reads are built once with bound
parameters and reused: p_id / p_task / p_key / p_fence / p_now / p_limit
select the row, v_<column> sets a value and a_<column> adds to one. The rest
are functions that build a statement from their arguments.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union,
    update,
)

from tasks.rules.retention import OUTBOX_DONE, OUTBOX_LIVE, Cutoffs
from tasks.rules.states import CLAIMABLE, StepState, TaskState
from tasks.store.dialects import Dialect, Upsert
from tasks.store.models import APPROVAL, CARD, EVENT, LEASE, MESSAGE, OUTBOX, READY, SCHEDULE, SPEND, STEP, TASK
from tasks.store.models import FINISHED as FINISHED_TASK
from tasks.store.tx import Tx

_STATEMENTS: dict[tuple[object, ...], Update] = {}


def one_of(column: ColumnElement[str], values: Sequence[str], name: str) -> ColumnElement[bool]:
    """`column IN (...)` over constants, as plain bound parameters with their
    values: an expanding IN is re-rendered on every execution."""
    return column.in_([bindparam(f"{name}{i}", v) for i, v in enumerate(sorted(values))])


def task_update(
    states: frozenset[str] | Sequence[str],
    *,
    fenced: bool,
    target: str | None,
    set_keys: tuple[str, ...],
    add_keys: tuple[str, ...] = (),
    returning: bool = True,
) -> Update:
    """A prebuilt (cached) UPDATE of one task row guarded by its state and, when
    fenced, by the lease holder. Building SQLAlchemy statements per call costs
    more than running them, so the hot path reuses these with bound parameters
    p_id, p_fence, v_<column> (new value) and a_<column> (increment)."""
    key = ("task", frozenset(states), fenced, target, set_keys, add_keys, returning)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        conds = [TASK.c.id == bindparam("p_id"), one_of(TASK.c.state, list(states), "p_state")]
        if fenced:
            conds.append(TASK.c.lease_holder == bindparam("p_fence"))
        values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in set_keys}
        values.update({k: TASK.c[k] + bindparam(f"a_{k}") for k in add_keys})
        if target is not None:
            values["state"] = target
            values["version"] = TASK.c.version + 1
        stmt = update(TASK).where(*conds).values(**values)
        if returning:
            stmt = stmt.returning(TASK.c.platform, TASK.c.conversation, TASK.c.requester)
        _STATEMENTS[key] = stmt
    return stmt


def step_update(set_keys: tuple[str, ...], add_keys: tuple[str, ...] = ()) -> Update:
    """A prebuilt UPDATE of one step (p_task, p_key), like `task_update`."""
    key = ("step", set_keys, add_keys)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in set_keys}
        values.update({k: STEP.c[k] + bindparam(f"a_{k}") for k in add_keys})
        stmt = update(STEP).where(STEP.c.task_id == bindparam("p_task"), STEP.c.key == bindparam("p_key"))
        stmt = stmt.values(**values)
        _STATEMENTS[key] = stmt
    return stmt


def update_step(tx: Tx, task_id: int, key: str, add: Mapping[str, object] | None = None, **values: object) -> None:
    """Update one step, at commit time (`Tx.run_later`); a step that is not there is an error."""
    inc = add or {}
    params: dict[str, Any] = {"p_task": task_id, "p_key": key}
    params.update({f"v_{k}": v for k, v in values.items()})
    params.update({f"a_{k}": v for k, v in inc.items()})
    tx.run_later(step_update(tuple(sorted(values)), tuple(sorted(inc))), params,
                 lambda: LookupError(f"task {task_id} has no step {key!r}"))  # fmt: skip


def task_params(
    task_id: int, fence: str | None, values: Mapping[str, object], add: Mapping[str, object]
) -> dict[str, object]:
    params: dict[str, object] = {"p_id": task_id, "p_fence": fence}
    params.update({f"v_{k}": v for k, v in values.items()})
    params.update({f"a_{k}": v for k, v in add.items()})
    return params


BY_ID = {
    "task": select(TASK).where(TASK.c.id == bindparam("p_id")),
    "steps": select(STEP).where(STEP.c.task_id == bindparam("p_id")).order_by(STEP.c.position),
    "approvals": select(APPROVAL).where(APPROVAL.c.task_id == bindparam("p_id")).order_by(APPROVAL.c.id),
}


# The claim reads the partial index `ix_task_ready` (run_after, id) of claimable
# tasks in order and stops after `p_limit`: its cost does not grow with the
# backlog. READY is written the same in the index and here (states not bound)
# so that both databases can match the one to the other; a claimable task
# always has a run_after (NULL was "due now" before migration 0006).
CLAIMABLE_TASKS = (
    select(TASK)
    .where(
        READY,
        TASK.c.run_after <= bindparam("p_now"),
        or_(TASK.c.lease_holder.is_(None), TASK.c.lease_expires_at < bindparam("p_now")),
    )
    .order_by(TASK.c.run_after, TASK.c.id)
    .limit(bindparam("p_limit"))
    .with_for_update(skip_locked=True)
)
# A claimed task's lease, run at commit for all the claim's rows as one executemany.
TAKE_LEASE = (
    update(TASK)
    .where(TASK.c.id == bindparam("p_id"))
    .values(lease_holder=bindparam("v_lease_holder"), lease_expires_at=bindparam("v_lease_expires_at"))
)


def explain_claim(tx: Tx, now: datetime, limit: int, *, analyze: bool = True) -> list[str]:
    """The plan the database chooses for the claim, as lines of text (PostgreSQL:
    run, with buffers, when `analyze`; SQLite: its query plan)."""
    prep = tx.statements.get(CLAIMABLE_TASKS)
    cur = tx.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    params = prep.params({"p_now": now, "p_limit": limit})
    if tx.statements.dialect.name == "sqlite":
        cur.execute("EXPLAIN QUERY PLAN " + prep.sql, params)
        return [str(r[3]) for r in cur.fetchall()]
    cur.execute(("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ") + prep.sql, params)
    return [str(r[0]) for r in cur.fetchall()]


# -- people's commands and the clock (tasks/engine/commands.py, decisions.py, schedules.py) -

_OPEN_STEPS = [StepState.PENDING.value, StepState.WAITING.value, StepState.SLEEPING.value,
               StepState.RUNNING.value]  # fmt: skip


def task_chat(task_id: int) -> Select[Any]:
    """Where a task's cards go: its platform and conversation."""
    return select(TASK.c.platform, TASK.c.conversation).where(TASK.c.id == task_id)


def task_record(task_id: int) -> Select[Any]:
    return select(TASK).where(TASK.c.id == task_id)


def task_state(task_id: int) -> Select[Any]:
    return select(TASK.c.state).where(TASK.c.id == task_id)


def task_states(ids: Collection[int]) -> Select[Any]:
    return select(TASK.c.id, TASK.c.state).where(TASK.c.id.in_(ids))


def task_due(task_id: int, now: datetime) -> Update:
    return update(TASK).where(TASK.c.id == task_id).values(run_after=now)


def close_approvals(task_id: int, state: str, now: datetime) -> Update:
    """Every pending approval of the task is closed as `state`; returns their ids."""
    return (update(APPROVAL).where(APPROVAL.c.task_id == task_id, APPROVAL.c.state == "pending")
            .values(state=state, decided_at=now).returning(APPROVAL.c.id))  # fmt: skip


def cancel_open_steps(task_id: int, now: datetime) -> Update:
    return (update(STEP).where(STEP.c.task_id == task_id, STEP.c.state.in_(_OPEN_STEPS))
            .values(state=StepState.CANCELLED.value, finished_at=now))  # fmt: skip


def waiting_step(task_id: int) -> Select[Any]:
    return select(STEP.c.id).where(STEP.c.task_id == task_id, STEP.c.state == StepState.WAITING.value)


def steps_in(task_id: int, states: Collection[str], values: Mapping[str, object]) -> Update:
    """Set `values` on the task's steps that are in one of `states`."""
    return update(STEP).where(STEP.c.task_id == task_id, STEP.c.state.in_(sorted(states))).values(**values)


def step_set(task_id: int, keys: Collection[str], values: Mapping[str, object]) -> Update:
    """Set `values` on the task's steps named `keys`."""
    return update(STEP).where(STEP.c.task_id == task_id, STEP.c.key.in_(list(keys))).values(**values)


def step_outputs(task_id: int) -> Select[Any]:
    """What binds a step's arguments: every step's key, skill, args, state and result."""
    return (select(STEP.c.key, STEP.c.skill, STEP.c.args, STEP.c.state, STEP.c.result)
            .where(STEP.c.task_id == task_id))  # fmt: skip


def approval_locked(approval_id: int) -> Select[Any]:
    return select(APPROVAL).where(APPROVAL.c.id == approval_id).with_for_update()


def approval_record(approval_id: int) -> Select[Any]:
    return select(APPROVAL).where(APPROVAL.c.id == approval_id)


def approval_set(approval_id: int, values: Mapping[str, object]) -> Update:
    return update(APPROVAL).where(APPROVAL.c.id == approval_id).values(**values)


def approval_insert(values: Mapping[str, object]) -> Insert:
    return insert(APPROVAL).values(**values).returning(APPROVAL.c.id)


def approvals_expired(now: datetime) -> Select[Any]:
    """Pending approvals past their expiry, skipping rows another process holds."""
    return (select(APPROVAL.c.id, APPROVAL.c.task_id, APPROVAL.c.step_key)
            .where(APPROVAL.c.state == "pending", APPROVAL.c.expires_at <= now)
            .with_for_update(skip_locked=True))  # fmt: skip


def approvals_pending_with_tasks() -> Select[Any]:
    """Pending approvals with their task's workspace (for escalation)."""
    return (select(APPROVAL.c.id, APPROVAL.c.task_id, APPROVAL.c.step_key, APPROVAL.c.approvers,
                   APPROVAL.c.created_at, TASK.c.platform, TASK.c.tenant, TASK.c.conversation)
            .join(TASK, TASK.c.id == APPROVAL.c.task_id)
            .where(APPROVAL.c.state == "pending").with_for_update(skip_locked=True, of=APPROVAL))  # fmt: skip


def schedule_insert(values: Mapping[str, object]) -> Insert:
    return insert(SCHEDULE).values(**values).returning(SCHEDULE.c.id)


def schedules_due(now: datetime) -> Select[Any]:
    return select(SCHEDULE).where(SCHEDULE.c.enabled.is_(True), SCHEDULE.c.next_fire_at <= now)


def schedule_fired(schedule_id: int, fire_at: datetime, following: datetime | None) -> Update:
    """Move the schedule on, unless another process fired it meanwhile."""
    return (update(SCHEDULE).where(SCHEDULE.c.id == schedule_id, SCHEDULE.c.next_fire_at == fire_at)
            .values(next_fire_at=following, last_fired_at=fire_at))  # fmt: skip


# -- the engine's writes (tasks/store/checkpoints.py) -----------------------------------

WAKE_PLANNING = (
    update(TASK)
    .where(TASK.c.state == TaskState.PLANNING.value, TASK.c.lease_holder.is_(None),
           TASK.c.run_after > bindparam("p_now"))
    .values(run_after=bindparam("p_now"))
)  # fmt: skip
STEP_STATE = select(STEP.c.state, STEP.c.attempts).where(
    STEP.c.task_id == bindparam("p_task"), STEP.c.key == bindparam("p_key")
)
NEXT_WAKE = select(func.min(STEP.c.wake_at)).where(
    STEP.c.task_id == bindparam("p_task"), STEP.c.state == StepState.SLEEPING.value
)
PLAN_TRIES = select(func.count()).where(EVENT.c.task_id == bindparam("p_task"), EVENT.c.kind == "plan.retry")


def outbox_once(dialect: Dialect, row: Mapping[str, object]) -> Upsert:
    """Write a message once per idempotency key; a row the platform refused
    (never posted) is sent again."""
    again = {"state": "pending", "attempts": 0, "error": None, "next_attempt_at": row["next_attempt_at"]}
    return dialect.insert(OUTBOX).values(**row).on_conflict_do_update(
        index_elements=["idempotency_key"], set_=again, where=OUTBOX.c.state == "dead")  # fmt: skip


def spend_add(dialect: Dialect, platform: str, person: str, day: str, cost: float, tokens: int) -> Upsert:
    """Add to a person's spend of a day."""
    ins = dialect.insert(SPEND).values(platform=platform, person=person, day=day, cost=cost, tokens=tokens)
    return ins.on_conflict_do_update(index_elements=["platform", "person", "day"],
                                     set_={"cost": SPEND.c.cost + cost, "tokens": SPEND.c.tokens + tokens})  # fmt: skip


def spent(platform: str, person: str, day: str) -> Select[Any]:
    return select(SPEND.c.cost).where(SPEND.c.platform == platform, SPEND.c.person == person, SPEND.c.day == day)


# -- roles (tasks/store/roles.py) ---------------------------------------------------------


def role_hold(dialect: Dialect, name: str, holder: str, until: datetime, now: datetime) -> Insert:
    """Take or renew a role in one upsert; returns the holder it has after."""
    ins = dialect.insert(LEASE).values(name=name, holder=holder, expires_at=until)
    return ins.on_conflict_do_update(
        index_elements=["name"], set_={"holder": holder, "expires_at": until},
        where=or_(LEASE.c.holder == holder, LEASE.c.expires_at <= now),
    ).returning(LEASE.c.holder)  # fmt: skip


def role_release(name: str, holder: str, now: datetime) -> Update:
    return update(LEASE).where(LEASE.c.name == name, LEASE.c.holder == holder).values(expires_at=now)


def role_holder(name: str, now: datetime) -> Select[Any]:
    return LEASE.select().where(LEASE.c.name == name, LEASE.c.expires_at > now)


# -- the console's transcript (tasks/store/transcript.py) -------------------------------


def message_insert(values: Mapping[str, object]) -> Insert:
    return insert(MESSAGE).values(**values).returning(MESSAGE.c.id)


def message_edit(platform: str, message_id: int, values: Mapping[str, object]) -> Update:
    return (update(MESSAGE).where(MESSAGE.c.id == message_id, MESSAGE.c.platform == platform)
            .values(**values).returning(*MESSAGE.c))  # fmt: skip


def message_by_id(platform: str, message_id: int) -> Select[Any]:
    return select(MESSAGE).where(MESSAGE.c.id == message_id, MESSAGE.c.platform == platform)


def message_by_key(platform: str, key: str) -> Select[Any]:
    """The bot's first message posted for an outbox key."""
    return (select(MESSAGE).where(MESSAGE.c.platform == platform, MESSAGE.c.key == key)
            .order_by(MESSAGE.c.id).limit(1))  # fmt: skip


def channel_messages(platform: str, channel: str, viewer: str, limit: int) -> Select[Any]:
    """The latest `limit` messages of a channel that `viewer` may see, newest first."""
    visible = or_(MESSAGE.c.private_to.is_(None), MESSAGE.c.private_to == viewer)
    return (select(MESSAGE).where(and_(MESSAGE.c.platform == platform, MESSAGE.c.channel == channel, visible))
            .order_by(MESSAGE.c.id.desc()).limit(limit))  # fmt: skip


def messages_changed(platform: str, since: datetime, limit: int) -> Select[Any]:
    return (select(MESSAGE).where(MESSAGE.c.platform == platform, MESSAGE.c.updated_at > since)
            .order_by(MESSAGE.c.updated_at, MESSAGE.c.id).limit(limit))  # fmt: skip


def thread_messages(platform: str, channel: str, thread: str | None, limit: int) -> Select[Any]:
    """The latest public messages of a thread (its root and replies) or of a whole channel, newest first."""
    where = [MESSAGE.c.platform == platform, MESSAGE.c.channel == channel, MESSAGE.c.private_to.is_(None)]
    if thread is not None and thread.isdigit():
        where.append(or_(MESSAGE.c.thread == thread, MESSAGE.c.id == int(thread)))
    return select(MESSAGE).where(and_(*where)).order_by(MESSAGE.c.id.desc()).limit(limit)


# -- figures for /metrics (tasks/store/store.py `read_figures`) ---------------------------

# /metrics: the task table in one pass (count and spend by state), the queue
# depth from the claim's index, and step latency bucketed in one pass.
TASKS_BY_STATE = select(TASK.c.state, func.count()).group_by(TASK.c.state)
TASK_FIGURES = select(TASK.c.state, func.count(), func.sum(TASK.c.tokens), func.sum(TASK.c.cost)).group_by(TASK.c.state)
OUTBOX_BY_STATE = select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)
APPROVALS_WAITING = select(func.count()).select_from(APPROVAL).where(APPROVAL.c.state == "pending")


def runnable(now: datetime) -> Select[Any]:
    """How many tasks a worker could claim now."""
    return (
        select(func.count())
        .select_from(TASK)
        .where(
            READY,
            TASK.c.run_after <= now,
            or_(TASK.c.lease_holder.is_(None), TASK.c.lease_expires_at < now),
        )
    )


def step_seconds(dialect: Dialect, buckets: Sequence[float]) -> Select[Any]:
    """Per skill and per the first bucket (index into `buckets`, or len(buckets)
    past the last) a step's latency fits: how many steps, their seconds in all."""
    timed = (
        select(STEP.c.skill, dialect.seconds(STEP.c.started_at, STEP.c.finished_at).label("seconds"))
        .where(STEP.c.started_at.is_not(None), STEP.c.finished_at.is_not(None))
        .subquery()
    )
    bucket = case(*((timed.c.seconds <= b, i) for i, b in enumerate(buckets)), else_=len(buckets)).label("bucket")
    return select(timed.c.skill, bucket, func.count(), func.sum(timed.c.seconds)).group_by(timed.c.skill, bucket)


# -- intake and reads (tasks/store/store.py) ---------------------------------------------

PING = text("SELECT 1")

_INTAKE: dict[tuple[str, tuple[str, ...]], Insert] = {}
SAME_TASK = select(TASK.c.id).where(
    TASK.c.platform == bindparam("p_platform"), TASK.c.tenant == bindparam("p_tenant"),
    TASK.c.dedupe_key == bindparam("p_dedupe"),
)  # fmt: skip


def intake(dialect: Dialect, keys: tuple[str, ...]) -> Insert:
    """The prebuilt INSERT of a new task that does nothing when its dedupe key is taken."""
    stmt = _INTAKE.get((dialect.name, keys))
    if stmt is None:
        ins = dialect.insert(TASK).values({k: bindparam(f"v_{k}") for k in keys})
        stmt = ins.on_conflict_do_nothing(index_elements=["platform", "tenant", "dedupe_key"]).returning(TASK.c.id)
        _INTAKE[(dialect.name, keys)] = stmt
    return stmt


def tasks_listed(limit: int, states: Sequence[str] | None, requester: str | None, platform: str | None,
                 tenant: str | None) -> Select[Any]:  # fmt: skip
    """The latest tasks, newest first, narrowed by whichever of the filters is given."""
    stmt = select(TASK).order_by(TASK.c.id.desc()).limit(limit)
    if states:
        stmt = stmt.where(TASK.c.state.in_(list(states)))
    if requester:
        stmt = stmt.where(TASK.c.requester == requester)
    if platform:
        stmt = stmt.where(TASK.c.platform == platform)
    if tenant is not None:
        stmt = stmt.where(TASK.c.tenant == tenant)
    return stmt


def events_after(after_id: int, limit: int, task_id: int | None) -> Select[Any]:
    stmt = select(EVENT).where(EVENT.c.id > after_id).order_by(EVENT.c.id).limit(limit)
    return stmt.where(EVENT.c.task_id == task_id) if task_id is not None else stmt


def task_hold(task_id: int) -> Select[Any]:
    """A task's state and lease holder: why a fenced move changed no row."""
    return select(TASK.c.state, TASK.c.lease_holder).where(TASK.c.id == task_id)


def task_let_go(task_id: int, worker: str, values: Mapping[str, object]) -> Update:
    """A worker lets go of its task (with `values`), if it still holds it."""
    return update(TASK).where(TASK.c.id == task_id, TASK.c.lease_holder == worker).values(**values)


def outbox_post(dialect: Dialect, row: Mapping[str, object]) -> Upsert:
    """A message, written once per idempotency key when it has one."""
    ins = dialect.insert(OUTBOX).values(**row)
    return ins.on_conflict_do_nothing(index_elements=["idempotency_key"]) if row["idempotency_key"] is not None else ins


# -- the outbox as delivery sees it (tasks/store/outbox.py) ----------------------------------

OUTBOX_BY_STATE = select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)


def outbox_by_key(idempotency_key: str) -> Select[Any]:
    return select(OUTBOX.c.id, OUTBOX.c.state, OUTBOX.c.error).where(OUTBOX.c.idempotency_key == idempotency_key)


def outbox_rows(task_id: int | None) -> Select[Any]:
    stmt = select(OUTBOX).order_by(OUTBOX.c.id)
    return stmt.where(OUTBOX.c.task_id == task_id) if task_id is not None else stmt


def outbox_of_cards(keys: Collection[str]) -> Select[Any]:
    """Every pending or sending row of these cards."""
    return select(OUTBOX).where(OUTBOX.c.card_key.in_(keys), OUTBOX.c.state.in_(["pending", "sending"]))


def outbox_set(outbox_id: int, values: Mapping[str, object]) -> Update:
    return update(OUTBOX).where(OUTBOX.c.id == outbox_id).values(**values)


def outbox_superseded(ids: Collection[int]) -> Update:
    return update(OUTBOX).where(OUTBOX.c.id.in_(ids), OUTBOX.c.state == "pending").values(state="superseded")


def outbox_sent(outbox_id: int, message: Mapping[str, object] | None, now: datetime) -> Update:
    """The platform took the row; returns what the card and a waiting step need."""
    return (update(OUTBOX).where(OUTBOX.c.id == outbox_id)
            .values(state="sent", sent_at=now, message=message, error=None)
            .returning(OUTBOX.c.card_key, OUTBOX.c.platform, OUTBOX.c.task_id, OUTBOX.c.idempotency_key))  # fmt: skip


def outbox_dead(outbox_id: int, error: str) -> Update:
    """The platform refused the row for good; returns what a waiting step needs."""
    return (update(OUTBOX).where(OUTBOX.c.id == outbox_id).values(error=error, state="dead")
            .returning(OUTBOX.c.task_id, OUTBOX.c.idempotency_key))  # fmt: skip


def card_posted(dialect: Dialect, card_key: str, platform: str, message: Mapping[str, object], now: datetime) -> Upsert:
    """Where a card was delivered (its platform message), so later updates edit it."""
    ins = dialect.insert(CARD).values(card_key=card_key, platform=platform, message=message, updated_at=now)
    return ins.on_conflict_do_update(index_elements=["card_key"], set_={"message": message, "updated_at": now})


def card_message(key: str) -> Select[Any]:
    return select(CARD.c.message).where(CARD.c.card_key == key)


# -- claims, leases and wake-ups ---------------------------------------------------------


def leases_renewed(ids: Collection[int], worker: str, until: datetime) -> Update:
    """Extend the leases `worker` still holds on claimable tasks; returns the ids kept."""
    return (update(TASK)
            .where(TASK.c.id.in_(ids), TASK.c.lease_holder == worker, TASK.c.state.in_([s.value for s in CLAIMABLE]))
            .values(lease_expires_at=until).returning(TASK.c.id))  # fmt: skip


def outbox_due(now: datetime, limit: int, platforms: frozenset[str] | None) -> Select[Any]:
    """Due rows (of `platforms` only, when given), skipping rows another process holds."""
    where = [OUTBOX.c.state.in_(["pending", "sending"]), OUTBOX.c.next_attempt_at <= now]
    if platforms is not None:
        where.append(OUTBOX.c.platform.in_(sorted(platforms)))
    return (select(OUTBOX).where(*where)
            # Oldest due first: a row that failed and waits for its retry goes behind
            # rows that have not been tried yet, so a throttled card cannot starve posts.
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(limit)
            .with_for_update(skip_locked=True))  # fmt: skip


def outbox_sending(ids: Collection[int], now: datetime, until: datetime) -> Update:
    """Mark rows `sending` until `until`, unless another process claimed one meanwhile; returns the ids taken."""
    claimable = or_(OUTBOX.c.state == "pending", OUTBOX.c.next_attempt_at <= now)
    return (update(OUTBOX).where(OUTBOX.c.id.in_(ids), claimable)
            .values(state="sending", attempts=OUTBOX.c.attempts + 1, next_attempt_at=until)
            .returning(OUTBOX.c.id))  # fmt: skip


def card_messages(keys: Collection[str]) -> Select[Any]:
    return select(CARD).where(CARD.c.card_key.in_(keys))


def cards_posted(keys: Collection[str]) -> Select[Any]:
    """Which of these cards have a platform message."""
    return select(CARD.c.card_key).where(CARD.c.card_key.in_(keys))


def outbox_handed_back(ids: Collection[int], attempts: ColumnElement[int] | int, now: datetime, reason: str) -> Update:
    """Rows this process claimed (`sending`) and will not deliver: pending and due now."""
    return (update(OUTBOX).where(OUTBOX.c.id.in_(ids), OUTBOX.c.state == "sending")
            .values(state="pending", next_attempt_at=now, attempts=attempts, error=reason))  # fmt: skip


def poster_woken(task_id: int, idempotency_key: str, now: datetime) -> Update:
    """The step sleeping on the post written under this key is due now."""
    return (update(STEP).where(STEP.c.task_id == task_id, STEP.c.idempotency_key == idempotency_key,
                               STEP.c.state == StepState.SLEEPING.value).values(wake_at=now))  # fmt: skip


def running_task_due(task_id: int, now: datetime) -> Update:
    """A running task sleeping past `now` is due now."""
    return (update(TASK).where(TASK.c.id == task_id, TASK.c.state == TaskState.RUNNING.value,
                               TASK.c.run_after > now).values(run_after=now))  # fmt: skip


# -- retention: the rules of tasks/rules/retention.py as SQL (tasks/store/pruning.py) ------------

PRUNE_CHILDREN = (("step", STEP), ("approval", APPROVAL), ("event", EVENT), ("outbox", OUTBOX))


def _prunable_task(cut: datetime) -> Any:
    """`retention.task_prunable` as a condition on the task row."""
    undelivered = select(OUTBOX.c.id).where(OUTBOX.c.task_id == TASK.c.id, OUTBOX.c.state.in_(OUTBOX_LIVE))
    return FINISHED_TASK & (TASK.c.updated_at < cut) & ~undelivered.exists()  # its partial index's predicate


def _finished(cut: datetime) -> Select[Any]:
    return select(TASK.c.id).where(_prunable_task(cut))


def _outbox_done(cut: datetime) -> Any:
    return OUTBOX.c.state.in_(OUTBOX_DONE) & (OUTBOX.c.created_at < cut) & (OUTBOX.c.next_attempt_at < cut)


def _old_message(cut: datetime, going: Any = None) -> Any:
    """`retention.message_prunable` as a condition on the message row; the
    cards of `going` (a select of task ids) count as gone already."""
    card = select(CARD.c.card_key).where(CARD.c.card_key == MESSAGE.c.key)
    if going is not None:
        card = card.where(CARD.c.card_key.not_in(_card_keys(going)))
    return (MESSAGE.c.updated_at < cut) & ~card.exists()


def _card_keys(ids: Any) -> Any:
    """The card keys of these tasks: their task card, their approval cards and
    any other key their outbox rows name."""
    return union(
        select(literal("task:") + cast(TASK.c.id, String)).where(TASK.c.id.in_(ids)),
        select(literal("approval:") + cast(APPROVAL.c.id, String)).where(APPROVAL.c.task_id.in_(ids)),
        select(OUTBOX.c.card_key).where(OUTBOX.c.task_id.in_(ids), OUTBOX.c.card_key.is_not(None)),
    )


def _count(table: Any, where: Any) -> Select[Any]:
    return select(func.count()).select_from(table).where(where)


def prune_counts(cut: Cutoffs) -> dict[str, Select[Any]]:
    """Per table, the count of rows a prune at these cutoffs would remove (the dry run)."""
    counts: dict[str, Select[Any]] = {}
    of_tasks = None
    events: list[Any] = [false()]
    if cut.tasks is not None:
        of_tasks = _finished(cut.tasks)
        counts["task"] = _count(TASK, _prunable_task(cut.tasks))
        counts["step"] = _count(STEP, STEP.c.task_id.in_(of_tasks))
        counts["approval"] = _count(APPROVAL, APPROVAL.c.task_id.in_(of_tasks))
        counts["card"] = _count(CARD, CARD.c.card_key.in_(_card_keys(of_tasks)))
        events = [EVENT.c.task_id.in_(of_tasks), EVENT.c.task_id.is_(None) & (EVENT.c.at < cut.tasks)]
    counts["event"] = _count(EVENT, or_(*events))
    outbox = [OUTBOX.c.task_id.in_(of_tasks)] if of_tasks is not None else []
    if cut.outbox is not None:
        outbox.append(_outbox_done(cut.outbox))
    counts["outbox"] = _count(OUTBOX, or_(false(), *outbox))
    if cut.transcript is not None:
        counts["chat_message"] = _count(MESSAGE, _old_message(cut.transcript, of_tasks))
    return counts


def prune_candidates(cut: datetime, limit: int) -> Select[Any]:
    """The next prunable tasks, oldest first, each with its rows counted (the task's own included)."""
    rows = [func.coalesce(select(func.count()).where(t.c.task_id == TASK.c.id).scalar_subquery(), 0)
            for _, t in PRUNE_CHILDREN]  # fmt: skip
    total = sum(rows[1:], rows[0]) + 1
    return select(TASK.c.id, total).where(_prunable_task(cut)).order_by(TASK.c.id).limit(limit)


def events_of_tasks(ids: Collection[int]) -> Select[Any]:
    return select(EVENT).where(EVENT.c.task_id.in_(ids)).order_by(EVENT.c.id)


def prunable_locked(cut: datetime, ids: Collection[int]) -> Select[Any]:
    """Those of these tasks still prunable, under their row lock."""
    return _finished(cut).where(TASK.c.id.in_(ids)).with_for_update(skip_locked=True)


def event_ids_of(ids: Collection[int]) -> Select[Any]:
    return select(EVENT.c.task_id, EVENT.c.id).where(EVENT.c.task_id.in_(ids))


def tasks_pruned(ids: Collection[int]) -> list[tuple[str, Delete]]:
    """Every row of these tasks, by table: cards and children first, the task rows last."""
    gone = sorted(ids)
    out = [("card", delete(CARD).where(CARD.c.card_key.in_(_card_keys(gone))))]
    out += [(name, delete(table).where(table.c.task_id.in_(gone))) for name, table in PRUNE_CHILDREN]
    return [*out, ("task", delete(TASK).where(TASK.c.id.in_(gone)))]


def _oldest_deleted(table: Any, where: Any, limit: int) -> Delete:
    """Up to `limit` rows matching `where`, oldest first, skipping rows another
    pruner holds (PostgreSQL; SQLite has one writer)."""
    oldest = select(table.c.id).where(where).order_by(table.c.id).limit(limit).with_for_update(skip_locked=True)
    return delete(table).where(table.c.id.in_(oldest))


def outbox_pruned(cut: datetime, limit: int) -> Delete:
    """Up to `limit` of the oldest outbox rows done before `cut`."""
    return _oldest_deleted(OUTBOX, _outbox_done(cut), limit)


def messages_pruned(cut: datetime, limit: int) -> Delete:
    """Up to `limit` of the oldest transcript messages past `cut` that show no live card."""
    return _oldest_deleted(MESSAGE, _old_message(cut), limit)


def loose_events(cut: datetime, limit: int) -> Select[Any]:
    """The oldest audit events of no task, older than `cut`."""
    return select(EVENT).where(EVENT.c.task_id.is_(None) & (EVENT.c.at < cut)).order_by(EVENT.c.id).limit(limit)


def events_deleted(ids: Collection[int]) -> Delete:
    return delete(EVENT).where(EVENT.c.id.in_(ids))
