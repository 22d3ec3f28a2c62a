"""The Redis protocol without I/O: bytes in, requests out; reply values in, bytes out.

``RequestParser`` turns what a client sends into requests (lists of byte-string arguments), the
way Redis 7 does: a request starting with ``*`` is multibulk, anything else is an inline command
line. ``encode`` turns a reply value (see ``tickerd.replies``) into RESP2 or RESP3 bytes.

Multibulk requests take one of two paths. Small canonical requests (the hot path: pipelines of
``INCR users``, ``INCRBY users 1``, ``PING``) are recognised a whole run at a time by one compiled
regular expression and handed to hiredis, which builds the argument lists in C. hiredis is a
*reply* parser: it accepts types a request may not contain and enforces no limits, so it only ever
sees bytes that have already been matched as requests within our limits. Everything else (big or
many arguments, a request cut by the end of a read, garbage) goes through a parser written here
after Redis's own (``processMultibulkBuffer``), which is the reference for both paths.

Peer garbage becomes a ``ProtocolError`` in one place, ``RequestParser._fail``; after one, the
parser stays failed, since Redis closes the connection there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import hiredis

from .replies import NULL_ARRAY, ReplyError, SimpleString, Value, Verbatim

# Limits on what one request may make us hold. Redis's own are far larger (INT_MAX arguments,
# 512 MiB per argument); tickerd's commands take a few short names and numbers.
#
# Arguments per request: the longest command tickerd knows (HELLO 3 AUTH u p SETNAME n) has 7;
# 1024 leaves room for variadic commands.
MAX_ARGS = 1024
# Bytes per argument: keys, numbers, client names and ECHO payloads are short.
MAX_BULK = 64 * 1024
# Bytes of one multibulk request, headers included. A request is buffered whole, and MAX_ARGS
# arguments of MAX_BULK bytes would be 64 MiB per connection; this is the bound that holds.
# Redis's nearest limit, client-query-buffer-limit (1 GiB), closes without a reply, so the text
# is tickerd's own.
MAX_REQUEST = 1024 * 1024
# Bytes per inline command line, and per multibulk header line: Redis's PROTO_INLINE_MAX_SIZE.
MAX_INLINE = 64 * 1024

# Before a client has authenticated (requirepass), Redis 7 lets it send far less, so that a
# stranger cannot make the server buffer much: 10 arguments, 16 KiB each (processMultibulkBuffer).
UNAUTH_MAX_ARGS = 10
UNAUTH_MAX_BULK = 16 * 1024
# Redis's own limits, which it checks first: a count beyond them is "invalid" even before AUTH.
_REDIS_MAX_ARGS = 2**31 - 1  # INT_MAX
_REDIS_MAX_BULK = 512 * 1024 * 1024  # proto-max-bulk-len

# The fast path's reach: requests of at most 9 arguments, each at most 99 bytes, so every header
# is a one- or two-digit number. Wider bounds buy nothing on the hot path and cost compile time.
# Both are within the limits before AUTH, so the fast path never needs to know about it.
_FAST_ARGS = 9
_FAST_BULK = 99
# The largest request the fast path matches. It does not count request bytes, so a parser whose
# max_request is smaller goes without it.
_FAST_REQUEST = len(b"*9\r\n") + _FAST_ARGS * len(b"$99\r\n\r\n") + _FAST_ARGS * _FAST_BULK

# hiredis's "no complete reply yet". Its default is False, a valid reply value; a private object
# cannot be confused with anything it parses.
_NOT_ENOUGH_DATA = object()

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class ProtocolError(Exception):
    """The client sent bytes that are not a request; ``reason`` is Redis's text for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequestParser:
    """Splits a client's byte stream into requests.

    ``feed`` the bytes as they arrive, then iterate: each item is a request, a non-empty list of
    arguments as bytes, in the order sent. Iteration stops when the next request is incomplete,
    and can be resumed (or abandoned part way) at any time. It raises ``ProtocolError`` when the
    next request is garbage; the requests before it have already come out, and every later
    iteration raises again.

    Set ``authenticated`` to False while the client has yet to authenticate: the requests parsed
    from then on get Redis's tighter limits for strangers (``UNAUTH_MAX_ARGS``,
    ``UNAUTH_MAX_BULK``). The owner sets it back after a successful AUTH, before iterating on.
    """

    def __init__(
        self,
        *,
        max_args: int = MAX_ARGS,
        max_bulk: int = MAX_BULK,
        max_inline: int = MAX_INLINE,
        max_request: int = MAX_REQUEST,
    ) -> None:
        if max_args < 1 or max_bulk < 0 or max_inline < 1 or max_request < 1:
            raise ValueError("RequestParser limits must be positive")
        self._max_args = max_args
        self._max_bulk = max_bulk
        self._max_inline = max_inline
        self._max_request = max_request
        self.authenticated = True
        self._match_run = (
            _fast_run(min(max_args, _FAST_ARGS), min(max_bulk, _FAST_BULK))
            if max_request >= _FAST_REQUEST
            else _no_run
        )
        # Requests already matched by the fast path and not yet handed out.
        self._reader = hiredis.Reader(notEnoughData=_NOT_ENOUGH_DATA)
        self._queued = 0  # bytes fed to the reader since it was last empty
        # Unparsed bytes are self._buf[self._pos:], then the chunks fed since the last parse.
        # Chunks are joined only once they can complete what the parser waits for, so a large
        # argument arriving in many reads is copied a bounded number of times, not once per read.
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] = []
        self._chunked = 0
        self._need = 0  # bytes at self._pos without which parsing cannot progress
        # A multibulk request received in part: its arguments so far, how many it declared, and
        # how many bytes of the stream they took.
        self._args: list[bytes] = []
        self._argc = 0
        self._taken = 0
        self._failure: str | None = None

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client. Ignored once the parser has failed."""
        if data and self._failure is None:
            self._chunks.append(bytes(data))
            self._chunked += len(data)

    @property
    def buffered(self) -> int:
        """Bytes held for requests not handed out yet (diagnostics, like Redis's ``qbuf``).

        A run of small pipelined requests counts whole until its last request is handed out.
        """
        return self._queued + self._taken + len(self._buf) - self._pos + self._chunked

    def __iter__(self) -> Iterator[list[bytes]]:
        return self

    def __next__(self) -> list[bytes]:
        while True:
            try:
                request: list[bytes] = self._reader.gets()
            except hiredis.ProtocolError as exc:
                # Cannot happen: the reader only gets bytes the fast path matched. Should the two
                # ever disagree, the stream is lost either way: fail like any garbage.
                raise self._fail(f"unparsable request ({exc})") from None
            if request is not _NOT_ENOUGH_DATA:
                return request
            self._queued = 0
            parsed = self._parse()
            if parsed is None:
                raise StopIteration
            if parsed:
                return parsed

    # -- parsing ----------------------------------------------------------------------------

    def _fail(self, reason: str) -> ProtocolError:
        """Mark the stream as garbage from here on: the one place a ``ProtocolError`` is made."""
        self._failure = reason
        self._buf, self._pos, self._chunks, self._chunked = b"", 0, [], 0
        self._args, self._argc, self._taken = [], 0, 0
        return ProtocolError(reason)

    def _parse(self) -> list[bytes] | None:
        """Parse at the current position.

        Returns a request, ``[]`` when there is nothing to hand out yet but parsing may go on (an
        ignored request, or a run queued in the reader), or ``None`` when more data is needed.
        """
        if self._failure is not None:
            raise self._fail(self._failure)
        buf, pos = self._buf, self._pos
        available = len(buf) - pos + self._chunked
        if available == 0 or available < self._need:
            return None
        if self._chunks:
            pending = b"".join(self._chunks)
            buf = buf[pos:] + pending if pos < len(buf) else pending
            pos = 0
            self._buf, self._pos, self._chunks, self._chunked, self._need = buf, 0, [], 0, 0
        if self._argc:
            return self._multibulk_args()
        if buf[pos] != 0x2A:  # not '*': Redis decides per request
            return self._inline()
        run = self._match_run(buf, pos)
        if run is not None:
            end = run.end()
            self._reader.feed(buf, pos, end - pos)
            self._queued = end - pos
            self._pos = end
            return []
        return self._multibulk()

    def _wait(self, pos: int, need: int) -> None:
        """Stop at ``pos`` until ``need`` bytes from there are buffered."""
        if self._argc:
            self._taken += pos - self._pos
        self._pos = pos
        self._need = need

    def _multibulk(self) -> list[bytes] | None:
        buf, pos = self._buf, self._pos
        # Like Redis, look for the '\r' and skip one byte after it, whatever it is.
        end = buf.find(b"\r", pos)
        if end < 0:
            if len(buf) - pos > self._max_inline:
                raise self._fail("too big mbulk count string")
            self._wait(pos, len(buf) - pos + 1)
            return None
        if end + 2 > len(buf):
            self._wait(pos, end - pos + 2)
            return None
        count = _parse_int(buf[pos + 1 : end])
        if (
            not self.authenticated
            and count is not None
            and UNAUTH_MAX_ARGS < count <= _REDIS_MAX_ARGS
        ):
            raise self._fail("unauthenticated multibulk length")
        if count is None or count > self._max_args:
            raise self._fail("invalid multibulk length")
        self._pos = end + 2
        if count <= 0:
            return []  # Redis ignores *0 and negative counts
        self._argc = count
        self._taken = end + 2 - pos
        return self._multibulk_args()

    def _multibulk_args(self) -> list[bytes] | None:
        buf, pos = self._buf, self._pos
        size = len(buf)
        args = self._args
        while len(args) < self._argc:
            if pos >= size:
                self._wait(pos, 1)
                return None
            if buf[pos] != 0x24:  # '$'; Redis checks once the line is in, we as soon as we can
                # The byte as it came: the reply carries it raw (see _text), like Redis's.
                raise self._fail(f"expected '$', got '{_text(buf[pos : pos + 1])}'")
            end = buf.find(b"\r", pos)
            if end < 0:
                if size - pos > self._max_inline:
                    raise self._fail("too big bulk count string")
                self._wait(pos, size - pos + 1)
                return None
            if end + 2 > size:
                self._wait(pos, end - pos + 2)
                return None
            length = _parse_int(buf[pos + 1 : end])
            if (
                not self.authenticated
                and length is not None
                and UNAUTH_MAX_BULK < length <= _REDIS_MAX_BULK
            ):
                raise self._fail("unauthenticated bulk length")
            if length is None or not 0 <= length <= self._max_bulk:
                raise self._fail("invalid bulk length")
            start = end + 2
            stop = start + length
            # The request's bytes so far (before self._pos, then up to pos) and this argument's.
            if self._taken + stop + 2 - self._pos > self._max_request:
                raise self._fail("request too large")
            # Like Redis, take the two bytes after the data as its CRLF without looking.
            if stop + 2 > size:
                self._wait(pos, stop + 2 - pos)
                return None
            args.append(buf[start:stop])
            pos = stop + 2
        self._pos = pos
        self._args, self._argc, self._taken = [], 0, 0
        return args

    def _inline(self) -> list[bytes] | None:
        buf, pos = self._buf, self._pos
        end = buf.find(b"\n", pos)
        if end < 0:
            # A trailing '\r' may yet turn out to be the line's end: don't count it.
            length = len(buf) - pos - (buf[-1] == 0x0D)
            if length > self._max_inline:
                raise self._fail("too big inline request")
            self._wait(pos, len(buf) - pos + 1)
            return None
        self._pos = end + 1
        if end > pos and buf[end - 1] == 0x0D:
            end -= 1
        # Redis rejects a long line only while its newline is missing, which depends on how the
        # line was cut into reads; rejecting every long line gives the same answer however it
        # arrives.
        if end - pos > self._max_inline:
            raise self._fail("too big inline request")
        args = _split_inline(buf[pos:end])
        if args is None:
            raise self._fail("unbalanced quotes in request")
        return args


@lru_cache(maxsize=8)
def _fast_run(max_args: int, max_bulk: int) -> Callable[[bytes, int], re.Match[bytes] | None]:
    """A matcher for a run of canonical multibulk requests within the given bounds.

    Each request is ``*<n>`` followed by exactly n bulk strings, each ``$<len>`` followed by
    exactly len bytes and CRLF. A regular expression cannot read a length and then count, so it
    lists every count and every length; atomic groups keep it from backtracking.
    """
    bulk = b"|".join(b"%d\r\n.{%d}\r\n" % (length, length) for length in range(max_bulk + 1))
    arg = b"\\$(?>" + bulk + b")"
    request = b"|".join(b"%d\r\n(?:%s){%d}" % (n, arg, n) for n in range(1, max_args + 1))
    return re.compile(b"(?:\\*(?>" + request + b"))++", re.DOTALL).match


def _no_run(_buf: bytes, _pos: int) -> None:
    """The fast path's matcher when it may not be used: never a match."""


_fast_run(_FAST_ARGS, _FAST_BULK)  # compile the default matcher (~10 ms) now, not on a first client


def _text(data: bytes) -> str:
    """Peer bytes as text for an error reply: bytes that are not UTF-8 become surrogate escapes,
    which ``encode`` turns back into the same bytes."""
    return data.decode("utf-8", "surrogateescape")


def _parse_int(text: bytes) -> int | None:
    """A signed 64-bit decimal as Redis's ``string2ll`` reads it: no sign, space or 0 prefix."""
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or (digits[0] == 0x30 and len(text) > 1):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


# Inline command lines are split as Redis's sdssplitargs does.
# Skipped between arguments and required after a closing quote: C's isspace().
_SPACE = frozenset(b" \t\n\r\v\f")
# What ends an unquoted argument: sdssplitargs does not stop at \v or \f.
_BREAK = frozenset(b" \t\n\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09, ord("b"): 0x08, ord("a"): 0x07}
# Without these bytes a line splits exactly like bytes.split(): quotes, the spaces that do not
# break arguments, and NUL, where sdssplitargs (reading a C string) stops.
_NOT_PLAIN = re.compile(b"[\"'\0\v\f]")


def _split_inline(line: bytes) -> list[bytes] | None:
    """The arguments of an inline command line, or ``None`` if its quotes are unbalanced."""
    if _NOT_PLAIN.search(line) is None:
        return line.split()
    return _split_quoted(line.partition(b"\0")[0])


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX


def _split_quoted(line: bytes) -> list[bytes] | None:
    args: list[bytes] = []
    size = len(line)
    i = 0
    while True:
        while i < size and line[i] in _SPACE:
            i += 1
        if i == size:
            return args
        arg = bytearray()
        quote = 0  # the quote character we are inside, if any
        while i < size:
            c = line[i]
            if quote == 0x22:  # "...": backslash escapes, \xHH
                if c == 0x5C and line[i + 1 : i + 2] == b"x" and _is_hex(line[i + 2 : i + 4]):
                    arg.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                if c == 0x5C and i + 1 < size:
                    arg.append(_ESCAPES.get(line[i + 1], line[i + 1]))
                    i += 2
                    continue
                if c == 0x22:
                    quote = -1
                    break
                arg.append(c)
            elif quote == 0x27:  # '...': only \' is an escape
                if c == 0x5C and i + 1 < size and line[i + 1] == 0x27:
                    arg.append(0x27)
                    i += 2
                    continue
                if c == 0x27:
                    quote = -1
                    break
                arg.append(c)
            elif c in _BREAK:
                break
            elif c in (0x22, 0x27):
                quote = c  # a quote may open mid-argument: a"b c" is one argument, 'ab c'
            else:
                arg.append(c)
            i += 1
        if quote == -1:  # a closing quote must end the argument
            i += 1
            if i < size and line[i] not in _SPACE:
                return None
        elif quote:  # the line ended inside quotes
            return None
        args.append(bytes(arg))


# -- encoding -------------------------------------------------------------------------------

_CRLF = b"\r\n"
_ONE_LINE = bytes.maketrans(b"\r\n", b"  ")


def encode(value: Value, protocol: int) -> bytes:
    """The RESP bytes for a reply value, for a connection speaking ``protocol`` 2 or 3.

    A RESP2 connection never sees a RESP3 type: maps become flat arrays, doubles and verbatim
    strings bulk strings, booleans integers, nulls ``$-1`` (``*-1`` for ``NULL_ARRAY``).
    """
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return b":%d\r\n" % value  # the hot path: an id
    return _encoder(type(value))(value, protocol)


def _encoder(kind: type) -> Callable[[Any, int], bytes]:
    for base in kind.__mro__:  # exact type first, then e.g. an IntEnum as its int
        encoder = _ENCODERS.get(base)
        if encoder is not None:
            return encoder
    raise TypeError(f"no RESP encoding for {kind.__name__}")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _utf8(text: str) -> bytes:
    """Text as UTF-8; surrogate escapes (bytes from the peer that are not UTF-8, decoded with
    ``surrogateescape``) become their original bytes again, as Redis would echo them."""
    return text.encode("utf-8", "surrogateescape")


def _line(text: str) -> bytes:
    """A simple string or error line: a CR or LF inside would end the reply early."""
    return _utf8(text).translate(_ONE_LINE)


def _encode_int(value: int, _protocol: int) -> bytes:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"integer reply {value} is outside the signed 64-bit range of RESP")
    return b":%d\r\n" % value


def _encode_bool(value: bool, protocol: int) -> bytes:
    if protocol == 3:
        return b"#t\r\n" if value else b"#f\r\n"
    return b":1\r\n" if value else b":0\r\n"


def _encode_float(value: float, protocol: int) -> bytes:
    # Redis 7.0's format, which also spells the specials as RESP3 wants: inf, -inf, nan.
    text = b"%.17g" % value
    return b",%s\r\n" % text if protocol == 3 else _bulk(text)


def _encode_bytes(value: bytes, _protocol: int) -> bytes:
    return _bulk(value)


def _encode_str(value: str, _protocol: int) -> bytes:
    return _bulk(_utf8(value))


def _encode_none(_value: None, protocol: int) -> bytes:
    return b"_\r\n" if protocol == 3 else b"$-1\r\n"


def _encode_null_array(_value: object, protocol: int) -> bytes:
    return b"_\r\n" if protocol == 3 else b"*-1\r\n"


def _encode_simple(value: SimpleString, _protocol: int) -> bytes:
    return b"+" + _line(value.text) + _CRLF


def _encode_error(value: ReplyError, _protocol: int) -> bytes:
    return b"-" + _line(value.text) + _CRLF


def _encode_verbatim(value: Verbatim, protocol: int) -> bytes:
    if protocol != 3:
        return _bulk(_utf8(value.text))
    if len(value.format) != 3:
        raise ValueError(f"verbatim format must be 3 characters, not {value.format!r}")
    body = _utf8(f"{value.format}:{value.text}")
    return b"=%d\r\n%s\r\n" % (len(body), body)


def _encode_list(value: list[Value], protocol: int) -> bytes:
    parts = [b"*%d\r\n" % len(value)]
    parts.extend(encode(item, protocol) for item in value)
    return b"".join(parts)


def _encode_dict(value: dict[Value, Value], protocol: int) -> bytes:
    parts = [b"%%%d\r\n" % len(value) if protocol == 3 else b"*%d\r\n" % (2 * len(value))]
    for key, item in value.items():
        parts.append(encode(key, protocol))
        parts.append(encode(item, protocol))
    return b"".join(parts)


# Looked up by exact type, so bool (an int subclass) gets its own entry rather than int's.
_ENCODERS: dict[type, Callable[[Any, int], bytes]] = {
    bool: _encode_bool,
    int: _encode_int,
    float: _encode_float,
    bytes: _encode_bytes,
    str: _encode_str,
    type(None): _encode_none,
    type(NULL_ARRAY): _encode_null_array,
    SimpleString: _encode_simple,
    ReplyError: _encode_error,
    Verbatim: _encode_verbatim,
    list: _encode_list,
    dict: _encode_dict,
}

__all__ = [
    "MAX_ARGS",
    "MAX_BULK",
    "MAX_INLINE",
    "MAX_REQUEST",
    "UNAUTH_MAX_ARGS",
    "UNAUTH_MAX_BULK",
    "ProtocolError",
    "RequestParser",
    "encode",
]
