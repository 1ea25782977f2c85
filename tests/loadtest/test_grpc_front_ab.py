"""The front-against-inline comparison's arithmetic: each ratio within its own round."""

from __future__ import annotations

from loadtest.grpc_front_ab import summarize


def _row(rate: float, p50: float = 1.0) -> dict:
    return {"requests_per_s": rate, "p50_ms": p50}


def test_front_over_inline_pairs_each_mode_with_its_own_round() -> None:
    rows = {
        "front_grpc_c32": [_row(140), _row(150), _row(120)],
        "inline_grpc_c32": [_row(100), _row(100), _row(120)],
        "front_grpc_c1": [_row(1, 1.1), _row(1, 1.2), _row(1, 1.0)],
        "inline_grpc_c1": [_row(1, 1.0), _row(1, 1.0), _row(1, 1.0)],
        "front_rest_c32": [_row(100), _row(90), _row(110)],
        "inline_rest_c32": [_row(100), _row(100), _row(100)],
        "front_rest_c1": [_row(1, 1.0), _row(1, 1.0), _row(1, 1.0)],
        "inline_rest_c1": [_row(1, 2.0), _row(1, 1.0), _row(1, 0.5)],
    }
    summary = summarize(rows)
    grpc = summary["grpc"]
    assert grpc["requests_per_s_c32"]["front_over_inline"] == [1.4, 1.5, 1.0]
    assert grpc["requests_per_s_c32"]["median_front_over_inline"] == 1.4
    assert grpc["p50_ms_c1"]["front_over_inline"] == [1.1, 1.2, 1.0]
    assert summary["rest"]["requests_per_s_c32"]["front_over_inline"] == [1.0, 0.9, 1.1]
    assert summary["rest"]["p50_ms_c1"]["front_over_inline"] == [0.5, 1.0, 2.0]
    assert summary["rest"]["p50_ms_c1"]["median_front_over_inline"] == 1.0
