"""What an operator relies on, against real tickerd processes: the [server] keys (requirepass,
unixsocket, maxclients, timeout), backpressure and request limits, SIGTERM drain, the command
line, and what a human at a telnet prompt or redis-cli sees (inline commands, QUIT, CLIENT LIST,
INFO).

Reply bytes that Redis defines are compared with a real redis-server started with the same
option (``--requirepass``), so the contract is Redis's behaviour, not a copy of tickerd's.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hiredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers import (
    DEFAULT_CONFIG,
    REPO,
    RedisServer,
    Tickerd,
    closed_by_peer,
    exchange,
    free_port,
)
from tests.servers import command as c
from tickerd import __version__
from tickerd.connection import CLOSE_TIMEOUT, WRITE_BUFFER_HIGH
from tickerd.resp import (
    MAX_ARGS,
    MAX_BULK,
    MAX_INLINE,
    MAX_REQUEST,
    UNAUTH_MAX_ARGS,
    UNAUTH_MAX_BULK,
)

PASSWORD = "s3cret"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
# Redis 7.2's text (redis/redis#11809 added "<proto> "); the local 7.0 server lacks those words.
HELLO_NOAUTH = (
    b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    b"HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    b"select the RESP protocol version at the same time\r\n"
)
START_TIMEOUT = 15.0
# A refusal reaches the test at once: redis-py would otherwise retry it, with back-off.
NO_RETRY = Retry(NoBackoff(), 0)


def _config(**server: str | int) -> str:
    """The suite's default template with extra ``[server]`` keys."""
    lines = "".join(f"{key} = {value}\n" for key, value in server.items())
    return DEFAULT_CONFIG.replace("port = {port}\n", "port = {port}\n" + lines)


def _recv_all(sock: socket.socket, *, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes the connection."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


# A stalled loop never answers; a busy 2-core CI machine may take a while: the limit is generous.
PING_LIMIT = 3.0


def _ping_within(port: int, seconds: float) -> float:
    """How long a fresh client waits for PONG; fails beyond ``seconds``."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"
    return time.monotonic() - started


# -- requirepass ------------------------------------------------------------------------------

# After each case: leave MULTI and de-authenticate (RESET), authenticate, then echo a marker, so
# we know where the case's replies end on either server.
_MARKER = b"--operations-marker--"
_FENCE = c("RESET") + c("AUTH", PASSWORD) + c("ECHO", _MARKER)
_FENCE_REPLY = b"+RESET\r\n+OK\r\n$%d\r\n%s\r\n" % (len(_MARKER), _MARKER)


def _secured_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` to a password-protected server; its replies, up to the fence or a close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data + _FENCE)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while not received.endswith(_FENCE_REPLY):
                chunk = sock.recv(65536)
                if not chunk:
                    return received + b"<closed>"
                received += chunk
    return received.removesuffix(_FENCE_REPLY)


@pytest.fixture(scope="module")
def secured_redis() -> Iterator[RedisServer]:
    """A throwaway redis-server with ``--requirepass``: the reference for AUTH."""
    with tempfile.TemporaryDirectory(prefix="redis-auth-") as directory:
        server = RedisServer(Path(directory), "--requirepass", PASSWORD)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def secured() -> Iterator[Tickerd]:
    """A tickerd with ``requirepass``, shared by the module's AUTH tests."""
    with tempfile.TemporaryDirectory(prefix="tickerd-auth-") as directory:
        server = Tickerd(Path(directory), _config(requirepass=PASSWORD)).start()
        try:
            yield server
        finally:
            server.stop(signal.SIGKILL)


_NEED_AUTH = """PING|INCR users|GET users|ECHO x|CLIENT ID|INFO|SELECT 0|DISCARD|WATCH users|
CONFIG GET maxclients|COMMAND COUNT|TIME""".replace("\n", "").split("|")
AUTH_CASES: dict[str, bytes] = {
    "commands before auth": b"".join(c(*request.split()) for request in _NEED_AUTH) + b"PING\r\n",
    "wrong password, still refused": c("AUTH", "wrong") + c("PING"),
    "wrong password for default": c("AUTH", "default", "wrong") + c("PING"),
    "unknown user": c("AUTH", "bob", PASSWORD) + c("PING"),
    "auth password": c("AUTH", PASSWORD) + c("PING"),
    "auth default password": c("AUTH", "default", PASSWORD) + c("PING"),
    "inline auth": f"AUTH {PASSWORD}\r\nPING\r\n".encode(),
    "wrong then right": c("AUTH", "x") + c("AUTH", PASSWORD) + c("PING"),
    "auth syntax": c("AUTH", "a", "b", "c") + c("AUTH"),
    "hello auth wrong": c("HELLO", "3", "AUTH", "default", "wrong") + c("PING"),
    "hello syntax": c("HELLO", "3", "AUTH", "default"),
    "hello bad protocol": c("HELLO", "4"),
    "reset de-authenticates": c("AUTH", PASSWORD) + c("PING") + c("RESET") + c("PING"),
    "reset inside multi": c("AUTH", PASSWORD) + c("MULTI") + c("RESET") + c("PING"),
    "unknown command before auth": c("FOO", "bar"),
    "auth inside multi": c("AUTH", PASSWORD) + c("MULTI") + c("AUTH", "wrong") + c("EXEC"),
    "quit before auth": c("QUIT") + c("PING"),
    # Redis 7 limits a request before AUTH to 10 arguments of 16 KiB, then closes.
    "at the limits before auth": c("EXISTS", *["k"] * (UNAUTH_MAX_ARGS - 1))
    + c("ECHO", "e" * UNAUTH_MAX_BULK),
    "too many arguments before auth": b"*%d\r\n" % (UNAUTH_MAX_ARGS + 1),
    "argument too long before auth": b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % (UNAUTH_MAX_BULK + 1),
    "after a refused auth, still limited": c("AUTH", "wrong") + b"*%d\r\n" % (UNAUTH_MAX_ARGS + 1),
    "huge count before auth": b"*2147483648\r\n",
    "huge bulk before auth": b"*1\r\n$536870913\r\n",
    "auth lifts the limits": c("AUTH", PASSWORD)
    + c("EXISTS", *["k"] * UNAUTH_MAX_ARGS)
    + c("ECHO", "e" * (UNAUTH_MAX_BULK + 1)),
    "reset restores the limits": c("AUTH", PASSWORD)
    + c("RESET")
    + b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % (UNAUTH_MAX_BULK + 1),
}


@pytest.mark.parametrize("name", sorted(AUTH_CASES))
def test_requirepass_replies_as_redis(
    name: str, secured: Tickerd, secured_redis: RedisServer
) -> None:
    data = AUTH_CASES[name]
    expected = _secured_exchange(secured_redis.port, data)
    assert _secured_exchange(secured.port, data) == expected


def test_requirepass_refuses_with_redis_texts(secured: Tickerd) -> None:
    """The texts spelled out, so a change on both sides cannot slip through the comparison."""
    assert _secured_exchange(secured.port, c("INCR", "users")) == NOAUTH
    assert _secured_exchange(secured.port, c("AUTH", "wrong")) == WRONGPASS
    assert _secured_exchange(secured.port, c("AUTH", PASSWORD)) == b"+OK\r\n"
    assert _secured_exchange(secured.port, c("AUTH", "default", PASSWORD)) == b"+OK\r\n"
    assert _secured_exchange(secured.port, c("MULTI") + c("PING")) == NOAUTH + NOAUTH


def test_unauthenticated_limits_with_redis_texts(secured: Tickerd) -> None:
    """Spelled out, and for HELLO AUTH, whose reply differs from Redis 7.0's (version)."""
    too_many = b"*%d\r\n" % (UNAUTH_MAX_ARGS + 1)
    assert _secured_exchange(secured.port, too_many) == (
        b"-ERR Protocol error: unauthenticated multibulk length\r\n<closed>"
    )
    too_long = b"*1\r\n$%d\r\n" % (UNAUTH_MAX_BULK + 1)
    assert _secured_exchange(secured.port, too_long) == (
        b"-ERR Protocol error: unauthenticated bulk length\r\n<closed>"
    )
    hello = c("HELLO", "2", "AUTH", "default", PASSWORD) + c("ECHO", "e" * (UNAUTH_MAX_BULK + 1))
    reply = _secured_exchange(secured.port, hello)
    assert reply.startswith(b"*1")  # HELLO's map, then the echo
    assert reply.endswith(b"$%d\r\n%s\r\n" % (UNAUTH_MAX_BULK + 1, b"e" * (UNAUTH_MAX_BULK + 1)))


def test_hello_before_auth_is_refused_as_redis_7_2(
    secured: Tickerd, secured_redis: RedisServer
) -> None:
    for request in (c("HELLO", "3"), c("HELLO"), c("HELLO", "2", "SETNAME", "x")):
        assert _secured_exchange(secured.port, request) == HELLO_NOAUTH
    # The local Redis 7.0 says the same, less the "<proto> " that 7.2 added.
    reference = _secured_exchange(secured_redis.port, c("HELLO", "3"))
    assert reference == HELLO_NOAUTH.replace(b"HELLO <proto> AUTH", b"HELLO AUTH")


def test_hello_auth_authenticates_and_switches_protocol(secured: Tickerd) -> None:
    with socket.create_connection(("127.0.0.1", secured.port), timeout=5) as sock:
        reader = hiredis.Reader()

        def ask(request: bytes) -> object:
            sock.sendall(request)
            while (reply := reader.gets()) is False:
                reader.feed(sock.recv(65536))
            return reply

        sock.sendall(c("HELLO", "3", "AUTH", "default", PASSWORD, "SETNAME", "op"))
        head = sock.recv(4)
        assert head.startswith(b"%"), "HELLO 3 must answer with a RESP3 map"
        reader.feed(head)
        while (hello := reader.gets()) is False:
            reader.feed(sock.recv(65536))
        assert isinstance(hello, dict)
        assert hello[b"proto"] == 3
        assert ask(c("CLIENT", "GETNAME")) == b"op"
        sock.sendall(c("GET", "never-issued"))
        assert sock.recv(64) == b"_\r\n"  # RESP3's null: the switch happened
        assert ask(c("INCR", "users")) > 0  # type: ignore[operator]


@pytest.mark.parametrize("protocol", [None, 2], ids=["default", "resp2"])
def test_redis_py_with_password(secured: Tickerd, protocol: int | None) -> None:
    options = {} if protocol is None else {"protocol": protocol}
    with secured.client(password=PASSWORD, **options) as client:
        first = client.incr("users")
        assert client.incr("users") == first + 1
        assert client.ping() is True
    with (
        pytest.raises(redis.AuthenticationError),
        secured.client(password="wrong", retry=NO_RETRY, **options) as client,
    ):
        client.ping()
    with (
        pytest.raises(redis.AuthenticationError),
        secured.client(retry=NO_RETRY, **options) as client,
    ):
        client.incr("users")


def test_redis_cli_with_password(secured: Tickerd) -> None:
    base = ["redis-cli", "-p", str(secured.port)]
    refused = subprocess.run([*base, "INCR", "users"], capture_output=True, timeout=10, check=True)
    assert refused.stdout.startswith(b"NOAUTH")
    granted = subprocess.run(
        [*base, "-a", PASSWORD, "--no-auth-warning", "INCR", "users"],
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert int(granted.stdout) > 0


# -- unixsocket -------------------------------------------------------------------------------


def test_unix_socket(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory(_config(unixsocket="{dir}/t.sock"))
    path = server.dir / "t.sock"
    assert path.is_socket()
    with redis.Redis(unix_socket_path=str(path), socket_timeout=5) as client:
        first = client.incr("users")
        assert client.incr("users") == first + 1
    cli = subprocess.run(
        ["redis-cli", "-s", str(path), "INCR", "users"], capture_output=True, timeout=10, check=True
    )
    assert int(cli.stdout) == first + 2
    with server.client() as client:  # TCP as well
        assert client.incr("users") == first + 3
    assert server.stop() == 0
    assert not path.exists(), "SIGTERM must remove the socket file"


def test_unix_socket_left_by_a_crash_is_replaced(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory(_config(unixsocket="{dir}/t.sock"))
    path = server.dir / "t.sock"
    server.kill()
    assert path.is_socket(), "kill -9 leaves the socket file behind"
    server.start()
    with redis.Redis(unix_socket_path=str(path), socket_timeout=5) as client:
        assert client.ping() is True


# -- maxclients -------------------------------------------------------------------------------


def test_maxclients(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory(_config(maxclients=2))
    first = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    second = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        for sock in (first, second):  # both registered before the third arrives
            sock.sendall(b"PING\r\n")
            assert sock.recv(64) == b"+PONG\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as third:
            assert _recv_all(third) == b"-ERR max number of clients reached\r\n"
        with pytest.raises(redis.ConnectionError, match="max number of clients reached"):
            server.client(retry=NO_RETRY).ping()
        second.close()
        deadline = time.monotonic() + 3
        while True:  # the server sees the close a moment later
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(c("INFO", "stats"))
                reply = sock.recv(65536)
            if not reply.startswith(b"-ERR max"):
                break
            assert time.monotonic() < deadline, "a slot freed by a close was not reused"
            time.sleep(0.05)
        assert b"rejected_connections:" in reply
        assert b"rejected_connections:0\r\n" not in reply
        first.sendall(b"PING\r\n")
        assert first.recv(64) == b"+PONG\r\n"  # the first client was never disturbed
    finally:
        first.close()
        second.close()


# -- timeout ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_idle_timeout_closes_idle_clients_only(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory(_config(timeout=1))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as active,
    ):
        for sock in (idle, active):
            sock.sendall(b"PING\r\n")
            assert sock.recv(64) == b"+PONG\r\n"
        started = time.monotonic()
        idle.setblocking(False)
        closed_after = None
        while time.monotonic() - started < 3.5:
            active.sendall(b"PING\r\n")
            assert active.recv(64) == b"+PONG\r\n", "an active client was closed"
            if closed_after is None:
                with contextlib.suppress(BlockingIOError):
                    if idle.recv(64) == b"":
                        closed_after = time.monotonic() - started
            time.sleep(0.25)
        assert closed_after is not None, "the idle client was not closed within 3.5 s"
        assert 0.9 <= closed_after <= 3.0
        active.sendall(b"PING\r\n")
        assert active.recv(64) == b"+PONG\r\n"


@pytest.mark.slow
def test_idle_timeout_closes_a_client_that_does_not_read(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    """Replies pile up unread: the close cannot drain them, so the connection is aborted."""
    server = tickerd_factory(_config(timeout=1))
    payload = b"x" * 60_000
    request = c("ECHO", payload) * 16
    with socket.socket() as stuck, server.client() as watcher:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", server.port))
        port = stuck.getsockname()[1]
        stuck.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 10
        still_since = time.monotonic()
        # Send until tickerd stops reading (backpressure): no progress for a second.
        while time.monotonic() < deadline and time.monotonic() - still_since < 1:
            try:
                sent += stuck.send(request)
                still_since = time.monotonic()
            except BlockingIOError:
                time.sleep(0.05)
        assert sent > 2 * WRITE_BUFFER_HIGH, "too little sent to fill tickerd's write buffer"
        stalled = time.monotonic()
        addr = f"127.0.0.1:{port}"
        while any(client["addr"] == addr for client in watcher.client_list()):
            # Closed at about timeout + sweep + CLOSE_TIMEOUT; generous for a loaded box.
            assert time.monotonic() - stalled < 1 + 1 + CLOSE_TIMEOUT + 15, "never closed"
            time.sleep(0.25)


# -- backpressure -----------------------------------------------------------------------------


def _memory_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _echo(index: int, size: int) -> tuple[bytes, bytes]:
    payload = b"%08d" % index + b"x" * (size - 8)
    return c("ECHO", payload), b"$%d\r\n%s\r\n" % (size, payload)


@pytest.mark.slow
def test_a_client_that_does_not_read_is_paused_not_buffered(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    """200k pipelined ECHOs of 1 KB, replies unread: ~200 MB each way if tickerd buffered them."""
    count, size = 200_000, 1024
    server = tickerd_factory()
    assert server.process is not None
    pid = server.process.pid
    requests, replies = zip(*(_echo(index, size) for index in range(count)), strict=True)
    data, expected = b"".join(requests), b"".join(replies)
    baseline = _memory_kb(pid, "VmRSS")
    sent = [0]

    def send(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the test failed and closed the socket
            view = memoryview(data)
            while sent[0] < len(data):
                sent[0] += sock.send(view[sent[0] : sent[0] + 65536])

    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as slow:
        sender = threading.Thread(target=send, args=(slow,), daemon=True)
        sender.start()
        # Wait until tickerd stops reading: the sender stalls, far from done.
        deadline = time.monotonic() + 5
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - still_since < 0.5:
            if sent[0] != last:
                last, still_since = sent[0], time.monotonic()
            time.sleep(0.05)
        stalled_at = sent[0]
        assert stalled_at < 50_000_000, (
            f"tickerd read {stalled_at} bytes from a client that reads no replies"
        )
        for _ in range(3):  # others are served meanwhile
            assert _ping_within(server.port, PING_LIMIT) < PING_LIMIT
        assert _memory_kb(pid, "VmRSS") - baseline < 100_000
        # Now the slow client reads: every reply, in order.
        received = bytearray()
        started = time.monotonic()
        while len(received) < len(expected):
            chunk = slow.recv(1 << 20)
            assert chunk, f"closed after {len(received)} of {len(expected)} reply bytes"
            received += chunk
            assert time.monotonic() - started < 15, "replies too slow"
        sender.join(5)
        assert sent[0] == len(data)
        assert received == expected
    peak = _memory_kb(pid, "VmHWM")
    assert peak - baseline < 100_000, f"tickerd grew by {peak - baseline} kB at its peak"
    assert _ping_within(server.port, PING_LIMIT) < PING_LIMIT


def test_deep_pipeline_of_pings_answered_in_order(tickerd: Tickerd) -> None:
    count = 200_000
    data = b"".join(c("PING", b"%06d" % index) for index in range(count))
    expected = b"".join(b"$6\r\n%06d\r\n" % index for index in range(count))
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=15) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        received = bytearray()
        while len(received) < len(expected):
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {len(received)} of {len(expected)} reply bytes"
            received += chunk
        sender.join(5)
    assert received == expected


# -- limits -----------------------------------------------------------------------------------


def _protocol_error(reason: str) -> bytes:
    return f"-ERR Protocol error: {reason}\r\n".encode()


LIMIT_CASES: dict[str, tuple[bytes, str]] = {
    "too many arguments": (b"*%d\r\n" % (MAX_ARGS + 1), "invalid multibulk length"),
    "argument too long": (
        b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % (MAX_BULK + 1),
        "invalid bulk length",
    ),
    "huge bulk promised": (b"*1\r\n$2000000000\r\n", "invalid bulk length"),
    "inline line too long, no newline": (b"ECHO " + b"a" * MAX_INLINE, "too big inline request"),
    "inline line too long": (b"ECHO " + b"a" * MAX_INLINE + b"\r\n", "too big inline request"),
    "multibulk count line too long": (b"*" + b"1" * (MAX_INLINE + 1), "too big mbulk count string"),
    "bulk count line too long": (
        b"*1\r\n$" + b"1" * (MAX_INLINE + 1),
        "too big bulk count string",
    ),
    # Arguments of MAX_BULK that fit in MAX_REQUEST, then the header of one more.
    "request too large": (
        b"*%d\r\n" % MAX_ARGS
        + c(*[b"k" * MAX_BULK] * (MAX_REQUEST // (MAX_BULK + 16))).partition(b"\r\n")[2]
        + b"$%d\r\n" % MAX_BULK,
        "request too large",
    ),
}


@pytest.mark.parametrize("name", sorted(LIMIT_CASES))
def test_limits_are_protocol_errors_that_close(name: str, tickerd: Tickerd) -> None:
    data, reason = LIMIT_CASES[name]
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as sock:
        sock.sendall(c("PING") + data)  # what came before the garbage is still answered
        started = time.monotonic()
        # Nothing more is sent: the refusal comes at once, the data promised is not waited for.
        assert _recv_all(sock, timeout=2) == b"+PONG\r\n" + _protocol_error(reason)
        assert time.monotonic() - started < 1.5
    assert _ping_within(tickerd.port, 1.0) < 1.0


RAW_BYTE_ERRORS = [b"*1\r\n\xff\r\n", b"*1\r\n\n\r\n", b"*1\r\n\r\r\n", b"*1\r\n\xc3\r\n"]


@pytest.mark.parametrize("data", RAW_BYTE_ERRORS, ids=["ff", "lf", "cr", "c3"])
def test_protocol_errors_carry_raw_bytes_as_redis(
    data: bytes, tickerd: Tickerd, redis_server: RedisServer
) -> None:
    assert tickerd.send(data) == redis_server.send(data)


def test_protocol_errors_are_logged_at_debug_on_one_line(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    quiet = tickerd_factory()
    chatty = tickerd_factory(_config(log_level="debug"))
    for server in (quiet, chatty):
        assert server.send(b"*1\r\n\n\r\n").startswith(b"-ERR Protocol error: expected '$'")
    assert "protocol error" not in quiet.log  # a client's garbage is not the operator's news
    lines = [line for line in chatty.log.splitlines() if "protocol error from" in line]
    assert len(lines) == 1
    assert lines[0].endswith(repr("expected '$', got '\n'")), lines[0]


def _request_of(size: int) -> bytes:
    """An EXISTS request of exactly ``size`` bytes, in keys of at most MAX_BULK."""
    keys: list[bytes] = []
    while len(c("EXISTS", *keys)) < size:
        missing = size - len(c("EXISTS", *keys, b""))
        key = b"k" * min(max(missing, 0), MAX_BULK)
        while len(c("EXISTS", *keys, key)) > size:
            key = key[:-1]
        keys.append(key)
    request = c("EXISTS", *keys)
    assert len(request) == size
    return request


def test_requests_at_the_limits_are_served(tickerd: Tickerd) -> None:
    keys = [b"k%d" % index for index in range(MAX_ARGS - 1)]
    assert tickerd.send(c("EXISTS", *keys)) == b":0\r\n"
    assert tickerd.send(_request_of(MAX_REQUEST)) == b":0\r\n"
    payload = b"p" * MAX_BULK
    assert tickerd.send(c("ECHO", payload)) == b"$%d\r\n%s\r\n" % (MAX_BULK, payload)
    line = b"ECHO " + b"i" * (MAX_INLINE - 5)
    assert len(line) == MAX_INLINE
    assert tickerd.send(line + b"\r\n") == b"$%d\r\n%s\r\n" % (MAX_INLINE - 5, line[5:])


def test_a_request_sent_slowly_does_not_stall_others(tickerd: Tickerd) -> None:
    payload = b"s" * MAX_BULK
    request = c("ECHO", payload)
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as slow:
        slow.sendall(request[: len(request) // 2])
        assert _ping_within(tickerd.port, 1.0) < 1.0
        slow.sendall(request[len(request) // 2 :])
        slow.sendall(c("QUIT"))
        assert _recv_all(slow) == b"$%d\r\n%s\r\n+OK\r\n" % (MAX_BULK, payload)


# -- SIGTERM drain ----------------------------------------------------------------------------


def _incr_loop(port: int, replies: list[object], ready: threading.Barrier) -> None:
    """Pipelines of 10 INCRs on one raw connection until the server closes it; every reply."""
    reader = hiredis.Reader()
    batch = c("INCR", "users") * 10
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        ready.wait()
        with contextlib.suppress(OSError):
            while True:
                sock.sendall(batch)
                wanted = len(replies) + 10
                while len(replies) < wanted:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    reader.feed(chunk)
                    while (reply := reader.gets()) is not False:
                        replies.append(reply)


@pytest.mark.slow
def test_sigterm_drains_and_exits_0(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory()
    runs: list[list[object]] = [[] for _ in range(8)]
    ready = threading.Barrier(len(runs) + 1)
    threads = [
        threading.Thread(target=_incr_loop, args=(server.port, replies, ready), daemon=True)
        for replies in runs
    ]
    for thread in threads:
        thread.start()
    ready.wait(10)
    time.sleep(1.0)
    assert server.process is not None
    process = server.process
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    status = process.wait(10)
    took = time.monotonic() - signalled
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a client was never closed"
    assert status == 0
    assert took < 5, f"shutdown took {took:.1f} s"
    tickets = [reply for replies in runs for reply in replies]
    assert len(tickets) > 100, "the load did not run"
    bad = [reply for reply in tickets if not isinstance(reply, int) or reply <= 0]
    assert not bad, f"replies that are not tickets: {bad[:5]}"
    assert len(set(tickets)) == len(tickets), "a ticket was issued twice"
    for replies in runs:
        assert replies == sorted(replies), "one connection saw tickets go backwards"  # type: ignore[type-var]
    assert "tickerd stopped" in server.log
    server.process = None
    server.start()
    with server.client() as client:
        assert client.incr("users") > max(tickets)  # type: ignore[type-var]


# -- the command line -------------------------------------------------------------------------


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=cwd, check=False)


def test_version_from_module_and_console_script() -> None:
    script = Path(sys.executable).with_name("tickerd")
    for argv in ([sys.executable, "-m", "tickerd"], [str(script)]):
        done = _run(*argv, "--version")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"tickerd {__version__}"


BAD_CONFIGS: dict[str, tuple[str, list[str]]] = {
    "unknown key": (_config(maxclient=5), ["[server] maxclient"]),
    "bad value": (_config(maxclients="lots"), ["[server] maxclients", "'lots'"]),
    "bad port": (DEFAULT_CONFIG.replace("port = {port}", "port = 70000"), ["[server] port"]),
    "unknown section": (DEFAULT_CONFIG + "[srever]\nbind = x\n", ["[srever]"]),
    "bad sequence name": (
        DEFAULT_CONFIG.replace("names = users posts", "names = users bad/name"),
        ["[sequences] names", "'bad/name'"],
    ),
    "every problem at once": (
        _config(timeout=-1, maxclient=5),
        ["[server] timeout", "'-1'", "[server] maxclient"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_stops_start_up(name: str, tmp_path: Path) -> None:
    template, expected = BAD_CONFIGS[name]
    path = tmp_path / "bad.ini"
    path.write_text(template.format(port=free_port(), dir=tmp_path))
    done = _run(sys.executable, "-m", "tickerd", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 1
    for text in expected:
        assert text in done.stderr
    assert not (tmp_path / "tickets.sqlite3").exists(), "the store was opened anyway"


# -- what a human sees ------------------------------------------------------------------------


def test_inline_commands_as_from_telnet(tickerd: Tickerd) -> None:
    first = int(tickerd.send(b"INCR users\r\n")[1:-2])
    assert tickerd.send(b"INCR users\r\n") == b":%d\r\n" % (first + 1)
    assert tickerd.send(b"INCR users\n") == b":%d\r\n" % (first + 2)  # netcat sends bare LF
    assert tickerd.send(b"  get   users  \r\n") == b"$%d\r\n%d\r\n" % (
        len(str(first + 2)),
        first + 2,
    )
    assert tickerd.send(b'ECHO "hello world"\r\n') == b"$11\r\nhello world\r\n"
    assert tickerd.send(b"\r\n\r\nPING\r\n") == b"+PONG\r\n"  # empty lines are skipped
    # printf 'INCR users\r\n' | redis-cli --pipe: raw bytes, as a shell pipeline sends them.
    printed = subprocess.run(
        ["redis-cli", "-p", str(tickerd.port), "--pipe"],
        input="INCR users\r\nPING\r\n",
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert "errors: 0, replies: 2" in printed.stdout, printed.stdout


def test_quit_replies_ok_then_closes(tickerd: Tickerd) -> None:
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=5) as sock:
        sock.sendall(b"PING\r\nQUIT\r\nPING\r\n")
        assert _recv_all(sock) == b"+PONG\r\n+OK\r\n"  # nothing after QUIT is answered
    assert closed_by_peer(tickerd.port, c("QUIT"))
    assert exchange(tickerd.port, c("QUIT")) == b"+OK\r\n"


def _bulk_text(reply: bytes) -> str:
    """The text of a reply that must be exactly one bulk string."""
    reader = hiredis.Reader()
    reader.feed(reply)
    value = reader.gets()
    assert isinstance(value, bytes), reply
    assert reader.gets() is False, "more than one reply"
    return value.decode()


def test_client_list_shows_every_client_with_name_and_id(tickerd: Tickerd) -> None:
    with tickerd.client() as alice, tickerd.client() as anonymous:
        alice.client_setname("alice")
        alice_id = alice.client_id()
        anonymous_id = anonymous.client_id()
        listed = {entry["id"]: entry for entry in alice.client_list()}
        assert listed[str(alice_id)]["name"] == "alice"
        assert listed[str(anonymous_id)]["name"] == ""
        raw = _bulk_text(tickerd.send(c("CLIENT", "LIST")))
        lines = [line for line in raw.split("\n") if line]
        assert f"id={alice_id} " in raw
        assert " name=alice " in raw
        assert all(line.startswith("id=") and " addr=127.0.0.1:" in line for line in lines)
        assert len(lines) >= 3  # the two, and the one asking
    with tickerd.client() as client:  # the closed ones are gone
        ids = {entry["id"] for entry in client.client_list()}
        assert str(alice_id) not in ids
        assert str(anonymous_id) not in ids


def test_info_sections(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory()
    with server.client() as client, server.client(protocol=2) as other:
        tickets = [client.incr("users") for _ in range(3)]
        other.incr("posts")
        parsed = client.info("everything")
        raw = _bulk_text(server.send(c("INFO")))
    sections = [line for line in raw.split("\r\n") if line.startswith("# ")]
    for title in ("# Server", "# Clients", "# Stats", "# Sequences"):
        assert title in sections, f"no {title} in INFO"
    assert raw.startswith("# Server\r\n")
    assert "\r\nredis_version:7." in raw
    assert f"\r\ntickerd_version:{__version__}\r\n" in raw
    assert "\r\nloading:0\r\n" in raw
    assert "\r\nconnected_clients:3\r\n" in raw  # the two, and the one asking
    assert parsed["connected_clients"] == 2
    assert parsed["loading"] == 0
    assert parsed["tickerd_version"] == __version__
    # One line per sequence, keyed by position (sequence0, ...) with the name as a field.
    by_name = {
        value["name"]: value
        for key, value in parsed.items()
        if key.startswith("sequence") and isinstance(value, dict)
    }
    assert by_name["users"]["last"] == tickets[-1]
    assert by_name["users"]["issued"] == 3
    assert by_name["posts"]["issued"] == 1
    only = _bulk_text(server.send(c("INFO", "sequences")))
    assert only.startswith("# Sequences\r\n")
    assert "# Server" not in only
    line = f"name=users,table=tickets_users,last={tickets[-1]},issued=3"
    assert re.search(rf"\r\nsequence\d+:{line}\r\n", only), only
