"""One write per response: the header block waits for the body and leaves with it.

uvicorn writes a response's status line and headers when the application sends
``http.response.start``, and the body on ``http.response.body``: two ``send`` system calls
and two TCP segments for a response of a few hundred bytes. On this project's machines a
small ``send`` on loopback costs about 4 µs of the server's CPU (and the client reads two
segments), a few percent of a small request. ``HeaderHold`` stands between uvicorn and the
connection's transport: it holds the header block, and the body's write, nearly always made
in the same step of the same task, carries both. A body that is not sent in that step (a
streaming response waiting for its first chunk) does not hold the headers back: they are
written on the loop's next iteration. ``close`` writes what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any

STATUS_LINE = b"HTTP/1.1 "
INTERIM = b"HTTP/1.1 1"  # 100 Continue and other 1xx: written at once
MAX_JOINED_BODY = 1 << 16
"""Bodies up to this size are joined to the held headers (a copy); larger go after them."""


class HeaderHold:
    """An ``asyncio.Transport`` seen through: header blocks wait for the next write.

    Args:
        transport: the connection's transport.
        loop: its event loop (for the next-iteration flush).
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= MAX_JOINED_BODY:
                self._transport.write(held + data)
            else:
                self._transport.write(held)
                self._transport.write(data)
        elif data.startswith(STATUS_LINE) and not data.startswith(INTERIM):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held, if anything."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
