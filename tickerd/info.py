"""INFO: sections of ``key:value`` lines in Redis's format, plus tickerd's own sections."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable

from . import REDIS_COMPAT_VERSION, __version__
from .context import ServerState
from .stores import InfoSection


def _server(state: ServerState) -> list[tuple[str, str]]:
    config = state.config
    uptime = int(time.time() - state.started)
    return [
        ("redis_version", REDIS_COMPAT_VERSION),
        ("tickerd_version", __version__),
        ("redis_mode", "standalone"),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", "64" if sys.maxsize > 2**32 else "32"),
        ("multiplexing_api", "uvloop"),
        ("python_version", platform.python_version()),
        ("process_id", str(os.getpid())),
        ("run_id", state.run_id),
        ("tcp_port", str(config.server.port)),
        ("server_time_usec", str(time.time_ns() // 1000)),
        ("uptime_in_seconds", str(uptime)),
        ("uptime_in_days", str(uptime // 86400)),
        ("executable", sys.argv[0] if sys.argv else ""),
        ("config_file", config.source),
    ]


def _clients(state: ServerState) -> list[tuple[str, str]]:
    return [
        ("connected_clients", str(len(state.clients))),
        ("maxclients", str(state.config.server.maxclients)),
        ("blocked_clients", "0"),
    ]


def _persistence(state: ServerState) -> list[tuple[str, str]]:
    # Tickets are durable in the store before they are replied; there is nothing to load.
    return [("loading", "0"), ("store_backend", state.config.store.backend)]


def _stats(state: ServerState) -> list[tuple[str, str]]:
    stats = state.stats
    issued = sum(sequence.issued for sequence in state.sequences.all())
    return [
        ("total_connections_received", str(stats.connections_received)),
        ("total_commands_processed", str(stats.commands_processed)),
        ("rejected_connections", str(stats.connections_rejected)),
        ("total_error_replies", str(stats.error_replies)),
        ("protocol_errors", str(stats.protocol_errors)),
        ("total_tickets_issued", str(issued)),
    ]


def _replication(_state: ServerState) -> list[tuple[str, str]]:
    return [("role", "master"), ("connected_slaves", "0")]


def _sequences(state: ServerState) -> list[tuple[str, str]]:
    # Keyed by position, like Redis's slave0: INFO parsers split a line at its first ':', and a
    # sequence name may hold one (user:id). In a value, ':' is fine; ',' and '=' never occur in
    # names.
    lines = [("sequences", str(len(state.sequences)))]
    for index, sequence in enumerate(state.sequences.all()):
        last = "" if sequence.last is None else str(sequence.last)
        fields = f"table={sequence.table},last={last},issued={sequence.issued}"
        lines.append((f"sequence{index}", f"name={sequence.name},{fields}"))
    return lines


def _keyspace(state: ServerState) -> list[tuple[str, str]]:
    count = len(state.sequences)
    return [("db0", f"keys={count},expires=0,avg_ttl=0")] if count else []


# The sections in INFO's order; the default set is all of them.
_SECTIONS: dict[str, tuple[str, Callable[[ServerState], list[tuple[str, str]]]]] = {
    "server": ("Server", _server),
    "clients": ("Clients", _clients),
    "persistence": ("Persistence", _persistence),
    "stats": ("Stats", _stats),
    "replication": ("Replication", _replication),
    "sequences": ("Sequences", _sequences),
    "keyspace": ("Keyspace", _keyspace),
}
_EVERYTHING = ("all", "default", "everything")


def sections(state: ServerState, wanted: list[str]) -> list[InfoSection]:
    """The INFO sections named in ``wanted`` (all of them for none, all, default, everything)."""
    show_all = not wanted or any(name in _EVERYTHING for name in wanted)
    chosen: list[InfoSection] = [
        (title, build(state))
        for key, (title, build) in _SECTIONS.items()
        if show_all or key in wanted
    ]
    for title, lines in state.sequences.store.info():
        if show_all or title.lower() in wanted:
            chosen.insert(len(chosen) - 1 if show_all else len(chosen), (title, lines))
    return chosen


def render_info(state: ServerState, wanted: list[str]) -> str:
    """INFO's text: ``# Title`` then ``key:value`` lines per section, sections blank-line apart."""
    return "\r\n".join(
        f"# {title}\r\n" + "".join(f"{key}:{_clean(value)}\r\n" for key, value in lines)
        for title, lines in sections(state, wanted)
    )


def _clean(value: str) -> str:
    # A value never spans lines: INFO parsers split on CRLF and on the first colon.
    return value.replace("\r", " ").replace("\n", " ")


__all__ = ["render_info", "sections"]
