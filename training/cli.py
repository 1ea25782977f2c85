"""``primer-train``: train one of the primer's classifiers and export it as the next version.

Arguments and data are checked before TensorFlow starts, so a mistake costs a fraction of
a second and prints one line (``primer-train: error: ...``) with a non-zero exit status:
2 for bad arguments, 1 for bad data or a failed export, 130 when interrupted. The options
are in :mod:`training.options`, the run itself in :mod:`training.run`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from training.data.datasets import DatasetError
from training.distribute import PeerLostError
from training.models.registry import WeightsError
from training.options import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    PROG,
    CliError,
    build_parser,
)
from training.repository import ExportError
from training.run import train_and_export

__all__ = ["CliError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``primer-train``; returns the exit status."""
    args = None
    if argv is None:
        argv = sys.argv[1:]
    if list(argv[:1]) == ["optimize"]:  # ``primer-train optimize <version> --to ...``
        from training.optimize import main as optimize_main

        return optimize_main(list(argv[1:]))
    try:
        args = build_parser().parse_args(argv)
        outcome = train_and_export(args)
    except CliError as exc:
        return _fail(str(exc), exc.status)
    except (DatasetError, ExportError, WeightsError, PeerLostError) as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted; no version was exported", EXIT_INTERRUPTED)
    except Exception as exc:
        if args is not None and args.debug:
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
            EXIT_FAILURE,
        )
    accuracy = outcome.result.test_accuracy
    if not outcome.version_dir.exists():  # a worker other than the chief
        print(f"{PROG}: trained (test accuracy {accuracy:.4f}); only the chief exports")
        return 0
    print(f"{PROG}: exported {outcome.version_dir} (test accuracy {accuracy:.4f})")
    if args.optimize:
        from training.optimize import main as optimize_main

        return optimize_main(
            [str(outcome.version_dir), "--to", args.optimize, "--data", str(args.data)]
        )
    return 0


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
