"""The sequences served, and how a ticket request becomes a store draw.

A :class:`Sequence` is a name, the store table behind it and what this process has issued from
it. :class:`Sequences` is the registry: it validates names (no name reaches the store
unvalidated), creates tables on first use when ``auto_create`` is on, and asks the store for
tickets. Block mode (many ids per stub ticket) will live here; the store stays as it is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .config import SequencesConfig, sequence_name_problem
from .stores import SchemaMismatch, Store, StoreError

log = logging.getLogger("tickerd.sequences")

# How many sequences auto_create may add: each is a table and a worker per server.
MAX_SEQUENCES = 10_000


class SequenceError(Exception):
    """A request named a sequence that cannot be served; the text is the client's error reply."""


@dataclass(slots=True, eq=False)
class Sequence:
    """One sequence: a name, its table, and what this process has issued from it."""

    name: str
    table: str
    # The most recent ticket: read from the store at start (or creation), then each one issued.
    last: int | None = None
    issued: int = 0
    # Bumped on every ticket requested, so WATCH can tell that the sequence moved.
    version: int = 0
    # Pending while the table is being created (auto_create); None once it exists.
    ready: asyncio.Future[None] | None = field(default=None)
    # The ticket requested most recently, so that GET after INCR sees that INCR's ticket.
    latest: asyncio.Future[int] | None = field(default=None)

    def _record(self, future: asyncio.Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.last = future.result()
            self.issued += 1


class Sequences:
    """The registry of sequences, in front of one store."""

    def __init__(self, store: Store, config: SequencesConfig, table_prefix: str) -> None:
        self.store = store
        self.config = config
        self.prefix = table_prefix
        self._by_name: dict[str, Sequence] = {}
        # The same sequences by lower-cased name. Table names ignore case on SQLite and on MySQL
        # under Windows and macOS, so two names that differ only in case would share one table.
        self._by_folded: dict[str, Sequence] = {}

    async def start(self) -> None:
        """Make sure every configured table exists; with auto_create, adopt existing tables too.

        A configured table of another shape stops start-up (SchemaMismatch); an adopted one is
        skipped with a warning, so that a stray table is never served.
        """
        for name in self.config.names:
            clash = self._case_clash(name)
            if clash:
                raise StoreError(f"[sequences] names: '{name}': {clash}")
            await self.store.ensure_table(self.prefix + name)
            self._add(Sequence(name, self.prefix + name))
        if self.config.auto_create:
            for table in await self.store.list_tables(self.prefix):
                await self._adopt(table)
        for sequence in self._by_name.values():
            sequence.last = await self.store.last_id(sequence.table)
        log.info("serving %d sequences: %s", len(self), " ".join(sorted(self._by_name)) or "-")

    async def _adopt(self, table: str) -> None:
        name = table[len(self.prefix) :]
        if name in self._by_name or sequence_name_problem(name, self.prefix):
            return
        clash = self._case_clash(name)
        if clash:
            log.warning("not serving table %s: %s", table, clash)
            return
        try:
            await self.store.ensure_table(table)
        except SchemaMismatch as exc:
            log.warning("not serving table %s: %s", table, exc)
            return
        self._add(Sequence(name, table))

    def _add(self, sequence: Sequence) -> None:
        self._by_name[sequence.name] = sequence
        self._by_folded[sequence.name.lower()] = sequence

    def _forget(self, sequence: Sequence) -> None:
        if self._by_name.get(sequence.name) is sequence:
            del self._by_name[sequence.name]
        if self._by_folded.get(sequence.name.lower()) is sequence:
            del self._by_folded[sequence.name.lower()]

    def _case_clash(self, name: str) -> str | None:
        """Why ``name`` cannot be added: a served name differs from it only in case."""
        other = self._by_folded.get(name.lower())
        if other is None or other.name == name:
            return None
        return (
            f"it differs only in case from the sequence '{other.name}' "
            "(table names ignore case on SQLite, and on MySQL under Windows and macOS)"
        )

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        """The names of the sequences served, sorted."""
        return sorted(self._by_name)

    def all(self) -> list[Sequence]:
        """Every sequence served, sorted by name."""
        return [self._by_name[name] for name in self.names()]

    def find(self, key: bytes) -> Sequence | None:
        """The sequence named ``key`` if it is served; never creates one."""
        try:
            return self._by_name.get(key.decode())
        except UnicodeDecodeError:
            return None

    def version(self, name: str) -> int:
        """The WATCH version of ``name`` (0 for a sequence not yet served)."""
        sequence = self._by_name.get(name)
        return sequence.version if sequence else 0

    def lookup(self, key: bytes) -> Sequence:
        """The sequence a ticket request names, created on first use with auto_create.

        Raises SequenceError with the client's error text for a bad or unknown name.
        """
        try:
            name = key.decode()
        except UnicodeDecodeError:
            raise SequenceError("ERR invalid sequence name: not valid UTF-8") from None
        sequence = self._by_name.get(name)
        if sequence is not None:
            return sequence
        problem = sequence_name_problem(name, self.prefix)
        if problem:
            raise SequenceError(f"ERR invalid sequence name '{_shown(name)}': {problem}")
        clash = self._case_clash(name)
        if clash:
            raise SequenceError(f"ERR invalid sequence name '{_shown(name)}': {clash}")
        if not self.config.auto_create:
            raise SequenceError(
                f"ERR unknown sequence '{name}' (served: {_listed(self.names())}; "
                "set [sequences] auto_create = yes to create sequences on first use)"
            )
        if len(self._by_name) >= MAX_SEQUENCES:
            raise SequenceError(f"ERR too many sequences: at most {MAX_SEQUENCES} can be served")
        return self._create(name)

    def _create(self, name: str) -> Sequence:
        sequence = Sequence(name, self.prefix + name)
        sequence.ready = asyncio.ensure_future(self._create_table(sequence))
        self._add(sequence)
        return sequence

    async def _create_table(self, sequence: Sequence) -> None:
        try:
            await self.store.ensure_table(sequence.table)
            sequence.last = await self.store.last_id(sequence.table)
        except BaseException:
            self._forget(sequence)  # so that the next request tries again
            raise
        log.info("created sequence %s (table %s)", sequence.name, sequence.table)
        sequence.ready = None

    def next(self, sequence: Sequence) -> asyncio.Future[int]:
        """The next ticket of ``sequence``: a future resolved with the id, or a StoreError."""
        sequence.version += 1
        if sequence.ready is None:
            future = self.store.draw(sequence.table)
        else:
            future = asyncio.ensure_future(self._draw_when_ready(sequence, sequence.ready))
        future.add_done_callback(sequence._record)
        sequence.latest = future
        return future

    async def _draw_when_ready(self, sequence: Sequence, ready: asyncio.Future[None]) -> int:
        await asyncio.shield(ready)
        return await self.store.draw(sequence.table)

    def last(self, sequence: Sequence) -> int | asyncio.Future[int | None] | None:
        """GET: the most recent ticket when this is called, or a future of it.

        Replies leave in request order, but GET must also *see* in request order: its answer is
        fixed by what was requested before it, never by the INCRs pipelined after it. So the
        future waits on the ticket in flight *now* (or the table being created now), not on
        whatever is in flight when it runs.
        """
        pending = sequence.latest
        if pending is not None and pending.done():
            pending = None
        if pending is None and sequence.ready is None:
            return sequence.last
        return asyncio.ensure_future(self._last_after(sequence, pending, sequence.last))

    async def _last_after(
        self, sequence: Sequence, pending: asyncio.Future[int] | None, before: int | None
    ) -> int | None:
        if pending is None:
            assert sequence.ready is not None
            await asyncio.shield(sequence.ready)
            return sequence.last  # read at creation; no ticket of ours can have landed yet
        await asyncio.wait([pending])
        if pending.cancelled() or pending.exception() is not None:
            return before  # that ticket was never issued: the one before it is the last
        return pending.result()

    async def raise_to(self, sequence: Sequence, floor: int) -> None:
        """SET: make every later ticket greater than ``floor``; refuse to move backwards."""
        if sequence.ready is not None:
            await asyncio.shield(sequence.ready)
        current = await self.store.last_id(sequence.table)
        if sequence.last is not None:
            current = max(current or 0, sequence.last)
        if current is not None and floor < current:
            raise StoreError(
                f"tickets only move forward: '{sequence.name}' has already issued {current}, "
                f"so it cannot be set to {floor}"
            )
        await self.store.raise_to(sequence.table, floor)
        sequence.version += 1
        sequence.last = max(floor, sequence.last or 0)  # GET after SET answers the new floor


def _shown(name: str) -> str:
    return name if len(name) <= 128 else name[:128] + "..."


def _listed(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:10])
    return shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")


__all__ = ["MAX_SEQUENCES", "Sequence", "SequenceError", "Sequences"]
