"""Redis glob patterns, as KEYS and SCAN MATCH use them."""

from __future__ import annotations

import pytest

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
