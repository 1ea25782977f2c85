"""Strict JSON for request bodies: orjson's parser, and no object may repeat a key.

Policy: a body whose object repeats a key (``{"instances": [...], "instances": [...]}``) is
malformed input (400 / INVALID_ARGUMENT). JSON parsers disagree on which duplicate wins
(first, last, or both), so a proxy that validated one value while the server used another
would be a parser-differential hole; refusing the body leaves no ambiguity.

orjson keeps the last duplicate silently, so the check comes after parsing and is cheap on
the hot path: every ``:`` outside a string separates a key from its value and every ``{``
outside a string opens an object. Counting both bytes in the body (memchr speed) and then
walking only the parsed objects — stopping once as many objects as ``{`` bytes are found,
before any list of numbers is looked at — proves there was no duplicate when the parsed
key count equals the ``:`` count. Only bodies with ``{`` or ``:`` inside strings (or real
duplicates) take the exact, slower path: a second parse with ``object_pairs_hook``.

orjson also limits nesting to 1024 levels (no recursion-depth crash on deeply nested
input) and refuses ``NaN``/``Infinity`` literals and invalid UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from service.errors import InvalidInputError

_CONTAINERS = (dict, list)


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def loads(body: bytes) -> Any:
    """Parse a JSON body, refusing invalid JSON and objects that repeat a key.

    Raises:
        InvalidInputError: not JSON, nested deeper than 1024, or a repeated key.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
    if not _keys_surely_unique(body, value):
        try:
            json.loads(body, object_pairs_hook=_unique_pairs)
        except _DuplicateKeyError as exc:
            shown = exc.key[:64].encode("unicode_escape").decode("ascii")
            raise InvalidInputError(
                f"request body repeats the key {shown!r} in one JSON object; each key may "
                "appear once"
            ) from None
    return value


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return result


def _keys_surely_unique(body: bytes, value: Any) -> bool:
    """True when the byte counts prove no object of ``value`` lost a repeated key."""
    braces = body.count(b"{")
    if braces == 0:
        return True  # no object at all, so no key
    colons = body.count(b":")
    objects = keys = 0
    pending: list[Any] = [value]
    scalar_lists: list[list[Any]] = []  # looked into only if objects are still missing
    while pending or scalar_lists:
        if not pending:
            pending.extend(v for v in scalar_lists.pop() if type(v) in _CONTAINERS)
            continue
        item = pending.pop()
        if type(item) is dict:
            objects += 1
            keys += len(item)
            if objects == braces:
                return keys == colons
            pending.extend(v for v in item.values() if type(v) in _CONTAINERS)
        elif item and type(item[0]) in _CONTAINERS:
            pending.extend(v for v in item if type(v) in _CONTAINERS)
        elif item:
            scalar_lists.append(item)
    return False
