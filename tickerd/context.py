"""What command handlers see: the state of one client session and of the whole server.

Handlers get a :class:`Session` and reach the server through ``session.server``. Neither holds a
socket or a driver: the connection module owns I/O, the store owns the database.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config
    from .connection import Connection
    from .sequences import Sequences


@dataclass(slots=True)
class Stats:
    """Server-wide counters reported by INFO."""

    connections_received: int = 0
    connections_rejected: int = 0
    commands_processed: int = 0
    error_replies: int = 0
    protocol_errors: int = 0


@dataclass(slots=True)
class ServerState:
    """What every session shares: the configuration, the sequences, the clients, the counters."""

    config: Config
    sequences: Sequences
    stats: Stats = field(default_factory=Stats)
    clients: dict[int, Session] = field(default_factory=dict)
    connections: dict[int, Connection] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    run_id: str = field(default_factory=lambda: os.urandom(20).hex())
    next_client_id: int = 1

    def new_client_id(self) -> int:
        """A client id, unique for this process's lifetime (CLIENT ID, HELLO)."""
        client_id = self.next_client_id
        self.next_client_id += 1
        return client_id


@dataclass(slots=True, eq=False)
class Session:
    """One client's state: protocol, authentication, name, transaction and watched sequences."""

    server: ServerState
    id: int
    addr: str = ""
    laddr: str = ""
    fd: int = -1
    protocol: int = 2
    authenticated: bool = True
    name: str = ""
    lib_name: str = ""
    lib_ver: str = ""
    # MULTI: the queued requests, or None outside a transaction.
    multi: list[list[bytes]] | None = None
    # A command was refused while queueing: EXEC answers EXECABORT.
    multi_failed: bool = False
    # WATCH: sequence name -> the version it had when watched.
    watched: dict[str, int] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    last_command: str = "NULL"
    # Set by QUIT: close once the replies so far are written.
    closing: bool = False

    def reset(self) -> None:
        """RESET: back to the state of a new connection (RESP2, no name, no transaction)."""
        self.protocol = 2
        self.authenticated = not self.server.config.server.requirepass
        self.name = ""
        self.multi = None
        self.multi_failed = False
        self.watched.clear()


__all__ = ["ServerState", "Session", "Stats"]
