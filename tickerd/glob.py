"""Redis's glob patterns for KEYS, SCAN MATCH and CONFIG GET: ``*``, ``?``, ``[a-z]``, ``\\x``."""

from __future__ import annotations

import re
from collections.abc import Callable

# Longer patterns are refused: a pattern compiles to a regex, and regex size is memory.
MAX_PATTERN = 1024


def compile_glob(pattern: bytes, *, nocase: bool = False) -> Callable[[bytes], bool]:
    """A predicate telling whether a key matches ``pattern``."""
    if len(pattern) > MAX_PATTERN:
        return lambda _key: False
    flags = re.DOTALL | (re.IGNORECASE if nocase else 0)
    regex = re.compile(_translate(pattern), flags)
    return lambda key: regex.fullmatch(key) is not None


def _translate(pattern: bytes) -> bytes:
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i : i + 1]
        i += 1
        if char == b"*":
            out.append(b".*")
        elif char == b"?":
            out.append(b".")
        elif char == b"\\" and i < n:
            out.append(re.escape(pattern[i : i + 1]))
            i += 1
        elif char == b"[":
            i = _translate_class(pattern, i, out)
        else:
            out.append(re.escape(char))
    return b"".join(out)


def _translate_class(pattern: bytes, i: int, out: list[bytes]) -> int:
    """Translate ``[...]`` starting after the ``[``; Redis treats an unclosed class as running
    to the end of the pattern."""
    n = len(pattern)
    negate = i < n and pattern[i : i + 1] == b"^"
    if negate:
        i += 1
    members: list[bytes] = []
    while i < n and pattern[i : i + 1] != b"]":
        char = pattern[i : i + 1]
        if char == b"\\" and i + 1 < n:
            members.append(re.escape(pattern[i + 1 : i + 2]))
            i += 2
        elif i + 2 < n and pattern[i + 1 : i + 2] == b"-" and pattern[i + 2 : i + 3] != b"]":
            low, high = sorted((pattern[i : i + 1], pattern[i + 2 : i + 3]))
            members.append(re.escape(low) + b"-" + re.escape(high))
            i += 3
        else:
            members.append(re.escape(char))
            i += 1
    i += 1  # the closing ]
    if not members:
        out.append(b"(?!)" if not negate else b".")
    else:
        out.append(b"[" + (b"^" if negate else b"") + b"".join(members) + b"]")
    return i


__all__ = ["MAX_PATTERN", "compile_glob"]
