"""bench/results/ keeps the record of full runs; a --quick smoke run never overwrites it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import harness
from bench.harness import Figure, record, save
from tests.conftest import ROOT


def _result(quick: bool) -> harness.Result:
    return record("demo", [Figure(name="rate", value=1.0, unit="op/s")], quick=quick, seconds=0.1)


def test_a_quick_run_leaves_the_record_and_its_history_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    full = save(_result(quick=False))
    record_bytes = full.read_bytes()
    history = (tmp_path / "demo.history.jsonl").read_bytes()
    quick = save(_result(quick=True))
    assert quick == tmp_path / "quick" / "demo.json" and quick.exists()
    assert full.read_bytes() == record_bytes
    assert (tmp_path / "demo.history.jsonl").read_bytes() == history


def test_quick_results_and_example_outputs_are_ignored_by_git() -> None:
    paths = ["bench/results/quick/probe_video.json", "out-encord/encord-1.json", "out/labelbox-1.json"]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.stdout.split() == paths
