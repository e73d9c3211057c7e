"""One pipeline run with the probe answered by a constant (a subprocess of bench_pipeline).

``python -m bench.pipeline_run MANIFEST WORKDIR [--sequential]`` prints one JSON line:
objects, seconds, objects/s, peak RSS. ``--sequential`` runs the same per-object work (key,
build, batch, files sink, ledger) in a plain loop without queues or tasks: the baseline that
shows what the pipeline's concurrency machinery costs.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import uvloop

from daemon.core.config import Config, from_dict
from daemon.core.jobs import Job
from daemon.core.logs import configure
from daemon.ledger.sqlite import Ledger
from daemon.pipeline.build import Builder
from daemon.service.wiring import UrlMaker, build_pipeline, key_maker, settings
from daemon.sinks.base import Batch, BatchItem, ItemResult
from daemon.sinks.files import FilesSink
from daemon.sources.manifest import ManifestSource
from workers.batching import Batcher
from workers.probe.media import MediaInfo

CONSTANT = MediaInfo(
    valid=True,
    kind="image",
    container="jpeg",
    mime_type="image/jpeg",
    file_size=123_456,
    width=1920,
    height=1080,
    bytes_read=65536,
    requests=1,
)


async def constant_probe(job: Job) -> MediaInfo:
    return CONSTANT


def config(manifest: Path, work: Path) -> Config:
    return from_dict(
        {
            "source": {"type": "manifest", "path": str(manifest)},
            "target": {"platform": "labelbox", "global_key_template": "{key}"},
            "sink": {"type": "files", "path": str(work / "out"), "max_items": 1000, "linger_ms": 200},
            "ledger": {"path": str(work / "ledger.db")},
            "log": {"level": "warning"},
        },
        base_dir=str(work),
    )


async def pipelined(cfg: Config) -> int:
    async with AsyncExitStack() as stack:
        p = await build_pipeline(cfg, stack, once=True, prober=constant_probe)
        c = await p.run()
        return c.delivered


async def sequential(cfg: Config, manifest: Path, work: Path) -> int:
    s = settings(cfg)
    key_for = key_maker(cfg)
    builder = Builder(platform="labelbox", accept_kinds=["image"], strict=False, make_url=UrlMaker(cfg))
    sink = FilesSink(work / "out", "labelbox")
    n = 0
    with Ledger(work / "ledger.db") as ledger:
        batcher: Batcher[Job] = Batcher(
            max_items=s.max_items,
            max_bytes=s.max_bytes,
            linger=1e9,
            size_of=lambda j: len(j.body),
            clock=time.monotonic,
        )

        def deliver(jobs: list[Job]) -> list[ItemResult]:
            batch = Batch.of([BatchItem(j.global_key, j.kind, j.body) for j in jobs])
            ledger.begin_batch(batch, "files")
            results = [ItemResult(key=i.key, status="accepted") for i in batch.items]
            sink._write(sink.path_for(batch), b"[" + b",".join(i.body for i in batch.items) + b"]")
            ledger.finish_batch(batch.id, results)
            return results

        async for msgs in ManifestSource(manifest).batches():
            jobs = []
            for m in msgs:
                for ref in m.refs:
                    job = Job(ref=ref, message_id=m.id, global_key=key_for(ref))
                    jobs.append(job)
            known = ledger.known([j.global_key for j in jobs])
            for job in jobs:
                if job.global_key.casefold() in known:
                    continue
                job.info = await constant_probe(job)
                builder.build(job)
                for full in batcher.add(job):
                    n += len(deliver(full))
            for m in msgs:
                await m.ack()
        rest = batcher.flush()
        if rest:
            n += len(deliver(rest))
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--sequential", action="store_true")
    args = ap.parse_args()
    configure("warning")
    cfg = config(args.manifest, args.work)
    gc.freeze()
    t = time.perf_counter()
    coro = sequential(cfg, args.manifest, args.work) if args.sequential else pipelined(cfg)
    n = uvloop.run(coro)
    el = time.perf_counter() - t
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(
        msgspec.json.encode(
            {"objects": n, "seconds": el, "per_s": n / el, "peak_rss_mb": rss_kib / 1024}
        ).decode()
        + "\n"
    )


if __name__ == "__main__":
    main()
