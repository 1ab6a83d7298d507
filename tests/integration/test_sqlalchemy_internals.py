"""The prepared-statement fast path (tasks/store/tx.py `Prepared`) and `models.loaded`
use SQLAlchemy internals; pyproject pins SQLAlchemy to the minor range they were
tested with. These tests fail with a plain message naming the internal that
moved, so a new SQLAlchemy release is checked here before the pin is widened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import create_engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from tasks.store.models import Task, loaded, table_of
from tasks.store.tx import Prepared

TASK = table_of(Task)
DIALECTS = [sqlite.dialect(), postgresql.psycopg.dialect()]  # type: ignore[attr-defined]


def _internal(owner: Any, name: str, where: str) -> Any:
    if not hasattr(owner, name):
        pytest.fail(
            f"SQLAlchemy {sqlalchemy.__version__} has no `{name}` on {type(owner).__name__}, which {where} "
            "relies on: adapt it to this release (or to public API) before widening the pin in pyproject.toml"
        )
    return getattr(owner, name)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_compiled_statements_still_expose_what_prepared_reads(dialect: Dialect) -> None:
    stmt = select(TASK.c.id, TASK.c.conversation, TASK.c.created_at).where(TASK.c.id == 1)
    compiled = stmt.compile(dialect=dialect)
    where = "tasks/store/tx.py Prepared.compile"
    binds = _internal(compiled, "_bind_processors", where)
    assert isinstance(binds, dict), f"{where}: `_bind_processors` is no longer a dict ({type(binds).__name__})"
    columns = _internal(compiled, "_result_columns", where)
    assert [c[0] for c in columns] == ["id", "conversation", "created_at"], (
        f"{where}: `_result_columns` entries no longer start with the column key"
    )
    assert all(isinstance(c[3], TypeEngine) for c in columns), (
        f"{where}: `_result_columns` entries no longer carry the column type at index 3"
    )
    _internal(compiled, "positiontup", where)
    params = compiled.construct_params(_check=False)
    assert "id_1" in params, f"{where}: construct_params(_check=False) no longer names the bound parameters"


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_types_still_have_cached_result_processors(dialect: Dialect) -> None:
    processor = _internal(TASK.c.conversation.type, "_cached_result_processor", "tasks/store/tx.py Prepared.convert")
    convert = processor(dialect, None)
    assert convert is None or callable(convert)


def test_prepared_reads_the_same_rows_as_sqlalchemy() -> None:
    """The fast path's conversions are SQLAlchemy's own: JSON and datetimes come back alike."""
    engine = create_engine("sqlite://")
    TASK.metadata.create_all(engine, tables=[TASK])
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values = {"platform": "slack", "dedupe_key": "e1", "requester": "U1", "conversation": {"channel": "C1"},
              "created_at": now, "updated_at": now}  # fmt: skip
    stmt = select(TASK.c.id, TASK.c.conversation, TASK.c.created_at).where(TASK.c.dedupe_key == "e1")
    with engine.begin() as conn:
        conn.execute(insert(TASK).values(**values))
        expected = tuple(conn.execute(stmt).one())
        prep = Prepared.compile(stmt, engine.dialect)
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cur.execute(prep.sql, prep.params({}))
        raw = list(cur.fetchone())
        for i, f in prep.convert(engine.dialect, cur.description):
            raw[i] = f(raw[i])
    engine.dispose()
    assert tuple(raw) == expected == (1, {"channel": "C1"}, now)


def test_models_still_have_a_class_manager() -> None:
    manager = _internal(Task, "_sa_class_manager", "tasks/store/models.py loaded")
    _internal(manager, "new_instance", "tasks/store/models.py loaded")
    task = loaded(Task, {"id": 7, "state": "queued"})
    assert (task.id, task.state) == (7, "queued")
