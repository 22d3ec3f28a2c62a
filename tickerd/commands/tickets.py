"""Ticket commands: INCR and friends, and the key-space view of the sequences."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..context import Session
from ..glob import compile_glob
from ..replies import OK, Reply, ReplyError, SimpleString, Value
from ..sequences import Sequence, SequenceError
from ..stores import StoreError
from .base import (
    NOT_AN_INTEGER,
    SYNTAX_ERROR,
    Handler,
    command,
    parse_cursor,
    parse_int,
    run_async,
)

# SCAN's COUNT when none is given, and the most one SCAN call returns.
SCAN_DEFAULT_COUNT = 10
SCAN_MAX_COUNT = 100_000
# KEYS and SCAN MATCH over more names than this match in a thread, off the event loop.
MATCH_INLINE = 1000


def incr(session: Session, args: list[bytes]) -> Reply:
    sequences = session.server.sequences
    try:
        sequence = sequences.lookup(args[1])
    except SequenceError as exc:
        return ReplyError(str(exc))
    return sequences.next(sequence)


def incrby(session: Session, args: list[bytes]) -> Reply:
    increment = parse_int(args[2])
    if increment is None:
        return NOT_AN_INTEGER
    if increment < 1:
        return ReplyError("ERR tickets only move forward: the increment must be 1")
    if increment > 1:
        return ReplyError(
            "ERR INCRBY hands out one ticket at a time: the increment must be 1 "
            "(blocks of ids need block mode)"
        )
    return incr(session, args)


def get(session: Session, args: list[bytes]) -> Reply:
    sequences = session.server.sequences
    sequence = sequences.find(args[1])
    if sequence is None:
        return None
    last = sequences.last(sequence)
    if isinstance(last, asyncio.Future):
        return run_async(_bulk_when_done(last))
    return None if last is None else str(last).encode()


async def _bulk_when_done(last: asyncio.Future[int | None]) -> Value:
    try:
        value = await last
    except StoreError as exc:
        return ReplyError(f"ERR {exc}")
    return None if value is None else str(value).encode()


def mget(session: Session, args: list[bytes]) -> Reply:
    replies = [get(session, [b"get", key]) for key in args[1:]]
    if not any(isinstance(reply, asyncio.Future) for reply in replies):
        return replies  # type: ignore[return-value]
    return run_async(_gather(replies))


async def _gather(replies: list[Reply]) -> Value:
    return [await reply if isinstance(reply, asyncio.Future) else reply for reply in replies]


def set_(session: Session, args: list[bytes]) -> Reply:
    server = session.server
    if not server.config.sequences.allow_set:
        return ReplyError(
            "ERR tickets only move forward: SET is disabled "
            "(enable [sequences] allow_set to raise a sequence past existing ids)"
        )
    if len(args) != 3:
        return SYNTAX_ERROR
    floor = parse_int(args[2])
    if floor is None:
        return NOT_AN_INTEGER
    if floor < 0:
        return ReplyError("ERR tickets only move forward: a sequence cannot be set below 0")
    try:
        sequence = server.sequences.lookup(args[1])
    except SequenceError as exc:
        return ReplyError(str(exc))
    return run_async(_raise(session, sequence, floor))


async def _raise(session: Session, sequence: Sequence, floor: int) -> Value:
    try:
        await session.server.sequences.raise_to(sequence, floor)
    except StoreError as exc:
        return ReplyError(f"ERR {exc}")
    return OK


def exists(session: Session, args: list[bytes]) -> Reply:
    find = session.server.sequences.find
    return sum(1 for key in args[1:] if find(key) is not None)


def type_(session: Session, args: list[bytes]) -> Reply:
    found = session.server.sequences.find(args[1]) is not None
    return SimpleString("string" if found else "none")


def dbsize(session: Session, _args: list[bytes]) -> Reply:
    return len(session.server.sequences)


def keys(session: Session, args: list[bytes]) -> Reply:
    return _matching(_names(session), compile_glob(args[1]), _values)


def _values(keys: list[bytes]) -> Value:
    values: list[Value] = [*keys]
    return values


def _matching(
    names: list[bytes], match: Callable[[bytes], bool], reply: Callable[[list[bytes]], Value]
) -> Reply:
    """``reply`` of the names that ``match``: at once for a few names; for many, in a thread,
    so that a costly pattern over thousands of names never stalls the other clients."""
    if len(names) <= MATCH_INLINE:
        return reply([name for name in names if match(name)])

    async def in_thread() -> Value:
        return reply(await asyncio.to_thread(lambda: [name for name in names if match(name)]))

    return run_async(in_thread())


def scan(session: Session, args: list[bytes]) -> Reply:
    cursor = parse_cursor(args[1])
    if cursor is None:
        return ReplyError("ERR invalid cursor")
    match = None
    count = SCAN_DEFAULT_COUNT
    kind = None
    options = args[2:]
    while options:
        if len(options) < 2:
            return SYNTAX_ERROR
        option, value, options = options[0].lower(), options[1], options[2:]
        if option == b"match":
            match = compile_glob(value)
        elif option == b"count":
            parsed = parse_int(value)
            if parsed is None:
                return NOT_AN_INTEGER
            if parsed < 1:
                return SYNTAX_ERROR
            count = min(parsed, SCAN_MAX_COUNT)
        elif option == b"type":
            kind = value.lower()
        else:
            return SYNTAX_ERROR
    names = _names(session)
    page = names[cursor : cursor + count]
    following = cursor + count if cursor + count < len(names) else 0
    if kind is not None and kind != b"string":
        page = []
    cursor_reply = str(following).encode()
    if match is None:
        return [cursor_reply, page]  # type: ignore[list-item]
    return _matching(page, match, lambda keys: [cursor_reply, _values(keys)])


def _names(session: Session) -> list[bytes]:
    return [name.encode() for name in session.server.sequences.names()]


def _refusal(reason: str) -> Handler:
    def refuse(_session: Session, args: list[bytes]) -> Reply:
        name = args[0].decode("utf-8", "replace").upper()
        return ReplyError(f"ERR tickets only move forward: {name} {reason}")

    return refuse


_LOWERS = _refusal("would move a sequence backwards")
_DESTROYS = _refusal("would destroy a sequence")
_REWRITES = _refusal("would overwrite a sequence")

COMMANDS = [
    command("incr", incr, 2, "write", "fast", group="string", summary="The next ticket"),
    command("incrby", incrby, 3, "write", "fast", group="string", summary="INCR (increment 1)"),
    command("get", get, 2, "readonly", "fast", group="string", summary="The last ticket issued"),
    command("mget", mget, -2, "readonly", "fast", group="string", summary="GET of several"),
    command("set", set_, -3, "write", group="string", summary="Raise a sequence (allow_set)"),
    command("exists", exists, -2, "readonly", "fast", group="keyspace", summary="Sequences known"),
    command("type", type_, 2, "readonly", "fast", group="keyspace", summary="string or none"),
    command("dbsize", dbsize, 1, "readonly", "fast", group="server", summary="How many sequences"),
    command("keys", keys, 2, "readonly", group="keyspace", summary="Sequences matching a glob"),
    command("scan", scan, -2, "readonly", group="keyspace", summary="Iterate the sequences"),
    *(
        command(name, _LOWERS, -1, "write", group="string", summary="Refused: forward only")
        for name in ("decr", "decrby", "incrbyfloat", "setrange", "append")
    ),
    *(
        command(name, _DESTROYS, -1, "write", group="keyspace", summary="Refused: forward only")
        for name in (
            "del",
            "unlink",
            "getdel",
            "flushall",
            "flushdb",
            "rename",
            "renamenx",
            "move",
            "swapdb",
            "expire",
            "pexpire",
            "expireat",
            "pexpireat",
            "getex",
        )
    ),
    *(
        command(name, _REWRITES, -1, "write", group="string", summary="Refused: forward only")
        for name in ("getset", "setnx", "setex", "psetex", "mset", "msetnx", "copy", "restore")
    ),
]
