"""Probe throughput over HTTP: files/s at concurrency 64 against a local nginx, one process.

Target (issue #3): >= 3,000 files/s per process for small faststart MP4 files. Baseline in the
same run: the same ranged GETs (the bytes each probe asked for) without parsing, through the
same aiohttp session: the probe's own cost is the difference.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

from bench.harness import Figure
from bench.nginx import nginx
from workers.probe.engine import probe
from workers.reads.http import HttpReader

CONCURRENCY = 64


def make_corpus(folder: Path, n: int) -> list[str]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is required to build the corpus")
    seed = folder / "seed.mp4"
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(seed),
        ],
        check=True,
        timeout=120,
    )
    names = []
    for i in range(n):
        name = f"v{i:05d}.mp4"
        (folder / name).hardlink_to(seed)
        names.append(name)
    return names


async def _run(base: str, names: list[str], rounds: int, parse: bool) -> tuple[float, int, int]:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        urls = [f"{base}/{n}" for n in names] * rounds
        it = iter(urls)
        done = valid = 0

        async def worker() -> None:
            nonlocal done, valid
            for url in it:
                reader = HttpReader(session, url)
                if parse:
                    info = await probe(reader)
                    valid += info.valid
                else:
                    await reader.read(0, 65536)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start, done, valid


def run(quick: bool) -> list[Figure]:
    n, rounds = (200, 5) if quick else (1000, 10)
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-http-") as tmp:
        folder = Path(tmp)
        names = make_corpus(folder, n)
        with nginx(folder) as base:
            uvloop.run(_run(base, names[:50], 1, True))  # warm up connections and caches
            raw_s, raw_n, _ = uvloop.run(_run(base, names, rounds, False))
            probe_s, probe_n, valid = uvloop.run(_run(base, names, rounds, True))
    if valid != probe_n:
        raise RuntimeError(f"only {valid} of {probe_n} probes were valid")
    return [
        Figure(
            name="probe_http_files_per_s",
            value=probe_n / probe_s,
            unit="files/s",
            baseline=raw_n / raw_s,
            baseline_name="64 KiB range GET without parsing",
            target=3000,
            note=f"concurrency {CONCURRENCY}, {n} faststart MP4s x {rounds} rounds, nginx on loopback",
        ),
    ]
