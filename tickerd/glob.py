"""Redis's glob patterns for KEYS, SCAN MATCH and CONFIG GET: ``*``, ``?``, ``[a-z]``, ``\\x``.

The semantics are those of Redis's ``stringmatchlen`` (util.c), quirks included: an unclosed
``[`` runs to the end of the pattern, reversed ranges (``[z-a]``) work, ``[a-]`` is the range
from ``a`` to ``]``, and a ``\\`` escape inside a class is compared case-sensitively even with
``nocase``. A pattern compiles once to a list of tokens; matching runs in
O(len(pattern) * len(key)) at worst (no regex, so no exponential backtracking: see
CVE-2022-36021 for the same fix in Redis).
"""

from __future__ import annotations

from collections.abc import Callable

# Longer patterns are refused (they match nothing): matching costs pattern length times key
# length, and the compiled tokens are memory held while a command runs.
MAX_PATTERN = 1024

# A token is STAR, or the set of byte values that one key byte may take.
STAR = None
Token = frozenset[int] | None
_ALL_BYTES = frozenset(range(256))


def compile_glob(pattern: bytes, *, nocase: bool = False) -> Callable[[bytes], bool]:
    """A predicate telling whether a key matches ``pattern``."""
    if len(pattern) > MAX_PATTERN:
        return lambda _key: False
    if pattern == b"*":
        return lambda _key: True  # Redis's KEYS and SCAN take '*' as every key, '' included
    tokens = _tokens(pattern, nocase)
    shortest = sum(token is not STAR for token in tokens)  # no shorter key can match
    return lambda key: len(key) >= shortest and _match(tokens, key)


def _match(tokens: list[Token], key: bytes) -> bool:
    """Glob matching with one backtrack point: on a mismatch, only the latest ``*`` takes one
    more byte. Earlier stars never need to grow (the latest star can absorb anything they
    would), so each star retries each key position at most once: O(len(tokens) * len(key))."""
    if not key:
        return not tokens  # stringmatchlen's loop never starts: not even '*' matches ''
    t = k = 0
    star_t, star_k = -1, 0
    while k < len(key):
        token = tokens[t] if t < len(tokens) else frozenset()
        if token is STAR:
            star_t, star_k = t, k
            t += 1
        elif key[k] in token:
            t += 1
            k += 1
        elif star_t >= 0:
            star_k += 1
            t, k = star_t + 1, star_k
        else:
            return False
    return all(token is STAR for token in tokens[t:])


def _tokens(pattern: bytes, nocase: bool) -> list[Token]:
    """The pattern as tokens, parsed as ``stringmatchlen`` walks it."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == ord("*"):
            if not tokens or tokens[-1] is not STAR:  # consecutive stars are one star
                tokens.append(STAR)
        elif char == ord("?"):
            tokens.append(_ALL_BYTES)
        elif char == ord("["):
            members, i = _class(pattern, i, nocase)
            tokens.append(members)
        else:
            if char == ord("\\") and i < n:  # a trailing backslash is a literal backslash
                char = pattern[i]
                i += 1
            tokens.append(_literal(char, nocase))
    return tokens


def _class(pattern: bytes, i: int, nocase: bool) -> tuple[frozenset[int], int]:
    """The bytes a ``[...]`` class matches, parsed from just after the ``[``; and the index
    after it. Redis lets an unclosed class run to the end of the pattern."""
    n = len(pattern)
    negate = i < n and pattern[i] == ord("^")
    if negate:
        i += 1
    members: set[int] = set()
    while i < n and pattern[i] != ord("]"):
        char = pattern[i]
        if char == ord("\\") and i + 1 < n:
            members.add(pattern[i + 1])  # compared as is, even with nocase (as Redis does)
            i += 2
        elif i + 2 < n and pattern[i + 1] == ord("-"):
            # Redis takes any third byte as the range's end, ']' included: '[a-]' is ']'..'a'.
            # Swapped before lowering, as Redis does: with nocase, '[Z-a]' is 'z'..'a', empty.
            # Redis compares (signed) chars: bytes from 0x80 sort below 0x00.
            low, high = sorted((_signed(pattern[i]), _signed(pattern[i + 2])))
            if nocase:
                low, high = _lower(low), _lower(high)
                members.update(c for c in range(256) if low <= _lower(_signed(c)) <= high)
            else:
                members.update(c for c in range(256) if low <= _signed(c) <= high)
            i += 3
        else:
            members.update(_literal(char, nocase))
            i += 1
    i += 1  # the closing ]
    return (_ALL_BYTES - members if negate else frozenset(members)), i


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 0x80 else byte


def _literal(char: int, nocase: bool) -> frozenset[int]:
    if not nocase:
        return frozenset((char,))
    return frozenset(c for c in range(256) if _lower(c) == _lower(char))


def _lower(char: int) -> int:
    """C's tolower in the C locale: ASCII letters only."""
    return char + 32 if ord("A") <= char <= ord("Z") else char


__all__ = ["MAX_PATTERN", "compile_glob"]
