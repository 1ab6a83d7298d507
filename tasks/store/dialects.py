"""What differs between SQLite and PostgreSQL, in one small class each.

Everything else (the statements in tasks/store/statements.py, the units of work)
is written once for both. A `Dialect` says how to connect (SQLite: WAL, BEGIN
IMMEDIATE, one writer thread), which INSERT takes an ON CONFLICT clause, how
to count the seconds between two timestamps, and how to write many rows at
commit time (executemany; COPY on PostgreSQL). The shape follows
dbos-transact-py's `_sys_db_sqlite.py` / `_sys_db_postgres.py`.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine, Table, create_engine, event, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement

Upsert = postgresql.Insert | sqlite.Insert


def normalize_url(url: str) -> str:
    """Accept the URLs operators write (postgres://, postgresql://) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Dialect(ABC):
    name: ClassVar[str]
    # `cowork serve` brings the schema up to date itself (a file of its own), rather
    # than leaving it to the operator's `cowork db upgrade` release step.
    upgrades_itself: ClassVar[bool]

    def file(self, url: str) -> Path | None:
        """The database's file, when it is one (not in memory)."""
        return None

    @abstractmethod
    def engine(self, url: str, *, reader: bool = False) -> Engine:
        """A SQLAlchemy engine for `url` (normalized), set up for this database; a
        `reader` (one connection, for reports such as /metrics) writes nothing."""

    @abstractmethod
    def lanes(self, requested: int | None) -> int:
        """How many database threads a process runs."""

    @abstractmethod
    def insert(self, table: Table) -> Upsert:
        """An INSERT that can take ON CONFLICT DO NOTHING / DO UPDATE."""

    @abstractmethod
    def seconds(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[float] | ColumnElement[int]:
        """The seconds from timestamp column `start` to `end`, as SQL."""

    @abstractmethod
    def write_rows(self, cursor: Any, table: Table, keys: Sequence[str], sql: str, params: list[Any]) -> None:
        """Insert many rows on the driver's cursor: `sql` is the compiled INSERT
        of `keys`, `params` each row's driver parameters."""


class SQLite(Dialect):
    """One file, one writer: writers start with BEGIN IMMEDIATE so several
    processes queue on the lock instead of failing; WAL with synchronous=NORMAL."""

    name = "sqlite"
    upgrades_itself = True

    def file(self, url: str) -> Path | None:
        path = make_url(normalize_url(url)).database
        return Path(path) if path and path != ":memory:" else None

    def engine(self, url: str, *, reader: bool = False) -> Engine:
        path = self.file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        begin = "BEGIN" if reader else "BEGIN IMMEDIATE"  # a reader takes no write lock
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine

    def lanes(self, requested: int | None) -> int:
        return 1  # its single writer

    def insert(self, table: Table) -> Upsert:
        return sqlite.insert(table)

    def seconds(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[float] | ColumnElement[int]:
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    def write_rows(self, cursor: Any, table: Table, keys: Sequence[str], sql: str, params: list[Any]) -> None:
        cursor.executemany(sql, params)


class PostgreSQL(Dialect):
    """psycopg 3 with a small pool; COPY for the inserts of a commit."""

    name = "postgresql"
    upgrades_itself = False

    def engine(self, url: str, *, reader: bool = False) -> Engine:
        if reader:
            return create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=0)
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)

    def lanes(self, requested: int | None) -> int:
        """COWORK_DB_LANES (default 1: measured best with 2 workers on 2 cores;
        more lanes overlap round trips when the database is remote)."""
        return requested or int(os.environ.get("COWORK_DB_LANES", "1"))

    def insert(self, table: Table) -> Upsert:
        return postgresql.insert(table)

    def seconds(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[float] | ColumnElement[int]:
        return func.extract("epoch", end - start)

    def write_rows(self, cursor: Any, table: Table, keys: Sequence[str], sql: str, params: list[Any]) -> None:
        """COPY: one round trip and little work a row, on either side."""
        with cursor.copy(_copy_of(table.name, tuple(keys))) as copy:
            for p in params:
                copy.write_row([p[k] for k in keys])


_QUOTE = make_url("postgresql+psycopg://").get_dialect()().identifier_preparer.quote


@functools.cache
def _copy_of(table: str, keys: tuple[str, ...]) -> str:
    """The COPY of these columns, quoted as SQLAlchemy quotes them."""
    return f"COPY {_QUOTE(table)} ({', '.join(_QUOTE(k) for k in keys)}) FROM STDIN"


def dialect_of(url: str) -> Dialect:
    return SQLite() if normalize_url(url).startswith("sqlite") else PostgreSQL()


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
