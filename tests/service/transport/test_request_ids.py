"""Fresh request ids: 32 lower-case hex digits, never repeated, across buffer refills and
threads."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from service.transport.request_ids import new_request_id

ID = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_unique_across_refills() -> None:
    ids = [new_request_id() for _ in range(2000)]  # several 256-id buffers
    assert all(ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_get_the_same_id() -> None:
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: [new_request_id() for _ in range(500)], range(8)))
    ids = [i for batch in batches for i in batch]
    assert len(set(ids)) == len(ids) == 4000
