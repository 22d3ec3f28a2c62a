"""COMMAND INFO, CONFIG GET and SCAN details that clients read, where no byte comparison with
redis-server applies (tickerd's table and limits are its own)."""

from __future__ import annotations

import pytest

from tests.servers import Tickerd
from tests.servers import command as c
from tickerd.commands.base import parse_cursor
from tickerd.resp import MAX_BULK


def test_command_info_shows_redis_flags_and_categories(tickerd: Tickerd) -> None:
    multi = tickerd.send(c("COMMAND", "INFO", "multi"))
    assert b"immediate" not in multi  # tickerd's own flag
    assert b"+@transaction\r\n" in multi
    for name in ("auth", "hello", "quit"):
        assert b"+no_auth\r\n" in tickerd.send(c("COMMAND", "INFO", name)), name
    assert b"+no_auth\r\n" not in tickerd.send(c("COMMAND", "INFO", "incr"))
    everything = tickerd.send(c("COMMAND"))
    assert b"immediate" not in everything
    assert b"@transactions" not in everything


def test_config_get_proto_max_bulk_len_is_the_real_limit(tickerd: Tickerd) -> None:
    with tickerd.client() as client:
        limit = client.config_get("proto-max-bulk-len")["proto-max-bulk-len"]
    assert int(limit) == MAX_BULK


@pytest.mark.parametrize(
    ("cursor", "value"),
    [
        (b"0", 0),
        (b"", 0),  # strtoul reads nothing and stops at the end: Redis takes it as 0
        (b"+5", 5),
        (b"-0", 0),
        (b"-1", 2**64 - 1),
        (b"-18446744073709551615", 1),
        (b"18446744073709551615", 2**64 - 1),
        (b"7\x00junk", 7),  # C stops at the NUL byte
        (b"18446744073709551616", None),
        (b" 1", None),
        (b"1 ", None),
        (b"0x1", None),
        (b"-", None),
    ],
)
def test_scan_cursor_is_read_as_redis_reads_it(cursor: bytes, value: int | None) -> None:
    assert parse_cursor(cursor) == value


def test_scan_past_the_end(tickerd: Tickerd) -> None:
    assert tickerd.send(c("SCAN", "18446744073709551615")) == b"*2\r\n$1\r\n0\r\n*0\r\n"
