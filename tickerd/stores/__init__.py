"""The store boundary: the few operations sequences ask of a ticket store.

A store hands out *stub tickets*: the auto-increment id of one ``REPLACE INTO <table> (stub)
VALUES ('a')``. Everything above this package speaks in table names and ids; nothing above it
knows about SQL, drivers, threads or servers.

Rules every store keeps:

- ``draw`` is called on the event loop and never blocks it. It returns a future that the store
  resolves on the loop (with ``loop.call_soon_threadsafe``), in batches where it can.
- An id resolves a future only once the store knows it is durable (committed, from an OK packet
  actually received). A failure may leave a gap in a sequence, never a duplicate.
- A future the caller has cancelled (its client went away) is skipped, not resolved: its id is
  simply never issued.
- Failures reach the caller as :class:`StoreError`, whose text is fit for a client's error reply.
"""

from __future__ import annotations

import abc
import asyncio

# One INFO section: its title and its ``key:value`` lines.
InfoSection = tuple[str, list[tuple[str, str]]]


class StoreError(Exception):
    """The store could not do what was asked; the message says why, without secrets."""


class StoreUnavailable(StoreError):
    """No server of the store answered in time."""


class SchemaMismatch(StoreError):
    """A table exists but has another shape than a stub table."""


class Store(abc.ABC):
    """A ticket store. Tables are validated identifiers; the store quotes them in SQL."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open connections and check the servers; raise StoreError if the store is unusable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish the draws in flight, close every connection and join every thread."""

    @abc.abstractmethod
    async def list_tables(self, prefix: str) -> list[str]:
        """The existing tables whose name starts with ``prefix``."""

    @abc.abstractmethod
    async def ensure_table(self, table: str) -> None:
        """Create ``table`` as a stub table if missing; SchemaMismatch if it has another shape."""

    @abc.abstractmethod
    def draw(self, table: str) -> asyncio.Future[int]:
        """The next stub ticket of ``table``: resolved with its id, or with a StoreError."""

    @abc.abstractmethod
    async def last_id(self, table: str) -> int | None:
        """The largest id ``table`` has issued (across every reachable server), or None."""

    @abc.abstractmethod
    async def raise_to(self, table: str, floor: int) -> None:
        """Make every later ticket of ``table`` greater than ``floor``; never lower a counter."""

    @abc.abstractmethod
    def info(self) -> list[InfoSection]:
        """INFO sections describing the store (servers, health, counters); no secrets."""


__all__ = ["InfoSection", "SchemaMismatch", "Store", "StoreError", "StoreUnavailable"]
