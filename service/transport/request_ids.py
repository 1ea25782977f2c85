"""Fresh request ids: 32 hex digits from the operating system's random source.

An id joins feedback to the answer it labels, so it must not be guessable: it comes from
``os.urandom``, as ``secrets.token_hex(16)`` does, but read 256 ids at a time, so a request
pays for a slice rather than a system call.
"""

from __future__ import annotations

import os
import threading

_ID_BYTES = 16
_BLOCK = 256 * _ID_BYTES
_lock = threading.Lock()  # servers in several threads (tests) share the buffer
_buffer = b""
_offset = 0


def new_request_id() -> str:
    """A new random request id (32 lower-case hex digits)."""
    global _buffer, _offset
    with _lock:
        if _offset >= len(_buffer):
            _buffer, _offset = os.urandom(_BLOCK), 0
        start, _offset = _offset, _offset + _ID_BYTES
        return _buffer[start:_offset].hex()
