"""What a command is (one row of the table), and the small helpers handlers share."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from ..context import Session
from ..replies import Reply, ReplyError, Value

Handler = Callable[[Session, list[bytes]], Reply]

# Flags, as COMMAND INFO reports them, plus tickerd's own:
NOAUTH = "no_auth"  # allowed before AUTH
IMMEDIATE = "immediate"  # runs at once inside MULTI instead of being queued (tickerd's own)
# tickerd's own flags, which COMMAND INFO does not show.
INTERNAL_FLAGS = frozenset({IMMEDIATE})


@dataclass(frozen=True, slots=True)
class Command:
    """One row of the command table.

    ``arity`` counts the command name, as Redis does: ``n`` means exactly n arguments, ``-n`` at
    least n. A command with ``subcommands`` dispatches on its second argument.
    """

    name: str
    handler: Handler
    arity: int
    flags: frozenset[str] = frozenset()
    group: str = "tickerd"
    summary: str = ""
    subcommands: Mapping[str, Command] | None = None

    def arity_ok(self, argc: int) -> bool:
        """Whether ``argc`` arguments (the name included) fit this command's arity."""
        return argc == self.arity if self.arity >= 0 else argc >= -self.arity


def command(
    name: str,
    handler: Handler,
    arity: int,
    *flags: str,
    group: str = "tickerd",
    summary: str = "",
    subcommands: list[Command] | None = None,
) -> Command:
    """A table row; subcommands are keyed by their name after the ``|``."""
    table = None
    if subcommands is not None:
        table = {sub.name.partition("|")[2]: sub for sub in subcommands}
    return Command(name, handler, arity, frozenset(flags), group, summary, table)


def wrong_arguments(name: str) -> ReplyError:
    """Redis's arity error, for a command or ``parent|sub`` subcommand name."""
    return ReplyError(f"ERR wrong number of arguments for '{name}' command")


NOT_AN_INTEGER = ReplyError("ERR value is not an integer or out of range")
SYNTAX_ERROR = ReplyError("ERR syntax error")
_INTEGER = re.compile(rb"-?[1-9][0-9]{0,18}|0")


def parse_int(arg: bytes) -> int | None:
    """A signed 64-bit integer as Redis writes one (only '-' as sign, no leading 0), or None."""
    if not _INTEGER.fullmatch(arg):
        return None
    value = int(arg)
    return value if -(2**63) <= value < 2**63 else None


_CURSOR = re.compile(rb"([+-]?)([0-9]+)")
_CURSOR_SPACE = 2**64


def parse_cursor(arg: bytes) -> int | None:
    """A SCAN cursor as Redis reads one (C's strtoul on the C string: '' is 0, a sign is allowed
    and a negative wraps around, as '-1' is 2**64 - 1), or None beyond 64 bits."""
    arg = arg.partition(b"\0")[0]
    if not arg:
        return 0
    match = _CURSOR.fullmatch(arg)
    if match is None:
        return None
    value = int(match[2])
    if value >= _CURSOR_SPACE:
        return None
    return (-value) % _CURSOR_SPACE if match[1] == b"-" else value


def text(arg: bytes) -> str:
    """An argument as text for replies and messages (never fails)."""
    return arg.decode("utf-8", "replace")


def run_async(coroutine: Coroutine[Any, Any, Value]) -> asyncio.Future[Value]:
    """Schedule a coroutine that produces a reply value; the connection writes it when done."""
    return asyncio.ensure_future(coroutine)
