"""Which database a URL names, and what its dialect says about it: the one
place SQLite and PostgreSQL differ (tasks/dialects.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from tasks.store.dialects import PostgreSQL, SQLite, dialect_of, normalize_url
from tasks.store.models import OUTBOX, STEP


@pytest.mark.parametrize(
    ("url", "normalized", "kind", "file"),
    [
        ("sqlite:///data/cowork.db", "sqlite:///data/cowork.db", SQLite, Path("data/cowork.db")),
        ("sqlite://", "sqlite://", SQLite, None),
        ("sqlite:///:memory:", "sqlite:///:memory:", SQLite, None),
        ("postgres://u@db/cowork", "postgresql+psycopg://u@db/cowork", PostgreSQL, None),
        ("postgresql://u@db/cowork", "postgresql+psycopg://u@db/cowork", PostgreSQL, None),
        ("postgresql+psycopg://u@db/cowork", "postgresql+psycopg://u@db/cowork", PostgreSQL, None),
    ],
)
def test_a_url_names_its_dialect(url: str, normalized: str, kind: type, file: Path | None) -> None:
    assert normalize_url(url) == normalized
    dialect = dialect_of(url)
    assert isinstance(dialect, kind)
    assert dialect.file(url) == file
    assert dialect.upgrades_itself is (kind is SQLite)


def test_sqlite_has_one_writer_and_postgresql_the_lanes_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COWORK_DB_LANES", "3")
    assert SQLite().lanes(4) == 1
    assert PostgreSQL().lanes(2) == 2
    assert PostgreSQL().lanes(None) == 3


@pytest.mark.parametrize(("dialect", "compiled"), [(SQLite(), sqlite.dialect()), (PostgreSQL(), postgresql.dialect())])
def test_both_dialects_write_an_upsert_and_count_seconds(dialect: SQLite | PostgreSQL, compiled: object) -> None:
    upsert = (
        dialect.insert(OUTBOX).values(idempotency_key="k").on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    assert "ON CONFLICT (idempotency_key) DO NOTHING" in str(upsert.compile(dialect=compiled))
    seconds = str(dialect.seconds(STEP.c.started_at, STEP.c.finished_at).compile(dialect=compiled))
    assert ("julianday" in seconds) is isinstance(dialect, SQLite)
    assert ("EXTRACT(epoch" in seconds) is isinstance(dialect, PostgreSQL)
