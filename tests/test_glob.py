"""Redis glob patterns, as KEYS, SCAN MATCH and CONFIG GET use them."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from tests.servers import RedisServer, Tickerd
from tests.servers import command as c
from tickerd.commands.tickets import MATCH_INLINE
from tickerd.glob import MAX_PATTERN, compile_glob


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        (b"*", b"users", True),
        (b"*", b"", True),
        (b"user*", b"users", True),
        (b"user*", b"post", False),
        (b"us?rs", b"users", True),
        (b"us?rs", b"usrs", False),
        (b"[up]osts", b"posts", True),
        (b"[^u]osts", b"posts", True),
        (b"[^p]osts", b"posts", False),
        (b"[a-c]x", b"bx", True),
        (b"[c-a]x", b"bx", True),  # Redis accepts reversed ranges
        (b"[a-c]x", b"dx", False),
        (b"a\\*b", b"a*b", True),
        (b"a\\*b", b"axb", False),
        (b"user:*", b"user:id", True),
        (b"a.b", b"axb", False),  # regex characters are literal
        (b"(x)", b"(x)", True),
        (b"[abc", b"b", True),  # an unclosed class runs to the end
    ],
)
def test_matches_like_redis(pattern: bytes, key: bytes, matches: bool) -> None:
    assert compile_glob(pattern)(key) is matches


def test_nocase_for_config_get() -> None:
    assert compile_glob(b"MAXCLIENTS", nocase=True)(b"maxclients")
    assert not compile_glob(b"MAXCLIENTS")(b"maxclients")


def test_a_pattern_over_the_limit_matches_nothing() -> None:
    assert compile_glob(b"*" * MAX_PATTERN)(b"a")
    assert not compile_glob(b"*" * (MAX_PATTERN + 1))(b"a")


# -- the matcher against references ----------------------------------------------------------


def _low(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def _at(pattern: bytes, p: int) -> int:  # the C string ends in a NUL byte
    return pattern[p] if p < len(pattern) else 0


def _class_matches(
    pattern: bytes, p: int, plen: int, c0: int, nocase: bool
) -> tuple[bool, int, int]:
    """stringmatchlen's '[' case, from after the '[': matched, and where the pattern is now."""
    negate = _at(pattern, p) == ord("^")
    if negate:
        p, plen = p + 1, plen - 1
    matched = False
    while True:
        char = _at(pattern, p)
        if char == ord("\\") and plen >= 2:
            p, plen = p + 1, plen - 1
            matched |= _at(pattern, p) == c0
        elif char == ord("]"):
            break
        elif plen == 0:
            p, plen = p - 1, plen + 1
            break
        elif plen >= 3 and _at(pattern, p + 1) == ord("-"):
            start, end = sorted((char, _at(pattern, p + 2)))
            c = c0
            if nocase:
                start, end, c = _low(start), _low(end), _low(c)
            p, plen = p + 2, plen - 2
            matched |= start <= c <= end
        else:
            matched |= _low(char) == _low(c0) if nocase else char == c0
        p, plen = p + 1, plen - 1
    return matched != negate, p, plen


def _stringmatch(pattern: bytes, key: bytes, nocase: bool = False) -> bool:
    """Redis 7's stringmatchlen (util.c), transcribed step by step: the reference for quirks.

    Exponential on hostile patterns, so only for the small ones hypothesis draws."""

    def same(a: int, b: int) -> bool:
        return _low(a) == _low(b) if nocase else a == b

    def at(p: int) -> int:
        return _at(pattern, p)

    def run(p: int, s: int) -> bool:
        plen, slen = len(pattern) - p, len(key) - s
        while plen and slen:
            char = pattern[p]
            if char == ord("*"):
                while plen and at(p + 1) == ord("*"):
                    p, plen = p + 1, plen - 1
                if plen == 1:
                    return True
                return any(run(p + 1, start) for start in range(s, len(key)))
            if char == ord("?"):
                s, slen = s + 1, slen - 1
            elif char == ord("["):
                matched, p, plen = _class_matches(pattern, p + 1, plen - 1, key[s], nocase)
                if not matched:
                    return False
                s, slen = s + 1, slen - 1
            else:
                if char == ord("\\") and plen >= 2:
                    p, plen = p + 1, plen - 1
                if not same(at(p), key[s]):
                    return False
                s, slen = s + 1, slen - 1
            p, plen = p + 1, plen - 1
            if slen == 0:
                while at(p) == ord("*"):
                    p, plen = p + 1, plen - 1
                break
        return plen == 0 and slen == 0

    return run(0, 0)


_PATTERN_BYTES = st.sampled_from(
    [b"a", b"b", b"A", b"z", b"*", b"?", b"[", b"]", b"^", b"-", b"\\"]
)


@given(
    st.lists(_PATTERN_BYTES, max_size=10).map(b"".join),
    st.binary(max_size=8).map(lambda key: bytes(b"abAz]-^\\"[c % 8] for c in key)),
    st.booleans(),
)
def test_matches_as_redis_stringmatchlen(pattern: bytes, key: bytes, nocase: bool) -> None:
    if not key and pattern == b"*":
        return  # KEYS and SCAN take a lone '*' as every key; stringmatchlen would refuse ''
    assert compile_glob(pattern, nocase=nocase)(key) is _stringmatch(pattern, key, nocase)


@given(
    st.lists(st.sampled_from(["a", "b", "*", "?"]), max_size=12).map("".join),
    st.text(alphabet="ab", min_size=1, max_size=12),  # Redis: only a lone '*' matches ''
)
def test_simple_patterns_match_as_fnmatch(pattern: str, key: str) -> None:
    expected = fnmatch.fnmatchcase(key, pattern)
    assert compile_glob(pattern.encode())(key.encode()) is expected


def test_a_hostile_pattern_is_linear() -> None:
    # A regex (the old matcher) backtracks through every way of placing the stars: centuries.
    key = b"a" * 5_000
    assert not compile_glob(b"*a" * 500 + b"b")(key)
    assert compile_glob(b"*a" * 500 + b"*")(key)


# -- KEYS, SCAN MATCH and CONFIG GET on a real server ----------------------------------------

SEQUENCES = [
    "users", "posts", "user:id", "user:name", "a-b", "a.b", "A_B", "counter:__rand_int__",
    "x1", "x2", "Xyz", "b-a", "zzz",
]  # fmt: skip
# Longest name the default table prefix allows: 'a' * 56 (tickets_ + 56 = 64).
LONG_NAME = "a" * 56
PATTERNS = [
    b"*", b"user*", b"*:*", b"u?er*", b"[ux]*", b"[^ux]*", b"[a-c]*", b"[c-a]*", b"[A-Z]*",
    b"x[0-9]", b"a\\-b", b"a\\.b", b"a?b", b"*_*", b"[a-]*", b"*[", b"[abc", b"[", b"\\",
    b"a*a*a", b"*r*r*", b"[\\]]*", b"*[!-/]*", b"?", b"??", b"???", b"*z", b"[Xx]yz",
    b"*a" * 8 + b"b", b"", b"users", b"USERS", b"[u][s]ers",
]  # fmt: skip
GLOB_CONFIG = """
[server]
bind = 127.0.0.1
port = {port}

[store]
backend = sqlite
path = {dir}/tickets.sqlite3

[sequences]
names = {names}
"""


@pytest.fixture(scope="module")
def redis_keys(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The suite's redis-server, database 7, holding exactly the keys tickerd serves."""
    client = redis.Redis(port=redis_server.port, db=7)
    client.flushdb()
    for name in [*SEQUENCES, LONG_NAME]:
        client.set(name, 1)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def glob_tickerd(tickerd_factory: Callable[..., Tickerd]) -> Tickerd:
    return tickerd_factory(GLOB_CONFIG, names=" ".join([*SEQUENCES, LONG_NAME]))


def test_keys_and_scan_match_as_redis(glob_tickerd: Tickerd, redis_keys: redis.Redis) -> None:
    ours = glob_tickerd.client()
    for pattern in PATTERNS:
        expected = sorted(redis_keys.keys(pattern))
        assert sorted(ours.keys(pattern)) == expected, pattern
        assert sorted(ours.scan_iter(match=pattern)) == expected, pattern


def test_config_get_patterns_as_redis(glob_tickerd: Tickerd, redis_server: RedisServer) -> None:
    for pattern in [b"SAVE", b"app*only", b"max*", b"*-read-only", b"[ps]*", b"Port"]:
        request = c("CONFIG", "GET", pattern)
        theirs = redis.Redis(port=redis_server.port).config_get(pattern)
        ours = glob_tickerd.client().config_get(pattern)
        assert set(ours) <= set(theirs), request  # tickerd answers a subset of the parameters
        assert ours, request


def test_keys_with_a_hostile_pattern_answers(glob_tickerd: Tickerd) -> None:
    # The old regex matcher took 22 s for 8 stars on this name; 16 stars would take years.
    ours = glob_tickerd.client()
    assert ours.keys("*a" * 16 + "b") == []
    assert ours.keys("*a" * 16 + "*") == [LONG_NAME.encode()]
    assert ours.ping()


def test_ranges_compare_bytes_as_signed_chars_as_redis_does() -> None:
    # Redis compares C chars (signed): 0x80 sorts below 'a', so [a-\x80] spans \x80..a.
    match = compile_glob(b"[a-\x80]")
    assert match(b"B")
    assert match(b"a")
    assert not match(b"b")


def test_keys_over_many_sequences_match_off_the_loop(
    tickerd_factory: Callable[..., Tickerd],
) -> None:
    """Over thousands of names a costly pattern takes a while: other clients are served
    meanwhile, and the answer is the same as matching on the loop."""
    count = MATCH_INLINE + 500
    names = [f"{'a' * 40}{i:05d}" for i in range(count)]
    server = tickerd_factory(GLOB_CONFIG, names=" ".join(["seed", *names]))
    hostile = "*" + "a" * 30 + "*[0-9]" + "?" * 5 + "b"
    result: list[object] = []
    with server.client() as slow, server.client() as other:
        thread = threading.Thread(target=lambda: result.append(slow.keys(hostile)))
        thread.start()
        assert other.ping()
        assert other.incr("seed") >= 1  # tickets go on while KEYS runs
        thread.join(60)
        assert result == [[]]
        assert sorted(slow.keys("*000[0-4]")) == [f"{'a' * 40}0000{i}".encode() for i in range(5)]
        page = slow.scan(0, match="*1499", count=count + 1)
        assert page == (0, [f"{'a' * 40}01499".encode()])
