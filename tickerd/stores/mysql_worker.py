"""A worker thread: one sequence table on one server, one persistent connection.

The worker takes every request queued since its last round (up to :data:`MAX_BATCH`), runs one
REPLACE per request on its connection and hands the whole batch back to the event loop in a
single ``call_soon_threadsafe``: the ids it got, the requests that failed for good, and the
requests to route again because the server failed under them. A request whose future is already
done (cancelled, or failed at its deadline) is skipped; an id drawn for a future that finished
meanwhile is simply never issued (a gap).
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import pymysql

from . import StoreError
from . import mysql_schema as schema
from .mysql_server import Server, close_quietly

_T = TypeVar("_T")

# The most requests one round handles before the batch is handed back to the loop.
MAX_BATCH = 64
# A connection idle longer than this is pinged before use: the server may have closed it
# (wait_timeout), and a ping that fails costs a reconnect instead of marking the server down.
PING_AFTER_IDLE = 1.0
# The largest id a RESP integer (signed 64-bit) can carry.
MAX_TICKET = 2**63 - 1


def exhausted(table: str, server: Server) -> StoreError:
    """The error for a sequence whose ids no longer fit a RESP integer."""
    return StoreError(
        f"sequence table {table} is exhausted on ticket server {server}: "
        f"its next id would exceed {MAX_TICKET}"
    )


@dataclass(slots=True, eq=False)
class Request:
    """One draw: the caller's future and when it gives up (``time.monotonic()``)."""

    table: str
    future: asyncio.Future[int]
    deadline: float
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Outcome:
    """What one round of a worker produced, delivered to the loop in one callback."""

    server: Server
    ids: list[tuple[Request, int]] = field(default_factory=list)
    failed: list[tuple[Request, StoreError]] = field(default_factory=list)
    retry: list[Request] = field(default_factory=list)


class _ServerFailed(Exception):
    """The connection or the server failed; the batch's remaining requests go elsewhere."""


class Worker:
    """The thread that draws the tickets of ``table`` from ``server``."""

    def __init__(
        self,
        table: str,
        server: Server,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[Outcome], None],
    ) -> None:
        self.table = table
        self.server = server
        self._loop = loop
        self._deliver = deliver
        self._replace = schema.REPLACE.format(table=schema.quote(table))
        self._queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._conn: pymysql.Connection | None = None
        self._generation = -1
        self._last_used = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"tickerd-mysql-{server.name}-{table}", daemon=True
        )
        self._thread.start()

    def submit(self, request: Request) -> None:
        """Queue ``request``; called on the loop, never blocks."""
        self._queue.put(request)

    def stop(self) -> None:
        """Finish what is queued, then close the connection and end the thread."""
        self._queue.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread; True if it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            running = True
            while running:
                batch: list[Request] = []
                item = self._queue.get()
                while True:
                    if item is None:
                        running = False
                        break
                    batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch and not self._hand_back(self._round(batch)):
                    return
        finally:
            close_quietly(self._conn)
            self._conn = None

    def _hand_back(self, outcome: Outcome) -> bool:
        if not (outcome.ids or outcome.failed or outcome.retry):
            return True
        try:
            self._loop.call_soon_threadsafe(self._deliver, outcome)
        except RuntimeError:
            return False  # the loop is closed: nobody is waiting any more
        return True

    def _round(self, batch: list[Request]) -> Outcome:
        outcome = Outcome(self.server)
        live = [request for request in batch if not request.future.done()]
        if not live:
            return outcome
        if not self.server.up:
            # Marked down by another worker or the probe is still at it: don't wait on it here.
            outcome.retry.extend(live)
            return outcome
        latencies: list[float] = []
        for index, request in enumerate(live):
            if request.future.done():
                continue
            try:
                started = time.perf_counter()
                ticket = self._draw(request)
                latencies.append(time.perf_counter() - started)
            except _ServerFailed:
                outcome.retry.extend(live[index:])
                break
            except StoreError as exc:
                outcome.failed.append((request, exc))
                continue
            if ticket is not None:
                outcome.ids.append((request, ticket))
        self.server.add_tickets(len(outcome.ids), latencies)
        return outcome

    def _draw(self, request: Request) -> int | None:
        """One ticket from the OK packet of a REPLACE; None if the request ran out of time."""
        created = False
        while time.monotonic() < request.deadline:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    cur.execute(self._replace)
                    ticket = int(cur.lastrowid)
            except (pymysql.MySQLError, OSError) as exc:
                code = schema.error_code(exc)
                if code in schema.RETRYABLE:
                    # Another daemon's REPLACE on the same stub row won; the attempt burned no id
                    # that anyone saw, so trying again is safe.
                    self.server.add_deadlock()
                    continue
                if code == schema.ER_NO_SUCH_TABLE and not created:
                    # The server was down when the table was ensured, or was replaced since.
                    created = True
                    self._guarded(functools.partial(schema.create_table, conn, request.table))
                    continue
                if code == schema.ER_AUTOINC_READ_FAILED:
                    raise exhausted(request.table, self.server) from None
                self._fail(exc)
            self._last_used = time.monotonic()
            if ticket > MAX_TICKET:
                raise exhausted(request.table, self.server)
            return ticket
        return None

    def _connection(self) -> pymysql.Connection:
        """The open connection, replaced if stale, pinged if idle, opened if missing."""
        server = self.server
        conn = self._conn
        if conn is not None and self._generation != server.generation:
            close_quietly(conn)
            conn = self._conn = None
        if conn is not None and time.monotonic() - self._last_used > PING_AFTER_IDLE:
            try:
                conn.ping()
            except (pymysql.MySQLError, OSError):
                close_quietly(conn)
                conn = self._conn = None
        if conn is None:
            generation = server.generation
            conn = self._guarded(server.connect)
            self._conn, self._generation = conn, generation
        self._last_used = time.monotonic()
        return conn

    def _guarded(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (pymysql.MySQLError, OSError) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> NoReturn:
        close_quietly(self._conn)
        self._conn = None
        self.server.mark_down(exc)
        raise _ServerFailed from exc
