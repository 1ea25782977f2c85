"""The link between the server and its gRPC front process: framed messages on a socketpair.

Each frame is a 4-byte big-endian length and a pickled tuple whose first item names its
kind (``grpc_front`` lists them). Pickle is safe here because the socketpair is private to
the two processes: it has no address, and the child inherits its end at spawn. Writes made
within one turn of the event loop go out as one ``write``, so under load many calls' frames
share a system call.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
Message = tuple[Any, ...]


def encode(message: Message) -> bytes:
    """One frame holding ``message``."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


class FrameLink(asyncio.Protocol):
    """Reads frames into ``on_message`` and writes frames batched per loop turn.

    Args:
        on_message: called with each message, in order, on the event loop.
        on_lost: called once when the other end has gone (EOF or an error).
    """

    def __init__(self, on_message: Callable[[Message], None], on_lost: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._pending: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is duck-typed

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start, end = 0, len(buffer)
        while end - start >= 4:
            (size,) = _LENGTH.unpack_from(buffer, start)
            if end - start - 4 < size:
                break
            message = pickle.loads(buffer[start + 4 : start + 4 + size])
            start += 4 + size
            try:
                self._on_message(message)
            except Exception:  # one bad message must not stop the link
                logger.exception("gRPC front link: handling %r failed", message[:1])
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_lost()

    def send(self, message: Message) -> None:
        """Queue ``message``; every message queued in this loop turn goes in one write."""
        if self.closed or self._transport is None:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(encode(message))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        """Flush what is queued and close."""
        if self._transport is not None and not self._transport.is_closing():
            if self._pending:
                self._flush()
            self._transport.close()
