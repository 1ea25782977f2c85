"""``make bench-memory``: the server's RSS while it swaps versions of a VGG16-sized model.

A random-init VGG16 (138M parameters, about 1.1 GB of variables) is exported once into a
scratch folder, never into the repository. ``primer-serve`` serves a copy as version 1;
each swap then publishes the next version (a copy renamed into place, as an export does)
and waits until it is AVAILABLE and the old one is gone. The server's ``VmRSS`` is sampled
every 100 ms the whole time. Reported, as ratios to the steady state after the first load:
each swap's peak, and the RSS it settles at. With ``--load``, the steady state is measured
with the client predicting too, as every later sample is: a serving process holds its
activations' buffers (malloc keeps freed heap pages for the next request).

Options run the same swaps under another environment (``--env TF_ENABLE_ONEDNN_OPTS=1`` to
compare allocators), another swap policy, or a memory budget; ``--load`` keeps a client
posting predictions during the swaps and reports how many failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loadtest.processes import free_port, running
from loadtest.reports import write_report

MODEL = "vgg16"
SAMPLE_S = 0.1


def export_model(folder: Path) -> Path:
    """A random-init VGG16 exported as ``folder/vgg16/1`` (what each swap copies)."""
    import keras

    from contract.model_card import ImageContract
    from training.export import export_model as export
    from training.models.architectures import vgg16

    keras.utils.set_random_seed(0)
    export(
        vgg16((224, 224, 3), 1000),
        model_dir=folder,
        name=MODEL,
        image=ImageContract(color_mode="rgb", height=224, width=224, resample="bilinear"),
        labels=[f"class_{i}" for i in range(1000)],
        provenance={"architecture": "vgg16", "dataset": "random-init"},
        version=1,
    )
    return folder / MODEL / "1"


def publish(source: Path, repo: Path, version: int, model: str = MODEL) -> None:
    """Copy ``source`` into ``repo/<model>/<version>`` atomically (staging folder + rename)."""
    staging = repo / model / f".tmp-{version}"
    shutil.copytree(source, staging)
    staging.rename(repo / model / str(version))


class RssSampler:
    """Samples a process's ``VmRSS`` every 100 ms in a thread; keeps (time, bytes) pairs."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int:
        for line in self._status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self._read()))
            except OSError:
                return
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t <= end]


def status(url: str, model: str = MODEL) -> list[dict[str, Any]]:
    """TF Serving's version status list for the model."""
    with urllib.request.urlopen(f"{url}/v1/models/{model}", timeout=10) as response:
        return json.load(response)["model_version_status"]


def wait_until_only(url: str, version: int, timeout: float, model: str = MODEL) -> dict[str, Any]:
    """Wait until ``version`` is AVAILABLE and no other version is held; its status entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = status(url, model)
        held = [e for e in entries if e["state"] != "END"]
        if [int(e["version"]) for e in held] == [version] and held[0]["state"] == "AVAILABLE":
            return held[0]
        refused = [e for e in entries if int(e["version"]) == version and e["state"] == "END"]
        if refused:  # refused by the budget, or failed: the old version keeps serving
            return refused[0]
        time.sleep(0.2)
    raise TimeoutError(f"version {version} was not the only one within {timeout:.0f}s")


@contextmanager
def client_load(url: str, body: bytes) -> Iterator[dict[str, int]]:
    """One client posting predictions back to back; counts answers by status code."""
    counts: dict[str, int] = {}
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            request = urllib.request.Request(
                f"{url}/v1/models/{MODEL}:predict", body, {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    code = str(response.status)
            except urllib.error.HTTPError as exc:
                code = str(exc.code)
            except OSError as exc:
                code = type(exc).__name__
            counts[code] = counts.get(code, 0) + 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=180)


def settle(sampler: RssSampler, seconds: float) -> int:
    """The median RSS over the next ``seconds``."""
    start = time.monotonic()
    time.sleep(seconds)
    return int(statistics.median(sampler.between(start, time.monotonic())))


def measure(args: argparse.Namespace, source: Path, work: Path) -> dict[str, Any]:
    repo = work / "models"
    shutil.rmtree(repo, ignore_errors=True)
    (repo / MODEL).mkdir(parents=True)
    publish(source, repo, 1)
    config = work / "config.yaml"
    config.write_text(json.dumps(args.config))
    rest, grpc_port = free_port(), free_port()
    command = [
        str(Path(sys.executable).parent / "primer-serve"),
        *("--model-base-path", str(repo), "--host", "127.0.0.1"),
        *("--rest-port", str(rest), "--grpc-port", str(grpc_port)),
        *("--config", str(config), "--poll-interval-s", "1", "--log-level", "WARNING"),
    ]
    env = dict(item.split("=", 1) for item in args.env)
    url = f"http://127.0.0.1:{rest}"
    body = json.dumps({"instances": [{"b64": args.image_b64}]}).encode()
    swaps: list[dict[str, Any]] = []
    with running(command, rest, env=env, timeout=600) as process, RssSampler(process.pid) as rss:
        steady_idle = steady = settle(rss, 5)
        with client_load(url, body) if args.load else _no_load() as counts:
            if args.load:  # the steady state of a serving process: its buffers in use too
                steady = settle(rss, 10)
            for version in range(2, args.swaps + 2):
                started = time.monotonic()
                publish(source, repo, version)
                entry = wait_until_only(url, version, args.swap_timeout)
                finished = time.monotonic()
                peak = max(rss.between(started, finished))
                settled = settle(rss, args.settle)
                swaps.append(
                    {
                        "version": version,
                        "state": entry["state"],
                        "status": entry.get("status", {}),
                        "seconds": round(finished - started, 1),
                        "peak_ratio": round(peak / steady, 3),
                        "settled_ratio": round(settled / steady, 3),
                    }
                )
                print(f"  swap to {version}: {swaps[-1]}", flush=True)
                if entry["state"] == "END":
                    break
    return {
        "env": env,
        "config": args.config,
        "steady_idle_mib": steady_idle >> 20,
        "steady_mib": steady >> 20,
        "swaps": swaps,
        "max_peak_ratio": max(s["peak_ratio"] for s in swaps),
        "last_settled_ratio": swaps[-1]["settled_ratio"],
        "client_answers": dict(counts),
    }


@contextmanager
def _no_load() -> Iterator[dict[str, int]]:
    yield {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after each swap")
    parser.add_argument("--swap-timeout", type=float, default=600.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument(
        "--config", type=json.loads, default={}, help="the server's settings file, as JSON"
    )
    parser.add_argument("--load", action="store_true", help="a client predicting throughout")
    parser.add_argument("--out", type=Path, default=Path("reports/memory.json"))
    args = parser.parse_args(argv)
    args.image_b64 = _test_image_b64()
    with tempfile.TemporaryDirectory(prefix="primer-memory-") as scratch:
        work = Path(scratch)
        print("exporting a random-init vgg16 ...", flush=True)
        source = export_model(work / "source")
        variables = sum(f.stat().st_size for f in (source / "variables").iterdir())
        print(f"variables on disk: {variables >> 20} MiB", flush=True)
        report = measure(args, source, work)
    report["variables_mib"] = variables >> 20
    write_report(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "swaps"}, indent=2))


def _test_image_b64() -> str:
    import base64

    data = Path(__file__).with_name("data") / "digit_7_0.png"
    return base64.b64encode(data.read_bytes()).decode()


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
