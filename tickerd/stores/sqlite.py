"""The embedded store: SQLite from the standard library, one writer thread, group commit.

Each sequence is a stub table ``(id INTEGER PRIMARY KEY AUTOINCREMENT, stub UNIQUE)``; a ticket
is ``REPLACE INTO <table> (stub) VALUES ('a')`` and its rowid. AUTOINCREMENT keeps ids from ever
being reused, WAL with ``synchronous=FULL`` makes a committed ticket survive power loss.

One thread owns the connection. Draws that arrive while a transaction is being written wait in a
queue and are all written by the next transaction: one fsync for many tickets. No future is
resolved before its transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import InfoSection, SchemaMismatch, Store, StoreError

log = logging.getLogger("tickerd.store.sqlite")
T = TypeVar("T")

# The most tickets one transaction writes; a longer queue is written in several.
MAX_BATCH = 4096
# How long close() waits for the writer to finish what is queued.
CLOSE_TIMEOUT = 10.0
# How long a transaction waits for a write lock held by another process before it fails.
BUSY_TIMEOUT = 5.0
# The largest id a RESP integer (signed 64-bit) can carry.
MAX_TICKET = 2**63 - 1


@dataclass(slots=True)
class _Draw:
    table: str
    future: asyncio.Future[int]


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


_Job = _Draw | _Call | None  # None: stop


def _quote(table: str) -> str:
    if '"' in table:
        raise StoreError(f"invalid table name {table!r}")
    return f'"{table}"'


class SqliteStore(Store):
    """Tickets from one SQLite file, written by one thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set by the writer before it fails what is queued and ends; see _put.
        self._stopped = False
        self._tickets = 0
        self._transactions = 0
        self._errors = 0
        self._last_error = ""

    # -- the Store interface, on the event loop ----------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(opened,), name="tickerd-sqlite", daemon=True
        )
        self._thread.start()
        await opened

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, CLOSE_TIMEOUT)
        if thread.is_alive():
            log.error("the sqlite writer did not stop within %.0fs", CLOSE_TIMEOUT)
        self._thread = None

    def draw(self, table: str) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self._alive():
            future.set_exception(StoreError("the sqlite store is not running"))
        else:
            self._put(_Draw(table, future))
        return future

    async def list_tables(self, prefix: str) -> list[str]:
        def run(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
            return sorted(str(name) for (name,) in rows)

        return await self._call(run)

    async def ensure_table(self, table: str) -> None:
        await self._call(lambda db: _ensure_table(db, table))

    async def last_id(self, table: str) -> int | None:
        def run(db: sqlite3.Connection) -> int | None:
            _check_exists(db, table)  # no row in sqlite_sequence must mean "no ticket yet"
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
            return int(row[0]) if row and row[0] else None

        return await self._call(run)

    async def raise_to(self, table: str, floor: int) -> None:
        def run(db: sqlite3.Connection) -> None:
            _check_exists(db, table)  # else the INSERT below would add a counter for no table
            with db:
                updated = db.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (floor, table)
                ).rowcount
                if not updated:
                    db.execute(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor)
                    )

        await self._call(run)

    def info(self) -> list[InfoSection]:
        return [
            (
                "Store",
                [
                    ("store_backend", "sqlite"),
                    ("store_path", self.path),
                    ("store_status", "up" if self._alive() else "down"),
                    ("store_tickets", str(self._tickets)),
                    ("store_transactions", str(self._transactions)),
                    ("store_errors", str(self._errors)),
                    ("store_last_error", self._last_error),
                ],
            )
        ]

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._loop is None or not self._alive():
            raise StoreError("the sqlite store is not running")
        future: asyncio.Future[T] = self._loop.create_future()
        self._put(_Call(fn, future))
        return await future

    def _put(self, job: _Draw | _Call) -> None:
        self._jobs.put(job)
        if not self._alive():  # it ended after we looked: nobody else will answer this job
            self._fail_queued()

    def _fail_queued(self) -> None:
        """Fail every job still queued: the writer thread has ended."""
        failed: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        error = StoreError("the sqlite store is not running")
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                failed.append((job.future, None, error))
        if failed:
            self._resolve(failed)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self, opened: asyncio.Future[None]) -> None:
        try:
            db = _open(self.path)
        except (sqlite3.Error, OSError) as exc:
            error = StoreError(f"cannot open the sqlite store {self.path}: {exc}")
            self._resolve([(opened, None, error)])
            self._stopped = True
            return
        self._resolve([(opened, None, None)])
        try:
            while self._serve(db):
                pass
        except Exception:
            log.exception("the sqlite writer stopped")
        finally:
            db.close()
            self._stopped = True  # before draining: a job put after this is failed by _put
            self._fail_queued()

    def _serve(self, db: sqlite3.Connection) -> bool:
        """Run the next job, or the next batch of draws; False once told to stop."""
        job = self._jobs.get()
        if job is None:
            return False
        if isinstance(job, _Call):
            self._run_call(db, job)
            return True
        draws = [job]
        stop = False
        while len(draws) < MAX_BATCH:
            try:
                more = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(more, _Draw):
                draws.append(more)
            else:
                # Keep the order of jobs: run the batch so far, then this one.
                self._write(db, draws)
                draws = []
                if more is None:
                    stop = True
                    break
                self._run_call(db, more)
        if draws:
            self._write(db, draws)
        return not stop

    def _run_call(self, db: sqlite3.Connection, job: _Call) -> None:
        try:
            self._resolve([(job.future, job.fn(db), None)])
        except StoreError as exc:
            self._resolve([(job.future, None, exc)])
        except Exception as exc:  # a bug must fail this job, never the writer thread
            self._resolve([(job.future, None, self._failed(exc))])

    def _write(self, db: sqlite3.Connection, draws: list[_Draw]) -> None:
        """Write one ticket per draw in one transaction; resolve them all once it committed.

        If the transaction fails, each draw is written again on its own, so that one bad draw
        (a table dropped behind our back) fails alone instead of failing its whole batch. A
        locked database fails the whole batch at once: each retry would wait BUSY_TIMEOUT again.
        """
        started = time.monotonic()
        try:
            results = self._transaction(db, draws)
        except Exception as exc:  # a bug must fail these draws, never the writer thread
            if len(draws) == 1 or _is_busy(exc):
                error = self._failed(exc)
                self._resolve([(draw.future, None, error) for draw in draws])
            else:
                for draw in draws:
                    self._write(db, [draw])
            return
        elapsed = time.monotonic() - started
        if elapsed > 1.0:
            log.warning("a transaction of %d tickets took %.1fs", len(draws), elapsed)
        self._resolve(results)

    def _transaction(
        self, db: sqlite3.Connection, draws: list[_Draw]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for draw in draws:
                cursor = db.execute(f"REPLACE INTO {_quote(draw.table)} (stub) VALUES ('a')")
                results.append((draw.future, _ticket(cursor, draw.table), None))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._tickets += len(draws)
        self._transactions += 1
        return results

    def _failed(self, exc: Exception) -> StoreError:
        """Count and log a failure; the StoreError to answer with."""
        self._errors += 1
        if isinstance(exc, StoreError):
            error = exc
            log.error("sqlite store: %s", exc)
        elif isinstance(exc, sqlite3.Error):
            error = StoreError(f"sqlite: {exc}")
            log.error("sqlite store: %s", exc)
        else:
            error = StoreError(f"sqlite store: internal error: {type(exc).__name__}: {exc}")
            log.error("sqlite store: unexpected error", exc_info=exc)
        self._last_error = str(error)
        return error

    def _resolve(
        self, results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]
    ) -> None:
        """Hand results to the loop in one callback (one thread hop per batch)."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(_settle, results)
        except RuntimeError:  # the loop is closed: nobody waits for these results any more
            log.debug("sqlite store: %d results after the event loop closed", len(results))


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():  # cancelled: the client went away; its ticket is a gap
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


def _is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is "database is locked": the file, not one table, is the problem."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _ticket(cursor: sqlite3.Cursor, table: str) -> int:
    ticket = cursor.lastrowid
    if ticket is None or ticket > MAX_TICKET:
        raise StoreError(f"sequence table {table} is exhausted: its ids reached 2**63-1")
    return ticket


def _open(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so group commit is explicit.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        log.warning("sqlite store %s: journal_mode is %s, not wal", path, mode)
    db.execute("PRAGMA synchronous = FULL")
    return db


_SHAPE = [
    # (name, declared type, primary key position)
    ("id", "INTEGER", 1),
    ("stub", "CHAR(1)", 0),
]


def _ensure_table(db: sqlite3.Connection, table: str) -> None:
    with db:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {_quote(table)} ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "stub CHAR(1) NOT NULL DEFAULT '' UNIQUE)"
        )
    columns = [
        (str(name), str(kind).upper(), int(pk))
        for _, name, kind, _notnull, _default, pk in db.execute(
            f"PRAGMA table_info({_quote(table)})"
        )
    ]
    sql = _check_exists(db, table)
    if columns != _SHAPE or "AUTOINCREMENT" not in str(sql).upper():
        raise SchemaMismatch(
            f"table {table} in {db.execute('PRAGMA database_list').fetchone()[2]} is not a stub "
            "table: expected (id INTEGER PRIMARY KEY AUTOINCREMENT, stub CHAR(1) UNIQUE), "
            f"found: {sql}"
        )


def _check_exists(db: sqlite3.Connection, table: str) -> str:
    """The CREATE statement of ``table``; StoreError if it is missing or named in another case.

    SQLite table names ignore case, but sqlite_master and sqlite_sequence compare them exactly:
    a table created as tickets_users is found under that name only.
    """
    row = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
        (table,),
    ).fetchone()
    if row is None:
        raise StoreError(f"sqlite: no such table: {table}")
    name, sql = row
    if name != table:
        raise SchemaMismatch(
            f"table {table} exists as {name}: SQLite table names ignore case, so "
            f"{table} cannot be a table of its own"
        )
    return str(sql)


__all__ = ["SqliteStore"]
