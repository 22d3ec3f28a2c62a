"""The production store: Flickr-style MySQL ticket servers (NOTES.md section 1).

Threads: one :class:`~.mysql_worker.Worker` per (sequence table, server), owning one persistent
connection, so that concurrent REPLACEs on one stub row never deadlock within a daemon and a hung
server only ever holds its own workers; one probe thread per server while it is down; a small
pool for the rare operations (ensure_table, last_id, raise_to, list_tables), each on a short
session of its own.

Everything else happens on the event loop: ``draw`` picks a server (round-robin over the healthy
ones, or the first healthy one for ``failover``), queues the request to that server's worker,
and arms a timer at ``request_timeout``. Requests a failed server hands back are routed again;
with no healthy server they wait (parked) until a probe brings one back or their timer fails them
with :class:`StoreUnavailable`. An id only ever comes from an OK packet: retries leave gaps,
never duplicates.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pymysql

from ..config import StoreConfig
from . import InfoSection, SchemaMismatch, Store, StoreError, StoreUnavailable
from . import mysql_schema as schema
from .mysql_server import Server, close_quietly, error_text
from .mysql_worker import Outcome, Request, Worker

log = logging.getLogger("tickerd.store.mysql")

_T = TypeVar("_T")

# The socket read timeout is this share of request_timeout: a hung server gives up its requests
# in time for another server to answer them before the caller's deadline.
READ_TIMEOUT_SHARE = 0.5
MIN_READ_TIMEOUT = 0.05
# The most requests that wait (parked) for a server to come back; beyond it a request fails at
# once instead of growing memory while every server is down.
MAX_PARKED = 10_000
# How soon requests waiting on a server that is up but skips their table are routed again.
REROUTE_DELAY = 0.1
# How soon ensure_table is tried again when a table could not be created or raised on a server.
ENSURE_RETRY_DELAY = 2.0
# How often a server kept out of a table it lacks (lost there?) is checked for a restored table.
LOST_RECHECK_DELAY = 30.0
# How long close() waits for the threads, beyond the longest a statement can take.
CLOSE_GRACE = 2.0


class MysqlStore(Store):
    """Tickets from one or more MySQL servers (``[mysql:<name>]`` sections)."""

    def __init__(self, config: StoreConfig) -> None:
        if not config.mysql:
            raise StoreError("the mysql store needs at least one [mysql:<name>] server")
        self.config = config
        self.timeout = config.request_timeout
        read_timeout = max(MIN_READ_TIMEOUT, self.timeout * READ_TIMEOUT_SHARE)
        self.servers = [Server(server, read_timeout) for server in config.mysql]
        self._failover = config.strategy == "failover"
        self._next = 0  # round-robin position
        self._workers: dict[tuple[str, str], Worker] = {}
        self._parked: collections.deque[Request] = collections.deque()
        # Tables that ensure_table could not reach on a server: created when it is back.
        self._missing: dict[str, set[str]] = {server.name: set() for server in self.servers}
        # Per table, the pending ensure_table retry and when it fires (one per table).
        self._retrying: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        # Tables found new on every server, and the servers where creating them failed so far.
        self._create_pending: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._reroute_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admin: ThreadPoolExecutor | None = None
        self._closing = False

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Check every server; servers that don't answer start down; raise if none answers."""
        self._loop = asyncio.get_running_loop()
        self._admin = ThreadPoolExecutor(
            max_workers=2 * len(self.servers), thread_name_prefix="tickerd-mysql-admin"
        )
        results = await self._on_each(lambda conn, _: schema.check_durability(conn), self.servers)
        for server, result in zip(self.servers, results, strict=True):
            if isinstance(result, BaseException):
                server.mark_down(result)
            elif result != 1:
                log.warning(
                    "ticket server %s has innodb_flush_log_at_trx_commit = %s: a crash can lose "
                    "the counter's last increments and issue acknowledged tickets again; "
                    "set it to 1",
                    server,
                    result,
                )
        for server in self.servers:
            server.on_up = functools.partial(self._from_thread, self._server_up, server)
            server.on_down = functools.partial(self._from_thread, self._server_down, server)
            server.start_probe()
        if not any(server.up for server in self.servers):
            await self.close()
            raise StoreUnavailable("no ticket server answered at start: " + self._states())

    async def close(self) -> None:
        """Finish queued draws (bounded), fail what is left, close connections, join threads."""
        if self._closing or self._loop is None:
            return
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._reroute_timer is not None:
            self._reroute_timer.cancel()
        for worker in self._workers.values():
            worker.stop()
        for server in self.servers:
            server.stop_probe()
        longest = (
            max(s.config.connect_timeout for s in self.servers) + 2 * self.servers[0].read_timeout
        )
        deadline = time.monotonic() + longest + CLOSE_GRACE

        def join() -> None:
            for worker in self._workers.values():
                if not worker.join(max(0.0, deadline - time.monotonic())):
                    log.error("worker %s/%s did not stop in time", worker.server, worker.table)
            for server in self.servers:
                server.join_probe(max(0.0, deadline - time.monotonic()))

        await asyncio.get_running_loop().run_in_executor(None, join)
        closed = StoreError("the ticket store is closing")
        while self._parked:
            _fail(self._parked.popleft(), closed)
        if self._admin is not None:
            self._admin.shutdown(wait=False, cancel_futures=True)

    # -- tickets, on the loop ----------------------------------------------------------------

    def draw(self, table: str) -> asyncio.Future[int]:
        """The next stub ticket of ``table``; never blocks the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if self._loop is None or self._closing:
            future.set_exception(StoreError("the ticket store is not running"))
            return future
        request = Request(table, future, time.monotonic() + self.timeout)
        request.timer = loop.call_later(self.timeout, self._expire, request)
        self._route(request)
        return future

    def _route(self, request: Request) -> None:
        request.server = self._pick(request.table)
        if request.server is not None:
            self._worker(request.table, request.server).submit(request)
        else:
            self._park(request)
            if any(server.up for server in self.servers) and self._reroute_timer is None:
                # An up server skipped this table (a table error, or not yet raised): no probe
                # will wake these requests, so look again soon, until their deadline.
                assert self._loop is not None
                self._reroute_timer = self._loop.call_later(REROUTE_DELAY, self._reroute_parked)

    def _park(self, request: Request) -> None:
        """Wait for a probe to bring a server back, within the limit of waiting requests."""
        if len(self._parked) >= MAX_PARKED:
            self._parked = collections.deque(r for r in self._parked if not r.future.done())
        if len(self._parked) >= MAX_PARKED:
            _fail(
                request,
                StoreUnavailable(
                    f"too many requests ({MAX_PARKED}) are waiting for a ticket server: "
                    + self._states()
                ),
            )
        else:
            self._parked.append(request)

    def _pick(self, table: str) -> Server | None:
        """The next server that is up and can serve ``table`` now."""
        servers = self.servers
        count = len(servers)
        start = 0 if self._failover else self._next
        now = time.monotonic()
        for step in range(count):
            server = servers[(start + step) % count]
            worker = self._workers.get((table, server.name))
            if (
                server.up
                and (worker is None or worker.unusable_until <= now)
                # Not before ensure_table has created it there and raised it past the others.
                and table not in self._missing[server.name]
            ):
                if not self._failover:
                    self._next = (start + step + 1) % count
                return server
        return None

    def _worker(self, table: str, server: Server) -> Worker:
        key = (table, server.name)
        worker = self._workers.get(key)
        if worker is None:
            assert self._loop is not None
            worker = self._workers[key] = Worker(table, server, self._loop, self._delivered)
        return worker

    def _delivered(self, outcome: Outcome) -> None:
        """A worker's round, on the loop: resolve, fail and re-route in one go."""
        for request, ticket in outcome.ids:
            if not request.future.done():
                request.future.set_result(ticket)
                _cancel_timer(request)
        for request, error in outcome.failed:
            _fail(request, error)
        for request in outcome.retry:
            if request.future.done():
                continue
            if self._closing:
                _fail(request, StoreUnavailable(f"the ticket store is closing: {self._states()}"))
            else:
                request.server = None
                self._route(request)

    def _from_thread(self, call: Callable[[Server], None], server: Server) -> None:
        loop = self._loop
        if loop is not None:
            # A closed loop means nothing is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(call, server)

    def _server_up(self, server: Server) -> None:
        if self._closing:
            return
        for table in sorted(self._missing[server.name]):
            self._spawn_ensure(table)
        self._reroute_parked()

    def _reroute_parked(self) -> None:
        """Route the waiting requests again: a server or a table may be usable now."""
        self._reroute_timer = None
        parked, self._parked = self._parked, collections.deque()
        for request in parked:
            if not request.future.done():
                self._route(request)

    def _server_down(self, server: Server) -> None:
        # Idle connections to a failed server are closed now, not on their next use.
        for (_, name), worker in self._workers.items():
            if name == server.name:
                worker.wake()

    async def _create_missing(self, table: str) -> None:
        try:
            await self.ensure_table(table)
        except StoreError as exc:
            log.warning("table %s is still missing on a ticket server: %s", table, exc)

    def _expire(self, request: Request) -> None:
        if not request.future.done():
            request.future.set_exception(
                StoreUnavailable(
                    f"no ticket server answered within {self.timeout:g}s: " + self._reasons(request)
                )
            )
        # Parked requests are failed here in about the order they were parked.
        parked = self._parked
        while parked and parked[0].future.done():
            parked.popleft()

    def _reasons(self, request: Request) -> str:
        """The servers ``request`` was tried on and why each did not answer; if it was never
        sent to one (every server down), each server's state."""
        reasons = list(request.tried)
        if request.server is not None:
            since = request.deadline - self.timeout
            reasons.append(f"{request.server}: {self._state(request.server, since)}")
        return "; ".join(reasons) if reasons else self._states()

    def _states(self, since: float | None = None) -> str:
        """Each server and why it did not answer; for an up server, an error it had since
        ``since`` (a request's start) if any, since it may have come back meanwhile."""
        return "; ".join(f"{server}: {self._state(server, since)}" for server in self.servers)

    @staticmethod
    def _state(server: Server, since: float | None) -> str:
        if not server.up:
            return server.last_error or "down"
        if since is not None and server.last_error_at >= since:
            return f"no reply in time (it failed meanwhile: {server.last_error})"
        return "up, no reply in time"

    # -- the rare operations, on the admin pool ----------------------------------------------

    async def ensure_table(self, table: str) -> None:
        """Check ``table`` on every server that answers; create it only where it is new.

        A table is new when every configured server answers and none has it. A table missing on
        one server while another has it may have been lost there (dropped, or the server rebuilt
        empty): re-created, its counter would restart and could repeat ids it issued before, so
        that server is kept out for the table, loudly, until an operator restores it. While a
        server is down, a table that no answering server has cannot be told new from lost: it is
        created once every server answers. A table empty on some servers while others issued ids
        starts past the largest of those ids. A server that cannot be created on or raised now
        (read_only, a lock) stays out for the table and is tried again later.
        """
        schema.quote(table)
        try:
            await self._ensure_table(table)
        finally:
            self._reroute_parked()

    async def _ensure_table(self, table: str) -> None:
        errors: dict[str, str] = {}  # per server, why a check or create failed there
        found = await self._check_each(table, self.servers, errors, create=False)
        holders = [s for s in self.servers if s.name in found and found[s.name][0]]
        lacking = [s for s in self.servers if s.name in found and not found[s.name][0]]
        unreached = [s for s in self.servers if s.name not in found]
        for server in self.servers:
            if not (server.name in found and found[server.name][0]):
                self._missing[server.name].add(table)
        pending = self._create_pending.get(table, set())
        pending -= {s.name for s in holders}  # it has the table now, however it got it
        if holders and lacking:
            # Servers that lacked a table found new everywhere (its create failed there) may
            # still get it; any other lacking server may have lost it.
            lost = [s for s in lacking if s.name not in pending]
            if lost:
                log.error(
                    "table %s is missing on %s but exists on %s: not creating it there (if it "
                    "was lost, its counter would restart and could repeat ids issued before); "
                    "those servers get no request for it. To bring them back, create the table "
                    "by hand with AUTO_INCREMENT past every id they issued (checked again every "
                    "%gs)",
                    table,
                    ", ".join(map(str, lost)),
                    ", ".join(map(str, holders)),
                    LOST_RECHECK_DELAY,
                )
                self._retry_later(table, LOST_RECHECK_DELAY)
            lacking = [s for s in lacking if s.name in pending]
        elif lacking and not unreached:
            pending = self._create_pending[table] = {s.name for s in lacking}  # new everywhere
        if lacking and pending:
            created = await self._check_each(table, lacking, errors, create=True)
            found.update(created)
            holders += [s for s in lacking if s.name in created]
            pending -= set(created)
            if not pending:
                self._create_pending.pop(table, None)
            if len(created) < len(lacking):
                log.warning("table %s could not be created on every ticket server", table)
                if created or holders:
                    self._retry_later(table)  # a holder serves it: complete it in the background
        if not holders:
            if not found:
                reason = "no ticket server answered"
            elif unreached:
                reason = (
                    "it exists on no ticket server that answered, and "
                    f"{', '.join(map(str, unreached))} did not answer: it is created once every "
                    "server answers"
                )
            else:
                reason = "it could not be created on any ticket server"
            shown = "; ".join(
                errors.get(server.name) or f"{server}: {self._state(server, None)}"
                for server in self.servers
            )
            raise StoreUnavailable(f"cannot create table {table} now: {reason}: {shown}")
        for server in unreached:
            log.warning("table %s not checked on %s (down): done when it is back", table, server)
        for server in holders:
            self._missing[server.name].discard(table)
        await self._raise_empty(table, found, holders)

    async def _raise_empty(
        self, table: str, found: dict[str, tuple[bool, int | None]], holders: list[Server]
    ) -> None:
        """Start the holders whose table is empty past every id (and SET floor) the others
        know; until then they get no request for it."""
        # A top may be a SET marker: the largest id of its server's residue at or below the
        # floor, which is then below top + increment.
        increment = self.servers[0].config.auto_increment_increment
        tops = [top + increment - 1 for _, (_, top) in found.items() if top is not None]
        empty = [s for s in holders if found[s.name][1] is None]
        if tops and empty:
            log.warning(
                "table %s has no ids on %s while other ticket servers issued ids up to %d: "
                "starting it past them",
                table,
                ", ".join(map(str, empty)),
                max(tops),
            )
            # These servers get no request for the table until they are raised.
            for server in empty:
                self._missing[server.name].add(table)
            try:
                await self._raise_each(table, max(tops), empty)
            except StoreError as exc:
                log.warning("%s; tried again in %gs", exc, ENSURE_RETRY_DELAY)
                self._retry_later(table)
                return
            for server in empty:
                self._missing[server.name].discard(table)

    async def _check_each(
        self, table: str, servers: list[Server], errors: dict[str, str], *, create: bool
    ) -> dict[str, tuple[bool, int | None]]:
        """(the table exists there, its largest id) per server that answered; why the others
        did not, in ``errors``."""
        results = await self._on_each(
            lambda conn, server: schema.ensure_table(
                conn,
                table,
                str(server),
                server.config.auto_increment_increment,
                server.config.auto_increment_offset,
                create=create,
            ),
            servers,
        )
        mismatches = [r for r in results if isinstance(r, SchemaMismatch)]
        if mismatches:
            raise mismatches[0]
        found: dict[str, tuple[bool, int | None]] = {}
        for server, result in zip(servers, results, strict=True):
            if isinstance(result, BaseException):
                errors[server.name] = str(result)  # named by _session, no secrets
                log.warning("table %s on %s: %s", table, server, result)
                continue
            existed, top = result
            found[server.name] = (existed or create, top)
        return found

    def _retry_later(self, table: str, delay: float = ENSURE_RETRY_DELAY) -> None:
        """Try ``ensure_table`` again after ``delay``: a server that answers but could not be
        created on or raised (read_only, a lock) must not stay out of the table until it next
        goes down. One retry per table: the sooner one wins."""
        loop = self._loop
        if loop is None or self._closing:
            return
        when = loop.time() + delay
        pending = self._retrying.get(table)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._retrying[table] = (when, loop.call_at(when, self._spawn_ensure, table))

    def _spawn_ensure(self, table: str) -> None:
        self._retrying.pop(table, None)
        if self._closing:
            return
        task = asyncio.ensure_future(self._create_missing(table))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def list_tables(self, prefix: str) -> list[str]:
        """The stub tables named ``prefix...`` on the first server that answers."""
        for server in self.servers:
            (result,) = await self._on_each(
                lambda conn, _: schema.list_tables(conn, prefix), [server]
            )
            if not isinstance(result, BaseException):
                return result
        raise StoreUnavailable(f"no ticket server answered: {self._states()}")

    async def last_id(self, table: str) -> int | None:
        """The largest stub id of ``table`` across the servers that answer."""
        results = await self._on_each(lambda conn, _: schema.max_id(conn, table), self.servers)
        ids = [r for r in results if not isinstance(r, BaseException)]
        if not ids:
            raise StoreUnavailable(f"no ticket server answered: {self._states()}")
        found = [i for i in ids if i is not None]
        return max(found) if found else None

    async def raise_to(self, table: str, floor: int) -> None:
        """Make the next ticket of ``table`` greater than ``floor`` on every server."""
        if floor < 0:
            raise StoreError(f"cannot raise {table} to a negative id")
        await self.ensure_table(table)
        # Every server, also one kept out of this table: if it lacks the table, SET fails
        # rather than promise a floor a restored table there would not know.
        await self._raise_each(table, floor, self.servers)

    async def _raise_each(self, table: str, floor: int, servers: list[Server]) -> None:
        results = await self._on_each(
            lambda conn, server: schema.raise_to(
                conn,
                table,
                floor,
                server.config.auto_increment_increment,
                server.config.auto_increment_offset,
            ),
            servers,
        )
        failed = [str(result) for result in results if isinstance(result, BaseException)]
        if failed:
            raise StoreUnavailable(
                f"{table} was not raised on every ticket server (try again): " + "; ".join(failed)
            )

    async def _on_each(
        self, call: Callable[[pymysql.Connection, Server], _T], servers: list[Server]
    ) -> list[_T | BaseException]:
        """Run ``call`` on a short session with each server, concurrently; errors are returned."""
        loop = asyncio.get_running_loop()
        if self._admin is None:
            raise StoreError("the ticket store is not running")
        futures = [loop.run_in_executor(self._admin, _session, server, call) for server in servers]
        return await asyncio.gather(*futures, return_exceptions=True)

    # -- INFO --------------------------------------------------------------------------------

    def info(self) -> list[InfoSection]:
        """A Store section, then one section per ticket server."""
        sections: list[InfoSection] = [
            (
                "Store",
                [
                    ("store_backend", "mysql"),
                    ("store_strategy", self.config.strategy),
                    ("store_servers", str(len(self.servers))),
                    ("store_servers_up", str(sum(server.up for server in self.servers))),
                    ("store_request_timeout", f"{self.timeout:g}"),
                    ("store_parked_requests", str(len(self._parked))),
                ],
            )
        ]
        for server in self.servers:
            prefix = f"ticketserver_{server.name}_"
            config = server.config
            lines = [
                ("status", "up" if server.up else "down"),
                ("address", config.address),
                ("database", config.database),
                ("auto_increment_increment", str(config.auto_increment_increment)),
                ("auto_increment_offset", str(config.auto_increment_offset)),
                ("tickets", str(server.tickets)),
                ("errors", str(server.errors)),
                ("deadlocks", str(server.deadlocks)),
                ("last_error", server.last_error),
                ("latency_p50_ms", f"{server.latency_ms(0.5):.3f}"),
                ("latency_p99_ms", f"{server.latency_ms(0.99):.3f}"),
            ]
            sections.append(
                (f"ticketserver_{server.name}", [(prefix + key, value) for key, value in lines])
            )
        return sections


def _session(server: Server, call: Callable[[pymysql.Connection, Server], _T]) -> _T:
    """Open a session, run ``call`` on it, close it; a broken server is marked down."""
    try:
        conn = server.connect()
    except (pymysql.MySQLError, OSError) as exc:
        server.mark_down(exc)
        raise StoreUnavailable(f"{server}: {server.scrub(error_text(exc))}") from None
    try:
        return call(conn, server)
    except (pymysql.MySQLError, OSError) as exc:
        server.record_error(exc)
        raise StoreError(f"{server}: {server.scrub(error_text(exc))}") from None
    finally:
        close_quietly(conn)


def _fail(request: Request, error: StoreError) -> None:
    if not request.future.done():
        request.future.set_exception(error)
    _cancel_timer(request)


def _cancel_timer(request: Request) -> None:
    if request.timer is not None:
        request.timer.cancel()
        request.timer = None
