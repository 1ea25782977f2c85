"""Invariants of the Dockerfile and its build context, read statically.

No Docker engine runs on this machine, so nothing here builds the image. These tests prove
what the files say: which user the final image runs as, its health check, ports, entrypoint
and environment (the PRIMER_* values must be real settings), that no secret is baked in, and
what the build context contains. Two build steps run here without Docker: the command that
lists the dependencies, and building the package's wheel from only the files the Dockerfile
copies. They do not prove that the base images exist, that pip resolves inside the image,
or that CUDA works in the GPU variant. The entrypoint itself is
exercised by test_entrypoint.py, run directly on this machine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from service.config import Settings
from tests.suites.deploy.conftest import REPO
from tests.suites.deploy.dockerfile import Dockerfile, DockerIgnore, Stage

DOCKERFILE = Dockerfile(REPO / "Dockerfile")
IGNORE = DockerIgnore(REPO / ".dockerignore")
SECRET_WORDS = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE
)
# (build args, what is being checked): every shape of the final image
VARIANTS = [{}, {"MODELS": "baked"}, {"VARIANT": "gpu"}, {"VARIANT": "gpu", "MODELS": "baked"}]


def final_chain(build_args: dict[str, str]) -> list[Stage]:
    return DOCKERFILE.chain(None, build_args)


@pytest.mark.parametrize("build_args", VARIANTS, ids=str)
def test_final_image_runs_as_a_numeric_non_root_user(build_args: dict[str, str]) -> None:
    user = DOCKERFILE.last(final_chain(build_args), "USER")
    assert user is not None, "no USER: the image would run as root"
    uid = user.args.split(":")[0]
    # numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd
    assert uid.isdigit() and int(uid) != 0, user.args


def test_user_is_created_with_the_same_uid() -> None:
    runtime = DOCKERFILE.stage("runtime")
    uid = DOCKERFILE.last([runtime], "USER").args.split(":")[0]
    assert any(f"--uid {uid}" in run.args for run in runtime.of("RUN"))


@pytest.mark.parametrize("build_args", VARIANTS, ids=str)
def test_healthcheck_probes_readiness_in_exec_form(build_args: dict[str, str]) -> None:
    healthcheck = DOCKERFILE.last(final_chain(build_args), "HEALTHCHECK")
    assert healthcheck is not None
    options, _, command = healthcheck.args.partition("CMD ")
    assert "--start-period=" in options, "model loading needs a start period"
    argv = json.loads(command)
    assert argv[0] == "python", "the slim image has python, not curl"
    assert "/v2/health/ready" in " ".join(argv)
    assert "PRIMER_REST_PORT" in " ".join(argv), "must follow a moved REST port"


@pytest.mark.parametrize("build_args", VARIANTS, ids=str)
def test_ports_and_entrypoint(build_args: dict[str, str]) -> None:
    chain = final_chain(build_args)
    exposed = {p for e in Dockerfile.instructions(chain, "EXPOSE") for p in e.args.split()}
    assert exposed == {"8500", "8501"}
    assert DOCKERFILE.last(chain, "ENTRYPOINT").exec_form() == ["primer-entrypoint"]


def test_entrypoint_is_the_packaged_console_script() -> None:
    """Read from this tree's pyproject (the venv's installed metadata may be older)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as in the image
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["primer-entrypoint"] == "service.tfserving_cli.entrypoint:main"
    assert scripts["primer-serve"] == "service.__main__:main"
    assert scripts["tensorflow_model_server"] == "service.tfserving_cli.main:main"


def test_image_environment_is_valid_settings(
    settings_from_env: Callable[[dict[str, str]], Settings],
) -> None:
    env = Dockerfile.environment(final_chain({}), {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert env["PATH"].startswith("/opt/venv/bin:")
    settings = settings_from_env(env)
    assert settings.model_base_path == "/models"
    assert settings.host == "0.0.0.0"
    assert (settings.grpc_port, settings.rest_port) == (8500, 8501)


def test_models_are_mounted_or_baked_at_the_model_base_path() -> None:
    assert [s.name for s in final_chain({})] == ["runtime", "with-models-none", "final"]
    baked = final_chain({"MODELS": "baked"})
    copies = [c.args for c in Dockerfile.instructions(baked, "COPY") if "--from=models" in c.args]
    assert copies and copies[0].endswith("/models/ /models/")
    assert DOCKERFILE.stage("models").of("COPY")[0].args == "models/ /models/"


def test_build_is_multi_stage_with_a_slim_runtime() -> None:
    runtime = DOCKERFILE.stage("runtime")
    assert "slim" in runtime.base
    assert DOCKERFILE.stage("build").base == runtime.base, "the venv is copied between them"
    copies = [c.args for c in runtime.of("COPY")]
    assert copies == ["--from=build /opt/venv /opt/venv"], "only the venv reaches the runtime"
    assert not any("pip install" in r.args for r in runtime.of("RUN"))


def test_gpu_variant_adds_tensorflow_with_cuda_at_the_same_version() -> None:
    install = " ".join(r.args for r in DOCKERFILE.stage("build").of("RUN"))
    assert '"$VARIANT" = "gpu"' in install
    assert "tensorflow[and-cuda]==$(python -c" in install
    assert "exit 1" in install, "an unknown VARIANT must fail the build"
    assert DOCKERFILE.global_args["VARIANT"] == "cpu"


def test_no_secrets_in_the_dockerfile() -> None:
    for stage in DOCKERFILE.stages:
        for instruction in stage.instructions:
            if instruction.keyword in {"ENV", "ARG", "LABEL"}:
                names = re.findall(r"(\w+)=", instruction.args) or [instruction.args]
                assert not [n for n in names if SECRET_WORDS.search(n)], instruction
            if instruction.keyword == "ADD":
                pytest.fail("use COPY; ADD fetches URLs and unpacks archives")
            if instruction.keyword == "COPY":
                assert not re.search(
                    r"\.env\b|id_rsa|\.pem\b|\.key\b|credentials", instruction.args
                ), instruction
    for name in DOCKERFILE.global_args:
        assert not SECRET_WORDS.search(name)


def test_compose_and_docs_targets_exist() -> None:
    names = {s.name for s in DOCKERFILE.stages}
    assert {"build", "models", "runtime", "loadtest"} <= names


# ----- build context ---------------------------------------------------------------------
def test_dockerignore_keeps_out_environments_caches_and_artefacts() -> None:
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "reports/bench.csv",
        ".pytest_cache/x",
        ".ruff_cache/x",
        "service/__pycache__/config.cpython-311.pyc",
        "service/protocols/__pycache__/a.pyc",
        "contract/__pycache__/layout.cpython-311.pyc",
        "models/mnist_dnn/.tmp-2/saved_model.pb",
        "data/mnist.npz",
        "training/out/checkpoints/ckpt",
        ".env",
        "id_rsa",
        "loadtest/results/stats.csv",
        "tests/test_x.py",
        "docs/deploy.md",
    ]:
        assert IGNORE.excluded(path), path


def test_dockerignore_lets_in_everything_the_dockerfile_copies() -> None:
    for path in [
        "pyproject.toml",
        "service/__main__.py",
        "service/transport/rest_app.py",
        "contract/layout.py",
        "training/__init__.py",
        "models/mnist_dnn/1/saved_model.pb",
        "models/mnist_dnn/1/variables/variables.index",
    ]:
        assert not IGNORE.excluded(path), path
    context = {p.relative_to(REPO).as_posix() for p in IGNORE.context_files(REPO)}
    for stage in DOCKERFILE.stages:
        for copy in stage.of("COPY"):
            if "--from=" in copy.args:
                continue
            *sources, _ = copy.args.split()
            for source in sources:
                source = source.rstrip("/")
                assert (REPO / source).exists(), f"COPY source {source} is missing"
                if (REPO / source).is_file():
                    assert source in context, f"{source} is excluded by .dockerignore"
                else:
                    assert not IGNORE.excluded(source + "/x.py"), source


def test_build_context_is_small() -> None:
    files = IGNORE.context_files(REPO)
    size = sum(f.stat().st_size for f in files)
    assert size < 200 * 1024 * 1024, f"{size / 1e6:.0f} MB would be sent to the builder"
    assert not [f for f in files if f.name.endswith((".pyc", ".npz"))]


# ----- the build steps that can run without Docker -------------------------------------------
def test_requirements_step_lists_the_project_dependencies(tmp_path: Path) -> None:
    """Runs the build stage's dependency-listing command exactly as the Dockerfile has it."""
    step = next(r.args for r in DOCKERFILE.stage("build").of("RUN") if "tomllib" in r.args)
    command = step.split(" && ")[0]
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    python_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{python_dir}:/usr/bin:/bin"}
    subprocess.run(["sh", "-c", command], cwd=tmp_path, env=env, check=True, timeout=60)
    listed = (tmp_path / "requirements.txt").read_text().split()
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as in the image
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert listed == expected


def test_package_builds_from_the_copied_sources_alone(tmp_path: Path) -> None:
    """The wheel ``pip install --no-deps .`` builds, from only what the Dockerfile copies."""
    pytest.importorskip("setuptools")
    build = DOCKERFILE.stage("build")
    for copy in build.of("COPY"):
        *sources, _ = copy.args.split()
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(
                    src, tmp_path / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy(src, tmp_path / source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("primer_serving-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points_file = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points_file).decode()
    assert "service/__main__.py" in names
    assert "service/protocols/kserve_v2/generated/__init__.py" in names, "generated code packaged"
    assert "contract/preprocessing.py" in names, "the shared contract is packaged"
    assert "service/transport/openapi.yaml" in names, "the OpenAPI document is packaged"
    assert "primer-serve = service.__main__:main" in scripts
    assert "primer-entrypoint = service.tfserving_cli.entrypoint:main" in scripts
    assert "tensorflow_model_server = service.tfserving_cli.main:main" in scripts
    assert "service/tfserving_cli/generated/tfserving_config_pb2.py" in names
