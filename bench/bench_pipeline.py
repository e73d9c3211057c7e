"""The pipeline's own overhead: objects/s through every stage with the probe answered by a
constant (no I/O), at 1 and 2 processes, and peak RSS while draining a long manifest.

Targets (issue #2): >= 20,000 objects/s per process; peak RSS <= 300 MB draining a
1,000,000-line manifest, independent of the backlog. Baselines measured in the same run:
the same per-object work in a plain sequential loop (what queues/tasks/acks cost), one
process (what a second one adds), and a short manifest (RSS independent of backlog length).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from bench.harness import Figure

ROOT = Path(__file__).resolve().parent.parent


def manifest(path: Path, n: int, offset: int = 0) -> Path:
    with path.open("w") as f:
        for i in range(offset, offset + n):
            f.write(f'"https://cdn.example.com/images/{i:09d}.jpg"\n')
    return path


def run_one(man: Path, work: Path, *, sequential: bool = False) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "bench.pipeline_run", str(man), str(work)]
    if sequential:
        args.append("--sequential")
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def result(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline_run exited {proc.returncode}")
    data: dict[str, float] = msgspec.json.decode(out.strip().splitlines()[-1])
    return data


def run(quick: bool) -> list[Figure]:
    n = 50_000 if quick else 200_000
    long_n = 200_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-") as tmp:
        t = Path(tmp)
        man = manifest(t / "m.ndjson", n)
        seq = result(run_one(man, t / "seq", sequential=True))
        one = result(run_one(man, t / "one"))
        halves = [manifest(t / f"h{i}.ndjson", n // 2, offset=i * n) for i in range(2)]
        procs = [run_one(h, t / f"two{i}") for i, h in enumerate(halves)]
        two = [result(p) for p in procs]
        two_rate = sum(r["objects"] for r in two) / max(r["seconds"] for r in two)
        short = result(run_one(manifest(t / "short.ndjson", 10_000), t / "short"))
        long_ = result(run_one(manifest(t / "long.ndjson", long_n), t / "long"))
    return [
        Figure(
            name="pipeline_objects_per_s_1proc",
            value=one["per_s"],
            unit="objects/s",
            baseline=seq["per_s"],
            baseline_name="sequential loop, same work",
            target=20_000,
            note=f"{n} objects, constant probe, files sink + SQLite ledger",
        ),
        Figure(
            name="pipeline_objects_per_s_2proc",
            value=two_rate,
            unit="objects/s",
            baseline=one["per_s"],
            baseline_name="1 process",
            target=40_000,
            note="two processes on their own halves of the input, aggregate",
        ),
        Figure(
            name="peak_rss_long_manifest",
            value=long_["peak_rss_mb"],
            unit="MB",
            baseline=short["peak_rss_mb"],
            baseline_name="10,000-line manifest",
            target=300,
            higher_is_better=False,
            note=f"{long_n:,}-line NDJSON manifest drained at {long_['per_s']:,.0f} objects/s",
        ),
    ]
