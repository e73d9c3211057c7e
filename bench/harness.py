"""The benchmark harness.

Each benchmark is a module ``bench/bench_<name>.py`` with ``run(quick: bool) -> list[Figure]``.
Every figure carries a baseline measured *in the same run* (these machines are shared and noisy:
absolute numbers drift, ratios against a baseline run alongside are what we compare).

Results go to ``bench/results/<name>.json`` (the latest) and are appended to
``bench/results/<name>.history.jsonl``; the table shows the change against the previous result
for the same benchmark.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import msgspec

RESULTS = Path(__file__).resolve().parent / "results"


class Figure(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.value / self.baseline

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


class FigureOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None
    target: float | None = None
    meets_target: bool | None = None
    higher_is_better: bool = True
    note: str = ""


class Machine(msgspec.Struct, kw_only=True):
    host: str
    cpus: int
    python: str
    platform: str
    load_avg_1m: float


class Result(msgspec.Struct, kw_only=True):
    benchmark: str
    at: str
    commit: str
    quick: bool
    seconds: float
    machine: Machine
    figures: list[FigureOut]


def machine() -> Machine:
    return Machine(
        host=platform.node(),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        platform=platform.platform(),
        load_avg_1m=round(os.getloadavg()[0], 2),
    )


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=RESULTS.parent,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=RESULTS.parent,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") or "unknown"
    except OSError:
        return "unknown"


def to_out(f: Figure) -> FigureOut:
    return FigureOut(
        name=f.name,
        value=round(f.value, 4),
        unit=f.unit,
        baseline=f.baseline,
        baseline_name=f.baseline_name,
        ratio=None if f.ratio is None else round(f.ratio, 3),
        target=f.target,
        meets_target=f.meets_target,
        higher_is_better=f.higher_is_better,
        note=f.note,
    )


def previous(name: str) -> Result | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=Result)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def save(result: Result) -> Path:
    """A full run becomes the record (``<name>.json``, tracked) and joins its history; a
    ``--quick`` smoke run goes to ``results/quick/`` (git-ignored) and touches neither."""
    data = msgspec.json.encode(result)
    folder = RESULTS / "quick" if result.quick else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.benchmark}.json"
    path.write_bytes(msgspec.json.format(data, indent=2) + b"\n")
    if not result.quick:
        with (RESULTS / f"{result.benchmark}.history.jsonl").open("ab") as f:
            f.write(data + b"\n")
    return path


def table(result: Result, prev: Result | None) -> str:
    before = {f.name: f for f in prev.figures} if prev else {}
    rows = [("figure", "value", "unit", "baseline", "ratio", "target", "vs prev")]
    for f in result.figures:
        p = before.get(f.name)
        change = ""
        if p is not None and p.ratio and f.ratio:
            change = f"{(f.ratio / p.ratio - 1) * 100:+.0f}% (ratio)"
        elif p is not None and p.value:
            change = f"{(f.value / p.value - 1) * 100:+.0f}%"
        target = ""
        if f.target is not None:
            target = (
                f"{'>=' if f.higher_is_better else '<='}{f.target:g} {'ok' if f.meets_target else 'MISS'}"
            )
        rows.append(
            (
                f.name,
                f"{f.value:,.4g}",
                f.unit,
                "" if f.baseline is None else f"{f.baseline:,.4g} ({f.baseline_name or 'baseline'})",
                "" if f.ratio is None else f"{f.ratio:.2f}x",
                target,
                change,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    notes = [f"  note {f.name}: {f.note}" for f in result.figures if f.note]
    return "\n".join(
        [
            f"== {result.benchmark} ({result.commit}, {result.seconds:.1f}s,"
            f" load {result.machine.load_avg_1m})",
            *lines,
            *notes,
        ]
    )


def record(name: str, figures: list[Figure], *, quick: bool, seconds: float) -> Result:
    return Result(
        benchmark=name,
        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        commit=commit(),
        quick=quick,
        seconds=round(seconds, 2),
        machine=machine(),
        figures=[to_out(f) for f in figures],
    )
