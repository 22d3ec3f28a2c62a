"""Tickets survive restarts and crashes of tickerd: never a ticket issued twice."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers import Tickerd

# Every outage reaches the test: redis-py would otherwise retry behind its back.
NO_RETRY = Retry(NoBackoff(), 0)


def test_restart_continues_every_sequence(tickerd_factory: Callable[..., Tickerd]) -> None:
    server = tickerd_factory()
    with server.client() as client:
        users = [client.incr("users") for _ in range(5)]
        posts = client.incr("posts")
        created = client.incr("made:on:the:fly")
    assert server.stop() == 0  # SIGTERM: a clean shutdown
    server.start()
    with server.client() as client:
        assert client.get("users") == str(users[-1]).encode()  # GET after restart: from the store
        assert client.incr("users") == users[-1] + 1
        assert client.incr("posts") == posts + 1
        assert client.incr("made:on:the:fly") == created + 1
        assert b"made:on:the:fly" in client.keys("*")


def _hammer(port: int, seen: list[int], errors: list[str], stop: threading.Event) -> None:
    """INCR as fast as one connection can, reconnecting through outages."""
    while not stop.is_set():
        try:
            with redis.Redis(
                port=port, socket_timeout=5, socket_connect_timeout=1, retry=NO_RETRY
            ) as client:
                while not stop.is_set():
                    pipe = client.pipeline(transaction=False)
                    for _ in range(10):
                        pipe.incr("users")
                    seen.extend(pipe.execute())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            errors.append(type(exc).__name__)
            time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_under_load_never_issues_a_ticket_twice(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    server = tickerd_factory()
    stop = threading.Event()
    runs: list[list[int]] = [[] for _ in range(8)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_hammer, args=(server.port, seen, errors, stop)) for seen in runs
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        server.stop(signal.SIGKILL)
        before = sum(len(seen) for seen in runs)
        last_before = max(ticket for seen in runs for ticket in seen)
        server.start()
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    tickets = [ticket for seen in runs for ticket in seen]
    assert before > 100, "the load did not run before the kill"
    assert len(tickets) > before + 100, "the load did not resume after the restart"
    assert len(tickets) == len(set(tickets)), "a ticket was issued twice"
    assert errors, "the kill was not seen by any client"
    for seen in runs:
        assert seen == sorted(seen), "one connection saw tickets go backwards"
    with server.client() as client:
        assert client.incr("users") > max(*tickets, last_before)
