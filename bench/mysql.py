"""Throughput of one sequence on one MySQL server: MysqlStore.draw against a bare PyMySQL loop.

Run as ``python -m bench.mysql [--seconds 5]``. It starts its own throwaway MariaDB (the test
suite's helper) and never touches another server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pymysql
import uvloop
from pymysql.constants import CLIENT

from tests.mariadb import GRANTS, TICKERD_PASSWORD, TICKERD_USER, MariaDB, create_database
from tickerd.config import StoreConfig
from tickerd.stores import mysql_schema
from tickerd.stores.mysql import MysqlStore

TABLE = "tickets_bench"
MULTI_STATEMENT_BATCH = 10


def bare_loop(connect: Callable[[int], pymysql.Connection], seconds: float) -> float:
    """Ids per second from one connection doing nothing but REPLACE."""
    with contextlib.closing(connect(0)) as conn, conn.cursor() as cur:
        count = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cur.execute(f"REPLACE INTO `{TABLE}` (stub) VALUES ('a')")
            assert cur.lastrowid
            count += 1
    return count / seconds


def bare_multi(connect: Callable[[int], pymysql.Connection], seconds: float) -> float:
    """Ids per second with MULTI_STATEMENT_BATCH REPLACEs sent as one multi-statement."""
    sql = ";".join([f"REPLACE INTO `{TABLE}` (stub) VALUES ('a')"] * MULTI_STATEMENT_BATCH)
    with contextlib.closing(connect(CLIENT.MULTI_STATEMENTS)) as conn:
        cur = conn.cursor()
        count = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cur.execute(sql)
            count += 1
            while cur.nextset():
                count += 1
    return count / seconds


async def store_draws(config: StoreConfig, tasks: int, seconds: float) -> float:
    """Ids per second from MysqlStore.draw with ``tasks`` tasks each awaiting one at a time."""
    store = MysqlStore(config)
    await store.start()
    try:
        await store.ensure_table(TABLE)
        await store.draw(TABLE)  # warm up: the worker's connection is open
        end = time.monotonic() + seconds
        count = 0

        async def client() -> None:
            nonlocal count
            while time.monotonic() < end:
                await store.draw(TABLE)
                count += 1

        await asyncio.gather(*(client() for _ in range(tasks)))
        return count / seconds
    finally:
        await store.close()


def main() -> None:
    """Start a server, run each measurement, print ids/s and the store/bare ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    args = parser.parse_args()
    server = MariaDB(Path(tempfile.mkdtemp(prefix="tkd", dir="/tmp")))
    try:
        server.start()
        server.execute(f"CREATE USER '{TICKERD_USER}'@'%' IDENTIFIED BY '{TICKERD_PASSWORD}'")
        server.execute(f"GRANT {GRANTS} ON *.* TO '{TICKERD_USER}'@'%'")
        database = create_database(server)
        mysql = database.config()
        server.execute(
            mysql_schema.CREATE_TABLE.format(table=mysql_schema.quote(TABLE)), database.database
        )

        def connect(client_flag: int = 0) -> pymysql.Connection:
            return pymysql.connect(
                host=mysql.host,
                port=mysql.port,
                user=mysql.user,
                password=mysql.password,
                database=mysql.database,
                autocommit=True,
                client_flag=client_flag,
            )

        config = StoreConfig(backend="mysql", mysql=(mysql,))
        seconds = args.seconds
        bare = bare_loop(connect, seconds)
        print(f"bare PyMySQL REPLACE loop, one connection: {bare:8.0f} ids/s")
        multi = bare_multi(connect, seconds)
        print(
            f"bare, {MULTI_STATEMENT_BATCH} REPLACEs per multi-statement:   {multi:8.0f} ids/s "
            f"({multi / bare:.2f} x bare)"
        )
        for tasks in (1, 50):
            rate = uvloop.run(store_draws(config, tasks, seconds))
            print(
                f"MysqlStore.draw, {tasks:2d} awaiting task(s):      {rate:8.0f} ids/s "
                f"({rate / bare:.2f} x bare)"
            )
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
