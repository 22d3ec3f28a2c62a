"""The command table and dispatch: name -> row, arity and auth checks, MULTI queueing.

:func:`execute` takes one parsed request and returns its reply: a value now, or a future the
connection writes when it resolves. Every rejection carries Redis's exact error text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ..context import Session
from ..replies import NULL_ARRAY, OK, QUEUED, Reply, ReplyError, SimpleString, Value, settle
from . import connection, introspection, tickets
from .base import IMMEDIATE, NOAUTH, Command, command, text, wrong_arguments

NOAUTH_ERROR = ReplyError("NOAUTH Authentication required.")
# Commands queued in one MULTI, at most: the queue is memory held for a client.
MAX_QUEUED = 10_000


# -- transactions ---------------------------------------------------------------------------


def multi(session: Session, _args: list[bytes]) -> Reply:
    if session.multi is not None:
        return ReplyError("ERR MULTI calls can not be nested")
    session.multi = []
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
    for key in args[1:]:
        name = text(key)
        session.watched.setdefault(name, sequences.version(name))
    return OK


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
            return ReplyError(
                f"ERR unknown subcommand '{_clip(text(args[1]))}'. Try {name.upper()} HELP."
            )
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


def _unknown(args: list[bytes]) -> ReplyError:
    shown = ""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += f"'{text(arg)[: 128 - len(shown)]}' "
    return ReplyError(
        f"ERR unknown command '{_clip(text(args[0]))}', with args beginning with: {shown}"
    )


def _clip(name: str) -> str:
    return name[:128]


def execute(session: Session, args: list[bytes]) -> Reply:
    """Run one request (a non-empty list of arguments) and return its reply."""
    row = resolve(args)
    if isinstance(row, ReplyError):
        return _refuse(session, args, row)
    if not session.authenticated and NOAUTH not in row.flags:
        return _refuse(session, args, NOAUTH_ERROR)
    session.last_command = row.name
    if session.multi is not None and IMMEDIATE not in row.flags:
        if len(session.multi) >= MAX_QUEUED:
            session.multi_failed = True
            return ReplyError(f"ERR too many commands in MULTI (at most {MAX_QUEUED})")
        session.multi.append(args)
        return QUEUED
    return row.handler(session, args)


__all__ = ["MAX_QUEUED", "TABLE", "execute", "gather", "resolve"]
