"""MULTI and WATCH hold memory for a client: both are bounded, with clear errors."""

from __future__ import annotations

import socket

from tests.servers import Tickerd
from tests.servers import command as c
from tickerd.commands import ARGUMENT_OVERHEAD, MAX_QUEUED, MAX_QUEUED_BYTES, MAX_WATCHED
from tickerd.resp import MAX_ARGS

OK = b"+OK\r\n"
QUEUED = b"+QUEUED\r\n"
TOO_MANY_BYTES = f"-ERR too many bytes queued in MULTI (at most {MAX_QUEUED_BYTES})\r\n".encode()
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def _watched(tickerd: Tickerd, request: bytes) -> int:
    """How many keys CLIENT INFO reports watched after ``request``, on one connection."""
    reply = tickerd.send(request + c("CLIENT", "INFO"))
    return int(reply.split(b" watch=")[1].split(b" ")[0])


def test_multi_queue_is_bounded_in_bytes(tickerd: Tickerd) -> None:
    argument = b"x" * 60_000
    fitting = MAX_QUEUED_BYTES // (len(b"ECHO") + len(argument) + 2 * ARGUMENT_OVERHEAD)
    request = (
        c("MULTI")
        + c("ECHO", argument) * (fitting + 1)
        + c("PING")  # small enough to fit beside the others: queued, but the EXEC is doomed
        + c("EXEC")
    )
    expected = OK + QUEUED * fitting + TOO_MANY_BYTES + QUEUED + EXECABORT
    assert tickerd.send(request) == expected
    assert tickerd.send(c("PING")) == b"+PONG\r\n"


def test_empty_arguments_count_toward_the_multi_byte_cap(tickerd: Tickerd) -> None:
    """Each queued argument costs memory even when empty: the cap counts it."""
    arguments = [b""] * (MAX_ARGS - 1)
    per_request = len(b"EXISTS") + ARGUMENT_OVERHEAD * MAX_ARGS
    fitting = MAX_QUEUED_BYTES // per_request
    assert fitting < MAX_QUEUED  # the bytes, not the count, stop it
    request = c("MULTI") + c("EXISTS", *arguments) * (fitting + 1) + c("DISCARD")
    expected = OK + QUEUED * fitting + TOO_MANY_BYTES + OK
    assert tickerd.send(request) == expected


def test_watch_skips_keys_that_can_never_be_sequences(tickerd: Tickerd) -> None:
    never = [b"has space", b"semi;colon", b"\xff\xfe", b"x" * 100]
    assert _watched(tickerd, c("WATCH", *never)) == 0
    assert _watched(tickerd, c("WATCH", *never, "users", "new:sequence")) == 2


def test_watch_is_bounded(tickerd: Tickerd) -> None:
    per_request = MAX_ARGS - 1
    names = [f"w{i}".encode() for i in range(MAX_WATCHED)]
    chunks = [names[i : i + per_request] for i in range(0, MAX_WATCHED, per_request)]
    request = b"".join(c("WATCH", *chunk) for chunk in chunks)
    reply = tickerd.send(request + c("WATCH", "one-more") + c("WATCH", names[0]))
    error = f"-ERR too many watched keys (at most {MAX_WATCHED} per client)\r\n".encode()
    assert reply == OK * len(chunks) + error + OK  # a key already watched takes no more room
    assert _watched(tickerd, request + c("WATCH", "one-more", names[0])) == MAX_WATCHED


def test_a_half_closed_client_gets_every_reply(tickerd: Tickerd) -> None:
    """A client that sends its requests, then shuts down its write side (``nc -N``), is answered
    in full before tickerd closes: no ticket is drawn without its reply reaching the client."""
    before = int(tickerd.send(c("INCR", "halfclose")).split(b":")[1])
    with socket.create_connection(("127.0.0.1", tickerd.port), timeout=10) as sock:
        sock.sendall(c("PING") + c("INCR", "halfclose") * 3 + c("PING"))
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    tickets = [before + n for n in (1, 2, 3)]
    assert received == b"+PONG\r\n" + b"".join(b":%d\r\n" % t for t in tickets) + b"+PONG\r\n"
