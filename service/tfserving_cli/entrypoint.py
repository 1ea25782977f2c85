"""The Docker image's entrypoint: TF Serving's image variables, else ``primer-serve``.

TF Serving's image runs ``tensorflow_model_server --port=8500 --rest_api_port=8501
--model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"``. This
one does the same when ``MODEL_NAME`` is set (``MODEL_BASE_PATH`` defaults to ``/models``),
so a ``docker run -e MODEL_NAME=...`` written for TF Serving serves that model here; the
arguments appended to ``docker run`` come last and so override those flags. Arguments in TF
Serving's style (``--model_config_file=...``) without ``MODEL_NAME`` go to
``tensorflow_model_server`` too. Otherwise it is ``primer-serve`` over every model under
``PRIMER_MODEL_BASE_PATH`` (``/models``), with its own flags.
"""

from __future__ import annotations

import os
import re
import sys

_TFSERVING_FLAG = re.compile(r"--[a-z0-9]+(_[a-z0-9]+)+(=.*)?")
"""TF Serving's flags have underscores (``--rest_api_port``); primer-serve's have dashes."""


def command(argv: list[str], environ: dict[str, str]) -> tuple[str, list[str]]:
    """(``tensorflow_model_server`` | ``primer-serve``, its arguments) for this container."""
    model = environ.get("MODEL_NAME", "")
    if model:
        base = environ.get("MODEL_BASE_PATH", "/models").rstrip("/") or "/"
        return "tensorflow_model_server", [
            "--port=8500",
            "--rest_api_port=8501",
            f"--model_name={model}",
            f"--model_base_path={os.path.join(base, model)}",
            *argv,
        ]
    if any(_TFSERVING_FLAG.fullmatch(arg) for arg in argv):
        return "tensorflow_model_server", argv
    return "primer-serve", argv


def main(argv: list[str] | None = None) -> int:
    program, args = command(sys.argv[1:] if argv is None else argv, dict(os.environ))
    if program == "tensorflow_model_server":
        from service.tfserving_cli.main import main as tfserving_main

        return tfserving_main(args)
    from service.__main__ import main as primer_main

    return primer_main(args)


if __name__ == "__main__":
    sys.exit(main())
