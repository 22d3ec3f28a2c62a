"""The SQL of stub tables: creating and checking them, and the rare operations besides tickets.

Every function here is blocking and takes an open session (see :meth:`Server.connect`); the
store runs them on its own threads, never on the event loop.
"""

from __future__ import annotations

import contextlib
import re

import pymysql

from . import SchemaMismatch, StoreError

# Flickr's Tickets64 shape, on InnoDB so that the counter survives a crash (NOTES.md section 7).
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {table} ("
    "id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "stub CHAR(1) NOT NULL DEFAULT '', "
    "UNIQUE KEY stub (stub)"
    ") ENGINE=InnoDB"
)
REPLACE = "REPLACE INTO {table} (stub) VALUES ('a')"
ENGINE = "InnoDB"
# (name, type, nullable, extra) of each column, in order; integer display widths are dropped
# from the server's COLUMN_TYPE because MySQL 8 no longer shows them and MariaDB does.
COLUMNS = [("id", "bigint unsigned", "NO", "auto_increment"), ("stub", "char(1)", "NO", "")]
# Unique indexes as (is primary, columns).
UNIQUE_KEYS = {(True, "id"), (False, "stub")}
_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")

# Error codes the store tells apart (the rest mean "this server failed").
ER_LOCK_DEADLOCK = 1213
ER_LOCK_WAIT_TIMEOUT = 1205
ER_NO_SUCH_TABLE = 1146
ER_AUTOINC_READ_FAILED = 1467  # BIGINT UNSIGNED is used up
RETRYABLE = frozenset({ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT})
# Errors about one table (or this daemon's use of it), not the server: that table's requests go
# to another server, and the server keeps serving every other table. (Too many connections, 1040,
# is the server's: it is marked down, its idle connections closed, and its probe brings it back.)
ER_BAD_FIELD = 1054
ER_TABLEACCESS_DENIED = 1142
ER_OPTION_PREVENTS_STATEMENT = 1290  # read_only
TABLE_LEVEL = frozenset(
    {
        ER_NO_SUCH_TABLE,
        ER_BAD_FIELD,
        ER_TABLEACCESS_DENIED,
        ER_OPTION_PREVENTS_STATEMENT,
    }
)
# How often raise_to retries its transaction when it deadlocks with the ticket traffic.
RAISE_ATTEMPTS = 20


def quote(table: str) -> str:
    """``table`` as a quoted identifier; names are validated upstream, this is a second fence."""
    if not table or "`" in table or "\0" in table:
        raise StoreError(f"invalid table name {table!r}")
    return f"`{table}`"


def error_code(exc: BaseException) -> int | None:
    """The server's error number of a PyMySQL error, if it has one."""
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def create_table(conn: pymysql.Connection, table: str) -> None:
    """Create ``table`` as a stub table unless it exists."""
    with conn.cursor() as cur:
        cur.execute(CREATE_TABLE.format(table=quote(table)))


def ensure_table(
    conn: pymysql.Connection,
    table: str,
    server: str,
    increment: int,
    offset: int,
    *,
    create: bool = True,
) -> tuple[bool, int | None]:
    """Check ``table``'s shape and its ids' residue (creating it first if missing and ``create``);
    raise SchemaMismatch naming the gaps. Return (it existed before, its largest id); a missing
    table that was not created gives (False, None)."""
    existed = table_exists(conn, table)
    if not existed:
        if not create:
            return False, None
        create_table(conn, table)
    problems = shape_problems(conn, table)
    if problems:
        raise SchemaMismatch(
            f"{server}: table {quote(table)} exists but is not a stub table: "
            + "; ".join(problems)
            + ". Expected "
            + CREATE_TABLE.format(table=quote(table)).replace(" IF NOT EXISTS", "")
            + " (drop or rename the table, or choose another table_prefix)"
        )
    top = max_id(conn, table)
    problem = residue_problem(table, server, top, increment, offset)
    if problem:
        raise SchemaMismatch(problem)
    return existed, top


def residue_problem(
    table: str, server: str, top: int | None, increment: int, offset: int
) -> str | None:
    """Why ``table``'s largest id ``top`` shows that ``server`` once issued ids of another
    residue class than its offset gives now (swapped or changed offsets), or None if it agrees.

    Uniqueness across servers rests on each server issuing only ids with
    ``id % increment == offset % increment``; a server whose offset changed would walk into the
    ids another server already issued.
    """
    if top is None or top % increment == offset % increment:
        return None
    return (
        f"{server}: table {quote(table)} holds id {top}, but this server's "
        f"auto_increment_offset = {offset} (auto_increment_increment = {increment}) issues only "
        f"ids with id % {increment} == {offset % increment}: it would re-issue ids of another "
        f"server. Give this server back the offset it had (one with {top} % {increment} == "
        f"offset % {increment}); offsets of a deployment must never change"
    )


def table_exists(conn: pymysql.Connection, table: str) -> bool:
    """Whether ``table`` exists in the session's database."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return cur.fetchone() is not None


def shape_problems(conn: pymysql.Connection, table: str) -> list[str]:
    """How ``table`` differs from a stub table, one phrase each; empty if it does not."""
    problems: list[str] = []
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        row = cur.fetchone()
        engine = str(row[0]) if row else "(none)"
        if engine.lower() != ENGINE.lower():
            problems.append(f"engine is {engine}, not {ENGINE}")
        cur.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        columns = [
            (str(name), _DISPLAY_WIDTH.sub(r"\1", str(kind).lower()), str(null), str(extra).lower())
            for name, kind, null, extra in cur.fetchall()
        ]
        if columns != COLUMNS:
            problems.append(f"columns are {_columns(columns)}, not {_columns(COLUMNS)}")
        cur.execute(
            "SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) "
            "FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
            "GROUP BY INDEX_NAME",
            (table,),
        )
        keys = {(str(name) == "PRIMARY", str(cols)) for name, cols in cur.fetchall()}
        if keys != UNIQUE_KEYS:
            problems.append(f"unique keys are {_keys(keys)}, not {_keys(UNIQUE_KEYS)}")
    return problems


def _columns(columns: list[tuple[str, str, str, str]]) -> str:
    return (
        ", ".join(
            f"{name} {kind}{' NOT NULL' if null == 'NO' else ''}{' ' + extra if extra else ''}"
            for name, kind, null, extra in columns
        )
        or "(none)"
    )


def _keys(keys: set[tuple[bool, str]]) -> str:
    return (
        ", ".join(
            f"PRIMARY KEY ({cols})" if primary else f"UNIQUE ({cols})"
            for primary, cols in sorted(keys)
        )
        or "(none)"
    )


def check_durability(conn: pymysql.Connection) -> int:
    """The server's ``innodb_flush_log_at_trx_commit`` (1 is the only crash-safe value)."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit")
        row = cur.fetchone()
    return int(row[0]) if row else 1


def list_tables(conn: pymysql.Connection, prefix: str) -> list[str]:
    """The base tables of the session's database whose names start with ``prefix``."""
    # LIKE treats _ and % as wildcards, and a table prefix usually ends in _.
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME LIKE %s",
            (pattern,),
        )
        # Sorted here, by code point: the server would sort by its collation.
        return sorted(str(name) for (name,) in cur.fetchall())


def max_id(conn: pymysql.Connection, table: str) -> int | None:
    """The largest id in ``table`` (the stub row, so the last ticket), or None if empty/missing."""
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT MAX(id) FROM {quote(table)}")
            row = cur.fetchone()
    except pymysql.MySQLError as exc:
        if error_code(exc) == ER_NO_SUCH_TABLE:
            return None
        raise
    return int(row[0]) if row and row[0] is not None else None


def raise_to(conn: pymysql.Connection, table: str, floor: int, increment: int, offset: int) -> None:
    """Make this server's next ticket greater than ``floor``; never lower its counter.

    If the stub row is below ``floor``, it is replaced by a row with the largest id up to
    ``floor`` in this server's residue class (``offset`` modulo ``increment``), so that every id
    in the table keeps that class (see :func:`residue_problem`): InnoDB then moves the counter to
    that id + ``increment``, above ``floor``, and an insert never lowers it. The row is a marker,
    not a ticket: no client is ever handed its id by this. The table must exist.
    """
    marker = floor - (floor - offset) % increment
    if marker < 1:
        return  # the counter's first id, offset, is already above floor
    for attempt in range(RAISE_ATTEMPTS):
        try:
            _raise_once(conn, table, marker)
            return
        except pymysql.MySQLError as exc:
            if error_code(exc) not in RETRYABLE or attempt == RAISE_ATTEMPTS - 1:
                raise


def _raise_once(conn: pymysql.Connection, table: str, marker: int) -> None:
    quoted = quote(table)
    conn.begin()
    try:
        with conn.cursor() as cur:
            # The lock keeps a concurrent REPLACE from slipping in between the check and the write.
            cur.execute(f"SELECT MAX(id) FROM {quoted} FOR UPDATE")
            row = cur.fetchone()
            top = row[0] if row else None
            if top is None or int(top) < marker:
                cur.execute(f"REPLACE INTO {quoted} (id, stub) VALUES (%s, 'a')", (marker,))
        conn.commit()
    except BaseException:
        # A broken connection cannot roll back; the caller reports the first error.
        with contextlib.suppress(pymysql.MySQLError, OSError):
            conn.rollback()
        raise
