"""Shared fixtures: the path of the repo, a runner for the real CLI as a subprocess."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent


def require_tool(name: str) -> str:
    """The path of a system tool the tests need; in CI its absence is a failure, not a skip."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (make deps installs it)")
        pytest.skip(f"{name} not installed (make deps installs it)")
    return path


def ingestd(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``ingestd`` CLI (``python -m daemon``) as a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or ROOT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ingestd {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def start_daemon(
    config: Path, env: dict[str, str] | None = None, *, output: bool = False
) -> subprocess.Popen[str]:
    """``ingestd run -c CONFIG`` in the background (stdout/stderr piped when ``output``)."""
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(config)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=pipe,
        stderr=pipe,
        text=True,
    )


def kill_at_random_moments(
    config: Path, kills: int, rng: random.Random, env: dict[str, str] | None = None
) -> None:
    """Start the daemon and SIGKILL it at a random moment (0.3 to 3 s in), ``kills`` times."""
    for _ in range(kills):
        proc = start_daemon(config, env)
        time.sleep(rng.uniform(0.3, 3.0))  # the random moment of the kill, not a wait for state
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def cli():
    return ingestd


@pytest.fixture(autouse=True)
def _structlog_defaults():
    """Tests that configure logging (level filters, output streams) must not leak into others."""
    yield
    structlog.reset_defaults()
