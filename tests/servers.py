"""Real tickerd and redis-server processes for tests, started and stopped by the suite itself."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

# How long a server may take to start answering before the test fails.
START_TIMEOUT = 15.0
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Sent after a test's request so that we know where its replies end: RESET leaves MULTI (it is
# never queued), then ECHO answers with the marker.
_MARKER = b"--tickerd-test-marker--"
_FENCE = b"*1\r\n$5\r\nRESET\r\n*2\r\n$4\r\nECHO\r\n$23\r\n" + _MARKER + b"\r\n"
_FENCE_REPLY = b"+RESET\r\n$23\r\n" + _MARKER + b"\r\n"


def exchange(port: int, data: bytes, *, timeout: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes; return every reply to them, up to the server closing or a fence."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data + _FENCE)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while not received.endswith(_FENCE_REPLY):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    return received.removesuffix(_FENCE_REPLY)


def conversation(port: int, requests: list[bytes], *, timeout: float = 10.0) -> list[bytes]:
    """Send each request on one connection and collect its replies before sending the next.

    Each request is followed by an ECHO of the marker (so a request must not leave a MULTI
    open); RESET is left out so that the connection keeps its protocol between requests.
    """
    fence = _FENCE.removeprefix(b"*1\r\n$5\r\nRESET\r\n")
    fence_reply = _FENCE_REPLY.removeprefix(b"+RESET\r\n")
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for request in requests:
            sock.sendall(request + fence)
            received = b""
            while not received.endswith(fence_reply):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            replies.append(received.removesuffix(fence_reply))
    return replies


def closed_by_peer(port: int, data: bytes) -> bool:
    """Whether the server closes the connection after answering ``data``."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(2)
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True


def _wait_for_ping(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the server answers PING: PONG, or NOAUTH from one that wants a password."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
        ):
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not answer PING within {START_TIMEOUT}s:\n{log.read_text()}")


DEFAULT_CONFIG = """
[server]
bind = 127.0.0.1
port = {port}

[store]
backend = sqlite
path = {dir}/tickets.sqlite3

[sequences]
names = users posts
auto_create = yes
"""


class Tickerd:
    """A tickerd process with its own directory, config file and log."""

    def __init__(
        self,
        directory: Path,
        config: str = DEFAULT_CONFIG,
        *,
        env: dict[str, str] | None = None,
        **values: Any,
    ) -> None:
        self.dir = directory
        self.env = None if env is None else {**os.environ, **env}
        self.port = free_port()
        self.config_path = directory / "tickerd.ini"
        self.config_path.write_text(config.format(port=self.port, dir=directory, **values))
        self.log_path = directory / "tickerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> Tickerd:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tickerd", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env=self.env,
        )
        log.close()
        if wait:
            try:
                _wait_for_ping(self.port, self.process, self.log_path)
            except BaseException:
                self.stop(signal.SIGKILL)  # never leave a process behind a failed start
                raise
        return self

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the process and return its exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.process = None
        return status

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> Tickerd:
        self.stop()
        return self.start()

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **{"socket_timeout": 10, **options})

    def send(self, data: bytes, **options: Any) -> bytes:
        return exchange(self.port, data, **options)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def tickerd_factory(tmp_path: Path) -> Iterator[Callable[..., Tickerd]]:
    """Make tickerd processes (started) with the given config template; all stopped afterwards."""
    made: list[Tickerd] = []

    def make(
        config: str = DEFAULT_CONFIG,
        *,
        start: bool = True,
        env: dict[str, str] | None = None,
        **values: Any,
    ) -> Tickerd:
        directory = tmp_path / f"tickerd{len(made)}"
        directory.mkdir()
        server = Tickerd(directory, config, env=env, **values)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def tickerd() -> Iterator[Tickerd]:
    """One tickerd process on the sqlite store, shared by a test module."""
    with tempfile.TemporaryDirectory(prefix="tickerd-") as directory:
        server = Tickerd(Path(directory)).start()
        try:
            yield server
        finally:
            server.stop(signal.SIGKILL)


class RedisServer:
    """A throwaway redis-server: the reference for reply bytes; ``extra`` are more options
    (e.g. ``--requirepass``)."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(directory),
                "--logfile", str(self.log_path), *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_for_ping(self.port, self.process, self.log_path)
        except BaseException:
            self.stop()
            raise

    def send(self, data: bytes, **options: Any) -> bytes:
        return exchange(self.port, data, **options)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole run, never the machine's own."""
    with tempfile.TemporaryDirectory(prefix="redis-") as directory:
        server = RedisServer(Path(directory))
        try:
            yield server
        finally:
            server.stop()


def command(*args: str | bytes) -> bytes:
    """A request in RESP multibulk form."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
