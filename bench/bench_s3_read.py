"""One ``S3Reader.read`` of a 64 KiB range, as the probe makes it, against nginx on 127.0.0.1.

The probe's path for each S3 object: a reader (``S3Reads.reader``), its credentials
(``ChainCredentials`` over refreshable, instance-role-like credentials from aiobotocore), a
presigned URL (``S3UrlSigner``, path style at a custom endpoint), ``Range`` + ``If-Match``
headers and the GET through ``workers.reads.s3.range_client``. nginx ignores the query string and
honours ``If-Match`` (the file's ETag), so every read is a real 206.

Figures, at 16 and 64 reads in flight, one process, uvloop, alternating rounds; CPU µs per read
(getrusage of this process: nginx is another) and reads/s:

* ``s3_read``: the whole ``S3Reader.read``;
* ``s3_read_static``: the same with static credentials and no session token (environment keys,
  as in ``bench e2e``): botocore's frozen set costs nothing to ask for, and the URL is shorter;
* ``range_client``: ``RangeClient.get`` of the unsigned URL with the same headers (the client
  alone, no signing);

baseline of each: ``bare``, the minimal asyncio client of ``bench_range_client`` (a prepared
request written to a kept-alive connection, status and ``Content-Length`` read; no timeouts,
errors, TLS or signing: a floor) fetching the unsigned URL.

The process runs with the daemon's allocator setting (``daemon.core.allocator``: freed heap kept),
as ingestd does: with glibc's defaults page faults add ~60 µs to every read of any client and
drown the differences measured here. glibc's defaults are put back when the bench ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import resource
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from aiobotocore.credentials import AioCredentials, AioRefreshableCredentials

from bench.bench_range_client import bare_gets, drive
from bench.harness import Figure
from bench.nginx import nginx
from daemon.core import allocator
from workers.reads.s3 import ChainCredentials, S3Reads, range_client
from workers.urls import S3UrlSigner

RANGE = 65536
SIZE = 102400
BUCKET = "bench-bucket"
KEY = "media/clip 0001.mp4"  # a space: the key is quoted as real keys are


class _Session:
    """What ``ChainCredentials`` asks of an aiobotocore session: refreshable credentials that
    expire in a day (as an instance role's would, between refreshes), or static ones."""

    def __init__(self, *, static: bool = False) -> None:
        self.static = static

    async def get_credentials(self) -> Any:
        if self.static:
            return AioCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        metadata = {
            "access_key": "AKIDEXAMPLE",
            "secret_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "token": "IQoJb3JpZ2luX2VjEXAMPLETOKEN" * 20,
            "expiry_time": expiry.isoformat(),
        }

        async def refresh() -> dict[str, str]:
            return metadata

        return AioRefreshableCredentials.create_from_metadata(metadata, refresh, "bench")


async def bare(base: str, etag: str, n: int, c: int) -> None:
    host_port = base.split("/")[2]
    path = "/" + BUCKET + "/" + KEY.replace(" ", "%20")
    req = (
        f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nRange: bytes=0-{RANGE - 1}\r\nIf-Match: {etag}\r\n\r\n"
    ).encode()
    await bare_gets(host_port, req, n, c)


async def client_only(base: str, etag: str, n: int, c: int) -> None:
    url = f"{base}/{BUCKET}/{KEY.replace(' ', '%20')}"
    headers = {"Range": f"bytes=0-{RANGE - 1}", "If-Match": etag}
    async with range_client(c) as client:

        async def one() -> int:
            return (await client.get(url, headers, cap=RANGE)).status

        await drive(n, one, c)


async def s3_read(base: str, etag: str, n: int, c: int, *, static: bool = False) -> None:
    signer = S3UrlSigner(region="eu-west-1", endpoint_url=base, addressing_style="path")
    async with range_client(c) as client:
        reads = S3Reads(client, signer, ChainCredentials(_Session(static=static)))

        async def one() -> int:
            head = await reads.reader(BUCKET, KEY, size=SIZE, etag=etag).read(0, RANGE)
            return 206 if len(head) == RANGE else 0

        await drive(n, one, c)


async def s3_read_static(base: str, etag: str, n: int, c: int) -> None:
    await s3_read(base, etag, n, c, static=True)


def _measure(fn: Callable[..., Awaitable[None]], *args: object) -> tuple[float, float]:
    n = args[-2]
    assert isinstance(n, int)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    uvloop.run(fn(*args))
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return n / (t1 - t0), cpu / n * 1e6


def _glibc_defaults() -> None:
    """Undo :func:`allocator.keep_freed_memory` (glibc's documented defaults), for the benches
    that run after this one in the same process."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(allocator.M_TRIM_THRESHOLD, 128 * 1024)
    mallopt(allocator.M_TOP_PAD, 0)


def run(quick: bool) -> list[Figure]:
    allocator.keep_freed_memory()
    try:
        return _run(quick)
    finally:
        _glibc_defaults()


def _run(quick: bool) -> list[Figure]:
    n, rounds = (4000, 2) if quick else (20000, 3)
    clients: dict[str, Callable[..., Awaitable[None]]] = {
        "bare": bare,
        "range_client": client_only,
        "s3_read": s3_read,
        "s3_read_static": s3_read_static,
    }
    got: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ingestd-s3read-") as tmp:
        (Path(tmp) / BUCKET / KEY).parent.mkdir(parents=True)
        (Path(tmp) / BUCKET / KEY).write_bytes(bytes(range(256)) * (SIZE // 256))
        with nginx(Path(tmp)) as base:
            probe = urllib.request.Request(f"{base}/{BUCKET}/{KEY.replace(' ', '%20')}", method="HEAD")
            with urllib.request.urlopen(probe, timeout=5) as r:
                etag = r.headers["ETag"]
            for _ in range(rounds):
                for c in (16, 64):
                    for name, fn in clients.items():
                        got.setdefault((name, c), []).append(_measure(fn, base, etag, n, c))

    def med(name: str, c: int, i: int) -> float:
        return statistics.median(r[i] for r in got[(name, c)])

    figures = []
    for c in (16, 64):
        for name in ("s3_read", "s3_read_static", "range_client"):
            figures += [
                Figure(
                    name=f"{name}_c{c}_cpu_us_per_read",
                    value=med(name, c, 1),
                    unit="µs/read",
                    baseline=med("bare", c, 1),
                    baseline_name="bare asyncio client, unsigned URL",
                    higher_is_better=False,
                    note=f"{n} x 64 KiB ranges at c={c}, {rounds} alternating rounds",
                ),
                Figure(
                    name=f"{name}_c{c}_reads_per_s",
                    value=med(name, c, 0),
                    unit="reads/s",
                    baseline=med("bare", c, 0),
                    baseline_name="bare asyncio client, unsigned URL",
                ),
            ]
    return figures
