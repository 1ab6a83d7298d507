"""The database connection and its group commit.

Every read and write of a process goes through one `Database`: a dedicated
thread owns one connection, takes the units of work queued by coroutines, runs
all that are waiting in one transaction and commits once (group commit), then
wakes each caller with its own result. Each unit is still atomic and durable
when its caller resumes; the event loop never blocks on the database; and many
concurrent checkpoints cost one fsync instead of one each.

What a unit of work sees is a `tasks.store.tx.Tx`: prepared statements on the
driver's cursor, and inserts and fenced updates buffered until commit.

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction
survives a crash of the process (not of the operating system, which is what
synchronous=FULL would add). Writers start with BEGIN IMMEDIATE so several
processes on one file queue on the lock instead of failing. What differs
between SQLite and PostgreSQL is in `tasks.store.dialects`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tasks.store.dialects import dialect_of
from tasks.store.dialects import normalize_url as normalize_url
from tasks.store.tx import Statements, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_URL = "sqlite:///cowork.db"
MAX_BATCH = 256


def make_engine(url: str, *, reader: bool = False) -> Engine:
    """The engine of the database at `url`; a `reader` (one connection, for
    reports) takes no write lock on SQLite."""
    url = normalize_url(url)
    return dialect_of(url).engine(url, reader=reader)


@dataclass
class _Job:
    fn: Callable[[Tx], Any]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | None
    done: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None


_STOP = object()


class Database:
    """`lanes` database threads (`Dialect.lanes`: one for SQLite). A unit
    given an `affinity` (a task id) always runs on the same lane, so two lanes
    of one process never lock the same task row in opposite orders."""

    def __init__(self, url: str = DEFAULT_URL, lanes: int | None = None):
        self.url = normalize_url(url)
        self.dialect = dialect_of(self.url)
        self.engine = self.dialect.engine(self.url)
        self._queues: list[queue.SimpleQueue[Any]] = [queue.SimpleQueue() for _ in range(self.dialect.lanes(lanes))]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.statements = Statements(self.engine.dialect, self.dialect)
        # Units submitted during one pass of an event loop, per (loop, lane): handed
        # to the lane together at the end of the pass, so they commit as one batch.
        self._submitted: dict[tuple[asyncio.AbstractEventLoop, int], list[_Job]] = {}
        self.batches = 0
        self.units = 0
        self.wakes = 0  # event-loop wake-ups from the database threads: one per batch at most

    @property
    def lanes(self) -> int:
        return len(self._queues)

    # -- public API -------------------------------------------------------

    async def run(self, fn: Callable[[Tx], T], affinity: int = 0) -> T:
        """Run `fn` in a transaction on a database thread; committed on return."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        key = (loop, affinity % len(self._queues))
        jobs = self._submitted.get(key)
        if jobs is None:
            jobs = self._submitted[key] = []
            loop.call_soon(self._hand_over, key)
        jobs.append(_Job(fn, loop, fut))
        return await fut

    def _hand_over(self, key: tuple[asyncio.AbstractEventLoop, int]) -> None:
        """Give a lane the units this pass of the event loop submitted, as one item."""
        jobs = self._submitted.pop(key)
        for start in range(0, len(jobs), MAX_BATCH):
            self._queues[key[1]].put(jobs[start : start + MAX_BATCH])

    def run_sync(self, fn: Callable[[Tx], T]) -> T:
        """The same, for code outside the event loop (the CLI, tests, threads)."""
        self._ensure_thread()
        job = _Job(fn, None, None, threading.Event())
        self._queues[0].put(job)
        assert job.done is not None
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            for q in self._queues:
                if self._threads:
                    q.put(_STOP)
            for t in self._threads:
                t.join(timeout=10)
            self._threads = []
        self.engine.dispose()

    # -- the database threads --------------------------------------------

    def _ensure_thread(self) -> None:
        if not self._threads:
            with self._lock:
                if not self._threads:
                    self._threads = [
                        threading.Thread(target=self._loop, args=(q,), name=f"cowork-db-{i}", daemon=True)
                        for i, q in enumerate(self._queues)
                    ]
                    for t in self._threads:
                        t.start()

    def _loop(self, lane: queue.SimpleQueue[Any]) -> None:
        conn: Connection | None = None
        while True:
            first = lane.get()
            if first is _STOP:
                break
            jobs = _jobs(first)
            while len(jobs) < MAX_BATCH:
                try:
                    nxt = lane.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    lane.put(_STOP)
                    break
                jobs.extend(_jobs(nxt))
            try:
                if conn is None or conn.closed or conn.invalidated:
                    conn = self.engine.connect()
                self._run_batch(conn, jobs)
            except Exception as e:  # the connection itself failed (database down)
                log.warning("database unavailable: %s", e)
                for job in jobs:
                    self._finish(job, None, e)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _run_batch(self, conn: Connection, jobs: list[_Job]) -> None:
        self.batches += 1
        self.units += len(jobs)
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            if len(jobs) > 1:
                try:
                    results = self._transaction(conn, [j.fn for j in jobs])
                except Exception:
                    pass  # one unit failed: run each alone, so each gets its own outcome
                else:
                    outcomes = [(job, res, None) for job, res in zip(jobs, results, strict=True)]
                    return
            for job in jobs:
                try:
                    (res,) = self._transaction(conn, [job.fn])
                except Exception as e:
                    if _connection_lost(conn):
                        raise
                    outcomes.append((job, None, e))
                else:
                    outcomes.append((job, res, None))
        finally:
            self._settle(outcomes)

    def _transaction(self, conn: Connection, fns: list[Callable[[Tx], Any]]) -> list[Any]:
        tx = Tx(conn, self.statements)
        with conn.begin():
            results = [fn(tx) for fn in fns]
            tx.flush()
        return results

    def _finish(self, job: _Job, result: Any, error: BaseException | None) -> None:
        self._settle([(job, result, error)])

    def _settle(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        """Wake the callers: threads directly, each event loop once per batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for job, result, error in outcomes:
            if job.done is not None:
                job.result, job.error = result, error
                job.done.set()
            elif job.loop is not None:
                by_loop.setdefault(job.loop, []).append((job, result, error))
        for loop, items in by_loop.items():
            self.wakes += 1
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, items)


def _jobs(item: _Job | list[_Job]) -> list[_Job]:
    return item if isinstance(item, list) else [item]


def _resolve(items: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in items:
        fut = job.future
        if fut is None or fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


def transient(error: BaseException) -> bool:
    """An error of the database connection rather than of the statement: the
    same write may succeed once the database is back (or the lock is free)."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError | sqlite3.OperationalError)


def _connection_lost(conn: Connection) -> bool:
    return bool(conn.closed or conn.invalidated)
