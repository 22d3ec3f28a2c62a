"""Reply bytes compared with a real redis-server, where Redis's behaviour is the contract.

Each case sends the same bytes to redis-server (started by the suite) and to tickerd and expects
the very same reply bytes: error texts, reply shapes in RESP2 and RESP3, protocol errors.
"""

from __future__ import annotations

import pytest

from tests.servers import RedisServer, Tickerd, closed_by_peer, conversation
from tests.servers import command as c

HELLO3 = c("HELLO", "3")

CASES: dict[str, bytes] = {
    "ping": c("PING"),
    "ping with message": c("PING", "hello"),
    "ping arity": c("PING", "a", "b"),
    "inline ping": b"PING\r\n",
    "inline with quotes": b'ECHO "a b\\x41"\r\n',
    "echo": c("ECHO", "x"),
    "echo arity": c("ECHO"),
    "unknown command": c("FOO", "a", "b"),
    "unknown command no args": c("FOO"),
    "unknown command long args": c("FOO", "a" * 200, "b"),
    "unknown command many args": c("FOO", *["abcdefghij"] * 20),
    "unknown command long name": c("F" * 200, "a"),
    "unknown command with nul bytes": c(b"FOO\x00BAR", b"a\x00b", "c"),
    "unknown command not utf-8": c(b"F\xffOO", b"\xfe\xff", "x"),
    "unknown command clipped mid-character": c("FOO", "\u00e9" * 100),
    "unknown command clipped mid-character in the name": c("\u00e9" * 100),
    "unknown command with crlf": c("FOO", "a\r\nb"),
    "unknown subcommand not utf-8": c("CLIENT", b"\xff\x00x"),
    "unknown subcommand long": c("CONFIG", "\u00e9" * 100),
    "get arity": c("GET"),
    "incr arity": c("INCR"),
    "incr arity too many": c("INCR", "a", "b"),
    "incrby not an integer": c("INCRBY", "a", "x"),
    "incrby float": c("INCRBY", "a", "1.5"),
    "get missing resp2": c("GET", "missing"),
    "type missing": c("TYPE", "missing"),
    "exists missing": c("EXISTS", "missing", "missing"),
    "scan bad cursor": c("SCAN", "x"),
    "scan count 0": c("SCAN", "0", "COUNT", "0"),
    "scan match without pattern": c("SCAN", "0", "MATCH"),
    "client unknown subcommand": c("CLIENT", "FOO"),
    "client arity": c("CLIENT"),
    "client setname arity": c("CLIENT", "SETNAME"),
    "client setname with space": c("CLIENT", "SETNAME", "a b"),
    "client setname ok": c("CLIENT", "SETNAME", "worker"),
    "client getname unset": c("CLIENT", "GETNAME"),
    "client list type unknown": c("CLIENT", "LIST", "TYPE", "foo"),
    "client list type raw bytes": c("CLIENT", "LIST", "TYPE", b"\xff\xfe"),
    "client list type pubsub": c("CLIENT", "LIST", "TYPE", "pubsub"),
    "client list type master": c("CLIENT", "LIST", "TYPE", "MASTER"),
    "client list type without a type": c("CLIENT", "LIST", "TYPE"),
    "client list unknown option": c("CLIENT", "LIST", "FOO", "bar"),
    "client list id not an integer": c("CLIENT", "LIST", "ID", "x"),
    "client list id unknown": c("CLIENT", "LIST", "ID", "999999"),
    "client getname after setname": c("CLIENT", "SETNAME", "w1") + c("CLIENT", "GETNAME"),
    "select 0": c("SELECT", "0"),
    "select out of range": c("SELECT", "16"),
    "select not an integer": c("SELECT", "x"),
    "auth without password configured": c("AUTH", "x"),
    "auth default user without password": c("AUTH", "default", "x"),
    "auth other user": c("AUTH", "alice", "x"),
    "hello bad version": c("HELLO", "4"),
    "hello not an integer": c("HELLO", "x"),
    "hello setname without name": c("HELLO", "3", "SETNAME"),
    "hello unknown option": c("HELLO", "2", "FOO"),
    "hello auth wrong user": c("HELLO", "2", "AUTH", "alice", "x"),
    "exec without multi": c("EXEC"),
    "discard without multi": c("DISCARD"),
    "nested multi": c("MULTI") + c("MULTI"),
    "watch inside multi": c("MULTI") + c("WATCH", "x"),
    "empty transaction": c("MULTI") + c("EXEC"),
    "discarded transaction": c("MULTI") + c("PING") + c("DISCARD"),
    "execabort after unknown command": c("MULTI") + c("FOO") + c("PING") + c("EXEC"),
    "execabort after arity error": c("MULTI") + c("GET") + c("EXEC"),
    "queued replies": c("MULTI") + c("PING") + c("ECHO", "a") + c("GET", "missing") + c("EXEC"),
    "watch arity": c("WATCH"),
    "watch then exec": c("WATCH", "missing") + c("MULTI") + c("PING") + c("EXEC"),
    "unwatch": c("UNWATCH"),
    "config unknown subcommand": c("CONFIG", "FOO"),
    "config get arity": c("CONFIG", "GET"),
    "config get save": c("CONFIG", "GET", "save"),
    "config get appendonly": c("CONFIG", "GET", "appendonly"),
    "config get nothing": c("CONFIG", "GET", "no-such-parameter"),
    "config get echoes the name asked": c("CONFIG", "GET", "SAVE"),
    "config get mixed case": c("CONFIG", "GET", "AppendOnly"),
    "config get the same twice": c("CONFIG", "GET", "appendonly", "APPENDONLY"),
    "config get glob then name": c("CONFIG", "GET", "appendon*", "APPENDONLY"),
    "scan largest cursor": c("SCAN", "18446744073709551615", "MATCH", "no-such-key*"),
    "scan cursor -1": c("SCAN", "-1", "MATCH", "no-such-key*"),
    "scan cursor beyond 64 bits": c("SCAN", "18446744073709551616"),
    "scan cursor below -2**64": c("SCAN", "-18446744073709551616"),
    "scan cursor with a space": c("SCAN", " 1"),
    "scan cursor in hex": c("SCAN", "0x1"),
    "scan cursor only a sign": c("SCAN", "-"),
    "command unknown subcommand": c("COMMAND", "FOO"),
    "reset": c("RESET"),
    "quit": c("QUIT"),
    "pipeline of mixed replies": c("PING") + c("FOO") + c("ECHO", "b") + b"PING\r\n",
    "empty multibulk ignored": b"*0\r\n" + c("PING"),
    "negative multibulk ignored": b"*-1\r\n" + c("PING"),
    "blank inline line ignored": b"\r\n   \r\n" + c("PING"),
    # A fresh sequence counts from 1 like a fresh Redis counter, so the ordering of GET among
    # pipelined INCRs can be compared byte for byte: GET sees the INCRs before it, never after.
    "get sees only the incrs before it": c("GET", "ordering:seq")
    + c("INCR", "ordering:seq")
    + c("GET", "ordering:seq")
    + c("INCR", "ordering:seq")
    + c("MULTI")
    + c("INCR", "ordering:seq")
    + c("GET", "ordering:seq")
    + c("INCR", "ordering:seq")
    + c("EXEC")
    + c("GET", "ordering:seq"),
}

# The same requests again on a RESP3 connection: HELLO 3's reply differs (server, version,
# id), so it is compared apart from what follows it.
RESP3_CASES = {
    "resp3 get missing": c("GET", "missing"),
    "resp3 config get": c("CONFIG", "GET", "save"),
    "resp3 transaction": c("MULTI") + c("PING") + c("GET", "missing") + c("EXEC"),
    "resp3 watch abort": c("WATCH", "missing") + c("MULTI") + c("EXEC"),
    "resp3 errors": c("FOO") + c("GET"),
    "resp3 client getname": c("CLIENT", "GETNAME"),
}

PROTOCOL_ERRORS = {
    "invalid multibulk length": b"*x\r\n",
    "invalid bulk length": b"*1\r\n$x\r\n",
    "expected dollar": b"*1\r\n:1\r\n",
    "unbalanced quotes": b'ECHO "a\r\n',
    "unbalanced single quotes": b"ECHO 'a\r\n",
    "closing quote not followed by space": b'ECHO "a"b\r\n',
    "commands before garbage still run": c("PING") + b"*1\r\n$x\r\n",
    "negative bulk length": b"*1\r\n$-5\r\n",
    "huge multibulk length": b"*99999999999\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bytes_as_redis(name: str, tickerd: Tickerd, redis_server: RedisServer) -> None:
    request = CASES[name]
    assert tickerd.send(request) == redis_server.send(request)


@pytest.mark.parametrize("name", sorted(RESP3_CASES))
def test_same_resp3_bytes_as_redis(name: str, tickerd: Tickerd, redis_server: RedisServer) -> None:
    request = RESP3_CASES[name]
    _, ours = conversation(tickerd.port, [HELLO3, request])
    _, theirs = conversation(redis_server.port, [HELLO3, request])
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(PROTOCOL_ERRORS))
def test_protocol_errors_as_redis(name: str, tickerd: Tickerd, redis_server: RedisServer) -> None:
    request = PROTOCOL_ERRORS[name]
    assert tickerd.send(request) == redis_server.send(request)
    assert closed_by_peer(tickerd.port, request) == closed_by_peer(redis_server.port, request)


def test_hello_has_the_shape_of_redis_7_and_tickerd_version(tickerd: Tickerd) -> None:
    reply = tickerd.send(HELLO3)
    assert reply.startswith(
        b"%8\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n"
    )
    assert b"$5\r\nproto\r\n:3\r\n" in reply
    assert b"$15\r\ntickerd_version\r\n" in reply
    reply = tickerd.send(c("HELLO", "2"))
    assert reply.startswith(b"*16\r\n$6\r\nserver\r\n")


def test_client_setinfo_answers_as_redis_7_2(tickerd: Tickerd) -> None:
    assert tickerd.send(c("CLIENT", "SETINFO", "lib-name", "redis-py")) == b"+OK\r\n"
    assert tickerd.send(c("CLIENT", "SETINFO", "LIB-VER", "8.2.0")) == b"+OK\r\n"
    assert tickerd.send(c("CLIENT", "SETINFO", "color", "x")) == (
        b"-ERR Unrecognized option 'color'\r\n"
    )
    info = tickerd.send(c("CLIENT", "SETINFO", "lib-name", "py") + c("CLIENT", "INFO"))
    assert b"lib-name=py" in info


# CLIENT INFO / CLIENT LIST fields, in Redis 7.2's order (the local 7.0 server lacks the last
# three and watch).
REDIS_7_2_CLIENT_FIELDS = [
    "id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub", "ssub",
    "multi", "watch", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl", "oll",
    "omem", "tot-mem", "events", "cmd", "user", "redir", "resp", "lib-name", "lib-ver",
]  # fmt: skip


def _client_info_fields(reply: bytes) -> list[str]:
    """The field names of a RESP2 CLIENT INFO reply (a bulk string holding one line)."""
    line = reply.split(b"\r\n")[1].decode()
    return [field.partition("=")[0] for field in line.split(" ")]


def test_client_info_has_every_field_of_redis_7_2(
    tickerd: Tickerd, redis_server: RedisServer
) -> None:
    our_fields = _client_info_fields(tickerd.send(c("CLIENT", "INFO")))
    their_fields = _client_info_fields(redis_server.send(c("CLIENT", "INFO")))
    assert our_fields == REDIS_7_2_CLIENT_FIELDS
    assert [name for name in our_fields if name in their_fields] == their_fields
    with tickerd.client() as ours:
        info = ours.client_info()  # redis-py 5+ reads qbuf and obl
        assert info["qbuf"] == 0
        assert info["obl"] == 0
        assert info["cmd"] == "client|info"


def test_client_list_type_and_id(tickerd: Tickerd) -> None:
    with tickerd.client() as client, tickerd.client() as other:
        other.client_setname("other")
        other_id = other.client_id()
        normal = client.client_list(_type="normal")
        assert any(entry["name"] == "other" for entry in normal)
        assert client.client_list(_type="pubsub") == []
        assert client.client_list(_type="replica") == []
        [entry] = client.client_list(client_id=[other_id])
        assert (entry["name"], entry["multi"], entry["multi-mem"]) == ("other", "-1", "0")
        other.execute_command("MULTI")
        other.execute_command("ECHO", "x" * 100)
        [entry] = client.client_list(client_id=[other_id])
        assert (entry["flags"], entry["multi"]) == ("x", "1")
        assert int(entry["multi-mem"]) >= 100
        other.execute_command("DISCARD")
