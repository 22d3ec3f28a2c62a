"""tickerd processes on MySQL ticket servers, driven by redis-py: what clients see.

The store is tested on its own in test_store_mysql.py; here the whole daemon runs against
throwaway MariaDB servers, and the failures are produced under client load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.mariadb import MariaDB, MariaDBFactory, MysqlDatabase, create_database
from tests.servers import Tickerd

NO_RETRY = Retry(NoBackoff(), 0)

CONFIG = """
[server]
bind = 127.0.0.1
port = {port}

[store]
backend = mysql
strategy = {strategy}
request_timeout = 2

[sequences]
names = users posts
auto_create = yes
allow_set = yes
"""

SERVER = """
[mysql:{name}]
host = {host}
port = {server_port}
user = {user}
password = {password}
database = {database}
auto_increment_increment = {increment}
auto_increment_offset = {offset}
connect_timeout = 1
"""


def config(databases: list[MysqlDatabase], strategy: str = "round-robin") -> str:
    """A tickerd configuration template with one [mysql:] section per database."""
    sections = [
        SERVER.format(
            name=f"ticket{offset}",
            host=database.host,
            server_port=database.port,
            user=database.user,
            password=database.password,
            database=database.database,
            increment=len(databases),
            offset=offset,
        )
        for offset, database in enumerate(databases, start=1)
    ]
    return CONFIG.replace("{strategy}", strategy) + "".join(sections)


def client(server: Tickerd) -> redis.Redis:
    return server.client(retry=NO_RETRY, socket_timeout=10)


@dataclass
class Load:
    """Clients issuing INCR in a loop, recording every call: when it began, when it ended, and
    the ticket or the error it got."""

    port: int
    clients: int = 8
    # (began, ended, ticket) per client
    tickets: list[list[tuple[float, float, int]]] = field(default_factory=list)
    # (began, seconds waited, message)
    errors: list[tuple[float, float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            seen: list[tuple[float, float, int]] = []
            self.tickets.append(seen)
            thread = threading.Thread(target=self._run, args=(seen,), daemon=True)
            self.threads.append(thread)
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, seen: list[tuple[float, float, int]]) -> None:
        with redis.Redis(port=self.port, socket_timeout=10, retry=NO_RETRY) as connection:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    ticket = connection.incr("users")
                except redis.RedisError as exc:
                    self.errors.append((began, time.monotonic() - began, str(exc)))
                    time.sleep(0.01)
                else:
                    seen.append((began, time.monotonic(), ticket))

    def all(self) -> list[int]:
        return [ticket for seen in self.tickets for _, _, ticket in seen]

    def within(self, start: float, end: float) -> list[int]:
        """The tickets of the calls that began at ``start`` or later and ended before ``end``."""
        return [
            t for seen in self.tickets for began, ended, t in seen if start <= began and ended < end
        ]

    def began_since(self, moment: float) -> list[tuple[float, int]]:
        """(ended, ticket) of the calls that began at ``moment`` or later."""
        return [(ended, t) for seen in self.tickets for began, ended, t in seen if began >= moment]


def assert_unique(tickets: list[int]) -> None:
    assert len(tickets) == len(set(tickets)), "a ticket was issued twice"


def test_incr_through_an_odd_even_pair(
    tickerd_factory: Callable[..., Tickerd], mariadb: MariaDB
) -> None:
    databases = [create_database(mariadb), create_database(mariadb)]
    server = tickerd_factory(config(databases))
    with client(server) as connection:
        tickets = [connection.incr("users") for _ in range(40)]
        assert_unique(tickets)
        assert {ticket % 2 for ticket in tickets} == {0, 1}  # round-robin used both
        assert connection.get("users") == str(tickets[-1]).encode()
        assert connection.incr("posts") in (1, 2)  # another sequence: its own counter
        assert connection.incr("made:here") in (1, 2)  # auto_create on MySQL too
        raw = connection.execute_command("INFO", "everything")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    assert "ticket1" in text
    assert "ticket2" in text
    assert databases[0].password not in text
    assert databases[0].password not in server.log


def test_failover_strategy_uses_the_first_server(
    tickerd_factory: Callable[..., Tickerd], mariadb: MariaDB
) -> None:
    databases = [create_database(mariadb), create_database(mariadb)]
    server = tickerd_factory(config(databases, strategy="failover"))
    with client(server) as connection:
        tickets = [connection.incr("users") for _ in range(20)]
    assert all(ticket % 2 == 1 for ticket in tickets)


def test_get_after_restart_and_set_raise_the_sequence(
    tickerd_factory: Callable[..., Tickerd], mariadb: MariaDB
) -> None:
    databases = [create_database(mariadb), create_database(mariadb)]
    server = tickerd_factory(config(databases))
    with client(server) as connection:
        tickets = [connection.incr("users") for _ in range(10)]
    server.restart()
    with client(server) as connection:
        # No ticket since start: GET answers the largest id across the servers.
        assert connection.get("users") == str(max(tickets)).encode()
        assert connection.set("users", 1000) is True
        after = [connection.incr("users") for _ in range(4)]
        assert min(after) > 1000
        assert {ticket % 2 for ticket in after} == {0, 1}
        with pytest.raises(redis.ResponseError, match="tickets only move forward"):
            connection.set("users", 10)


@pytest.mark.slow
def test_kill_9_one_of_two_servers_under_load(
    tickerd_factory: Callable[..., Tickerd], mariadb_factory: MariaDBFactory
) -> None:
    first, second = mariadb_factory(), mariadb_factory()
    server = tickerd_factory(config([create_database(first), create_database(second)]))
    with Load(server.port) as load:
        time.sleep(1.0)
        second.kill()  # SIGKILL: the even server is gone
        killed = time.monotonic()
        time.sleep(1.5)
        restarting = time.monotonic()  # the server answers before start() returns
        second.start()
        restarted = time.monotonic()
        time.sleep(2.5)
    assert load.errors == [], "a client saw the failure"
    tickets = load.all()
    assert_unique(tickets)
    during = load.within(killed, restarting)
    assert during, "the survivor did not take the traffic"
    assert all(ticket % 2 == 1 for ticket in during), "the dead server issued tickets"
    rejoined = [t for ended, t in load.began_since(restarted) if ended < restarted + 2.0]
    assert any(ticket % 2 == 0 for ticket in rejoined), "the restarted server did not rejoin"


@pytest.mark.slow
def test_kill_9_the_only_server_fails_fast_then_resumes(
    tickerd_factory: Callable[..., Tickerd], mariadb_factory: MariaDBFactory
) -> None:
    only = mariadb_factory()
    server = tickerd_factory(config([create_database(only)]))
    with Load(server.port, clients=4) as load:
        time.sleep(1.0)
        only.kill()
        killed = time.monotonic()
        time.sleep(2.0)
        restarting = time.monotonic()  # the server answers before start() returns
        only.start()
        restarted = time.monotonic()
        time.sleep(3.5)
    tickets = load.all()
    assert_unique(tickets)
    assert load.errors, "no call failed during the outage"
    assert max(waited for _, waited, _ in load.errors) < 4.0, "a call hung"
    assert all("ticket1" in message for _, _, message in load.errors), load.errors[:3]
    assert not load.within(killed, restarting), "a ticket was issued while the only server was down"
    resumed = min(ended for ended, _ in load.began_since(restarting))
    assert resumed - restarted < 3.0, "service did not resume within 3 s"


@pytest.mark.slow
def test_a_hung_server_times_out_then_resumes(
    tickerd_factory: Callable[..., Tickerd], mariadb_factory: MariaDBFactory
) -> None:
    only = mariadb_factory()
    server = tickerd_factory(config([create_database(only)]))
    with client(server) as connection:
        before = connection.incr("users")
        only.pause()  # SIGSTOP: the socket stays open, nothing answers
        try:
            started = time.monotonic()
            with pytest.raises(redis.ResponseError, match="ticket1"):
                connection.incr("users")
            assert time.monotonic() - started < 4.0
        finally:
            only.resume()
        deadline = time.monotonic() + 5
        while True:
            try:
                after = connection.incr("users")
                break
            except redis.ResponseError:
                assert time.monotonic() < deadline, "service did not resume after SIGCONT"
                time.sleep(0.1)
    assert after > before


@pytest.mark.slow
def test_wait_timeout_closing_idle_connections_is_invisible(
    tickerd_factory: Callable[..., Tickerd], mariadb_factory: MariaDBFactory
) -> None:
    only = mariadb_factory()
    server = tickerd_factory(config([create_database(only)]))
    only.execute("SET GLOBAL wait_timeout = 2")
    with client(server) as connection:
        first = connection.incr("users")
        time.sleep(3.0)
        assert connection.incr("users") > first


def test_two_daemons_on_one_database_never_collide(
    tickerd_factory: Callable[..., Tickerd], mysql_database: MysqlDatabase
) -> None:
    template = config([mysql_database])
    daemons = [tickerd_factory(template), tickerd_factory(template)]
    loads = [Load(daemon.port, clients=8) for daemon in daemons]
    for load in loads:
        load.__enter__()
    time.sleep(2.0)
    for load in loads:
        load.__exit__()
    tickets = [ticket for load in loads for ticket in load.all()]
    assert all(load.errors == [] for load in loads), [load.errors[:3] for load in loads]
    assert len(tickets) > 100
    assert_unique(tickets)


def test_a_table_of_another_shape_stops_start_up(
    tickerd_factory: Callable[..., Tickerd], mysql_database: MysqlDatabase
) -> None:
    mysql_database.server.execute(
        "CREATE TABLE tickets_users (id INT PRIMARY KEY, stub CHAR(1))", mysql_database.database
    )
    server = tickerd_factory(config([mysql_database]), start=False)
    server.start(wait=False)
    assert server.process is not None
    assert server.process.wait(30) == 1
    assert "tickets_users" in server.log
