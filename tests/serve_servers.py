"""Real `minidistil serve` processes on 127.0.0.1 for the server tests, and what they share.

`ServerProcess` starts the command on an ephemeral port (`--port 0`; the port is read from the
startup line), waits for /health, and stops it with SIGTERM. The `fleet` fixture starts every
server the test files need at once (their start-up overlaps) and stops them at the end of the
session; each test file takes the ones it uses.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from pipeline_models import build_model_dir

pytest.importorskip("starlette", reason="the server tests need the serve extra: pip install -e '.[dev,serve]'")
pytest.importorskip("uvicorn", reason="the server tests need the serve extra: pip install -e '.[dev,serve]'")
pytest.importorskip("prometheus_client", reason="the server tests need the serve extra: pip install -e '.[dev,serve]'")

STARTUP_TIMEOUT = 90  # seconds; several servers start at once on a 2-core machine
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
TINY_MODELS = ("classifier", "mlm", "ner", "qa", "base")
API_KEY = "test-key-123"
BUSY_LIMIT = 4  # --max-concurrent-requests of the "busy" server


class ServerProcess:
    """`python -m minidistil.cli serve ARGS --port 0` as a child process; its stderr is kept in `log`."""

    def __init__(self, *args):
        self.args = [sys.executable, "-m", "minidistil.cli", "serve", "--host", "127.0.0.1", "--port", "0", *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("MINIDISTIL_API_KEY", None)
        self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self._listening = threading.Event()
        self.url = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                self.url = match.group(1)
                self._listening.set()

    @property
    def log(self):
        return "".join(self.lines)

    def wait_ready(self, timeout=STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start ({' '.join(self.args)}):\n{self.log}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server never became healthy:\n{self.log}")

    def terminate(self, timeout=30):
        """SIGTERM, then wait for the exit; returns the exit status (killed after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server did not stop within {timeout} s of SIGTERM:\n{self.log}") from None
        self._reader.join(5)
        return code


def metrics(url):
    """The server's Prometheus samples, {name{labels}: value}, from one GET /metrics."""
    samples = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def metric(url, name, labels=""):
    """The value of one Prometheus sample of the server (0 when absent)."""
    return metrics(url).get(name + labels, 0.0)


def wait_for(condition, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-models")
    return {name: Path(build_model_dir(name, root / name)) for name in TINY_MODELS}


@pytest.fixture(scope="session")
def fleet(tiny_dirs, minilm_dir):
    """Every server of the test files, started together: name -> ServerProcess (ready)."""
    tiny = {name: ["--model", str(tiny_dirs[name]), "--backend", "numpy", "--threads", "1"] for name in TINY_MODELS}
    specs = {
        "minilm": ["--model", str(minilm_dir), "--backend", "numba", "--threads", "1"],
        # the bare encoder as a sentence embedder (mean pooling), with few places: for overload and SIGTERM
        "busy": [*tiny["base"], "--task", "sentence-embedding", "--max-concurrent-requests", str(BUSY_LIMIT)],
        "int8": [*tiny["base"], "--task", "sentence-embedding", "--quantize", "int8"],
        **tiny,
    }
    specs["base"] += ["--api-key", API_KEY]
    servers = {name: ServerProcess(*args) for name, args in specs.items()}
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        running = [server for server in servers.values() if server.process.poll() is None]
        for server in running:
            server.process.send_signal(signal.SIGTERM)
        for server in running:
            server.terminate()


def assert_same(actual, expected, atol=1e-5, where="result"):
    """Nested lists/dicts equal, numbers within atol (the server's answer vs the in-process pipeline's)."""
    import numpy as np

    if isinstance(expected, np.ndarray):
        expected = expected.tolist()
    if isinstance(actual, np.ndarray):
        actual = actual.tolist()
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], atol, f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items, expected {len(expected)}"
        for n, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, atol, f"{where}[{n}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, (int, float)), f"{where}: expected a number, got {actual!r}"
        assert abs(actual - expected) <= atol, f"{where}: {actual} differs from {expected} by more than {atol}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
