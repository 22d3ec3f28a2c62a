"""The embedded SQLite store, driven directly: group commit, schema checks, raising, closing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from tests.servers import Tickerd
from tickerd.stores import SchemaMismatch, StoreError
from tickerd.stores import sqlite as sqlite_store
from tickerd.stores.sqlite import SqliteStore

T = TypeVar("T")
# How long a job may take before a test calls it hung (a hung job used to hang forever).
JOB_LIMIT = 10.0


def with_store(path: Path, body: Callable[[SqliteStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = SqliteStore(str(path))
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_concurrent_draws_are_unique_increasing_and_share_transactions(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> tuple[list[int], dict[str, str]]:
        await store.ensure_table("tickets_users")
        tickets = await asyncio.gather(*(store.draw("tickets_users") for _ in range(2000)))
        return list(tickets), dict(store.info()[0][1])

    tickets, info = with_store(tmp_path / "t.sqlite3", body)
    assert tickets == list(range(1, 2001))  # one writer: in request order, no gaps
    assert info["store_tickets"] == "2000"
    assert int(info["store_transactions"]) < 100  # group commit: many tickets per fsync


def test_tables_are_independent_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"

    async def first(store: SqliteStore) -> None:
        for table in ("tickets_a", "tickets_b"):
            await store.ensure_table(table)
        assert [await store.draw("tickets_a") for _ in range(3)] == [1, 2, 3]
        assert await store.draw("tickets_b") == 1

    async def second(store: SqliteStore) -> None:
        assert await store.list_tables("tickets_") == ["tickets_a", "tickets_b"]
        assert await store.list_tables("tickets_a") == ["tickets_a"]
        assert await store.last_id("tickets_a") == 3
        assert await store.draw("tickets_a") == 4
        await store.ensure_table("tickets_c")
        assert await store.last_id("tickets_c") is None

    with_store(path, first)
    with_store(path, second)
    with sqlite3.connect(path) as db:  # the stub table holds one row: the last ticket
        assert db.execute('SELECT id, stub FROM "tickets_a"').fetchall() == [(4, "a")]


def test_a_table_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "tickets_users" (id INTEGER PRIMARY KEY, stub TEXT)')

    async def body(store: SqliteStore) -> None:
        with pytest.raises(SchemaMismatch, match=r"tickets_users .* is not a stub table"):
            await store.ensure_table("tickets_users")

    with_store(path, body)


def test_raise_to_never_lowers(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        await store.ensure_table("tickets_s")
        await store.raise_to("tickets_s", 1000)
        assert await store.draw("tickets_s") == 1001
        await store.raise_to("tickets_s", 10)  # lower: nothing changes
        assert await store.draw("tickets_s") == 1002
        await store.ensure_table("tickets_fresh")
        await store.raise_to("tickets_fresh", 5)  # a table that never issued a ticket
        assert await store.draw("tickets_fresh") == 6

    with_store(tmp_path / "t.sqlite3", body)


def test_a_draw_on_a_missing_table_fails_alone(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        await store.ensure_table("tickets_ok")
        results = await asyncio.gather(
            store.draw("tickets_ok"), store.draw("tickets_missing"), return_exceptions=True
        )
        assert isinstance(results[0], int)
        assert isinstance(results[1], StoreError)
        assert "no such table" in str(results[1])
        # The failed batch left no ticket behind: the next one is still unique.
        assert await store.draw("tickets_ok") not in results

    with_store(tmp_path / "t.sqlite3", body)


def test_an_unopenable_file_and_a_closed_store_fail_cleanly(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(str(tmp_path / "missing" / "t.sqlite3"))
        with pytest.raises(StoreError, match="cannot open the sqlite store"):
            await store.start()
        store = SqliteStore(str(tmp_path / "t.sqlite3"))
        await store.start()
        await store.close()
        with pytest.raises(StoreError, match="not running"):
            await store.draw("tickets_x")

    asyncio.run(body())


def test_an_unexpected_error_in_a_job_fails_that_job_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ticket = sqlite_store._ticket

    def ticket(cursor: sqlite3.Cursor, table: str) -> int:
        if table == "tickets_bad":
            raise TypeError("a bug")
        return real_ticket(cursor, table)

    monkeypatch.setattr(sqlite_store, "_ticket", ticket)

    def broken(db: sqlite3.Connection) -> None:
        raise TypeError("another bug")

    async def body(store: SqliteStore) -> None:
        for table in ("tickets_ok", "tickets_bad"):
            await store.ensure_table(table)
        with pytest.raises(StoreError, match="internal error: TypeError: another bug"):
            await asyncio.wait_for(store._call(broken), JOB_LIMIT)
        # A batch with a bad draw in it: the bad draw fails, the others get their tickets.
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.draw(t) for t in ("tickets_ok", "tickets_bad", "tickets_ok")),
                return_exceptions=True,
            ),
            JOB_LIMIT,
        )
        assert results[0] == 1, results
        assert results[2] == 2, results
        assert isinstance(results[1], StoreError)
        assert "internal error: TypeError: a bug" in str(results[1])
        assert await asyncio.wait_for(store.draw("tickets_ok"), JOB_LIMIT) == 3
        assert await store.last_id("tickets_ok") == 3
        info = dict(store.info()[0][1])
        assert info["store_status"] == "up"
        assert info["store_last_error"].endswith("TypeError: a bug")

    with_store(tmp_path / "t.sqlite3", body)


def test_a_writer_that_ends_fails_what_is_queued_and_reports_down(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(str(tmp_path / "t.sqlite3"))
        stop = threading.Event()

        def serve(db: sqlite3.Connection) -> bool:
            stop.wait(JOB_LIMIT)
            raise RuntimeError("the writer breaks")

        store._serve = serve  # type: ignore[method-assign]
        await store.start()
        queued = store.draw("tickets_x")  # queued while the writer is still alive
        stop.set()
        with pytest.raises(StoreError, match="not running"):
            await asyncio.wait_for(queued, JOB_LIMIT)
        assert dict(store.info()[0][1])["store_status"] == "down"
        with pytest.raises(StoreError, match="not running"):
            await asyncio.wait_for(store.draw("tickets_x"), JOB_LIMIT)
        await store.close()

    asyncio.run(body())


def test_a_table_named_in_another_case_is_never_looked_up_silently(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        await store.ensure_table("tickets_users")
        await store.draw("tickets_users")
        with pytest.raises(SchemaMismatch, match="tickets_Users exists as tickets_users"):
            await store.ensure_table("tickets_Users")
        with pytest.raises(SchemaMismatch, match="exists as tickets_users"):
            await store.last_id("tickets_Users")
        with pytest.raises(StoreError, match="no such table: tickets_missing"):
            await store.last_id("tickets_missing")
        with pytest.raises(StoreError, match="no such table: tickets_missing"):
            await store.raise_to("tickets_missing", 10)
        assert await store.last_id("tickets_users") == 1

    with_store(tmp_path / "t.sqlite3", body)


def test_a_locked_file_fails_a_batch_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = 1.0
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT", busy)
    path = tmp_path / "t.sqlite3"
    draws = 8

    async def body(store: SqliteStore) -> None:
        await store.ensure_table("tickets_users")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            # Hold the writer until every draw is queued, so that they make one batch.
            gate = threading.Event()
            held = asyncio.ensure_future(store._call(lambda _: gate.wait(JOB_LIMIT)))
            await asyncio.sleep(0)  # let the held job reach the queue before the draws
            pending = [store.draw("tickets_users") for _ in range(draws)]
            began = time.monotonic()
            gate.set()
            await held
            results = await asyncio.gather(*pending, return_exceptions=True)
            seconds = time.monotonic() - began
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert all(isinstance(r, StoreError) and "locked" in str(r) for r in results), results
        # One wait for the lock, not one per draw (which took draws + 1 waits).
        assert dict(store.info()[0][1])["store_errors"] == "1"
        assert seconds < (draws + 1) * busy / 2, f"{seconds:.1f}s"
        assert await store.draw("tickets_users") == 1  # the lock is gone: tickets go on

    with_store(path, body)


def test_a_stray_table_of_another_shape_is_not_adopted(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    server = tickerd_factory(start=False)
    with sqlite3.connect(server.dir / "tickets.sqlite3") as db:
        db.execute('CREATE TABLE "tickets_other" (id INTEGER PRIMARY KEY, note TEXT)')
    server.start()
    assert "not serving table tickets_other" in server.log
    assert "is not a stub table" in server.log
    client = server.client()
    assert sorted(client.keys("*")) == [b"posts", b"users"]
    with pytest.raises(redis.ResponseError, match=r"tickets_other .* is not a stub table"):
        client.incr("other")
    assert client.incr("users") == 1
