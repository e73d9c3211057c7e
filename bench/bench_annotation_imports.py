"""Annotation imports into a Labelbox project against the local server
(tests/platforms/labelbox_project_server.py).

Figures:

* ``annotation_imports.lines_per_s``: annotation lines per second from sidecar files on disk to
  finished import jobs with every line's outcome known: each file read, decoded, validated
  against the ontology and encoded (the annotation stage's pure work, probing aside), then the
  items handed to the labelbox sink in batches of 100 sidecars (jobs of <= 500 data rows, the
  ledger record before each create, the multipart create, paced reads, the status file). Polls are
  paced at 0.02 s here (>= 2 s in production) and the server finishes a job on its first read, so
  this is our cost and the protocol's, not Labelbox's. Baseline, same run: the same NDJSON bodies
  sent as bare multipart create requests by a plain aiohttp loop (the transfer alone).
* ``annotation_imports.requests_per_10k_lines``: every request the sink made, per 10,000 lines.
  Baseline: what the SDK needs at least for the same jobs (create, one ``wait_till_done`` read,
  the status file GET), i.e. 3 per job. Lower is better.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from bench.harness import Figure
from bench.rig import MemoryCheckpoints, all_accepted, bare_posts, fan_out
from daemon.core.config import AnnotationsConfig, SinkConfig, TargetConfig
from daemon.sinks.base import ANNOTATIONS, Batch, BatchItem
from daemon.sinks.labelbox import open_labelbox_deliverer
from daemon.sinks.labelbox.project import in_project_name
from tests.platforms.labelbox_project_server import ProjectServer
from tests.platforms.labelbox_server import TEST_KEY
from workers.annotations.encode import encode_ndjson
from workers.annotations.ontology import load_ontology
from workers.annotations.sidecar import LoadOptions, load_sidecar
from workers.annotations.validate import validate_lines
from workers.platforms.labelbox import imports as imp

ONTOLOGY = {
    "tools": [{"name": "car", "tool": "rectangle"}],
    "classifications": [
        {"name": "weather", "type": "radio", "options": [{"label": "sunny", "value": "sunny"}]}
    ],
}
PER_BATCH = 100
IN_FLIGHT = 4
LINES_PER_FILE = 5  # four bbox tracks and one radio per video


def write_sidecars(folder: Path, n: int) -> list[tuple[str, Path]]:
    out = []
    for i in range(n):
        key = f"bench/{i:06d}.mp4"
        lines: list[dict[str, object]] = [
            {
                "name": "car",
                "dataRow": {"globalKey": key},
                "segments": [
                    {
                        "keyframes": [
                            {"frame": f, "bbox": {"top": 10 + t, "left": 20, "height": 40, "width": 50}}
                            for f in (1, 15, 30)
                        ]
                    }
                ],
            }
            for t in range(LINES_PER_FILE - 1)
        ]
        lines.append({"name": "weather", "answer": {"name": "sunny"}, "dataRow": {"globalKey": key}})
        path = folder / f"{i:06d}.mp4.labels.ndjson"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        out.append((key, path))
    return out


def prepare(files: list[tuple[str, Path]]) -> list[BatchItem]:
    """What the annotation stage does to each file (read, decode, validate, encode)."""
    ontology = load_ontology(json.dumps(ONTOLOGY).encode())
    options = LoadOptions(format="auto", names=(), default_name="object", tolerance=0.5)
    items = []
    for key, path in files:
        lines, problems = load_sidecar(
            path.read_bytes(), source=path.name, suffix=".labels.ndjson", global_key=key, facts=None,
            options=options,
        )  # fmt: skip
        lines, found = validate_lines(lines, media=None, ontology=ontology, kind="mal")
        if problems or found:
            raise RuntimeError(f"{path.name}: {[p.render() for p in problems + found][:2]}")
        items.append(BatchItem(path.name, ANNOTATIONS, encode_ndjson(lines)))
    return items


async def ours(server: ProjectServer, files: list[tuple[str, Path]]) -> tuple[float, int, int]:
    cfg = SinkConfig(type="labelbox", endpoint=server.url, requests_per_minute=600_000, tasks_in_flight=4)
    target = TargetConfig(platform="labelbox", dataset=server.dataset_id, project=server.project_id)
    env = {"INGESTD_SECRET_LABELBOX_API_KEY": TEST_KEY}
    ckpt = MemoryCheckpoints({in_project_name(k): "bench" for k, _ in files})
    before = len(server.requests)
    async with AsyncExitStack() as stack:
        d = await open_labelbox_deliverer(
            cfg, target, stack, ckpt, environ=env, poll_interval=0.02, annotations=AnnotationsConfig()
        )
        started = time.perf_counter()
        items = prepare(files)
        batches = [Batch.of(items[i : i + PER_BATCH]) for i in range(0, len(items), PER_BATCH)]
        prepared = time.perf_counter() - started

        async def send(batch: Batch) -> None:
            all_accepted(await d.deliver(batch))

        elapsed = prepared + await fan_out(batches, IN_FLIGHT, send)
    lines = sum(len(i.body.splitlines()) for i in items)
    return elapsed, len(server.requests) - before, lines


async def bare(server: ProjectServer, bodies: list[bytes]) -> float:
    parts = [imp.file_body("mal", server.project_id, f"bare-{i}", b) for i, b in enumerate(bodies)]
    return await bare_posts(server.url, parts, api_key=TEST_KEY, concurrency=IN_FLIGHT)


async def measure(quick: bool) -> list[Figure]:
    n = 1_000 if quick else 10_000
    server = ProjectServer(media_type="VIDEO", normalized=ONTOLOGY)
    await server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files = write_sidecars(Path(tmp), n)
            for key, _ in files:
                server.rows[key.casefold()] = {"global_key": key}
                server.in_project[key.casefold()] = "bench"
            our_t, requests, lines = await ours(server, files)
            jobs = len(server.jobs)
            bodies = [
                imp.join_ndjson(ln.encode() for ln in map(json.dumps, j.lines)) for j in server.jobs.values()
            ]
            bare_t = await bare(server, bodies)
    finally:
        await server.stop()
    assert set(server.job_creations.values()) == {1}
    return [
        Figure(
            name="annotation_imports.lines_per_s",
            value=lines / our_t,
            unit="lines/s",
            baseline=lines / bare_t,
            baseline_name="bare multipart creates of the same NDJSON",
            note=f"{n} sidecars, {lines} lines, {jobs} jobs, {IN_FLIGHT} batches in flight, polls 0.02 s",
        ),
        Figure(
            name="annotation_imports.requests_per_10k_lines",
            value=requests * 10_000 / lines,
            unit="requests",
            baseline=3 * jobs * 10_000 / lines,
            baseline_name="SDK minimum: create, one read, status file per job",
            higher_is_better=False,
            note=f"{requests} requests for {lines} lines in {jobs} jobs",
        ),
    ]


def run(quick: bool) -> list[Figure]:
    return asyncio.run(measure(quick))
