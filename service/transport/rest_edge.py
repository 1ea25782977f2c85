"""The REST edge: read deadlines, a header size limit and a connection cap on uvicorn.

uvicorn bounds only the keep-alive idle time. Its ``limit_concurrency`` answers 503 after the
headers were read, so it neither bounds the descriptors held nor stops a slowloris. This
module subclasses uvicorn's ``HttpToolsProtocol`` (httptools parses, as before) and adds, per
connection:

- **Connection cap.** Past ``rest_max_connections`` a new connection is answered 503 and
  closed in ``connection_made``, before any byte is read.
- **Header read timeout.** A deadline armed when the connection opens (or when a request's
  first bytes arrive on a kept-alive one) closes it unless the headers are complete by then:
  408 when part of a request came, a plain close when nothing did. The deadlines share one
  queue and one loop timer (``service.transport.deadlines``), and expire at most 64 per loop
  iteration.
- **Header size.** Bytes are handed to the parser no further than the header budget while
  headers are pending; when the budget is spent and the headers are still incomplete, 431
  and close. The parser never buffers more than ``rest_max_header_bytes``.
- **Body read timeout.** A body not complete ``rest_body_timeout_s`` after its headers gets
  408 (or, if the application already answered, a plain close).

Each response leaves in one write (``service.transport.header_hold``).

A flood of connections that never complete their headers should cost as little as possible
per connection: the local and peer addresses (two system calls) are read once a request's
headers are in, the error responses are built once, and the open-connections gauge reads
the connection set when scraped.

Nothing is timed once a request is fully read: a request that is running, a response being
written and a graceful drain are untouched. Each close is counted in
``primer_connections_closed_total{protocol="rest", limit=...}``.
"""

from __future__ import annotations

import asyncio
import http
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from service.config import Settings
from service.errors import (
    ConnectionLimitError,
    HeaderTooLargeError,
    RequestTimeoutError,
    ServingError,
)
from service.metrics import Metrics
from service.transport.connection_cap import connection_cap
from service.transport.deadlines import Deadline, DeadlineQueue
from service.transport.header_hold import HeaderHold

PROTOCOL = "rest"
LIMITS = ("connection_cap", "header_timeout", "header_size", "body_timeout", "keep_alive_idle")
"""Values of the ``limit`` label of ``primer_connections_closed_total`` for REST."""


@dataclass(frozen=True)
class EdgeLimits:
    """The REST edge limits (from ``Settings``; see their docstrings there)."""

    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            header_timeout_s=settings.rest_header_timeout_s,
            body_timeout_s=settings.rest_body_timeout_s,
            max_header_bytes=settings.rest_max_header_bytes,
            max_connections=connection_cap(settings.rest_max_connections),
        )


def raw_error_response(error: ServingError) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response carrying ``{"error": ...}``."""
    body = orjson.dumps({"error": error.message})
    phrase = http.HTTPStatus(error.http_status).phrase
    head = (
        f"HTTP/1.1 {error.http_status} {phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n"
    )
    if isinstance(error, ConnectionLimitError):
        head += "retry-after: 1\r\n"
    return (head + "\r\n").encode("ascii") + body


def guarded_protocol(limits: EdgeLimits, metrics: Metrics) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class with ``limits`` enforced, counted in ``metrics``."""
    closed = {limit: metrics.connections_closed.labels(PROTOCOL, limit) for limit in LIMITS}
    open_gauge = metrics.open_connections.labels(PROTOCOL)
    gauge_bound: list[bool] = []  # the gauge reads the server's connection set when scraped
    # built once: a flood of closes must not build the same bytes thousands of times
    header_timeout_response = raw_error_response(
        RequestTimeoutError(f"request headers not received within {limits.header_timeout_s:g} s")
    )
    body_timeout_response = raw_error_response(
        RequestTimeoutError(
            f"request body not received within {limits.body_timeout_s:g} s of its headers"
        )
    )
    too_large_response = raw_error_response(
        HeaderTooLargeError(
            f"request line and headers exceed the limit of {limits.max_header_bytes} bytes"
        )
    )
    header_deadlines: list[DeadlineQueue] = []  # one, made on the loop's first connection

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """``HttpToolsProtocol`` plus the edge limits (module docstring)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._refused = False
            self._reading_headers = True
            self._header_budget = limits.max_header_bytes
            self._header_timer: Deadline | None = None
            self._body_timer: TimerHandle | None = None
            self._headers_done_at = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections:
                self._refused = True
                self.transport = transport
                closed["connection_cap"].inc()
                message = f"the server holds its maximum of {limits.max_connections} connections"
                transport.write(raw_error_response(ConnectionLimitError(message)))
                transport.close()
                return
            # uvicorn's connection_made, less the local and peer address lookups (a
            # getsockname and a getpeername, a third of a connection's cost before its first
            # byte): they wait for a request's headers, which a slowloris never completes
            self.connections.add(self)
            self.transport = HeaderHold(transport, self.loop)  # type: ignore[assignment]
            self.flow = FlowControl(transport)
            self.scheme = "https" if is_ssl(transport) else "http"
            if self.logger.level <= TRACE_LOG_LEVEL:
                self._read_addresses()
                prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
                self.logger.log(TRACE_LOG_LEVEL, "%sHTTP connection made", prefix)
            if not gauge_bound:
                connections = self.connections
                open_gauge.set_function(lambda: len(connections))
                gauge_bound.append(True)
            self._arm_header_timer()

        def _read_addresses(self) -> None:
            if self.server is None:
                self.server = get_local_addr(self.transport)
                self.client = get_remote_addr(self.transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._cancel_timers()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            while data and not self.transport.is_closing():
                if not self._reading_headers:
                    super().data_received(data)
                    break
                if len(data) <= self._header_budget:  # the common case: no copy
                    chunk, data = data, b""
                else:
                    chunk, data = data[: self._header_budget], data[self._header_budget :]
                self._header_budget -= len(chunk)
                super().data_received(chunk)
                if self._reading_headers and self._header_budget <= 0:
                    self._close_with("header_size", too_large_response)
                    return
            if self.transport.is_closing():
                return
            if self._reading_headers:
                if self._header_budget < limits.max_header_bytes:
                    self._arm_header_timer()  # a request started on a kept-alive connection
            elif self._body_timer is None and self.cycle is not None and self.cycle.more_body:
                self._body_timer = self.loop.call_at(
                    self._headers_done_at + limits.body_timeout_s, self._body_timed_out
                )

        def on_headers_complete(self) -> None:
            self._read_addresses()
            self.scope["server"], self.scope["client"] = self.server, self.client
            self._reading_headers = False
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            self._headers_done_at = self.loop.time()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            self._reading_headers = True
            self._header_budget = limits.max_header_bytes

        def timeout_keep_alive_handler(self) -> None:
            if not self.transport.is_closing():
                closed["keep_alive_idle"].inc()
            super().timeout_keep_alive_handler()

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                if not header_deadlines:
                    header_deadlines.append(DeadlineQueue(self.loop, limits.header_timeout_s))
                self._header_timer = header_deadlines[0].add(self._header_timed_out)

        def _cancel_timers(self) -> None:
            for timer in (self._header_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._body_timer = None

        def _header_timed_out(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or not self._reading_headers:
                return
            started = self._header_budget < limits.max_header_bytes
            self._close_with("header_timeout", header_timeout_response if started else None)

        def _body_timed_out(self) -> None:
            self._body_timer = None
            if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
                return
            self._close_with("body_timeout", body_timeout_response)

        def _close_with(self, limit: str, response: bytes | None) -> None:
            """Count, send ``response`` when no response has started, and close."""
            closed[limit].inc()
            cycle = self.cycle
            if self._reading_headers:  # the cycle, if any, is the previous request's
                answerable = cycle is None or cycle.response_complete
            else:
                answerable = cycle is not None and not cycle.response_started
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the application's further sends are dropped
                cycle.keep_alive = False
            if response is not None and answerable:
                self.transport.write(response)
            self._cancel_timers()
            self.transport.close()

    return GuardedHttpToolsProtocol
