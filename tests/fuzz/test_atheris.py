"""A short coverage-guided run of ``atheris_decoders`` when atheris is installed (it is optional)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_a_short_atheris_run_finds_no_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_decoders", "-runs=500", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 500 runs" in proc.stderr
    assert not list(tmp_path.iterdir())  # no crash-* input written
