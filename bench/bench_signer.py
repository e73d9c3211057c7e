"""Presigned GET URLs per second: workers.urls vs botocore vs aiobotocore, in one run.

All three sign the same keys with the same credentials (a session token included), region
and addressing style; the URLs are checked equal to botocore's at a frozen time first, so the
figures compare the same output. Target (issue #4): >= 50x botocore ``generate_presigned_url``.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime
import time
from unittest import mock

import botocore.auth
import botocore.session
from aiobotocore.session import get_session
from botocore.config import Config

from bench.harness import Figure
from workers.sigv4 import Credentials
from workers.urls import S3UrlSigner

REGION, BUCKET = "eu-west-1", "media-bucket"
AKID, SECRET, TOKEN = "AKIDBENCHMARK", "bench/secret+key", "FwoGZXIvYXdzEJr//////////wEaDBench+token=="
CFG = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})


def keys(n: int) -> list[str]:
    return [f"videos/2026/01/{i:07d} clip+take~{i % 7}.mp4" for i in range(n)]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def ours(ks: list[str]) -> float:
    signer = S3UrlSigner(region=REGION, addressing_style="virtual")
    creds = Credentials(access_key=AKID, secret_key=SECRET, token=TOKEN)
    sign = signer.presign_get
    for k in ks[:5000]:  # warm-up: caches, branch predictors, allocator
        sign(creds, BUCKET, k, expires=3600, now=time.time())
    t0 = time.perf_counter()
    for k in ks:
        sign(creds, BUCKET, k, expires=3600, now=time.time())
    return rate(len(ks), time.perf_counter() - t0)


def botocore_rate(ks: list[str]) -> float:
    client = botocore.session.get_session().create_client(
        "s3",
        region_name=REGION,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
        config=CFG,
    )
    for k in ks[:500]:  # warm-up: endpoint ruleset caches, lazy loaders
        client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600)
    t0 = time.perf_counter()
    for k in ks:
        client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600)
    return rate(len(ks), time.perf_counter() - t0)


def aiobotocore_rate(ks: list[str]) -> float:
    async def go() -> float:
        async with get_session().create_client(
            "s3",
            region_name=REGION,
            aws_access_key_id=AKID,
            aws_secret_access_key=SECRET,
            aws_session_token=TOKEN,
            config=CFG,
        ) as client:
            for k in ks[:500]:  # warm-up, as for botocore
                await client.generate_presigned_url(
                    "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600
                )
            t0 = time.perf_counter()
            for k in ks:
                await client.generate_presigned_url(
                    "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600
                )
            return rate(len(ks), time.perf_counter() - t0)

    return asyncio.run(go())


def check_identical(ks: list[str]) -> None:
    at = datetime.datetime(2026, 1, 2, 3, 4, 5)
    client = botocore.session.get_session().create_client(
        "s3",
        region_name=REGION,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
        config=CFG,
    )
    signer = S3UrlSigner(region=REGION, addressing_style="virtual")
    creds = Credentials(access_key=AKID, secret_key=SECRET, token=TOKEN)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        for k in ks:
            theirs = client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": k}, ExpiresIn=3600
            )
            mine = signer.presign_get(creds, BUCKET, k, expires=3600, now=calendar.timegm(at.timetuple()))
            if mine != theirs:
                raise AssertionError(f"signer differs from botocore for key {k!r}")


def run(quick: bool) -> list[Figure]:
    n_ours, n_boto = (200_000, 4_000) if quick else (500_000, 15_000)
    check_identical(keys(200))
    mine = ours(keys(n_ours))
    boto = botocore_rate(keys(n_boto))
    aio = aiobotocore_rate(keys(n_boto))
    return [
        Figure(
            name="presign GET URLs/s: workers.urls vs botocore generate_presigned_url",
            value=mine,
            unit="URLs/s",
            baseline=boto,
            baseline_name="botocore generate_presigned_url (s3v4, virtual, session token)",
            target=50 * boto,
            note="target is 50x the botocore rate measured in this run; outputs checked byte-identical first",
        ),
        Figure(
            name="presign GET URLs/s: workers.urls vs aiobotocore generate_presigned_url",
            value=mine,
            unit="URLs/s",
            baseline=aio,
            baseline_name="aiobotocore generate_presigned_url (awaited, same options)",
        ),
    ]
