"""tickerd.resp: bytes in, requests out; values in, bytes out. No sockets.

Expected bytes and error texts were checked against redis-server 7.0.
"""

from __future__ import annotations

import enum
import itertools
import math

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickerd.replies import NULL_ARRAY, OK, ReplyError, SimpleString, Value, Verbatim
from tickerd.resp import (
    MAX_ARGS,
    MAX_BULK,
    MAX_INLINE,
    MAX_REQUEST,
    UNAUTH_MAX_ARGS,
    UNAUTH_MAX_BULK,
    ProtocolError,
    RequestParser,
    encode,
)

# -- helpers --------------------------------------------------------------------------------


def multibulk(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def parse(data: bytes, **limits: int) -> list[list[bytes]]:
    parser = RequestParser(**limits)
    parser.feed(data)
    return list(parser)


def feed_all(parser: RequestParser, chunks: list[bytes]) -> tuple[list[list[bytes]], str | None]:
    """Feed the chunks one by one, draining after each: the requests, and the error if any."""
    requests: list[list[bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            requests.extend(parser)
    except ProtocolError as exc:
        return requests, exc.reason
    return requests, None


def parse_chunks(chunks: list[bytes], **limits: int) -> list[list[bytes]]:
    requests, reason = feed_all(RequestParser(**limits), chunks)
    assert reason is None
    return requests


def parse_error(data: bytes, **limits: int) -> tuple[list[list[bytes]], str | None]:
    """The requests parsed before the error, and the error's reason."""
    return feed_all(RequestParser(**limits), [data])


INCR = multibulk(b"INCR", b"users")
PING = multibulk(b"PING")


# -- multibulk requests ---------------------------------------------------------------------


def test_a_pipeline_parses_in_order() -> None:
    data = b"".join(multibulk(b"INCRBY", b"users", b"%d" % i) for i in range(100))
    assert parse(data) == [[b"INCRBY", b"users", b"%d" % i] for i in range(100)]


def test_incomplete_request_waits_and_completes() -> None:
    parser = RequestParser()
    parser.feed(INCR[:-1])
    assert list(parser) == []
    assert parser.buffered == len(INCR) - 1
    parser.feed(INCR[-1:])
    assert list(parser) == [[b"INCR", b"users"]]
    assert parser.buffered == 0


def test_iteration_can_stop_and_resume() -> None:
    parser = RequestParser()
    parser.feed(INCR * 3 + PING)
    first = next(iter(parser))
    assert first == [b"INCR", b"users"]
    assert parser.buffered > 0
    assert list(parser) == [[b"INCR", b"users"]] * 2 + [[b"PING"]]
    assert list(parser) == []
    assert parser.buffered == 0


def test_empty_and_binary_arguments() -> None:
    args = (b"SET", b"", b"\r\n\x00\xff*$", b"x" * 1000)
    assert parse(multibulk(*args)) == [list(args)]


def test_zero_and_negative_counts_are_ignored() -> None:
    ignored = b"*0\r\n*-1\r\n*-5\r\n*-9223372036854775808\r\n"
    assert parse(ignored + PING + b"*0\r\n") == [[b"PING"]]


def test_redis_does_not_look_at_the_bytes_after_a_count_or_bulk() -> None:
    # Redis skips two bytes after a header's '\r' and after bulk data without checking them.
    assert parse(b"*1\rX$4\r\nPINGxx" + PING) == [[b"PING"], [b"PING"]]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"*x\r\n", "invalid multibulk length"),
        (b"*\r\n", "invalid multibulk length"),
        (b"*01\r\n", "invalid multibulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"* 1\r\n", "invalid multibulk length"),
        (b"*-0\r\n", "invalid multibulk length"),
        (b"*1x\r\n", "invalid multibulk length"),
        (b"*99999999999999999999\r\n", "invalid multibulk length"),
        (b"*-9223372036854775809\r\n", "invalid multibulk length"),  # below 64 bits
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
        (b"*1\r\n*1\r\n$4\r\nPING\r\n", "expected '$', got '*'"),
        (b"*2\r\n$4\r\nECHO\r\nx", "expected '$', got 'x'"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$\r\n", "invalid bulk length"),
        (b"*1\r\n$04\r\nPING\r\n", "invalid bulk length"),
        (b"*1\r\n$+4\r\nPING\r\n", "invalid bulk length"),
        (b"*1\r\n$4x\r\nPING\r\n", "invalid bulk length"),
        (b'PING "a"b\r\n', "unbalanced quotes in request"),
        # The byte as it came, not its UTF-8 spelling; encode() gives it back (see below).
        (b"*1\r\n\xff\r\n", "expected '$', got '\udcff'"),
    ],
)
def test_protocol_errors_use_redis_texts(data: bytes, reason: str) -> None:
    assert parse_error(data) == ([], reason)


def test_requests_before_garbage_come_out_first() -> None:
    data = INCR + b"PING\r\n" + multibulk(b"GET", b"x" * 200) + b"*1\r\n:1\r\n" + PING
    requests, reason = parse_error(data)
    assert requests == [[b"INCR", b"users"], [b"PING"], [b"GET", b"x" * 200]]
    assert reason == "expected '$', got ':'"


def test_protocol_error_says_its_reason() -> None:
    exc = ProtocolError("invalid bulk length")
    assert (str(exc), exc.reason) == ("invalid bulk length", "invalid bulk length")


def test_a_failed_parser_stays_failed() -> None:
    parser = RequestParser()
    parser.feed(b"*x\r\n")
    with pytest.raises(ProtocolError):
        list(parser)
    parser.feed(PING)
    with pytest.raises(ProtocolError, match="invalid multibulk length"):
        list(parser)
    assert parser.buffered == 0


def test_a_hiredis_error_becomes_a_protocol_error() -> None:
    # The fast path never hands hiredis garbage; if it ever did, the guard must still hold.
    parser = RequestParser()
    parser._reader.feed(b"?")
    requests, reason = feed_all(parser, [PING])
    assert requests == []
    assert reason is not None
    assert reason.startswith("unparsable request")
    assert feed_all(parser, [PING]) == ([], reason)


# -- limits ---------------------------------------------------------------------------------


def test_max_args_at_limit_and_over() -> None:
    args = [b"a"] * MAX_ARGS
    assert parse(multibulk(*args)) == [args]
    assert parse_error(multibulk(*args, b"a")) == ([], "invalid multibulk length")


@pytest.mark.parametrize("max_args", [1, 2, 9, 10])
def test_small_max_args_also_binds_short_requests(max_args: int) -> None:
    # Short requests take the fast path: it must honour the same limit.
    args = [b"a"] * max_args
    assert parse(multibulk(*args), max_args=max_args) == [args]
    over = multibulk(*args, b"a")
    assert parse_error(over, max_args=max_args) == ([], "invalid multibulk length")


def test_max_bulk_at_limit_and_over() -> None:
    assert parse(multibulk(b"x" * MAX_BULK)) == [[b"x" * MAX_BULK]]
    over = b"*1\r\n$%d\r\n" % (MAX_BULK + 1)  # rejected before the data arrives
    assert parse_error(over) == ([], "invalid bulk length")


@pytest.mark.parametrize("max_bulk", [0, 5, 99, 100])
def test_small_max_bulk_also_binds_short_requests(max_bulk: int) -> None:
    assert parse(multibulk(b"x" * max_bulk), max_bulk=max_bulk) == [[b"x" * max_bulk]]
    over = multibulk(b"x" * (max_bulk + 1))
    assert parse_error(over, max_bulk=max_bulk) == ([], "invalid bulk length")


def test_count_line_without_cr_at_limit_and_over() -> None:
    # Redis counts from the '*' and fails once more than PROTO_INLINE_MAX_SIZE bytes wait.
    parser = RequestParser()
    parser.feed(b"*" + b"1" * (MAX_INLINE - 1))
    assert list(parser) == []
    assert feed_all(parser, [b"1"]) == ([], "too big mbulk count string")


def test_bulk_count_line_without_cr_at_limit_and_over() -> None:
    parser = RequestParser()
    parser.feed(b"*1\r\n$" + b"1" * (MAX_INLINE - 1))
    assert list(parser) == []
    assert feed_all(parser, [b"1"]) == ([], "too big bulk count string")


def test_inline_line_at_limit_and_over() -> None:
    line = b"a" * MAX_INLINE
    assert parse(line + b"\r\n") == [[line]]
    assert parse(line + b"\n") == [[line]]
    assert parse_error(line + b"a\r\n") == ([], "too big inline request")


def test_inline_line_without_newline_at_limit_and_over() -> None:
    parser = RequestParser()
    parser.feed(b"a" * MAX_INLINE + b"\r")  # the '\r' may be the end of a line at the limit
    assert list(parser) == []
    parser.feed(b"\n")
    assert list(parser) == [[b"a" * MAX_INLINE]]
    assert feed_all(parser, [b"a" * (MAX_INLINE + 1)]) == ([], "too big inline request")


def test_limits_must_be_sane() -> None:
    with pytest.raises(ValueError, match="positive"):
        RequestParser(max_args=0)
    with pytest.raises(ValueError, match="positive"):
        RequestParser(max_request=0)


def sized_request(total: int) -> bytes:
    """A multibulk request of exactly ``total`` bytes, in arguments of at most MAX_BULK."""
    args = [b"EXISTS"]
    while len(multibulk(*args)) < total:
        args.append(b"")
        missing = total - len(multibulk(*args))
        # Grow the new argument by what is missing; its header grows with it, so settle down.
        size = min(missing, MAX_BULK)
        while size > 0 and len(multibulk(*args[:-1], b"k" * size)) > total:
            size -= 1
        args[-1] = b"k" * size
    request = multibulk(*args)
    assert len(request) == total
    return request


def test_max_request_at_limit_and_over() -> None:
    at_limit = sized_request(MAX_REQUEST)
    assert len(parse(at_limit)) == 1
    assert parse_error(sized_request(MAX_REQUEST + 1)) == ([], "request too large")


def test_a_request_too_large_is_refused_before_its_data_arrives() -> None:
    parser = RequestParser()
    header = b"*20\r\n"
    arg = b"$%d\r\n%s\r\n" % (MAX_BULK, b"x" * MAX_BULK)
    fits = (MAX_REQUEST - len(header)) // len(arg)  # whole arguments within the limit
    assert list(feed_all(parser, [PING, header, arg * fits])) == [[[b"PING"]], None]
    # The next header promises more than the limit allows: refused now, not after 64 KiB more.
    assert feed_all(parser, [b"$%d\r\n" % MAX_BULK]) == ([], "request too large")
    assert parser.buffered == 0


def test_a_small_max_request_binds_every_path() -> None:
    assert parse(multibulk(b"ab", b"c"), max_request=len(multibulk(b"ab", b"c"))) == [[b"ab", b"c"]]
    assert parse_error(multibulk(b"ab", b"cd"), max_request=len(multibulk(b"ab", b"c"))) == (
        [],
        "request too large",
    )


def test_buffered_partial_request_is_bounded_by_max_request() -> None:
    parser = RequestParser()
    header = b"*1000\r\n"
    arg = b"$%d\r\n%s\r\n" % (MAX_BULK, b"x" * MAX_BULK)
    reason = None
    _, reason = feed_all(parser, [header])
    while reason is None:
        assert parser.buffered <= MAX_REQUEST
        _, reason = feed_all(parser, [arg])
    assert reason == "request too large"


# -- limits before AUTH (Redis 7: 10 arguments, 16 KiB each) -------------------------------


def unauthenticated(**limits: int) -> RequestParser:
    parser = RequestParser(**limits)
    parser.authenticated = False
    return parser


def test_unauthenticated_limits_at_limit_and_over() -> None:
    args = [b"a"] * UNAUTH_MAX_ARGS
    assert feed_all(unauthenticated(), [multibulk(*args)]) == ([args], None)
    over = b"*%d\r\n" % (UNAUTH_MAX_ARGS + 1)  # refused at the count, no argument waited for
    assert feed_all(unauthenticated(), [over]) == ([], "unauthenticated multibulk length")
    big = b"b" * UNAUTH_MAX_BULK
    assert feed_all(unauthenticated(), [multibulk(big)]) == ([[big]], None)
    over = b"*1\r\n$%d\r\n" % (UNAUTH_MAX_BULK + 1)
    assert feed_all(unauthenticated(), [over]) == ([], "unauthenticated bulk length")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # Redis checks its own limits first: INT_MAX arguments, proto-max-bulk-len bytes.
        (b"*2147483647\r\n", "unauthenticated multibulk length"),
        (b"*2147483648\r\n", "invalid multibulk length"),
        (b"*x\r\n", "invalid multibulk length"),
        (b"*1\r\n$536870912\r\n", "unauthenticated bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        # An inline line has no argument limit before AUTH in Redis either.
        (b"a " * 20 + b"\r\n", None),
    ],
)
def test_unauthenticated_errors_in_redis_order(data: bytes, reason: str | None) -> None:
    assert feed_all(unauthenticated(), [data])[1] == reason


def test_authentication_changes_the_limits_between_requests() -> None:
    parser = unauthenticated()
    big = multibulk(b"ECHO", b"e" * (UNAUTH_MAX_BULK + 1))
    parser.feed(multibulk(b"AUTH", b"pw") + big)
    assert next(parser) == [b"AUTH", b"pw"]
    parser.authenticated = True  # what the connection does after a successful AUTH
    assert list(parser) == [[b"ECHO", b"e" * (UNAUTH_MAX_BULK + 1)]]
    parser.authenticated = False  # RESET
    assert feed_all(parser, [big]) == ([], "unauthenticated bulk length")


def test_the_fast_path_is_within_the_unauthenticated_limits() -> None:
    # Short requests go through the fast path, which knows nothing of AUTH: it must not matter.
    args = [b"a" * 99] * 9
    assert feed_all(unauthenticated(), [multibulk(*args) * 3]) == ([args] * 3, None)
    assert feed_all(unauthenticated(), [multibulk(*[b"a"] * 11)])[1] == (
        "unauthenticated multibulk length"
    )


# -- inline requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"a b  c", [b"a", b"b", b"c"]),
        (b"\ta\tb ", [b"a", b"b"]),
        (b'"a b" c', [b"a b", b"c"]),
        (b"'a b' c", [b"a b", b"c"]),
        (b'"a\\nb\\r\\t\\b\\a\\\\\\"z"', [b'a\nb\r\t\x08\x07\\"z']),
        (b'"\\x41\\x4a\\x4g\\xZZ\\xff"', [b"AJx4gxZZ\xff"]),
        (b'"\\q" "\\x" "\\x4"', [b"q", b"x", b"x4"]),
        (b"'a\\'b\\n'", [b"a'b\\n"]),
        (b'a"b c"', [b"ab c"]),
        (b"a'b c'", [b"ab c"]),
        (b"\"\" ''", [b"", b""]),
        (b'"a" "b"', [b"a", b"b"]),
        (b'"a"\x0bb', [b"a", b"b"]),  # \v may follow a closing quote ...
        (b"a\x0bb", [b"a\x0bb"]),  # ... but does not end an unquoted argument
        (b"\x0ba b\x0c", [b"a", b"b\x0c"]),
        (b"a\rb", [b"a", b"b"]),
        (b'"a\rb"', [b"a\rb"]),
        (b"x\xff\xfe y", [b"x\xff\xfe", b"y"]),
        (b"PI\x00NG", [b"PI"]),  # sdssplitargs reads a C string
    ],
)
def test_inline_splitting_follows_sdssplitargs(line: bytes, args: list[bytes]) -> None:
    assert parse(b"CMD " + line + b"\r\n") == [[b"CMD", *args]]


@pytest.mark.parametrize("line", [b'"a"b', b"'a'b", b'"abc', b"'abc", b'"abc\\', b"'\\\\'"])
def test_inline_unbalanced_quotes(line: bytes) -> None:
    assert parse_error(b"ECHO " + line + b"\r\n") == ([], "unbalanced quotes in request")


def test_blank_inline_lines_are_ignored() -> None:
    assert parse(b"\r\n\n   \r\n\t\nPING\n") == [[b"PING"]]


def test_inline_and_multibulk_mix() -> None:
    data = b"PING\r\n" + INCR + b"GET users\n" + PING + b"ECHO 'a b'\r\n"
    assert parse(data) == [
        [b"PING"],
        [b"INCR", b"users"],
        [b"GET", b"users"],
        [b"PING"],
        [b"ECHO", b"a b"],
    ]


# -- any split, any chunking ----------------------------------------------------------------

MIXED = (
    INCR
    + b"*0\r\n"
    + multibulk(b"SET", b"users", b"x" * 150)
    + b'GET "a b"\r\n'
    + b"*-1\r\n"
    + b"\r\n"
    + multibulk(b"INCRBY", b"users", b"1")
    + b"PING\n"
    + PING
)
MIXED_REQUESTS = [
    [b"INCR", b"users"],
    [b"SET", b"users", b"x" * 150],
    [b"GET", b"a b"],
    [b"INCRBY", b"users", b"1"],
    [b"PING"],
    [b"PING"],
]


def test_every_split_point() -> None:
    for i in range(len(MIXED) + 1):
        assert parse_chunks([MIXED[:i], MIXED[i:]]) == MIXED_REQUESTS, i


def test_every_split_point_of_an_error() -> None:
    data = MIXED + b"*1\r\n$x\r\n" + PING
    for i in range(len(data) + 1):
        result = feed_all(RequestParser(), [data[:i], data[i:]])
        assert result == (MIXED_REQUESTS, "invalid bulk length"), i


def test_one_byte_at_a_time() -> None:
    assert parse_chunks([MIXED[i : i + 1] for i in range(len(MIXED))]) == MIXED_REQUESTS


def test_a_big_request_in_many_reads() -> None:
    args = [b"MSET", *(bytes([65 + i % 26]) * 5000 for i in range(20))]
    data = multibulk(*args)
    parser = RequestParser()
    for i in range(0, len(data) - 1000, 1000):
        parser.feed(data[i : i + 1000])
        assert list(parser) == []
        assert parser.buffered == i + 1000
    parser.feed(data[i + 1000 :])
    assert list(parser) == [args]
    assert parser.buffered == 0


arguments = st.lists(st.binary(max_size=120), min_size=1, max_size=12)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.lists(arguments, min_size=1, max_size=10), st.data())
def test_any_requests_in_any_chunks_parse_back(
    requests: list[list[bytes]], data: st.DataObject
) -> None:
    stream = b"".join(multibulk(*args) for args in requests)
    assert parse_chunks(data.draw(chunked(stream))) == requests


@given(st.lists(st.binary(max_size=40), max_size=30))
@settings(max_examples=300)
def test_garbage_only_ever_raises_protocol_error_and_stays_bounded(chunks: list[bytes]) -> None:
    limits = {"max_args": 3, "max_bulk": 10, "max_inline": 16}
    # The most one incomplete request may hold: its header lines while they wait for '\r',
    # and its arguments; a feed adds at most one chunk on top.
    bound = (1 + 3) * (16 + 2) + 3 * (10 + 2) + 40
    parser = RequestParser(**limits)
    for chunk in chunks:
        requests, reason = feed_all(parser, [chunk])
        assert all(request and all(type(arg) is bytes for arg in request) for request in requests)
        assert parser.buffered <= bound
        if reason is not None:
            assert feed_all(parser, [b"PING\r\n"]) == ([], reason)  # and it stays failed
            break


@given(st.binary(max_size=200))
def test_garbage_after_good_requests_never_loses_them(garbage: bytes) -> None:
    requests, _ = feed_all(RequestParser(), [INCR * 3 + b"\r\n" + garbage])
    assert requests[:3] == [[b"INCR", b"users"]] * 3


# -- encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "resp2", "resp3"),
    [
        (0, b":0\r\n", b":0\r\n"),
        (-42, b":-42\r\n", b":-42\r\n"),
        (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
        (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
        (True, b":1\r\n", b"#t\r\n"),
        (False, b":0\r\n", b"#f\r\n"),
        (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
        (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
        ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
        (None, b"$-1\r\n", b"_\r\n"),
        (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
        (OK, b"+OK\r\n", b"+OK\r\n"),
        (SimpleString("a\r\nb"), b"+a  b\r\n", b"+a  b\r\n"),
        (ReplyError("ERR bad\nthing"), b"-ERR bad thing\r\n", b"-ERR bad thing\r\n"),
        (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (0.1, b"$19\r\n0.10000000000000001\r\n", b",0.10000000000000001\r\n"),
        (math.inf, b"$3\r\ninf\r\n", b",inf\r\n"),
        (-math.inf, b"$4\r\n-inf\r\n", b",-inf\r\n"),
        (math.nan, b"$3\r\nnan\r\n", b",nan\r\n"),
        (Verbatim("a:1\r\n"), b"$5\r\na:1\r\n\r\n", b"=9\r\ntxt:a:1\r\n\r\n"),
        ([], b"*0\r\n", b"*0\r\n"),
        (
            [1, [b"a", None]],
            b"*2\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n",
            b"*2\r\n:1\r\n*2\r\n$1\r\na\r\n_\r\n",
        ),
        ({}, b"*0\r\n", b"%0\r\n"),
        (
            {"proto": 3, "flag": True},
            b"*4\r\n$5\r\nproto\r\n:3\r\n$4\r\nflag\r\n:1\r\n",
            b"%2\r\n$5\r\nproto\r\n:3\r\n$4\r\nflag\r\n#t\r\n",
        ),
    ],
)
def test_encodings(value: Value, resp2: bytes, resp3: bytes) -> None:
    assert encode(value, 2) == resp2
    assert encode(value, 3) == resp3


class Color(enum.IntEnum):
    RED = 1


def test_raw_bytes_in_text_encode_as_themselves() -> None:
    # Peer bytes decoded with surrogateescape go back out unchanged, as Redis echoes them.
    raw = b"\xff\xfe caf\xc3\xa9"
    text = raw.decode("utf-8", "surrogateescape")
    assert encode(ReplyError(f"ERR unknown command '{text}'"), 2) == (
        b"-ERR unknown command '" + raw + b"'\r\n"
    )
    assert encode(SimpleString(text), 3) == b"+" + raw + b"\r\n"
    assert encode(text, 2) == b"$%d\r\n%s\r\n" % (len(raw), raw)
    reason = parse_error(b"*1\r\n\xff\r\n")[1]
    assert encode(ReplyError(f"ERR Protocol error: {reason}"), 2) == (
        b"-ERR Protocol error: expected '$', got '\xff'\r\n"  # redis-server 7.0's bytes
    )


def test_subclasses_encode_as_their_base() -> None:
    assert encode(Color.RED, 2) == b":1\r\n"


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_integers_outside_64_bits_are_refused(value: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        encode(value, 3)


def test_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError, match="set"):
        encode({1}, 2)  # type: ignore[arg-type]


def test_verbatim_format_must_be_three_characters() -> None:
    with pytest.raises(ValueError, match="3 characters"):
        encode(Verbatim("x", format="text"), 3)


def read_back(data: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(data)
    value = reader.gets()
    assert reader.gets() is False, "exactly one reply"
    return value


scalars = (
    st.integers(-(2**63), 2**63 - 1)
    | st.binary(max_size=20)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.none()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=5), inner),
    max_leaves=20,
)


@given(values)
def test_resp3_encodings_read_back(value: Value) -> None:
    assert read_back(encode(value, 3)) == value


def _as_resp2(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return b"%.17g" % value
    if isinstance(value, list):
        return [_as_resp2(item) for item in value]
    if isinstance(value, dict):
        return [_as_resp2(part) for item in value.items() for part in item]
    return value


@given(values)
def test_resp2_encodings_read_back_without_resp3_types(value: Value) -> None:
    data = encode(value, 2)
    assert read_back(data) == _as_resp2(value)
