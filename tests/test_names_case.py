"""Sequence names that differ only in letter case: refused, and the store keeps serving.

SQLite table names ignore case (so do MySQL's under Windows and macOS): ``users`` and ``Users``
would be one table. tickerd refuses the second name instead of serving both from one counter.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis

from tests.servers import DEFAULT_CONFIG, Tickerd

# A daemon that creates every sequence on first use: "users" is not configured.
AUTO_CONFIG = DEFAULT_CONFIG.replace("names = users posts", "names = posts")


def test_a_name_differing_only_in_case_is_refused_and_tickets_go_on(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    server = tickerd_factory(AUTO_CONFIG)
    client = server.client()
    assert client.incr("users") == 1
    for variant in ("Users", "USERS", "posTs"):
        with pytest.raises(redis.ResponseError) as refused:
            client.incr(variant)
        assert str(refused.value).startswith(f"invalid sequence name '{variant}': ")
        assert "differs only in case from the sequence" in str(refused.value)
    # The store still serves every sequence, old and new.
    assert client.incr("users") == 2
    assert client.incr("posts") == 1
    assert client.incr("other") == 1
    assert sorted(client.keys("*")) == [b"other", b"posts", b"users"]
    info = client.info("store")
    assert info["store_status"] == "up"


def test_a_configured_name_whose_table_exists_in_another_case_stops_start_up(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    server = tickerd_factory(DEFAULT_CONFIG.replace("users posts", "Users"), start=False)
    with sqlite3.connect(server.dir / "tickets.sqlite3") as db:
        db.execute(
            'CREATE TABLE "tickets_users" '
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, stub CHAR(1) NOT NULL DEFAULT '' UNIQUE)"
        )
    for extra in (["--check-config"], []):
        done = subprocess.run(
            [sys.executable, "-m", "tickerd", "--config", str(server.config_path), *extra],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=server.dir,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "table tickets_Users exists as tickets_users" in done.stderr
