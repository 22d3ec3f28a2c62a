"""The server's life cycle: start the store, then the listeners; on SIGTERM drain and stop.

Order matters both ways. Start-up opens the store and checks every table before the first client
can connect, so a bad database stops start-up instead of failing requests. Shutdown stops
accepting, lets every connection write the replies it owes (bounded by SHUTDOWN_TIMEOUT), and only
then closes the store, so no ticket drawn is left unanswered for a client still listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path

from .config import Config
from .connection import Connection
from .context import ServerState
from .sequences import Sequences
from .stores import Store
from .stores.sqlite import SqliteStore

log = logging.getLogger("tickerd")

# How long shutdown waits for connections to write the replies they owe.
SHUTDOWN_TIMEOUT = 10.0
# How often idle clients are looked for, when [server] timeout is set.
IDLE_SWEEP_INTERVAL = 1.0
# The listen backlog: connections the kernel queues before tickerd accepts them.
BACKLOG = 511


def build_store(config: Config) -> Store:
    """The store the configuration names."""
    if config.store.backend == "mysql":
        from .stores.mysql import MysqlStore  # noqa: PLC0415 - PyMySQL only when used

        return MysqlStore(config.store)
    return SqliteStore(config.store.path)


class Server:
    """A running tickerd: the store, the sequences, the listeners and the clients."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = build_store(config)
        self.sequences = Sequences(self.store, config.sequences, config.store.table_prefix)
        self.state = ServerState(config, self.sequences)
        self._listeners: list[asyncio.Server] = []
        self._stop = asyncio.Event()

    async def serve(self) -> None:
        """Start, run until SIGTERM or SIGINT, then shut down cleanly."""
        await self.startup()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        sweeper = asyncio.ensure_future(self._sweep_idle()) if self.config.server.timeout else None
        try:
            _notify("READY=1")
            await self._stop.wait()
        finally:
            if sweeper is not None:
                sweeper.cancel()
            _notify("STOPPING=1")
            await self.shutdown()

    def stop(self, signum: int | None = None) -> None:
        """Ask the server to shut down (from a signal handler or a test)."""
        if signum is not None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
        self._stop.set()

    def _reload(self) -> None:
        log.warning("SIGHUP: configuration reload is not supported yet; restart tickerd instead")

    async def startup(self) -> None:
        """Open the store, check the sequences' tables, then listen."""
        config = self.config
        log.info(
            "tickerd starting: %s store, configuration %s", config.store.backend, config.source
        )
        await self.store.start()
        await self.sequences.start()
        loop = asyncio.get_running_loop()
        for host in config.server.bind:
            listener = await loop.create_server(
                lambda: Connection(self.state),
                host,
                config.server.port,
                reuse_address=True,
                backlog=BACKLOG,
            )
            self._listeners.append(listener)
            log.info("listening on %s port %d", host, config.server.port)
        if config.server.unixsocket:
            path = Path(config.server.unixsocket)
            with contextlib.suppress(FileNotFoundError):
                if path.is_socket():
                    path.unlink()  # a stale socket from a previous run
            listener = await loop.create_unix_server(
                lambda: Connection(self.state), str(path), backlog=BACKLOG
            )
            self._listeners.append(listener)
            log.info("listening on unix socket %s", path)
        log.info("ready to accept connections")

    async def shutdown(self) -> None:
        """Stop accepting, drain the clients' pending replies, then close the store.

        A client that does not read is aborted after the connection's CLOSE_TIMEOUT; the wait
        here is bounded as well, for replies the store is slow to give.
        """
        for listener in self._listeners:
            listener.close()
        connections = list(self.state.connections.values())
        for connection in connections:
            connection.close()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        while self.state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.state.connections.values()):
            log.warning("closing a client with replies still pending")
            connection.abort()
        for listener in self._listeners:
            await listener.wait_closed()
        await self.store.close()
        if self.config.server.unixsocket:
            with contextlib.suppress(OSError):
                Path(self.config.server.unixsocket).unlink()
        log.info("tickerd stopped")

    async def _sweep_idle(self) -> None:
        limit = self.config.server.timeout
        while True:
            await asyncio.sleep(IDLE_SWEEP_INTERVAL)
            now = time.monotonic()
            for connection in list(self.state.connections.values()):
                # inactive_for first: it samples the write buffer on every sweep.
                if connection.inactive_for(now) > limit and connection.idle:
                    log.debug("closing idle client %s", connection.session.addr)
                    connection.close()


def _notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state, when it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)


__all__ = ["Server", "build_store"]
