"""The runtimes stage's served setups and per-round summary (pure functions, no server)."""

from __future__ import annotations

from loadtest.runtimes import SETUPS, Setup, summarize


def test_a_setup_names_its_runtime_threads_batch_and_concurrency() -> None:
    assert Setup.parse("tflite-int8/b1x2=tflite-int8:1:1:2", 2) == Setup(
        "tflite-int8/b1x2", "tflite-int8", 1, 1, 2
    )
    assert Setup.parse("onnxruntime", 3) == Setup("onnxruntime", "onnxruntime", 3, 0, 1)
    assert Setup.parse(SETUPS[0], 2) == Setup("tensorflow", "tensorflow", 2)


def test_the_summary_gives_per_round_ratios_and_their_median() -> None:
    def run(requests: int, errors: int = 0) -> dict[str, float]:
        return {"requests": requests, "errors": errors, "seconds": 10.0}

    rounds = [
        {"served": {"tensorflow": run(100), "fast": {**run(210, 10), "ratio_to_tf_raw_ceiling": r}}}
        for r in (1.5, 2.5, 2.0)
    ]
    for row in rounds:
        row["served"]["tensorflow"]["ratio_to_tf_raw_ceiling"] = 1.0
    figures = summarize(rounds, "fast")
    assert figures["per_round"] == [1.5, 2.5, 2.0]
    assert figures["median"] == 2.0
    assert figures["to_served_tf_per_round"] == [2.0, 2.0, 2.0]  # errors are not answers
    assert figures["to_served_tf_median"] == 2.0
