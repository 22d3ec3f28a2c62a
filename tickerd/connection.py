"""One client connection: bytes in, requests dispatched as they parse, replies out in order.

The connection never awaits per request. Every request gets a slot in ``_slots``, in request
order: the encoded reply at once, or a future the store resolves later. ``_flush`` writes the
completed prefix of the slots in one ``write``.

Backpressure: while the transport's write buffer is above its high-water mark, or too many
replies are pending, the connection stops reading; the requests it has not parsed yet stay in the
parser's buffer, which is therefore bounded by one read.

Closing: ``transport.close()`` waits for the write buffer to drain, which a client that stops
reading never lets happen. A connection that decides to close (QUIT, a protocol error, the idle
timeout, shutdown) is aborted if it is still open ``CLOSE_TIMEOUT`` seconds after its last reply
was handed to the transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, cast

from . import resp
from .commands import execute
from .context import ServerState, Session
from .replies import ReplyError, Value, settle

log = logging.getLogger("tickerd.connection")

# Replies a client may have pending (parsed, not yet written) before reading pauses.
MAX_PENDING = 1024
# The transport's write buffer marks: above HIGH, stop reading; resume below LOW.
WRITE_BUFFER_HIGH = 1024 * 1024
WRITE_BUFFER_LOW = 256 * 1024
# How long a closing connection may take to hand the client what it owes before it is aborted.
CLOSE_TIMEOUT = 3.0

_Slot = tuple[bytes | None, "asyncio.Future[Any] | None", int]  # (encoded, pending, protocol)


class Connection(asyncio.Protocol):
    """The asyncio protocol for one client."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.session = Session(state, state.new_client_id())
        self.parser = resp.RequestParser()
        self.transport: asyncio.Transport | None = None
        self._slots: deque[_Slot] = deque()
        self._writing_paused = False
        self._reading_paused = False
        self._closing = False
        self._eof = False  # the client half-closed: no request will follow the buffered ones
        self._abort_timer: asyncio.TimerHandle | None = None
        # The write buffer's size when the idle sweep last looked (see inactive_for).
        self._write_buffered = 0

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        state = self.state
        state.stats.connections_received += 1
        if len(state.clients) >= state.config.server.maxclients:
            state.stats.connections_rejected += 1
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self._closing = True
            return
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
        session = self.session
        session.authenticated = not state.config.server.requirepass
        self.parser.authenticated = session.authenticated
        session.addr = _address(transport.get_extra_info("peername"))
        session.laddr = _address(transport.get_extra_info("sockname"))
        sock = transport.get_extra_info("socket")
        session.fd = sock.fileno() if sock is not None else -1
        state.clients[session.id] = session
        state.connections[session.id] = self

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        self._closing = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        self.state.clients.pop(self.session.id, None)
        self.state.connections.pop(self.session.id, None)
        for _, pending, _ in self._slots:
            if pending is not None:
                pending.remove_done_callback(self._reply_ready)
        self._slots.clear()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self.session.last_active = time.monotonic()
        self.parser.feed(data)
        self._serve()

    def eof_received(self) -> bool:
        """The client sent its last request and half-closed (as ``nc -N`` does): answer every
        request it sent, then close. True keeps the transport open for those replies."""
        self._eof = True
        if not self._closing:
            self._serve()
        return True

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.session.last_active = time.monotonic()  # the client took replies: it is alive
        self._update_reading()
        self._serve()

    # -- requests and replies ---------------------------------------------------------------

    def _serve(self) -> None:
        """Dispatch the buffered requests while there is room for their replies."""
        while self._dispatch():
            # Stopped at MAX_PENDING, and the flush made room: go on with the buffered requests.
            if self._closing or self._writing_paused or len(self._slots) >= MAX_PENDING:
                break
        else:
            if self._eof and not self._closing:
                # Every request the client sent is dispatched: close once they are answered.
                self._closing = True
                self._flush()
        self._update_reading()

    def _dispatch(self) -> bool:
        """Run the parsed requests until the slots are full, then flush; True if stopped full."""
        session = self.session
        stats = self.state.stats
        full = False
        try:
            for request in self.parser:
                stats.commands_processed += 1
                self._push(execute(session, request), session.protocol)
                # AUTH, HELLO AUTH and RESET change it; the next request is parsed accordingly.
                self.parser.authenticated = session.authenticated
                if session.closing:
                    self._closing = True
                    break
                if len(self._slots) >= MAX_PENDING or self._writing_paused:
                    full = True
                    break
        except resp.ProtocolError as exc:
            stats.protocol_errors += 1
            # The reason may hold the peer's raw bytes (even a newline): repr keeps one log line.
            log.debug("protocol error from %s: %r", session.addr, exc.reason)
            self._push(ReplyError(f"ERR Protocol error: {exc.reason}"), session.protocol)
            self._closing = True
        self._flush()
        return full

    def _push(self, reply: Any, protocol: int) -> None:
        if isinstance(reply, asyncio.Future):
            self._slots.append((None, reply, protocol))
            reply.add_done_callback(self._reply_ready)
        else:
            self._slots.append((self._encode(reply, protocol), None, protocol))

    def _encode(self, value: Value, protocol: int) -> bytes:
        if isinstance(value, ReplyError):
            self.state.stats.error_replies += 1
        return resp.encode(value, protocol)

    def _reply_ready(self, _future: asyncio.Future[Any]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._reading_paused and not self._closing:
            self._serve()  # room again, maybe: go on with the requests already buffered
        else:
            self._flush()

    def _flush(self) -> None:
        """Write every reply at the head of the slots that is complete, in one write."""
        slots = self._slots
        out: list[bytes] = []
        while slots:
            encoded, pending, protocol = slots[0]
            if encoded is None:
                assert pending is not None
                if not pending.done():
                    break
                encoded = self._encode(settle(pending), protocol)
            out.append(encoded)
            slots.popleft()
        transport = self.transport
        if transport is None:
            return
        if out:
            transport.write(b"".join(out))
        if self._closing and not slots:
            self._close_transport()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pause = self._writing_paused or len(self._slots) >= MAX_PENDING or self._closing
        if pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False

    def _close_transport(self) -> None:
        """Close once the write buffer drains; abort if that takes CLOSE_TIMEOUT seconds.

        Called when every reply is written (or dropped), so from here only the client's reading
        holds the connection open, and a client may never read what it is owed.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        loop = asyncio.get_running_loop()
        self._abort_timer = loop.call_later(CLOSE_TIMEOUT, self.abort)

    # -- the server's controls --------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No reply is waiting for the store: the client is not waiting on us.

        Replies already in the write buffer do not count; a client that does not take them is
        idle (see ``inactive_for``).
        """
        return not self._slots

    def inactive_for(self, now: float) -> float:
        """Seconds since the client last sent bytes or took some of the replies written to it.

        Called periodically by the idle sweep: a write buffer smaller than at the last call means
        the client read some (Redis too counts a write as an interaction).
        """
        if self.transport is not None:
            buffered = self.transport.get_write_buffer_size()
            if buffered < self._write_buffered:
                self.session.last_active = now
            self._write_buffered = buffered
        return now - self.session.last_active

    def close(self) -> None:
        """Close once the pending replies are written; abort if the client does not take them."""
        self._closing = True
        self._flush()  # closes the transport once no reply is left waiting for the store

    def abort(self) -> None:
        """Close at once, dropping pending replies."""
        if self.transport is not None:
            self.transport.abort()


def _address(name: Any) -> str:
    if isinstance(name, tuple) and len(name) >= 2:
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(name or "")


__all__ = ["CLOSE_TIMEOUT", "MAX_PENDING", "WRITE_BUFFER_HIGH", "WRITE_BUFFER_LOW", "Connection"]
