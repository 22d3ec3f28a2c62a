"""Fixtures that start throwaway MariaDB servers.

Every server lives in its own ``/tmp/tkd*`` directory (short: a Unix socket path must fit in
108 bytes), listens on 127.0.0.1 on a port picked by binding a socket, and is killed at the end
of its fixture even when the test failed. The suite never touches a server it did not start.

A data directory is installed once per session into a template (``mariadb-install-db`` plus a
``tickerd`` user) and copied for each server, which takes milliseconds instead of a second.
"""

from __future__ import annotations

import contextlib
import getpass
import itertools
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

from tickerd.config import MysqlServerConfig

# The account tests give to tickerd: the grants a production deployment needs, no more.
TICKERD_USER = "tickerd"
TICKERD_PASSWORD = "tkd-secret-pw"
GRANTS = "SELECT, INSERT, DELETE, CREATE"
# How long a server may take to answer its first SELECT 1 after being started.
START_TIMEOUT = 30.0
# How long stop() waits for a clean shutdown before SIGKILL.
STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.02
# The tail of the error log quoted when a server fails to start.
ERROR_LOG_TAIL = 3000


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_datadir(datadir: Path) -> None:
    """Install a fresh MariaDB data directory at ``datadir`` (NOTES.md section 8)."""
    result = subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            f"--user={getpass.getuser()}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--innodb-log-file-size=8M",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout}\n{result.stderr}")


class MariaDB:
    """One throwaway ``mariadbd`` process on its own data directory and port."""

    def __init__(self, root: Path, template: Path | None = None) -> None:
        self.root = root
        self.datadir = root / "data"
        self.socket = str(root / "sock")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.error_log = root / "err.log"
        self.process: subprocess.Popen[bytes] | None = None
        if template is None:
            install_datadir(self.datadir)
        else:
            shutil.copytree(template, self.datadir)

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a paused one is running)."""
        return self.process is not None and self.process.poll() is None

    def start(self, *extra: str) -> None:
        """Start mariadbd (again) on the same data directory and port; wait until it answers."""
        if self.running:
            raise RuntimeError("the server is already running")
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--pid-file={self.root / 'pid'}",
                f"--log-error={self.error_log}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--user={getpass.getuser()}",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=1",
                "--innodb-buffer-pool-size=32M",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not self.running:
                raise RuntimeError(f"mariadbd exited at start:\n{self._log_tail()}")
            try:
                with contextlib.closing(self.connect(timeout=1.0)) as conn, conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    return
            except pymysql.MySQLError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mariadbd did not answer within {START_TIMEOUT}s:\n{self._log_tail()}"
                    ) from None
                time.sleep(POLL_INTERVAL)

    def _log_tail(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-ERROR_LOG_TAIL:]
        except OSError:
            return "(no error log)"

    def connect(self, database: str | None = None, timeout: float = 5.0) -> pymysql.Connection:
        """A root connection (autocommit), for test setup and checks."""
        # TCP, not the Unix socket: PyMySQL leaks the socket object of a failed Unix connect,
        # which filterwarnings = error turns into a failure while polling a starting server.
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user="root",
            database=database,
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        )

    def execute(self, sql: str, database: str | None = None) -> list[tuple[object, ...]]:
        """Run one statement as root and return its rows."""
        with contextlib.closing(self.connect(database)) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig``; for SIGKILL also reap the process (as a crash would leave it)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        if sig == signal.SIGKILL:
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open but answers nothing (a hung server)."""
        self.kill(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: undo :meth:`pause`."""
        self.kill(signal.SIGCONT)

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM, wait); SIGKILL if that takes too long."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        """Kill the process and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class MysqlDatabase:
    """A database on a throwaway server, with the credentials tickerd uses."""

    server: MariaDB
    database: str
    user: str = TICKERD_USER
    password: str = field(default=TICKERD_PASSWORD, repr=False)

    @property
    def host(self) -> str:
        """The server's TCP address."""
        return self.server.host

    @property
    def port(self) -> int:
        """The server's TCP port."""
        return self.server.port

    def config(
        self, name: str = "ticket1", offset: int = 1, increment: int = 1
    ) -> MysqlServerConfig:
        """A ``[mysql:<name>]`` section pointing at this database."""
        return MysqlServerConfig(
            name=name,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            auto_increment_increment=increment,
            auto_increment_offset=offset,
            connect_timeout=1.0,
        )


_names = itertools.count(1)


def create_database(server: MariaDB) -> MysqlDatabase:
    """A new, empty database on ``server``."""
    name = f"tkd_{next(_names)}"
    server.execute(f"CREATE DATABASE `{name}`")
    return MysqlDatabase(server, name)


def _new_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="tkd", dir="/tmp"))


@pytest.fixture(scope="session")
def mariadb_template() -> Iterator[Path]:
    """A data directory with the system tables and the tickerd user, installed once."""
    root = _new_root()
    server = MariaDB(root)
    try:
        server.start()
        server.execute(f"CREATE USER '{TICKERD_USER}'@'%' IDENTIFIED BY '{TICKERD_PASSWORD}'")
        server.execute(f"GRANT {GRANTS} ON *.* TO '{TICKERD_USER}'@'%'")
        server.stop()
        yield server.datadir
    finally:
        server.destroy()


MariaDBFactory = Callable[[], MariaDB]


@pytest.fixture
def mariadb_factory(mariadb_template: Path) -> Iterator[MariaDBFactory]:
    """Start fresh servers that a test may kill, pause or restart; all killed afterwards."""
    servers: list[MariaDB] = []

    def make() -> MariaDB:
        server = MariaDB(_new_root(), mariadb_template)
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.destroy()


@pytest.fixture(scope="session")
def mariadb(mariadb_template: Path) -> Iterator[MariaDB]:
    """One server shared by the whole session; tests must not kill or reconfigure it."""
    server = MariaDB(_new_root(), mariadb_template)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def mysql_database(mariadb: MariaDB) -> Iterator[MysqlDatabase]:
    """A fresh database on the shared server, dropped after the test."""
    database = create_database(mariadb)
    try:
        yield database
    finally:
        mariadb.execute(f"DROP DATABASE IF EXISTS `{database.database}`")
