"""The embedded SQLite store, driven directly: group commit, schema checks, raising, closing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tickerd.stores import SchemaMismatch, StoreError
from tickerd.stores.sqlite import SqliteStore

T = TypeVar("T")


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
