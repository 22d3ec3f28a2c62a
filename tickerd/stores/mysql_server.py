"""One MySQL ticket server: how to open a session, whether it is up, and what it has done.

Health is shared by every worker of the server (one per sequence table). A worker that sees the
connection fail marks the server down at once, which takes it out of the rotation and bumps its
*generation*: every other worker's connection, opened before the failure, is then replaced
before its next use instead of failing a second time. A probe thread per server tries to connect
while it is down, with a backoff capped at :data:`PROBE_MAX_DELAY`, and puts it back on success.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable

import pymysql
from pymysql.constants import CLIENT

from ..config import MysqlServerConfig

log = logging.getLogger("tickerd.store.mysql")

# Probe a down server first after this long, doubling up to PROBE_MAX_DELAY: a server that is
# reachable again rejoins the rotation within about a second.
PROBE_FIRST_DELAY = 0.1
PROBE_MAX_DELAY = 1.0
# The least time a connect is given, however little its requests have left.
MIN_CONNECT_TIME = 0.05
# How many recent statement latencies INFO's percentiles are computed from.
LATENCY_SAMPLES = 1024
# The longest error text kept for INFO and error replies.
MAX_ERROR_TEXT = 300


def error_text(exc: BaseException) -> str:
    """A one-line description of a driver or socket error (PyMySQL errors are (code, text))."""
    args = exc.args
    if isinstance(exc, pymysql.MySQLError) and len(args) == 2 and isinstance(args[1], str):
        text = args[1] or f"error {args[0]}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:MAX_ERROR_TEXT]


class Server:
    """A configured ticket server, its health and its counters; safe to use from any thread."""

    def __init__(self, config: MysqlServerConfig, read_timeout: float) -> None:
        self.config = config
        self.name = config.name
        self.read_timeout = read_timeout
        self.up = True
        # Bumped by every mark_down: connections opened under an older generation are stale.
        self.generation = 0
        self.tickets = 0
        self.errors = 0
        self.deadlocks = 0
        self.last_error = ""
        self.last_error_at = 0.0  # time.monotonic()
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        # Called on the probe thread when the server comes back (the store hops to its loop).
        self.on_up: Callable[[], None] = _nothing
        # Called on the thread that marked the server down (the store closes idle connections).
        self.on_down: Callable[[], None] = _nothing
        self._lock = threading.Lock()
        self._down = threading.Event()
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.config.address})"

    # -- sessions ----------------------------------------------------------------------------

    def connect(
        self, multi_statements: bool = False, within: float | None = None
    ) -> pymysql.Connection:
        """A new autocommit session with this server's auto-increment settings (never my.cnf's).

        ``multi_statements`` is for the workers' fixed REPLACE batches only: nothing built from
        input is ever sent on such a session. ``within`` bounds the connect and the handshake
        (the time its requests have left); the session's reads then get the usual timeout.
        """
        config = self.config
        connect_timeout: float = config.connect_timeout
        read_timeout = self.read_timeout
        if within is not None:
            within = max(MIN_CONNECT_TIME, within)
            connect_timeout, read_timeout = min(connect_timeout, within), min(read_timeout, within)
        conn = pymysql.connect(
            host=config.host,
            port=config.port,
            unix_socket=config.unix_socket or None,
            user=config.user,
            password=config.password,
            database=config.database,
            autocommit=True,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            write_timeout=read_timeout,
            charset="utf8mb4",
            client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0,
        )
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SET SESSION auto_increment_increment = %s, auto_increment_offset = %s",
                    (config.auto_increment_increment, config.auto_increment_offset),
                )
        except BaseException:
            close_quietly(conn)
            raise
        set_read_timeout(conn, self.read_timeout)
        return conn

    def scrub(self, text: str) -> str:
        """``text`` with the password blanked out, should a driver ever echo it."""
        password = self.config.password
        return text.replace(password, "***") if password else text

    # -- health ------------------------------------------------------------------------------

    def record_error(self, exc: BaseException) -> str:
        """Count an error and remember its text (without secrets); return that text."""
        text = self.scrub(error_text(exc))
        with self._lock:
            self.errors += 1
            self.last_error = text
            self.last_error_at = time.monotonic()
        return text

    def mark_down(self, exc: BaseException) -> None:
        """Take the server out of the rotation now; its probe brings it back."""
        text = self.record_error(exc)
        with self._lock:
            if not self.up:
                return
            self.up = False
            self.generation += 1
            self._down.set()
        log.warning("ticket server %s is down: %s", self, text)
        self.on_down()

    def add_tickets(self, count: int, latencies: list[float]) -> None:
        """Account for one batch of tickets drawn by a worker."""
        with self._lock:
            self.tickets += count
        self.latencies.extend(latencies)

    def add_deadlock(self) -> None:
        """Count a deadlock (1213) that a worker retried."""
        with self._lock:
            self.deadlocks += 1

    def latency_ms(self, quantile: float) -> float:
        """The ``quantile`` (0..1) of recent statement latencies, in milliseconds."""
        samples = sorted(self.latencies)
        if not samples:
            return 0.0
        return samples[min(len(samples) - 1, int(len(samples) * quantile))] * 1000

    # -- the probe thread --------------------------------------------------------------------

    def start_probe(self) -> None:
        """Start the thread that reconnects while the server is down."""
        self._probe = threading.Thread(
            target=self._run_probe, name=f"tickerd-mysql-probe-{self.name}", daemon=True
        )
        self._probe.start()

    def stop_probe(self) -> None:
        """Ask the probe thread to end (see :meth:`join_probe`)."""
        self._stop.set()
        self._down.set()

    def join_probe(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the probe thread to end."""
        if self._probe is not None:
            self._probe.join(timeout)

    def _run_probe(self) -> None:
        delay = PROBE_FIRST_DELAY
        while True:
            self._down.wait()
            if self._stop.wait(delay):
                return
            try:
                close_quietly(self.connect())
            except Exception as exc:  # also e.g. PyMySQL's RuntimeError for an auth plugin
                self.record_error(exc)
                delay = min(delay * 2, PROBE_MAX_DELAY)
                continue
            delay = PROBE_FIRST_DELAY
            with self._lock:
                self.up = True
                self._down.clear()
            log.warning("ticket server %s is back", self)
            self.on_up()


def _nothing() -> None:
    pass


def set_read_timeout(conn: pymysql.Connection, seconds: float) -> None:
    """Set how long ``conn``'s next reads may wait (PyMySQL takes it per read, not per socket)."""
    # PyMySQL has no public setter.
    conn._read_timeout = seconds  # type: ignore[attr-defined]
    conn._write_timeout = seconds  # type: ignore[attr-defined]


def close_quietly(conn: pymysql.Connection | None) -> None:
    """Close ``conn`` without waiting on, or caring about, a broken server."""
    if conn is None:
        return
    # close() sends COM_QUIT but ignores a write failure; it only raises when already closed.
    with contextlib.suppress(pymysql.MySQLError):
        conn.close()
