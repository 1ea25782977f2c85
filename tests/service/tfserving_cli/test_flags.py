"""tensorflow_model_server's flags and config files become the right settings, or clear errors.

No server here: ``main`` is run only where it exits before serving (bad flags, bad files,
``--version``). ``test_served.py`` starts the command on real sockets.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.config import BatchingSettings, Settings
from service.tfserving_cli.flags import build_parser
from service.tfserving_cli.main import main, settings_loader


def settings_of(*argv: str) -> Settings:
    return settings_loader(build_parser().parse_args(list(argv)))()


def exits_with(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``main``, whether argparse or main itself refused."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# ----- the one model of --model_name / --model_base_path -----------------------------------
def test_single_model_flags_map_onto_settings(tmp_path: Path) -> None:
    settings = settings_of(
        "--port=9500",
        "--rest_api_port",
        "9501",  # TF Serving writes --flag=value; the spaced form works too
        "--model_name=half",
        f"--model_base_path={tmp_path}",
        "--file_system_poll_wait_seconds=7",
        "--rest_api_timeout_in_ms=1500",
        "--enable_serialization_as_tensor_content",
        "--tensorflow_intra_op_parallelism=3",
        "--tensorflow_inter_op_parallelism=2",
    )
    assert (settings.grpc_port, settings.rest_port) == (9500, 9501)
    assert settings.model_paths == {"half": str(tmp_path)}
    assert settings.models == {}  # TF Serving's default policy: the latest version
    assert settings.poll_interval_s == 7
    assert settings.request_timeout_s == 1.5
    assert settings.enable_serialization_as_tensor_content is True
    assert (settings.intra_op_threads, settings.inter_op_threads) == (3, 2)
    assert settings.batching.enabled is False  # no --enable_batching: no batching, as there


def test_model_name_defaults_to_default_and_later_flags_win(tmp_path: Path) -> None:
    settings = settings_of(f"--model_base_path={tmp_path}", "--port=1", "--port=2")
    assert settings.model_paths == {"default": str(tmp_path)}
    assert settings.grpc_port == 2


def test_rest_api_port_zero_turns_rest_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in TF Serving, 0 means no REST server; unset keeps this server's rest_port."""
    monkeypatch.delenv("PRIMER_REST_ENABLED", raising=False)
    monkeypatch.delenv("PRIMER_REST_PORT", raising=False)
    model = f"--model_base_path={tmp_path}"
    assert settings_of("--rest_api_port=0", model).rest_enabled is False
    unset = settings_of(model)
    assert (unset.rest_enabled, unset.rest_port) == (True, 8501)
    monkeypatch.setenv("PRIMER_REST_ENABLED", "false")
    assert settings_of("--rest_api_port=9601", model).rest_enabled is True  # the flag wins
    code, err = exits_with(["--rest_api_port=-1", model], capsys)
    assert code == 2
    assert "--rest_api_port must be 0 (no REST) or a port, got -1" in err


def test_session_parallelism_sets_both_thread_counts(tmp_path: Path) -> None:
    settings = settings_of(f"--model_base_path={tmp_path}", "--tensorflow_session_parallelism=4")
    assert (settings.intra_op_threads, settings.inter_op_threads) == (4, 4)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--enable_serialization_as_tensor_content", True),
        ("--enable_serialization_as_tensor_content=true", True),
        ("--enable_serialization_as_tensor_content=1", True),
        ("--enable_serialization_as_tensor_content=false", False),
        ("--enable_serialization_as_tensor_content=0", False),
    ],
)
def test_boolean_flag_forms(tmp_path: Path, flag: str, expected: bool) -> None:
    settings = settings_of(f"--model_base_path={tmp_path}", flag)
    assert settings.enable_serialization_as_tensor_content is expected


# ----- --model_config_file ------------------------------------------------------------------
MODEL_CONFIG = """
model_config_list {
  config {
    name: "tv"
    base_path: "/srv/tv"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "every"
    base_path: "/srv/every"
    model_version_policy { all {} }
  }
  config {
    name: "recent"
    base_path: "gs://bucket/recent"
    model_version_policy { latest { num_versions: 2 } }
  }
  config { name: "plain" base_path: "/srv/plain" }
}
"""


def test_model_config_file_maps_policies_and_labels(tmp_path: Path) -> None:
    config = write(tmp_path / "models.config", MODEL_CONFIG)
    # as in TF Serving, the file wins over --model_name / --model_base_path
    settings = settings_of(f"--model_config_file={config}", "--model_base_path=/ignored")
    assert settings.model_paths == {
        "tv": "/srv/tv",
        "every": "/srv/every",
        "recent": "gs://bucket/recent",
        "plain": "/srv/plain",
    }
    tv = settings.models["tv"]
    assert (tv.version_policy, tv.versions) == ("specific", [1, 2])
    assert tv.version_labels == {"stable": 1, "canary": 2}
    assert settings.models["every"].version_policy == "all"
    recent = settings.models["recent"]
    assert (recent.version_policy, recent.latest) == ("latest", 2)
    plain = settings.models["plain"]
    assert (plain.version_policy, plain.latest, plain.version_labels) == ("latest", 1, {})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('model_config_list { config { name: "m" base_path: "/x" } ', "Invalid protobuf file"),
        ('model_config_list { config { name: "m" base_pth: "/x" } }', 'no field named "base_pth"'),
        ('model_config_list { config { name: "m" } }', "model 'm' has no base_path"),
        ('model_config_list { config { name: "../m" base_path: "/x" } }', "is not valid"),
        (
            'model_config_list { config { name: "m" base_path: "/x" } '
            'config { name: "m" base_path: "/y" } }',
            "listed twice",
        ),
        (
            'model_config_list { config { name: "m" base_path: "/x" model_platform: "onnx" } }',
            "model_platform 'onnx' is not supported",
        ),
        (
            'model_config_list { config { name: "m" base_path: "http://evil/m" } }',
            "never loaded from URLs",
        ),
        (
            'model_config_list { config { name: "m" base_path: "/x" '
            "model_version_policy { specific { } } } }",
            "specific lists no versions",
        ),
        (
            'model_config_list { config { name: "m" base_path: "/x" '
            "logging_config { sampling_config { sampling_rate: 1 } } } }",
            "logging_config",
        ),
    ],
)
def test_bad_model_config_files_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, message: str
) -> None:
    path = write(tmp_path / "models.config", config)
    code, err = exits_with([f"--model_config_file={path}"], capsys)
    assert code == 2
    assert err.startswith("tensorflow_model_server: --model_config_file")
    assert message in err
    assert path in err


def test_missing_model_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exits_with([f"--model_config_file={tmp_path}/nope"], capsys)
    assert code == 2 and "cannot be read" in err


# ----- --enable_batching / --batching_parameters_file -----------------------------------------
def test_batching_parameters_file_maps_onto_batching_settings(tmp_path: Path) -> None:
    params = write(
        tmp_path / "batching.config",
        "max_batch_size { value: 32 }\n"
        "batch_timeout_micros { value: 2500 }\n"
        "max_enqueued_batches { value: 100 }\n"
        "num_batch_threads { value: 2 }\n"
        'thread_pool_name { value: "model_server_batch_threads" }\n'
        "allowed_batch_sizes: 8\nallowed_batch_sizes: 16\nallowed_batch_sizes: 32\n",
    )
    settings = settings_of(
        f"--model_base_path={tmp_path}", "--enable_batching", f"--batching_parameters_file={params}"
    )
    batching = settings.batching
    assert batching.enabled is True
    assert (batching.max_batch_size, batching.batch_timeout_ms) == (32, 2.5)
    assert (batching.max_enqueued_batches, batching.max_concurrent_batches) == (100, 2)
    assert batching.allowed_batch_sizes == [8, 16, 32]


def test_enable_batching_without_a_file_uses_this_servers_defaults(tmp_path: Path) -> None:
    settings = settings_of(f"--model_base_path={tmp_path}", "--enable_batching=true")
    assert settings.batching == BatchingSettings()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("enable_large_batch_splitting: true", 'no field named "enable_large_batch_splitting"'),
        ("max_batch_size { value: 0 }", "max_batch_size"),
        ("pad_variable_length_inputs: true", "pad_variable_length_inputs is not supported"),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 4",
            "must equal max_batch_size",
        ),
    ],
)
def test_bad_batching_parameters_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, message: str
) -> None:
    path = write(tmp_path / "batching.config", params)
    argv = [
        f"--model_base_path={tmp_path}",
        "--enable_batching",
        f"--batching_parameters_file={path}",
    ]
    code, err = exits_with(argv, capsys)
    assert code == 2
    assert "--batching_parameters_file" in err and message in err


def test_batching_file_without_enable_batching_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "batching.config", "max_batch_size { value: 8 }")
    code, err = exits_with(
        [f"--model_base_path={tmp_path}", f"--batching_parameters_file={path}"], capsys
    )
    assert code == 2 and "without --enable_batching" in err


# ----- --monitoring_config_file -----------------------------------------------------------
def test_bad_monitoring_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "monitoring.config", "prometheus_config { enable: yes please }")
    code, err = exits_with(
        [f"--model_base_path={tmp_path}", f"--monitoring_config_file={path}"], capsys
    )
    assert code == 2 and "--monitoring_config_file" in err and "MonitoringConfig" in err


# ----- flags this server does not support ---------------------------------------------------
def test_unknown_flag_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exits_with([f"--model_base_path={tmp_path}", "--no_such_flag=1"], capsys)
    assert code == 2 and "--no_such_flag=1" in err


def test_abbreviations_are_not_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exits_with([f"--model_base_path={tmp_path}", "--rest_api=8501"], capsys)
    assert code == 2 and "--rest_api=8501" in err


def test_refused_flag_off_its_default_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = exits_with([f"--model_base_path={tmp_path}", "--ssl_config_file=/etc/ssl"], capsys)
    assert code == 2
    assert "--ssl_config_file=/etc/ssl is not supported" in err
    assert "PRIMER_TLS_CERT_FILE" in err


def test_refused_flag_at_its_default_is_accepted(tmp_path: Path) -> None:
    settings = settings_of(f"--model_base_path={tmp_path}", "--saved_model_tags=serve")
    assert settings.model_paths == {"default": str(tmp_path)}


def test_bad_boolean_value_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exits_with([f"--model_base_path={tmp_path}", "--enable_batching=maybe"], capsys)
    assert code == 2 and "--enable_batching" in err and "expected true or false" in err


def test_no_model_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = exits_with(["--port=8500"], capsys)
    assert code == 2 and "--model_base_path" in err and "--model_config_file" in err


def test_ignored_flags_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from service.tfserving_cli.flags import check_unsupported

    args = build_parser().parse_args(
        [f"--model_base_path={tmp_path}", "--enable_model_warmup=false", "--grpc_max_threads=8"]
    )
    with caplog.at_level(logging.WARNING):
        check_unsupported(args)
    assert "--enable_model_warmup=False is accepted and ignored" in caplog.text
    assert "--grpc_max_threads=8 is accepted and ignored" in caplog.text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("TensorFlow ModelServer: primer-serving")


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ("prometheus_config { enable: true }", "/monitoring/prometheus/metrics"),
        ('prometheus_config { enable: true path: "/tfs/metrics" }', "/tfs/metrics"),
        ('prometheus_config { enable: false path: "/tfs/metrics" }', None),
        ("", None),
    ],
)
def test_monitoring_config_gives_the_prometheus_path(
    tmp_path: Path, config: str, path: str | None
) -> None:
    from service.tfserving_cli.config_files import read_monitoring_path

    assert read_monitoring_path(write(tmp_path / "monitoring.config", config)) == path
