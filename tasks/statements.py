"""Prebuilt SQL statements for the engine's hot path.

Building SQLAlchemy expressions per call costs more than running them, so the
frequent updates and reads are built once with bound parameters and reused:
p_id / p_task / p_key / p_fence / p_now / p_limit select the row, v_<column>
sets a value and a_<column> adds to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from tasks.models import READY, Approval, Step, Task
from tasks.tx import Tx

TASK = Task.__table__  # type: ignore[attr-defined]
STEP = Step.__table__  # type: ignore[attr-defined]
APPROVAL = Approval.__table__  # type: ignore[attr-defined]

_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def one_of(column: Any, values: Sequence[str], name: str) -> Any:
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
) -> Any:
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


def step_update(set_keys: tuple[str, ...], add_keys: tuple[str, ...] = ()) -> Any:
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


def update_step(tx: Tx, task_id: int, key: str, add: dict[str, Any] | None = None, **values: Any) -> None:
    """Update one step, at commit time (`Tx.run_later`); a step that is not there is an error."""
    inc = add or {}
    params: dict[str, Any] = {"p_task": task_id, "p_key": key}
    params.update({f"v_{k}": v for k, v in values.items()})
    params.update({f"a_{k}": v for k, v in inc.items()})
    tx.run_later(step_update(tuple(sorted(values)), tuple(sorted(inc))), params,
                 lambda: LookupError(f"task {task_id} has no step {key!r}"))  # fmt: skip


def task_params(task_id: int, fence: str | None, values: dict[str, Any], add: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"p_id": task_id, "p_fence": fence}
    params.update({f"v_{k}": v for k, v in values.items()})
    params.update({f"a_{k}": v for k, v in add.items()})
    return params


_BY_ID = {
    "task": select(TASK).where(TASK.c.id == bindparam("p_id")),
    "steps": select(STEP).where(STEP.c.task_id == bindparam("p_id")).order_by(STEP.c.position),
    "approvals": select(APPROVAL).where(APPROVAL.c.task_id == bindparam("p_id")).order_by(APPROVAL.c.id),
}


# The claim reads the partial index `ix_task_ready` (run_after, id) of claimable
# tasks in order and stops after `p_limit`: its cost does not grow with the
# backlog. READY is written the same in the index and here (states not bound)
# so that both databases can match the one to the other; a claimable task
# always has a run_after (NULL was "due now" before migration 0006).
_CLAIMABLE = (
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


def explain_claim(tx: Tx, now: datetime, limit: int, *, analyze: bool = True) -> list[str]:
    """The plan the database chooses for the claim, as lines of text (PostgreSQL:
    run, with buffers, when `analyze`; SQLite: its query plan)."""
    prep = tx.statements.get(_CLAIMABLE)
    cur = tx.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    params = prep.params({"p_now": now, "p_limit": limit})
    if tx.statements.dialect.name == "sqlite":
        cur.execute("EXPLAIN QUERY PLAN " + prep.sql, params)
        return [str(r[3]) for r in cur.fetchall()]
    cur.execute(("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ") + prep.sql, params)
    return [str(r[0]) for r in cur.fetchall()]
