"""Logging: plain text or JSON lines, request ids on every record, and the access log.

``configure_logging(settings)`` is called once by ``__main__``. Every record carries the
request id of the request being served (``REQUEST_ID``, a context variable the protocol
adapters set), and every message is escaped on the way out: control characters, bidi
overrides and other invisible characters from model names, paths or headers are written as
``\\xNN`` / ``\\uNNNN``, never raw, so a client cannot forge or hide log lines.

The access log (``primer.access``) writes one line per inference request with request id,
model, version, protocol, status and duration. It is off by default (``settings.access_log``)
and then costs one boolean test per request.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

REQUEST_ID: ContextVar[str] = ContextVar("primer_request_id", default="")
"""The id of the request being served; set by the adapters (X-Request-ID or gRPC metadata)."""
ACCESS_LOGGER = "primer.access"
_access = logging.getLogger(ACCESS_LOGGER)
MAX_LOGGED_NAME = 200
"""Longer model names (client strings) are cut in the access log."""
OWN_HANDLER_LOGGERS = ("tensorflow", "absl")
"""Loggers that install a handler of their own when imported before ours is (TensorFlow's
does when the root logger has none yet): theirs is removed, so each record is written once,
by our handler, escaped and in our format."""
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "fields",
}


def escape(text: str) -> str:
    """``text`` with every non-printable character (C0/C1 controls, bidi and zero-width
    format characters, line/paragraph separators) written as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _escape_char(char: str) -> str:
    code = ord(char)
    if code == 0x20:
        return char
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _escape_lines(text: str) -> str:
    """Escape each line of a multi-line text (tracebacks keep their line breaks)."""
    return "\n".join(escape(line) for line in text.split("\n"))


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` from the ``REQUEST_ID`` context variable."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``time level logger [request id]: message`` with the message escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        rid = getattr(record, "request_id", "")
        record.rid = f" [{escape(rid)}]" if rid else ""
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _escape_lines(super().formatException(ei))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, ``request_id``,
    the access-log ``fields`` at top level, any ``extra=`` values, and ``exc_info``.

    ``json.dumps`` with ``ensure_ascii`` escapes every control and non-ASCII character.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            entry["request_id"] = rid
        entry.update(getattr(record, "fields", {}))
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure_logging(settings: Any, stream: TextIO | None = None) -> logging.Handler:
    """Install one handler on the root logger per ``settings``.

    Args:
        settings: reads ``log_level``, ``log_json`` and ``access_log``.
        stream: where to write (default: stderr).

    Returns:
        The installed handler (tests remove it again).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(str(settings.log_level).upper())
    for name in OWN_HANDLER_LOGGERS:
        foreign = logging.getLogger(name)
        for old in list(foreign.handlers):
            foreign.removeHandler(old)
        foreign.propagate = True
    # on means on: access lines are written even when the root level is WARNING
    _access.setLevel(logging.INFO if settings.access_log else logging.WARNING)
    return handler


def log_access(
    request_id: str, model: str, version: int | None, protocol: str, status: str, duration_s: float
) -> None:
    """Write one access line (call only when ``settings.access_log`` is on).

    Args:
        request_id: the request's id (``REQUEST_ID.get()`` in the adapters' context).
        model: the model asked for (a client string: escaped by the formatters, cut after
            ``MAX_LOGGED_NAME`` characters).
        version: the version that served it, or None when none was resolved.
        protocol: e.g. ``rest_tfserving``, ``grpc_v2``.
        status: the canonical status name, as in the ``code`` label of
            ``primer_requests_total`` (``OK``, ``NOT_FOUND``, ...).
        duration_s: time inside the server, as observed by the request histogram.
    """
    if len(model) > MAX_LOGGED_NAME:
        model = f"{model[:MAX_LOGGED_NAME]}...({len(model)} characters)"
    fields = {
        "request_id": request_id,
        "model": model,
        "version": "" if version is None else str(version),
        "protocol": protocol,
        "status": status,
        "duration_ms": round(duration_s * 1e3, 3),
    }
    _access.info(
        "request_id=%s model=%s version=%s protocol=%s status=%s duration_ms=%.3f",
        _quoted(request_id),
        _quoted(model),
        fields["version"] or "-",
        protocol,
        status,
        duration_s * 1e3,
        extra={"fields": fields, "request_id": request_id},
    )


def _quoted(value: str) -> str:
    """A logfmt value: bare when safe, JSON-quoted when empty or holding space/quote/=."""
    if value and not any(c in value for c in ' "=\\') and value.isprintable():
        return value
    return json.dumps(value, ensure_ascii=True)
