"""Unmodified Redis clients against a real tickerd process: redis-py, redis-cli, redis-benchmark."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser

from tests.servers import Tickerd

PARSERS = {"hiredis": _HiredisParser, "resp2-python": _RESP2Parser, "resp3-python": _RESP3Parser}


@pytest.fixture(params=[("default", None), ("resp2", 2), ("resp3", 3)], ids=lambda p: p[0])
def client(request: pytest.FixtureRequest, tickerd: Tickerd) -> Iterator[redis.Redis]:
    _, protocol = request.param
    options = {} if protocol is None else {"protocol": protocol}
    with tickerd.client(**options) as connection:
        yield connection


def test_incr_gives_increasing_tickets_and_get_the_last(client: redis.Redis) -> None:
    first = client.incr("users")
    second = client.incr("users")
    assert second > first > 0
    assert client.get("users") == str(second).encode()


def test_sequences_are_independent(client: redis.Redis) -> None:
    posts = client.incr("posts")
    users = client.incr("users")
    assert client.incr("posts") == posts + 1
    assert client.incr("users") == users + 1


def test_pipeline_without_transaction_keeps_order(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    for _ in range(50):
        pipe.incr("users")
    pipe.ping()
    results = pipe.execute()
    tickets = results[:50]
    assert tickets == sorted(tickets)
    assert len(set(tickets)) == 50
    assert results[50] is True


def test_pipeline_with_transaction(client: redis.Redis) -> None:
    pipe = client.pipeline()  # MULTI/EXEC by default
    pipe.incr("users").incr("posts").get("users").echo("x")
    users, posts, last, echoed = pipe.execute()
    assert isinstance(users, int)
    assert isinstance(posts, int)
    assert last == str(users).encode()
    assert echoed == b"x"


def test_watch_sees_a_ticket_issued_by_another_client(
    tickerd: Tickerd, client: redis.Redis
) -> None:
    with tickerd.client() as other, client.pipeline() as pipe:
        pipe.watch("users")
        other.incr("users")
        pipe.multi()
        pipe.incr("users")
        with pytest.raises(redis.WatchError):
            pipe.execute()


def test_watch_without_interference_runs(client: redis.Redis) -> None:
    with client.pipeline() as pipe:
        pipe.watch("users")
        pipe.multi()
        pipe.incr("users")
        (ticket,) = pipe.execute()
        assert ticket > 0


def test_keyspace_view(client: redis.Redis) -> None:
    client.incr("users")
    assert client.exists("users", "posts", "nope") == 2
    assert client.type("users") in (b"string", "string")
    assert client.type("nope") in (b"none", "none")
    assert b"users" in client.keys("*")
    assert client.keys("use*") == [b"users"]
    assert set(client.scan_iter(match="*")) >= {b"users", b"posts"}
    assert client.dbsize() >= 2
    assert client.get("never-made") is None
    assert not client.exists("never-made")  # GET never creates


def test_connection_commands(client: redis.Redis) -> None:
    assert client.ping() is True
    assert client.echo("hello") == b"hello"
    assert client.client_setname("worker-1") is True
    assert client.client_getname() in (b"worker-1", "worker-1")
    assert isinstance(client.client_id(), int)
    assert client.execute_command("SELECT", 0) in (True, b"OK", "OK")
    info = client.client_info()
    assert info["name"] == "worker-1"


def test_server_commands_clients_ask_on_connect(client: redis.Redis) -> None:
    info = client.info()
    assert info["redis_version"] == "7.2.0"
    assert "tickerd_version" in info
    assert info["loading"] == 0
    assert client.info("server")["redis_mode"] == "standalone"
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("maxclients") == {"maxclients": "10000"}
    seconds, micros = client.time()
    assert seconds > 1_700_000_000
    assert 0 <= micros < 1_000_000
    assert client.execute_command("COMMAND COUNT") > 20


def test_info_lists_sequences_whose_names_hold_a_colon(client: redis.Redis) -> None:
    # redis-py splits an INFO line at its first ':', as other INFO parsers do.
    ticket = client.incr("user:id")
    users = client.incr("users")
    info = client.info("sequences")
    entries = {
        entry["name"]: entry
        for key, entry in info.items()
        if key.startswith("sequence") and key != "sequences"
    }
    assert info["sequences"] == len(entries)
    assert entries["user:id"]["table"] == "tickets_user:id"
    assert entries["user:id"]["last"] == ticket
    assert entries["user:id"]["issued"] >= 1
    assert entries["users"]["last"] == users


def test_forward_only_commands_are_refused(client: redis.Redis) -> None:
    for call in (
        lambda: client.delete("users"),
        lambda: client.decr("users"),
        lambda: client.set("users", 1),
        lambda: client.getset("users", 1),
        client.flushall,
    ):
        with pytest.raises(redis.ResponseError, match="tickets only move forward"):
            call()
    assert client.exists("users") == 1


def test_incrby_one_is_incr_and_other_increments_say_why(client: redis.Redis) -> None:
    ticket = client.incrby("users", 1)
    assert client.incr("users") == ticket + 1
    with pytest.raises(redis.ResponseError, match="the increment must be 1"):
        client.incrby("users", 5)
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        client.execute_command("INCRBY", "users", "x")


def test_bad_and_unknown_sequence_names(client: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="invalid sequence name 'a b'"):
        client.incr("a b")
    with pytest.raises(redis.ResponseError, match="invalid sequence name"):
        client.incr("x" * 100)
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE'"):
        client.execute_command("NOPE", "a")


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_each_redis_py_parser(tickerd: Tickerd, parser: str) -> None:
    protocol = 2 if parser == "resp2-python" else 3
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=tickerd.port, parser_class=PARSERS[parser], protocol=protocol
    )
    with redis.Redis(connection_pool=pool) as connection:
        assert isinstance(connection.connection_pool.get_connection()._parser, PARSERS[parser])
        first = connection.incr("users")
        assert connection.incr("users") == first + 1
        assert connection.info()["loading"] == 0


def test_asyncio_client_with_many_concurrent_requests(tickerd: Tickerd) -> None:
    async def run() -> list[int]:
        pool = redis.asyncio.BlockingConnectionPool(
            host="127.0.0.1", port=tickerd.port, max_connections=20
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        try:
            tickets = await asyncio.gather(*(client.incr("users") for _ in range(200)))
            async with client.pipeline() as pipe:
                for _ in range(20):
                    pipe.incr("posts")
                tickets += await pipe.execute()
            return list(tickets)
        finally:
            await client.aclose()
            await pool.aclose()

    tickets = asyncio.run(run())
    assert len(set(tickets)) == 220


def test_redis_cli(tickerd: Tickerd) -> None:
    def cli(*args: str) -> str:
        result = subprocess.run(
            ["redis-cli", "-p", str(tickerd.port), *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return result.stdout.strip()

    first = int(cli("INCR", "cli"))
    assert int(cli("INCR", "cli")) == first + 1
    assert cli("GET", "cli") == str(first + 1)
    assert cli("PING") == "PONG"
    assert cli("-3", "INCR", "cli") == str(first + 2)  # RESP3 (HELLO 3 first)
    assert "redis_version:7.2.0" in cli("INFO", "server")
    assert "tickets only move forward" in cli("DEL", "cli")


def test_redis_benchmark_ping_and_incr(tickerd: Tickerd) -> None:
    before = tickerd.client().incr("bench")
    result = subprocess.run(
        ["redis-benchmark", "-p", str(tickerd.port), "-t", "ping,incr", "-n", "2000", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "PING_INLINE" in result.stdout
    assert "INCR" in result.stdout
    assert "error" not in (result.stdout + result.stderr).lower()
    result = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(tickerd.port),
            "-n",
            "2000",
            "-c",
            "20",
            "-q",
            "INCR",
            "bench",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "error" not in (result.stdout + result.stderr).lower()
    # Every one of the 2000 INCRs issued exactly one ticket.
    assert tickerd.client().incr("bench") == before + 2001
