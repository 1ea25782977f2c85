"""The image entrypoint's choice between TF Serving's command line and ``primer-serve``.

``tests/suites/deploy/test_entrypoint.py`` runs it for real with ``MODEL_NAME``.
"""

from __future__ import annotations

from service.tfserving_cli.entrypoint import command


def test_model_name_runs_tf_servings_command() -> None:
    program, args = command([], {"MODEL_NAME": "half", "MODEL_BASE_PATH": "/srv/models/"})
    assert program == "tensorflow_model_server"
    assert args == [
        "--port=8500",
        "--rest_api_port=8501",
        "--model_name=half",
        "--model_base_path=/srv/models/half",
    ]


def test_model_base_path_defaults_to_models_and_appended_flags_come_last() -> None:
    program, args = command(["--rest_api_port=9000"], {"MODEL_NAME": "m"})
    assert program == "tensorflow_model_server"
    assert args[3:] == ["--model_base_path=/models/m", "--rest_api_port=9000"]


def test_tf_serving_flags_without_model_name() -> None:
    argv = ["--model_config_file=/etc/models.config", "--port=8500"]
    assert command(argv, {}) == ("tensorflow_model_server", argv)


def test_otherwise_primer_serve_with_its_own_flags() -> None:
    assert command([], {}) == ("primer-serve", [])
    argv = ["--config", "/etc/primer/serve.yaml", "--log-json"]
    assert command(argv, {"MODEL_BASE_PATH": "/x"}) == ("primer-serve", argv)
