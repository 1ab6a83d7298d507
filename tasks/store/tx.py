"""One transaction as a unit of work sees it (`Tx`), and the prepared statements
it runs on the driver's cursor (`Prepared`): the engine's hot path.

Building and executing SQLAlchemy statements costs several times the SQL
itself, so the frequent ones are compiled once per dialect and run on the
DBAPI cursor with SQLAlchemy's own bind and result conversions. Inserts whose
ids nobody needs are buffered and written at commit time (executemany; COPY
on PostgreSQL), and so are the fenced updates of `Tx.run_later`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    from tasks.store import dialects


@dataclass(slots=True)
class Prepared:
    """A statement compiled once for one dialect, run on the driver's cursor:
    SQLAlchemy's per-call work (parameter construction, result wrapping) costs
    several times the statement itself on the engine's hot path. The SQL, the
    bind and result conversions are SQLAlchemy's own, so both paths agree."""

    sql: str
    order: tuple[str, ...] | None  # positional drivers (sqlite3): parameter order
    base: dict[str, Any]  # constants bound at build time
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    row: Any  # a namedtuple type for RETURNING / SELECT rows, or None
    types: tuple[Any, ...]  # the result columns' types
    results: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None  # known after the first run

    def convert(self, dialect: Dialect, description: Any) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """Result conversions; some drivers' depend on the column type the cursor reports."""
        if self.results is None:
            procs = (
                (i, t._cached_result_processor(dialect, d[1]))
                for i, (t, d) in enumerate(zip(self.types, description, strict=True))
            )
            self.results = tuple((i, f) for i, f in procs if f is not None)
        return self.results

    @classmethod
    def compile(cls, stmt: ClauseElement, dialect: Dialect, keys: Sequence[str] | None = None) -> Prepared:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        assert isinstance(compiled, SQLCompiler)  # a SQL statement, not DDL
        base = compiled.construct_params(_check=False)
        columns = getattr(compiled, "_result_columns", None) or []
        row = namedtuple("Row", [c[0] for c in columns], rename=True) if columns else None
        return cls(
            sql=compiled.string, order=tuple(compiled.positiontup) if compiled.positiontup else None,
            base={k: v for k, v in base.items() if v is not None},
            binds=_processors(compiled), row=row, types=tuple(c[3] for c in columns),
        )  # fmt: skip

    def params(self, given: Mapping[str, object]) -> list[object] | dict[str, object]:
        p = {**self.base, **given}
        for k, f in self.binds:
            if k in p:
                p[k] = f(p[k])
        if self.order is not None:
            return [p.get(k) for k in self.order]
        return p


def _processors(compiled: SQLCompiler) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """The bind conversions; a sequence of them belongs to a tuple-typed bind, which no
    prebuilt statement has (one would fail when first run, as before)."""
    procs = compiled._bind_processors.items()
    return tuple((k, cast("Callable[[Any], Any]", f)) for k, f in procs)


class Statements:
    """Prepared statements of one database, built on first use."""

    def __init__(self, dialect: Dialect, rows: dialects.Dialect):
        self.dialect = dialect
        self.rows = rows  # how this database writes many rows at once
        self._cache: dict[tuple[int, tuple[str, ...] | None], tuple[ClauseElement, Prepared]] = {}

    def get(self, stmt: ClauseElement, keys: tuple[str, ...] | None = None) -> Prepared:
        hit = self._cache.get((id(stmt), keys))
        if hit is None:
            hit = (stmt, Prepared.compile(stmt, self.dialect, keys))  # keeps stmt alive, so its id stays unique
            self._cache[(id(stmt), keys)] = hit
        return hit[1]


@dataclass
class _Later:
    """Runs of one prebuilt statement put off to commit time (see `Tx.run_later`)."""

    stmt: ClauseElement
    params: list[Mapping[str, object]] = field(default_factory=list)
    missing: list[Callable[[], Exception]] = field(default_factory=list)


@dataclass
class Tx:
    """One transaction as a unit of work sees it."""

    conn: Connection
    statements: Statements
    pending: dict[Table, list[Mapping[str, object]]] = field(default_factory=dict)
    later: dict[int, _Later] = field(default_factory=dict)
    _cursor: Any = None

    def insert_later(self, table: Table, row: Mapping[str, object]) -> None:
        self.pending.setdefault(table, []).append(row)

    def run_later(self, stmt: ClauseElement, params: Mapping[str, object], missing: Callable[[], Exception]) -> None:
        """Run a prebuilt statement that must change exactly one row, at commit
        time, with every other run of it in this transaction as one executemany
        (one round trip on PostgreSQL instead of one each). If any run changed
        no row, `missing()` is raised and the transaction rolls back; the group
        commit then runs each unit of work alone, so each gets its own error."""
        runs = self.later.get(id(stmt))
        if runs is None:
            runs = self.later[id(stmt)] = _Later(stmt)
        runs.params.append(params)
        runs.missing.append(missing)

    def _raw(self) -> Any:
        if self._cursor is None:
            self._cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        return self._cursor

    def rows(self, stmt: ClauseElement, params: Mapping[str, object]) -> list[Any]:
        """Run a prebuilt statement (see `Prepared`); its rows, converted."""
        prep = self.statements.get(stmt)
        cur = self._raw()
        cur.execute(prep.sql, prep.params(params))
        if prep.row is None:
            return []
        fetched = cur.fetchall()
        if not fetched:
            return []
        convert = prep.convert(self.statements.dialect, cur.description)
        out = []
        for raw in fetched:
            if convert:
                raw = list(raw)
                for i, f in convert:
                    raw[i] = f(raw[i])
            out.append(prep.row._make(raw))
        return out

    def run(self, stmt: ClauseElement, params: Mapping[str, object]) -> int:
        """Run a prebuilt statement with no rows to read; the rows it changed."""
        prep = self.statements.get(stmt)
        cur = self._raw()
        cur.execute(prep.sql, prep.params(params))
        return int(cur.rowcount)

    def flush(self) -> None:
        for runs in self.later.values():
            prep = self.statements.get(runs.stmt)
            cur = self._raw()
            if len(runs.params) == 1:
                cur.execute(prep.sql, prep.params(runs.params[0]))
            else:
                cur.executemany(prep.sql, [prep.params(p) for p in runs.params])
            if cur.rowcount != len(runs.params):
                raise runs.missing[0]()
        self.later.clear()
        for table, rows in self.pending.items():
            if not rows:
                continue
            keys = tuple(rows[0])
            if any(tuple(r) != keys for r in rows):
                self.conn.execute(insert(table), rows)
                continue
            prep = self.statements.get(_insert_of(table), keys)
            self.statements.rows.write_rows(self._raw(), table, keys, prep.sql, [prep.params(r) for r in rows])
        self.pending.clear()


_INSERTS: dict[Table, ClauseElement] = {}


def _insert_of(table: Table) -> ClauseElement:
    stmt = _INSERTS.get(table)
    if stmt is None:
        stmt = _INSERTS[table] = insert(table).inline()  # no RETURNING of generated keys
    return stmt
