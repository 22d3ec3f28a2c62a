"""The command table and dispatch: name -> row, arity and auth checks, MULTI queueing.

:func:`execute` takes one parsed request and returns its reply: a value now, or a future the
connection writes when it resolves. Every rejection carries Redis's exact error text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..config import sequence_name_problem
from ..context import Session
from ..replies import NULL_ARRAY, OK, QUEUED, Reply, ReplyError, SimpleString, Value, settle
from . import connection, introspection, tickets
from .base import IMMEDIATE, NOAUTH, Command, command, text, wrong_arguments

NOAUTH_ERROR = ReplyError("NOAUTH Authentication required.")
# Commands queued in one MULTI, and the bytes of their arguments, at most: the queue is memory
# held for a client.
MAX_QUEUED = 10_000
MAX_QUEUED_BYTES = 4 * 1024 * 1024
# What one queued argument costs besides its bytes (a bytes object and its list slot), so that
# many empty arguments count too.
ARGUMENT_OVERHEAD = 64
# Keys one client may WATCH at once: the watch list is memory held for a client too.
MAX_WATCHED = 10_000


# -- transactions ---------------------------------------------------------------------------


class _Queue(list[list[bytes]]):
    """MULTI's queue of requests, counting the bytes their arguments hold."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0


def multi(session: Session, _args: list[bytes]) -> Reply:
    if session.multi is not None:
        return ReplyError("ERR MULTI calls can not be nested")
    session.multi = _Queue()
    session.multi_failed = False
    return OK


def discard(session: Session, _args: list[bytes]) -> Reply:
    if session.multi is None:
        return ReplyError("ERR DISCARD without MULTI")
    _end_transaction(session)
    return OK


def watch(session: Session, args: list[bytes]) -> Reply:
    if session.multi is not None:
        return ReplyError("ERR WATCH inside MULTI is not allowed")
    sequences = session.server.sequences
    # A key that can never be a sequence never changes, so watching it is a no-op: only names
    # that are, or may become, sequences take room.
    names = {name for name in map(text, args[1:]) if _may_change(session, name)}
    added = names.difference(session.watched)
    if len(session.watched) + len(added) > MAX_WATCHED:
        return ReplyError(f"ERR too many watched keys (at most {MAX_WATCHED} per client)")
    for name in added:
        session.watched[name] = sequences.version(name)
    return OK


def _may_change(session: Session, name: str) -> bool:
    sequences = session.server.sequences
    if sequences.find(name.encode()) is not None:
        return True
    if not sequences.config.auto_create:
        return False
    return sequence_name_problem(name, sequences.prefix) is None


def unwatch(session: Session, _args: list[bytes]) -> Reply:
    session.watched.clear()
    return OK


def exec_(session: Session, _args: list[bytes]) -> Reply:
    queued = session.multi
    if queued is None:
        return ReplyError("ERR EXEC without MULTI")
    failed = session.multi_failed
    sequences = session.server.sequences
    moved = any(sequences.version(name) != seen for name, seen in session.watched.items())
    _end_transaction(session)
    if failed:
        return ReplyError("EXECABORT Transaction discarded because of previous errors.")
    if moved:
        return NULL_ARRAY
    return gather([_run_queued(session, args) for args in queued])


def _run_queued(session: Session, args: list[bytes]) -> Reply:
    row = resolve(args)  # checked when queued; resolved again for the subcommand's handler
    return row if isinstance(row, ReplyError) else row.handler(session, args)


def _end_transaction(session: Session) -> None:
    session.multi = None
    session.multi_failed = False
    session.watched.clear()


def gather(replies: list[Reply]) -> Reply:
    """One reply for a list of replies, some of which may still be futures (EXEC, MGET)."""
    futures = [reply for reply in replies if isinstance(reply, asyncio.Future)]
    if not futures:
        return replies  # type: ignore[return-value]
    return asyncio.ensure_future(_settled(replies))


async def _settled(replies: list[Reply]) -> Value:
    values: list[Value] = []
    for reply in replies:
        if isinstance(reply, asyncio.Future):
            await asyncio.wait([reply])
            values.append(settle(reply))
        else:
            values.append(reply)
    return values


# -- COMMAND --------------------------------------------------------------------------------


def command_(_session: Session, _args: list[bytes]) -> Reply:
    return [introspection.command_info(row) for row in TABLE.values()]


def command_count(_session: Session, _args: list[bytes]) -> Reply:
    return len(TABLE)


def command_info(_session: Session, args: list[bytes]) -> Reply:
    if len(args) == 2:
        return [introspection.command_info(row) for row in TABLE.values()]
    rows = [TABLE.get(text(name).lower()) for name in args[2:]]
    return [None if row is None else introspection.command_info(row) for row in rows]


def command_docs(_session: Session, args: list[bytes]) -> Reply:
    names = [text(name).lower() for name in args[2:]] or list(TABLE)
    return {name: introspection.command_docs(TABLE[name]) for name in names if name in TABLE}


def command_list(_session: Session, _args: list[bytes]) -> Reply:
    return [row.name for row in TABLE.values()]


def command_help(_session: Session, _args: list[bytes]) -> Reply:
    lines = [
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all commands.",
        "COUNT",
        "    Return the total number of commands.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple commands.",
        "INFO [<command-name> ...]",
        "    Return details about multiple commands.",
        "LIST",
        "    Return a list of all commands.",
        "HELP",
        "    Print this help.",
    ]
    return [SimpleString(line) for line in lines]


def _build(rows: Iterable[Command]) -> dict[str, Command]:
    table: dict[str, Command] = {}
    for row in rows:
        assert row.name not in table, f"duplicate command {row.name}"
        table[row.name] = row
    return table


TABLE: dict[str, Command] = _build(
    [
        *tickets.COMMANDS,
        *connection.COMMANDS,
        command("multi", multi, 1, IMMEDIATE, "fast", group="transactions", summary="Begin"),
        command("exec", exec_, 1, IMMEDIATE, group="transactions", summary="Run the queue"),
        command("discard", discard, 1, IMMEDIATE, "fast", group="transactions", summary="Drop"),
        command("watch", watch, -2, IMMEDIATE, "fast", group="transactions", summary="Watch"),
        command("unwatch", unwatch, 1, "fast", group="transactions", summary="Forget watches"),
        command("info", introspection.info, -1, group="server", summary="Server information"),
        command("time", introspection.time_, 1, "fast", group="server", summary="Server time"),
        command(
            "config",
            introspection.config,
            -2,
            group="server",
            summary="Configuration parameters",
            subcommands=[
                command("config|get", introspection.config_get, -3, group="server"),
                command("config|set", introspection.config_set, -4, group="server"),
                command("config|resetstat", introspection.config_resetstat, 2, group="server"),
                command("config|help", introspection.config_help, 2, group="server"),
            ],
        ),
        command(
            "command",
            command_,
            -1,
            group="server",
            summary="Command table introspection",
            subcommands=[
                command("command|count", command_count, 2, group="server"),
                command("command|info", command_info, -2, group="server"),
                command("command|docs", command_docs, -2, group="server"),
                command("command|list", command_list, -2, group="server"),
                command("command|help", command_help, 2, group="server"),
            ],
        ),
    ]
)


def resolve(args: list[bytes]) -> Command | ReplyError:
    """The row that runs ``args``, or the error Redis gives for an unknown or misused command."""
    name = args[0].lower().decode("utf-8", "replace")
    row = TABLE.get(name)
    if row is None:
        return _unknown(args)
    if not row.arity_ok(len(args)):
        return wrong_arguments(row.name)
    if row.subcommands is not None and len(args) > 1:
        sub = row.subcommands.get(args[1].lower().decode("utf-8", "replace"))
        if sub is None:
            shown = _raw(_c_string(args[1])[:_SHOWN])
            return ReplyError(f"ERR unknown subcommand '{shown}'. Try {name.upper()} HELP.")
        if not sub.arity_ok(len(args)):
            return wrong_arguments(sub.name)
        return Command(sub.name, sub.handler, sub.arity, row.flags | sub.flags, sub.group)
    return row


def _refuse(session: Session, args: list[bytes], error: ReplyError) -> ReplyError:
    """A request refused before it ran: inside MULTI, the transaction is doomed; a refused EXEC
    itself discards the transaction and says why, as Redis does."""
    if args[0].lower() == b"exec":
        _end_transaction(session)
        reason = error.text.removeprefix("ERR ")
        return ReplyError(f"EXECABORT Transaction discarded because of: {reason}")
    if session.multi is not None:
        session.multi_failed = True
    return error


# Redis shows at most this many bytes of an unknown command's name, and of its arguments.
_SHOWN = 128


def _unknown(args: list[bytes]) -> ReplyError:
    """Redis's text, built as its printf calls build it: on bytes, each argument quoted and
    clipped so the list stays within 128 bytes, each cut at a NUL byte (``%.*s``)."""
    shown = b""
    for arg in args[1:]:
        if len(shown) >= _SHOWN:
            break
        shown += b"'" + _c_string(arg)[: _SHOWN - len(shown)] + b"' "
    return ReplyError(
        f"ERR unknown command '{_raw(_c_string(args[0])[:_SHOWN])}', "
        f"with args beginning with: {_raw(shown)}"
    )


def _c_string(arg: bytes) -> bytes:
    """An argument as C's ``%s`` prints it: up to its first NUL byte."""
    return arg.partition(b"\0")[0]


def _raw(data: bytes) -> str:
    """Peer bytes in an error text: the encoder turns the surrogate escapes of bytes that are
    not UTF-8 (or of a character clipped mid-way) back into the very same bytes."""
    return data.decode("utf-8", "surrogateescape")


def execute(session: Session, args: list[bytes]) -> Reply:
    """Run one request (a non-empty list of arguments) and return its reply."""
    row = resolve(args)
    if isinstance(row, ReplyError):
        return _refuse(session, args, row)
    if not session.authenticated and NOAUTH not in row.flags:
        return _refuse(session, args, NOAUTH_ERROR)
    session.last_command = row.name
    queue = session.multi
    if queue is not None and IMMEDIATE not in row.flags:
        assert isinstance(queue, _Queue), "MULTI makes the queue"
        size = sum(map(len, args)) + ARGUMENT_OVERHEAD * len(args)
        if len(queue) >= MAX_QUEUED:
            session.multi_failed = True
            return ReplyError(f"ERR too many commands in MULTI (at most {MAX_QUEUED})")
        if queue.size + size > MAX_QUEUED_BYTES:
            session.multi_failed = True
            return ReplyError(f"ERR too many bytes queued in MULTI (at most {MAX_QUEUED_BYTES})")
        queue.append(args)
        queue.size += size
        return QUEUED
    return row.handler(session, args)


__all__ = ["MAX_QUEUED", "MAX_QUEUED_BYTES", "MAX_WATCHED", "TABLE", "execute", "gather", "resolve"]
