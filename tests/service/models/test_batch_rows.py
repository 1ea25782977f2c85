"""What a batch holds: which requests may share one, and their rows joined and padded."""

from __future__ import annotations

import numpy as np

from service.models.batch_rows import batch_key, joined_rows, padded_size


def test_requests_share_a_batch_only_when_all_but_the_rows_agree() -> None:
    two_rows = {"x": np.zeros((2, 3), np.float32)}
    five_rows = {"x": np.ones((5, 3), np.float32)}
    assert batch_key("serving_default", two_rows) == batch_key("serving_default", five_rows)
    assert batch_key("serving_default", two_rows) != batch_key("other", two_rows)
    assert batch_key("serving_default", two_rows) != batch_key(
        "serving_default", {"x": np.zeros((2, 4), np.float32)}
    )
    assert batch_key("serving_default", two_rows) != batch_key(
        "serving_default", {"x": np.zeros((2, 3), np.float64)}
    )


def test_padded_size_is_the_smallest_allowed_size_that_holds_the_rows() -> None:
    assert padded_size(3, [4, 8]) == 4
    assert padded_size(4, [4, 8]) == 4
    assert padded_size(5, [4, 8]) == 8
    assert padded_size(3, None) == 3
    assert padded_size(9, [4, 8]) == 9  # the batcher never forms one: max_batch_size is 8


def test_rows_are_joined_in_order_and_padded_with_the_first_row() -> None:
    first = {"x": np.array([[1.0], [2.0]], np.float32)}
    second = {"x": np.array([[3.0]], np.float32)}
    joined = joined_rows([first, second], rows=3, target=4)
    assert joined["x"].tolist() == [[1.0], [2.0], [3.0], [1.0]]
    assert joined["x"].dtype == np.float32


def test_a_lone_request_that_fills_its_size_is_passed_through() -> None:
    only = {"x": np.arange(4, dtype=np.int64).reshape(4, 1)}
    assert joined_rows([only], rows=4, target=4)["x"] is only["x"]
