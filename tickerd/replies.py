"""Reply values that handlers return and the encoder turns into RESP.

Python values map to RESP types directly: ``int`` -> integer, ``bytes``/``str`` -> bulk string,
``None`` -> null, ``list`` -> array, ``dict`` -> map (RESP3; a flat array in RESP2), ``float`` ->
double (RESP3; a bulk string in RESP2), ``bool`` -> boolean (RESP3; integer 1/0 in RESP2). The
classes here cover what plain Python values cannot say.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Union

from .stores import StoreError

log = logging.getLogger("tickerd")


@dataclass(frozen=True, slots=True)
class SimpleString:
    """A status reply such as ``+OK``."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyError:
    """An error reply: ``-<text>``, where the text starts with its code (``ERR``, ``NOAUTH``...)."""

    text: str


@dataclass(frozen=True, slots=True)
class Verbatim:
    """A verbatim string (RESP3 ``=``, format ``txt``); a bulk string in RESP2."""

    text: str
    format: str = "txt"


class _NullArray:
    """The null array: ``*-1`` in RESP2 (EXEC aborted by WATCH), ``_`` in RESP3."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY = _NullArray()

OK = SimpleString("OK")
QUEUED = SimpleString("QUEUED")

Value = Union[  # noqa: UP007 - recursive alias reads better spelled out
    None,
    int,
    float,
    bool,
    bytes,
    str,
    SimpleString,
    ReplyError,
    Verbatim,
    _NullArray,
    list["Value"],
    dict["Value", "Value"],
]

# What a handler returns: a value now, or a future resolved on the loop later.
Reply = Union[Value, "asyncio.Future[Value]", "asyncio.Future[int]"]


def settle(future: asyncio.Future[Any]) -> Value:
    """The reply value of a finished future: its result, or an error reply saying why it failed.

    A store failure is expected (its text is written for clients); anything else is a bug,
    logged in full and answered without internals.
    """
    if future.cancelled():
        return ReplyError("ERR request cancelled: tickerd is shutting down")
    error = future.exception()
    if error is None:
        result: Value = future.result()
        return result
    if isinstance(error, StoreError):
        return ReplyError(f"ERR {error}")
    log.error("internal error while answering a request", exc_info=error)
    return ReplyError("ERR internal error (see the tickerd log)")


__all__ = [
    "NULL_ARRAY",
    "OK",
    "QUEUED",
    "Reply",
    "ReplyError",
    "SimpleString",
    "Value",
    "Verbatim",
    "settle",
]
