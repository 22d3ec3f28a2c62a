"""Introspection: INFO, CONFIG GET, COMMAND and TIME."""

from __future__ import annotations

import time

from ..context import Session
from ..glob import compile_glob
from ..info import render_info
from ..replies import OK, Reply, ReplyError, SimpleString, Value, Verbatim
from ..resp import MAX_BULK
from .base import INTERNAL_FLAGS, Command, text


def info(session: Session, args: list[bytes]) -> Reply:
    sections = [arg.decode("utf-8", "replace").lower() for arg in args[1:]]
    return Verbatim(render_info(session.server, sections))


def time_(_session: Session, _args: list[bytes]) -> Reply:
    now = time.time_ns() // 1000
    return [str(now // 1_000_000).encode(), str(now % 1_000_000).encode()]


def _parameters(session: Session) -> dict[str, str]:
    """The CONFIG GET parameters clients ask for on connect, with tickerd's real values."""
    server = session.server.config.server
    return {
        "bind": " ".join(server.bind),
        "port": str(server.port),
        "unixsocket": server.unixsocket,
        "maxclients": str(server.maxclients),
        "timeout": str(server.timeout),
        "databases": "1",
        "save": "",
        "appendonly": "no",
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
        "cluster-enabled": "no",
        "replica-read-only": "yes",
        "slave-read-only": "yes",
        "protected-mode": "no",
        "loglevel": "notice",
        # The largest argument tickerd accepts, in bytes, as Redis answers it.
        "proto-max-bulk-len": str(MAX_BULK),
    }


# A CONFIG GET argument holding one of these is a glob; any other is a parameter's name.
_GLOB_CHARS = frozenset(b"[*?")


def config_get(session: Session, args: list[bytes]) -> Reply:
    parameters = _parameters(session)
    # Redis 7.0 answers a plain name as the client spelled it (CONFIG GET SAVE -> SAVE) and a
    # glob's matches by their own names; each parameter once, in the first spelling asked.
    found: dict[str, tuple[str, str]] = {}
    for pattern in args[2:]:
        if _GLOB_CHARS.isdisjoint(pattern):
            name = text(pattern)
            value = parameters.get(name.lower())
            if value is not None:
                found.setdefault(name.lower(), (name, value))
            continue
        match = compile_glob(pattern, nocase=True)
        for name, value in parameters.items():
            if match(name.encode()):
                found.setdefault(name, (name, value))
    return dict(found.values())


def config_set(_session: Session, args: list[bytes]) -> Reply:
    return ReplyError(
        f"ERR CONFIG SET is not supported by tickerd ('{text(args[2])}'): "
        "change the configuration file and reload tickerd"
    )


def config_resetstat(_session: Session, _args: list[bytes]) -> Reply:
    return OK


def config_help(_session: Session, _args: list[bytes]) -> Reply:
    lines = [
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "RESETSTAT",
        "    Accepted for compatibility; tickerd's counters are not reset.",
        "HELP",
        "    Print this help.",
    ]
    return [SimpleString(line) for line in lines]


def config(_session: Session, _args: list[bytes]) -> Reply:  # dispatched through subcommands
    raise AssertionError("CONFIG is dispatched by subcommand")


# -- COMMAND: built over the table, which the package hands in -------------------------------


def command_info(row: Command) -> Value:
    """COMMAND INFO's ten fields for one command."""
    keyed = row.group in ("string", "keyspace") and row.name not in ("keys", "scan", "dbsize")
    last_key = -1 if row.arity < 0 and keyed else 1 if keyed else 0
    flags: list[Value] = [SimpleString(flag) for flag in sorted(row.flags - INTERNAL_FLAGS)]
    subcommands = [command_info(sub) for sub in (row.subcommands or {}).values()]
    return [
        row.name,
        row.arity,
        flags,
        1 if keyed else 0,
        last_key,
        1 if keyed else 0,
        [SimpleString(category) for category in _categories(row)],
        [],
        [],
        subcommands,
    ]


# Command groups (COMMAND DOCS) whose ACL category has another name, or none (server: Redis
# files those commands under @admin, @slow, @dangerous, which tickerd does not model).
_CATEGORY = {"transactions": "transaction", "server": None, "tickerd": None}


def _categories(row: Command) -> list[str]:
    """COMMAND INFO's ACL categories: the group's, and @read, @write, @fast as Redis adds."""
    group = _CATEGORY.get(row.group, row.group)
    categories = [] if group is None else ["@" + group]
    categories += ["@read"] if "readonly" in row.flags else []
    categories += ["@write"] if "write" in row.flags else []
    categories.append("@fast" if "fast" in row.flags else "@slow")
    return categories


def command_docs(row: Command) -> Value:
    """COMMAND DOCS's map for one command."""
    docs: dict[Value, Value] = {
        "summary": row.summary or row.name,
        "since": "1.0.0",
        "group": row.group,
    }
    if row.subcommands:
        docs["subcommands"] = {sub.name: command_docs(sub) for sub in row.subcommands.values()}
    return docs
