"""A real `mlflow server` on a free loopback port for the tests that need one (the tracking-server
sweep, the dashboard in a browser): SQLite backend store and artifact root in the test's folder,
started in its own session and stopped (the whole process group) afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(
    folder: Path, artifacts: Path | None = None, extra_env: dict[str, str] | None = None, timeout_s: float = 240
) -> Iterator[str]:
    """Start the server, wait for /health, yield its base URL, stop it."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(extra_env or {})}
    cmd = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}"]
    if artifacts is not None:
        cmd += ["--artifacts-destination", str(artifacts)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log_path = folder / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:  # noqa: S310 - loopback test server
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"mlflow server did not answer /health within {timeout_s:.0f} s")
            time.sleep(1)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()
