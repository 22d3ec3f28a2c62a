"""MysqlStore against real throwaway MariaDB servers (tests/mariadb.py): no mocks.

Tests that kill, pause or restart a server get fresh servers from ``mariadb_factory`` and are
marked slow; the rest share one server, each with its own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal, TypeVar

import pytest

from tests.mariadb import (
    TICKERD_USER,
    MariaDB,
    MariaDBFactory,
    MysqlDatabase,
    create_database,
    free_port,
)
from tickerd.config import MysqlServerConfig, StoreConfig
from tickerd.stores import SchemaMismatch, StoreError, StoreUnavailable, mysql_schema
from tickerd.stores.mysql import MysqlStore

TABLE = "tickets_users"
T = TypeVar("T")


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async test body on a fresh event loop."""
    return asyncio.run(test())


def store_config(
    *servers: MysqlServerConfig,
    strategy: Literal["round-robin", "failover"] = "round-robin",
    timeout: float = 2.0,
) -> StoreConfig:
    return StoreConfig(backend="mysql", strategy=strategy, request_timeout=timeout, mysql=servers)


@contextlib.asynccontextmanager
async def running(config: StoreConfig, *tables: str) -> AsyncIterator[MysqlStore]:
    store = MysqlStore(config)
    await store.start()
    try:
        for table in tables:
            await store.ensure_table(table)
        yield store
    finally:
        await store.close()


def pair(
    server1: MariaDB | MysqlDatabase, server2: MariaDB | MysqlDatabase
) -> tuple[MysqlServerConfig, MysqlServerConfig]:
    """An odd/even pair: increment 2, offsets 1 and 2."""
    db1 = server1 if isinstance(server1, MysqlDatabase) else create_database(server1)
    db2 = server2 if isinstance(server2, MysqlDatabase) else create_database(server2)
    return db1.config("ticket1", 1, 2), db2.config("ticket2", 2, 2)


class Load:
    """Tasks drawing tickets as fast as they can, recording ids, errors and timings."""

    def __init__(self, store: MysqlStore, table: str = TABLE) -> None:
        self.store = store
        self.table = table
        self.ids: list[tuple[float, int]] = []  # (when, id)
        self.errors: list[tuple[float, float, BaseException]] = []  # (when, took, error)
        self._stop = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, tasks: int) -> None:
        self._tasks = [asyncio.create_task(self._draw()) for _ in range(tasks)]

    async def _draw(self) -> None:
        while not self._stop:
            started = time.monotonic()
            try:
                ticket = await self.store.draw(self.table)
            except StoreError as exc:
                now = time.monotonic()
                self.errors.append((now, now - started, exc))
                await asyncio.sleep(0.05)
            else:
                self.ids.append((time.monotonic(), ticket))

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    def since(self, moment: float) -> list[int]:
        return [ticket for when, ticket in self.ids if when >= moment]

    def assert_unique(self) -> None:
        tickets = [ticket for _, ticket in self.ids]
        assert len(tickets) == len(set(tickets)), "a ticket was issued twice"


async def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


# -- schema ----------------------------------------------------------------------------------


def test_ensure_table_creates_a_stub_table(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(store_config(mysql_database.config())) as store:
            await store.ensure_table(TABLE)
            await store.ensure_table(TABLE)  # a second time finds it and checks it
            assert await store.list_tables("tickets_") == [TABLE]

    run(body)
    ((_, create),) = mysql_database.server.execute(
        f"SHOW CREATE TABLE `{TABLE}`", mysql_database.database
    )
    assert "`id` bigint(20) unsigned NOT NULL AUTO_INCREMENT" in str(create)
    assert "UNIQUE KEY `stub` (`stub`)" in str(create)
    assert "ENGINE=InnoDB" in str(create)


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            "(id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, stub CHAR(1) NOT NULL DEFAULT '', "
            "UNIQUE KEY stub (stub)) ENGINE=InnoDB",
            "columns are id int NOT NULL auto_increment, stub char(1) NOT NULL",
        ),
        (
            "(id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, stub CHAR(1) NOT NULL "
            "DEFAULT '', UNIQUE KEY stub (stub)) ENGINE=MyISAM",
            "engine is MyISAM, not InnoDB",
        ),
        (
            "(id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, stub CHAR(1) NOT NULL "
            "DEFAULT '') ENGINE=InnoDB",
            "unique keys are PRIMARY KEY (id), not",
        ),
    ],
)
def test_a_table_of_another_shape_is_refused(
    mysql_database: MysqlDatabase, definition: str, expected: str
) -> None:
    mysql_database.server.execute(f"CREATE TABLE `{TABLE}` {definition}", mysql_database.database)

    async def body() -> None:
        async with running(store_config(mysql_database.config())) as store:
            with pytest.raises(SchemaMismatch) as caught:
                await store.ensure_table(TABLE)
            message = str(caught.value)
            assert f"ticket1 (127.0.0.1:{mysql_database.port})" in message
            assert f"`{TABLE}`" in message
            assert expected in message

    run(body)


def test_list_tables_treats_underscore_literally(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(
            store_config(mysql_database.config()), "tickets_a", "ticketsXb"
        ) as store:
            assert await store.list_tables("tickets_") == ["tickets_a"]
            assert await store.list_tables("tickets") == ["ticketsXb", "tickets_a"]
            assert await store.list_tables("nothing") == []

    run(body)


# -- tickets ---------------------------------------------------------------------------------


def test_the_ticket_is_the_stub_rows_id(mysql_database: MysqlDatabase) -> None:
    async def body() -> list[int]:
        async with running(store_config(mysql_database.config()), TABLE) as store:
            tickets = []
            for _ in range(3):
                ticket = await store.draw(TABLE)
                rows = mysql_database.server.execute(
                    f"SELECT id, stub FROM `{TABLE}`", mysql_database.database
                )
                assert rows == [(ticket, "a")]
                tickets.append(ticket)
            return tickets

    assert run(body) == [1, 2, 3]


def test_sequences_are_independent(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(
            store_config(mysql_database.config()), "tickets_a", "tickets_b"
        ) as store:
            a = [await store.draw("tickets_a") for _ in range(5)]
            b = [await store.draw("tickets_b") for _ in range(2)]
            assert a == [1, 2, 3, 4, 5]
            assert b == [1, 2]
            assert await store.last_id("tickets_a") == 5
            assert await store.last_id("tickets_b") == 2

    run(body)


def test_concurrent_draws_are_unique_and_batched(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(store_config(mysql_database.config()), TABLE) as store:
            tickets = await asyncio.gather(*(store.draw(TABLE) for _ in range(500)))
            assert sorted(tickets) == list(range(1, 501))
            (server,) = store.info()[1:]
            assert ("ticketserver_ticket1_tickets", "500") in server[1]

    run(body)


def test_a_cancelled_draw_is_skipped(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(store_config(mysql_database.config()), TABLE) as store:
            cancelled = store.draw(TABLE)
            cancelled.cancel()
            assert await store.draw(TABLE) >= 1
            assert cancelled.cancelled()

    run(body)


def test_odd_even_pair_round_robin_uses_both(mariadb: MariaDB) -> None:
    first, second = pair(mariadb, mariadb)

    async def body() -> list[int]:
        async with running(store_config(first, second), TABLE) as store:
            return [await store.draw(TABLE) for _ in range(10)]

    tickets = run(body)
    odd = [t for t in tickets if t % 2]
    even = [t for t in tickets if not t % 2]
    assert odd == [1, 3, 5, 7, 9]
    assert even == [2, 4, 6, 8, 10]


def test_odd_even_pair_failover_uses_the_first(mariadb: MariaDB) -> None:
    first, second = pair(mariadb, mariadb)

    async def body() -> list[int]:
        async with running(store_config(first, second, strategy="failover"), TABLE) as store:
            return list(await asyncio.gather(*(store.draw(TABLE) for _ in range(20))))

    assert sorted(run(body)) == list(range(1, 40, 2))


def test_session_settings_come_from_the_config(mariadb_factory: MariaDBFactory) -> None:
    """A server whose my.cnf says otherwise still issues ids in the configured residue class."""
    server = mariadb_factory()
    server.execute("SET GLOBAL auto_increment_increment = 7, auto_increment_offset = 3")
    first, second = pair(server, server)

    async def body() -> list[int]:
        async with running(store_config(first, second), TABLE) as store:
            return [await store.draw(TABLE) for _ in range(4)]

    assert sorted(run(body)) == [1, 2, 3, 4]


def test_raise_to_never_lowers_and_keeps_residues(mariadb: MariaDB) -> None:
    first, second = pair(mariadb, mariadb)

    async def body() -> None:
        async with running(store_config(first, second), TABLE) as store:
            assert await store.last_id(TABLE) is None
            await store.draw(TABLE)
            await store.raise_to(TABLE, 1000)
            assert await store.last_id(TABLE) == 1000
            after = [await store.draw(TABLE) for _ in range(4)]
            assert sorted(after) == [1001, 1002, 1003, 1004]
            await store.raise_to(TABLE, 10)  # lower than the counters: nothing moves back
            again = [await store.draw(TABLE) for _ in range(2)]
            assert sorted(again) == [1005, 1006]
            assert await store.last_id(TABLE) == 1006
            await store.raise_to(TABLE, 2001)  # odd floor: the even server goes to 2002
            last = sorted([await store.draw(TABLE) for _ in range(2)])
            assert last == [2002, 2003]

    run(body)


def test_raise_to_creates_missing_tables(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(store_config(mysql_database.config())) as store:
            await store.raise_to("tickets_new", 41)
            assert await store.draw("tickets_new") == 42

    run(body)


def test_ids_beyond_a_resp_integer_are_refused(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(store_config(mysql_database.config()), TABLE) as store:
            await store.raise_to(TABLE, 2**63 - 2)
            assert await store.draw(TABLE) == 2**63 - 1
            with pytest.raises(StoreError, match="exhausted"):
                await store.draw(TABLE)

    run(body)


def test_a_used_up_bigint_is_reported_as_exhausted(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        async with running(store_config(mysql_database.config()), TABLE) as store:
            await store.raise_to(TABLE, 2**64 - 1)
            with pytest.raises(StoreError, match="exhausted"):
                await store.draw(TABLE)

    run(body)


def test_info_has_a_section_per_server_and_no_secret(mariadb: MariaDB) -> None:
    first, second = pair(mariadb, mariadb)

    async def body() -> None:
        async with running(store_config(first, second), TABLE) as store:
            await asyncio.gather(*(store.draw(TABLE) for _ in range(10)))
            sections = dict(store.info())
            assert set(sections) == {"Store", "ticketserver_ticket1", "ticketserver_ticket2"}
            one = dict(sections["ticketserver_ticket1"])
            assert one["ticketserver_ticket1_status"] == "up"
            assert one["ticketserver_ticket1_address"] == f"127.0.0.1:{mariadb.port}"
            assert int(one["ticketserver_ticket1_tickets"]) == 5
            assert float(one["ticketserver_ticket1_latency_p99_ms"]) > 0
            assert first.password not in repr(store.info())

    run(body)


def test_two_stores_on_one_database_never_collide(mysql_database: MysqlDatabase) -> None:
    """Two daemons on the same servers: deadlocks on the stub row are retried, not shown."""

    async def body() -> None:
        config = store_config(mysql_database.config())
        async with running(config, TABLE) as one, running(config, TABLE) as two:
            loads = [Load(one), Load(two)]
            for load in loads:
                load.start(8)
            await asyncio.sleep(1.5)
            for load in loads:
                await load.stop()
            tickets = [ticket for load in loads for _, ticket in load.ids]
            assert len(tickets) > 100
            assert len(tickets) == len(set(tickets))
            assert [e for load in loads for e in load.errors] == []
            assert all(load.ids for load in loads)

    run(body)


# -- no server, bad credentials --------------------------------------------------------------


def test_start_fails_when_no_server_answers(mysql_database: MysqlDatabase) -> None:
    dead = MysqlServerConfig(name="ticket1", port=free_port(), password="hunter2-secret")

    async def body() -> None:
        with pytest.raises(StoreUnavailable) as caught:
            await MysqlStore(store_config(dead)).start()
        message = str(caught.value)
        assert f"ticket1 (127.0.0.1:{dead.port}): Can't connect to MySQL server" in message
        assert "hunter2-secret" not in message

    run(body)


def test_a_wrong_password_is_named_but_never_shown(mysql_database: MysqlDatabase) -> None:
    wrong = dataclasses.replace(mysql_database.config(), password="not-the-password-42")

    async def body() -> None:
        with pytest.raises(StoreUnavailable, match="Access denied") as caught:
            await MysqlStore(store_config(wrong)).start()
        assert "not-the-password-42" not in str(caught.value)

    run(body)


# -- failures of real servers ----------------------------------------------------------------


@pytest.mark.slow
def test_wait_timeout_closing_idle_connections_is_transparent(
    mariadb_factory: MariaDBFactory,
) -> None:
    server = mariadb_factory()
    server.execute("SET GLOBAL wait_timeout = 2")
    database = create_database(server)

    async def body() -> None:
        async with running(store_config(database.config()), TABLE) as store:
            assert await store.draw(TABLE) == 1
            await asyncio.sleep(3)
            assert await store.draw(TABLE) == 2
            server_info = dict(store.info()[1][1])
            assert server_info["ticketserver_ticket1_status"] == "up"
            # The closed session was noticed by a ping and replaced, not failed over.
            assert server_info["ticketserver_ticket1_errors"] == "0"

    run(body)


@pytest.mark.slow
def test_kill_one_of_two_servers_under_load(mariadb_factory: MariaDBFactory) -> None:
    odd_server, even_server = mariadb_factory(), mariadb_factory()
    first, second = pair(odd_server, even_server)

    async def body() -> None:
        async with running(store_config(first, second), TABLE) as store:
            load = Load(store)
            load.start(8)
            await asyncio.sleep(0.5)
            even_server.kill()
            killed = time.monotonic()
            await asyncio.sleep(1.0)
            after_kill = load.since(killed + 0.2)
            assert after_kill, "the survivor took no traffic"
            assert all(ticket % 2 == 1 for ticket in after_kill)
            await asyncio.to_thread(even_server.start)
            restarted = time.monotonic()
            took = await wait_for(lambda: any(t % 2 == 0 for t in load.since(restarted)), 2.0)
            await asyncio.sleep(0.3)
            await load.stop()
            assert load.errors == []
            load.assert_unique()
            evens_before = [t for when, t in load.ids if when < killed and t % 2 == 0]
            assert evens_before, "the even server took no traffic before the kill"
            assert took < 2.0

    run(body)


@pytest.mark.slow
def test_kill_the_only_server_fails_fast_then_resumes(mariadb_factory: MariaDBFactory) -> None:
    server = mariadb_factory()
    database = create_database(server)
    timeout = 1.0

    async def body() -> None:
        async with running(store_config(database.config(), timeout=timeout), TABLE) as store:
            load = Load(store)
            load.start(4)
            await asyncio.sleep(0.5)
            server.kill()
            killed = time.monotonic()
            await asyncio.sleep(2.0)
            await asyncio.to_thread(server.start)
            restarted = time.monotonic()
            took = await wait_for(lambda: bool(load.since(restarted)), 3.0)
            await asyncio.sleep(0.3)
            await load.stop()
            load.assert_unique()
            outage = [(took, e) for when, took, e in load.errors if when > killed]
            assert outage, "no draw failed during the outage"
            assert max(took for took, _ in outage) < timeout + 0.5
            message = str(outage[-1][1])
            assert isinstance(outage[-1][1], StoreUnavailable)
            assert f"no ticket server answered within {timeout:g}s" in message
            assert f"ticket1 (127.0.0.1:{server.port})" in message
            assert "Can't connect to MySQL server" in message
            assert database.password not in message
            assert took < 3.0
            assert dict(store.info()[1][1])["ticketserver_ticket1_status"] == "up"

    run(body)


@pytest.mark.slow
def test_a_hung_server_times_out_then_resumes(mariadb_factory: MariaDBFactory) -> None:
    server = mariadb_factory()
    database = create_database(server)
    timeout = 1.0

    async def body() -> None:
        async with running(store_config(database.config(), timeout=timeout), TABLE) as store:
            assert await store.draw(TABLE) == 1
            server.pause()
            try:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="within 1s") as caught:
                    await store.draw(TABLE)
                assert (
                    time.monotonic() - started < timeout + 1.0
                )  # not hung: failed at its deadline
                assert "ticket1" in str(caught.value)
                # A draw arriving while the hung server is down fails in time, too.
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await store.draw(TABLE)
                assert (
                    time.monotonic() - started < timeout + 1.0
                )  # not hung: failed at its deadline
            finally:
                server.resume()
            resumed = time.monotonic()
            while True:
                try:
                    ticket = await store.draw(TABLE)
                    break
                except StoreUnavailable:
                    assert time.monotonic() - resumed < 5.0
            assert ticket > 1
            assert time.monotonic() - resumed < 5.0

    run(body)


@pytest.mark.slow
def test_a_hung_server_of_two_is_skipped(mariadb_factory: MariaDBFactory) -> None:
    odd_server, even_server = mariadb_factory(), mariadb_factory()
    first, second = pair(odd_server, even_server)

    async def body() -> None:
        async with running(store_config(first, second), TABLE) as store:
            load = Load(store)
            load.start(8)
            await asyncio.sleep(0.3)
            even_server.pause()
            paused = time.monotonic()
            try:
                await asyncio.sleep(2.5)
                resuming = time.monotonic()
            finally:
                even_server.resume()
            await load.stop()
            assert load.errors == []
            load.assert_unique()
            # A draw sent to the even server just before SIGSTOP is answered after SIGCONT.
            skipped = [t for when, t in load.ids if paused + 1.5 <= when < resuming]
            assert skipped, "the odd server took no traffic"
            assert all(ticket % 2 for ticket in skipped)

    run(body)


def test_a_vanished_table_is_not_recreated(mysql_database: MysqlDatabase) -> None:
    """A dropped table's counter is gone: re-creating it would issue old ids again."""
    server = mysql_database.server

    async def body() -> None:
        config = store_config(mysql_database.config(), timeout=0.5)
        async with running(config, TABLE) as store:
            assert await store.draw(TABLE) == 1
            server.execute(f"DROP TABLE `{TABLE}`", mysql_database.database)
            with pytest.raises(StoreUnavailable, match="doesn't exist"):
                await store.draw(TABLE)
        assert server.execute(f"SHOW TABLES LIKE '{TABLE}'", mysql_database.database) == []

    run(body)


@pytest.mark.slow
def test_a_new_table_waits_for_every_server_then_is_created_on_all(
    mariadb_factory: MariaDBFactory,
) -> None:
    """With a server down, a table that no answering server has may be new, or lost on those
    that answer while the down one holds it: it is created only once every server answers."""
    odd_server, even_server = mariadb_factory(), mariadb_factory()
    first, second = pair(odd_server, even_server)

    async def body() -> None:
        async with running(store_config(first, second, timeout=1.0)) as store:
            even_server.kill()
            with pytest.raises(StoreUnavailable, match="created once every server answers"):
                await store.ensure_table(TABLE)
            with pytest.raises(StoreUnavailable):
                await store.draw(TABLE)
            await asyncio.to_thread(even_server.start)
            restarted = time.monotonic()
            tickets: list[int] = []
            while {ticket % 2 for ticket in tickets} != {0, 1}:
                assert time.monotonic() - restarted < 3.0
                with contextlib.suppress(StoreUnavailable):
                    tickets.append(await store.draw(TABLE))
            assert len(tickets) == len(set(tickets))

    run(body)


def test_a_table_lost_while_its_holder_is_down_is_not_re_created(
    mariadb_factory: MariaDBFactory,
) -> None:
    odd_server, even_server = mariadb_factory(), mariadb_factory()
    first, second = pair(odd_server, even_server)
    config = store_config(first, second, timeout=1.0)

    async def issue(count: int) -> list[int]:
        async with running(config, TABLE) as store:
            return [await store.draw(TABLE) for _ in range(count)]

    before = run(lambda: issue(6))
    odd_server.kill()
    even_server.execute(f"DROP TABLE `{TABLE}`", second.database)  # lost on the even server

    async def while_down() -> None:
        async with running(config) as store:
            with pytest.raises(StoreUnavailable, match="created once every server answers"):
                await store.ensure_table(TABLE)

    run(while_down)
    assert not even_server.execute(f"SHOW TABLES LIKE '{TABLE}'", second.database)
    odd_server.start()
    after = run(lambda: issue(4))
    assert all(ticket % 2 == 1 for ticket in after)  # the odd server alone serves it
    assert not set(before) & set(after), "a ticket was issued twice"


def test_close_finishes_queued_draws_then_refuses(mysql_database: MysqlDatabase) -> None:
    async def body() -> None:
        store = MysqlStore(store_config(mysql_database.config()))
        await store.start()
        await store.ensure_table(TABLE)
        queued = [store.draw(TABLE) for _ in range(100)]
        await store.close()
        assert sorted([future.result() for future in queued]) == list(range(1, 101))
        with pytest.raises(StoreError, match="not running"):
            await store.draw(TABLE)

    run(body)


# -- residues, re-created tables, table-level errors (review of issue 3) ----------------------


def test_swapped_offsets_are_refused_at_start(mariadb: MariaDB) -> None:
    """Ids issued under one offset: a restart with the offsets swapped would issue them again."""
    first, second = pair(mariadb, mariadb)

    async def issue() -> list[int]:
        async with running(store_config(first, second, strategy="failover"), TABLE) as store:
            return [await store.draw(TABLE) for _ in range(5)]

    assert run(issue) == [1, 3, 5, 7, 9]
    swapped = (
        dataclasses.replace(first, auto_increment_offset=2),
        dataclasses.replace(second, auto_increment_offset=1),
    )

    async def restart() -> None:
        with pytest.raises(SchemaMismatch) as caught:
            async with running(store_config(*swapped), TABLE):
                pytest.fail("started with swapped offsets")
        message = str(caught.value)
        assert f"ticket1 (127.0.0.1:{mariadb.port})" in message
        assert "holds id 9" in message
        assert "auto_increment_offset = 2" in message
        assert "id % 2 == 0" in message

    run(restart)


def test_a_worker_refuses_a_table_whose_ids_have_another_residue(
    mysql_database: MysqlDatabase,
) -> None:
    """Checked on the worker's first use too: a table that gained a foreign id is not served."""
    config = mysql_database.config("ticket1", 1, 2)

    async def body() -> None:
        async with running(store_config(config, timeout=0.5), TABLE) as store:
            mysql_database.server.execute(
                f"INSERT INTO `{TABLE}` (id, stub) VALUES (8, 'a')", mysql_database.database
            )
            with pytest.raises(StoreUnavailable, match="holds id 8"):
                await store.draw(TABLE)
            assert store.servers[0].up, "a table's problem is not the server's"

    run(body)


def test_a_dropped_table_restarts_past_the_other_servers(mariadb: MariaDB) -> None:
    first, second = pair(mariadb, mariadb)
    config = store_config(first, second)

    async def issue() -> list[int]:
        async with running(config, TABLE) as store:
            return [await store.draw(TABLE) for _ in range(6)]

    before = run(issue)
    assert sorted(before) == [1, 2, 3, 4, 5, 6]
    mariadb.execute(f"DROP TABLE `{TABLE}`", first.database)
    after = run(issue)
    assert not set(before) & set(after), "a ticket was issued twice"
    assert min(after) > 6
    # The table is not re-created where it was lost: the other server issues every ticket.
    assert all(ticket % 2 == 0 for ticket in after)
    assert not mariadb.execute(f"SHOW TABLES LIKE '{TABLE}'", first.database)


def test_a_table_lost_on_one_server_is_never_re_created_there(mariadb: MariaDB) -> None:
    """Re-created, a lost table's counter would restart below ids it issued: the server is kept
    out for that table and the other serves it; SET fails (it cannot raise the lost table), and
    a table restored by hand, empty, starts past every id and floor the others know."""
    first, second = pair(mariadb, mariadb)

    async def body() -> None:
        async with running(store_config(first, second), TABLE) as store:
            assert sorted([await store.draw(TABLE) for _ in range(6)]) == [1, 2, 3, 4, 5, 6]
            mariadb.execute(f"DROP TABLE `{TABLE}`", first.database)
            with pytest.raises(StoreError, match="not raised on every ticket server"):
                await store.raise_to(TABLE, 21)
            after = [await store.draw(TABLE) for _ in range(4)]
            assert after == [22, 24, 26, 28]  # the even server, raised past 21
            assert not mariadb.execute(f"SHOW TABLES LIKE '{TABLE}'", first.database)
            create = mysql_schema.CREATE_TABLE.format(table=mysql_schema.quote(TABLE))
            mariadb.execute(create, first.database)  # restored by hand, empty
            await store.ensure_table(TABLE)  # as the periodic re-check or a restart does
            restored = [await store.draw(TABLE) for _ in range(6)]
            assert {t % 2 for t in restored} == {0, 1}
            assert min(restored) > 28

    run(body)


@pytest.mark.slow
def test_a_server_hung_while_idle_hands_its_requests_to_the_other(
    mariadb_factory: MariaDBFactory,
) -> None:
    """The ping of an idle connection times out: the request goes to the other server at once
    instead of waiting on a reconnect to the hung one as well."""
    odd_server, even_server = mariadb_factory(), mariadb_factory()
    first, second = pair(odd_server, even_server)
    timeout = 2.0

    async def body() -> None:
        async with running(store_config(first, second, timeout=timeout), TABLE) as store:
            assert sorted([await store.draw(TABLE) for _ in range(4)]) == [1, 2, 3, 4]
            await asyncio.sleep(1.5)
            even_server.pause()
            try:
                for _ in range(4):
                    started = time.monotonic()
                    ticket = await store.draw(TABLE)
                    assert ticket % 2 == 1
                    assert time.monotonic() - started < timeout
            finally:
                even_server.resume()
            assert not store.servers[1].up or store.servers[1].errors > 0

    run(body)


def test_an_unexpected_exception_keeps_the_worker_alive(
    mysql_database: MysqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. PyMySQL's RuntimeError for caching_sha2 without cryptography."""

    async def body() -> None:
        async with running(store_config(mysql_database.config(), timeout=1.0), TABLE) as store:
            server = store.servers[0]
            connect = server.connect

            def broken(*args: Any, **kwargs: Any) -> Any:
                monkeypatch.setattr(server, "connect", connect)
                raise RuntimeError("cryptography package is required")

            monkeypatch.setattr(server, "connect", broken)
            with pytest.raises(StoreUnavailable, match="cryptography package is required"):
                await store.draw(TABLE)
            assert "cryptography" in server.last_error
            await asyncio.sleep(1.1)  # the table is tried again after TABLE_RETRY_DELAY
            assert await store.draw(TABLE) == 1

    run(body)


@pytest.mark.slow
def test_expired_parked_requests_are_dropped_and_bounded(
    mariadb_factory: MariaDBFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = mariadb_factory()
    database = create_database(server)

    async def body() -> None:
        async with running(store_config(database.config(), timeout=0.3), TABLE) as store:
            assert await store.draw(TABLE) == 1
            server.kill()
            with contextlib.suppress(StoreUnavailable):
                await store.draw(TABLE)
            assert not store.servers[0].up
            for _ in range(5):
                draws = [store.draw(TABLE) for _ in range(2000)]
                await asyncio.gather(*draws, return_exceptions=True)
            assert dict(store.info()[0][1])["store_parked_requests"] == "0"
            monkeypatch.setattr("tickerd.stores.mysql.MAX_PARKED", 10)
            draws = [store.draw(TABLE) for _ in range(30)]
            results = await asyncio.gather(*draws, return_exceptions=True)
            refused = [r for r in results if "too many requests (10)" in str(r)]
            assert len(refused) == 20
            assert len(store._parked) <= 10

    run(body)


def test_a_table_level_error_leaves_the_server_up_for_other_tables(
    mysql_database: MysqlDatabase,
) -> None:
    """A dropped table fails its own requests (at their deadline, naming the cause); it neither
    flaps the server nor starves others."""
    other = "tickets_posts"
    timeout = 1.0

    async def body() -> None:
        async with running(
            store_config(mysql_database.config(), timeout=timeout), TABLE, other
        ) as s:
            assert await s.draw(TABLE) == 1
            mysql_database.server.execute(f"DROP TABLE `{TABLE}`", mysql_database.database)
            load = Load(s, other)
            load.start(4)
            failures: list[str] = []
            ends = time.monotonic() + 2.5
            while time.monotonic() < ends:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable) as caught:
                    await s.draw(TABLE)
                assert time.monotonic() - started < timeout + 1.0
                failures.append(str(caught.value))
                assert s.servers[0].up, "a table's error marked the server down"
            await load.stop()
            assert len(failures) >= 2
            assert all("doesn't exist" in failure for failure in failures), failures
            assert load.errors == []
            assert len(load.ids) > 100
            load.assert_unique()

    run(body)


@pytest.mark.slow
def test_lock_waits_are_retried_and_counted(mariadb_factory: MariaDBFactory) -> None:
    server = mariadb_factory()
    server.execute("SET GLOBAL innodb_lock_wait_timeout = 1")
    database = create_database(server)

    async def body() -> None:
        async with running(store_config(database.config(), timeout=5.0), TABLE) as store:
            assert await store.draw(TABLE) == 1
            holder = server.connect(database.database)
            try:
                with holder.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute(f"SELECT * FROM `{TABLE}` FOR UPDATE")
                draw = store.draw(TABLE)
                await asyncio.sleep(1.6)  # longer than innodb_lock_wait_timeout
            finally:
                holder.rollback()
                holder.close()
            assert await draw > 1  # a timed-out REPLACE may burn an id: a gap, never a duplicate
            info = dict(store.info()[1][1])
            assert int(info["ticketserver_ticket1_deadlocks"]) > 0
            assert info["ticketserver_ticket1_status"] == "up"

    run(body)


@pytest.mark.slow
def test_a_durability_setting_that_can_lose_tickets_is_warned(
    mariadb_factory: MariaDBFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = mariadb_factory()
    server.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
    database = create_database(server)

    async def body() -> None:
        async with running(store_config(database.config()), TABLE):
            pass

    with caplog.at_level("WARNING", logger="tickerd.store.mysql"):
        run(body)
    assert "innodb_flush_log_at_trx_commit = 2" in caplog.text


def test_the_password_never_shows_in_errors_info_or_logs(
    mariadb: MariaDB, caplog: pytest.LogCaptureFixture
) -> None:
    good, _ = pair(mariadb, mariadb)
    wrong = dataclasses.replace(good, name="ticket2", password="wrong-secret-77")
    secrets = [good.password, wrong.password]

    # The table exists: with a server down, a table on no answering server is not created.
    mariadb.execute(
        mysql_schema.CREATE_TABLE.format(table=mysql_schema.quote(TABLE)), good.database
    )

    async def body() -> list[str]:
        texts = []
        async with running(store_config(good, wrong, timeout=0.5), TABLE) as store:
            assert not store.servers[1].up
            assert await store.draw(TABLE) == 1
            mariadb.execute(f"DROP TABLE `{TABLE}`", good.database)  # a server error
            with pytest.raises(StoreUnavailable) as caught:
                await store.draw(TABLE)
            texts += [str(caught.value), repr(store.info())]
            assert "Access denied" in repr(store.info())
            assert "doesn't exist" in repr(store.info())
        return texts

    with caplog.at_level("DEBUG", logger="tickerd"):
        texts = run(body)
    assert "Access denied" in caplog.text
    for text in [*texts, caplog.text]:
        for secret in secrets:
            assert secret not in text


def test_a_table_that_cannot_be_created_names_the_cause_and_costs_nothing(
    mariadb_factory: MariaDBFactory,
) -> None:
    """Each request for a table that cannot be created fails with the server's reason; it
    leaves no worker thread and no background retry behind (auto_create names come from
    clients)."""
    server = mariadb_factory()
    database = create_database(server)
    server.execute(f"REVOKE CREATE ON *.* FROM '{TICKERD_USER}'@'%'")

    async def body() -> None:
        async with running(store_config(database.config())) as store:
            with pytest.raises(StoreUnavailable, match="CREATE command denied"):
                await store.ensure_table("tickets_n0")
            threads = threading.active_count()  # the admin pool has started by now
            for i in range(1, 21):
                with pytest.raises(StoreUnavailable, match="CREATE command denied"):
                    await store.ensure_table(f"tickets_n{i}")
            assert threading.active_count() == threads
            assert not store._retrying

    run(body)
