"""workers.reads.s3 against moto_server: ranged GETs of our presigned URLs, errors, credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from s3_moto import REGION, unique

from workers.reads import ObjectGone, ReadError
from workers.reads.h1pool import RangeClient
from workers.reads.s3 import ChainCredentials, S3Reads, http_session, range_client
from workers.urls import S3UrlSigner

BODY = bytes(range(256)) * 400  # 102,400 bytes


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    name = unique("reads")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="dir/a b+c.bin", Body=BODY)
    s3.put_object(Bucket=name, Key="empty", Body=b"")
    return name


@pytest.fixture(params=["range_client", "aiohttp"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[RangeClient | aiohttp.ClientSession]:
    """Both clients S3Reads takes: the daemon's RangeClient and an aiohttp session."""
    async with range_client(8) if request.param == "range_client" else http_session(8) as h:
        yield h


def reads(http: RangeClient | aiohttp.ClientSession, endpoint: str, **kw: Any) -> S3Reads:
    signer = S3UrlSigner(region=REGION, endpoint_url=endpoint, addressing_style="path")
    return S3Reads(http, signer, ChainCredentials(get_session()), **kw)


class TestRangedReads:
    async def test_ranges_and_size(
        self, http: RangeClient | aiohttp.ClientSession, moto_endpoint: str, bucket: str
    ) -> None:
        """Ranged reads return exactly the bytes asked; size is learned from Content-Range."""
        r = reads(http, moto_endpoint).reader(bucket, "dir/a b+c.bin")
        assert await r.read(1000, 4096) == BODY[1000:5096]
        assert await r.size() == len(BODY) and r.requests == 1
        assert await r.read(len(BODY) - 10, 100) == BODY[-10:]
        assert await r.read(len(BODY), 10) == b"" and r.requests == 2

    async def test_size_unknown_costs_one_read(
        self, http: RangeClient | aiohttp.ClientSession, moto_endpoint: str, bucket: str
    ) -> None:
        """Without a size from the event, size() does one 1-byte ranged read."""
        r = reads(http, moto_endpoint).reader(bucket, "dir/a b+c.bin")
        assert await r.size() == len(BODY) and r.requests == 1

    async def test_empty_object(
        self, http: RangeClient | aiohttp.ClientSession, moto_endpoint: str, bucket: str
    ) -> None:
        """A 0-byte object answers 416 to any range: it reads as empty with size 0."""
        r = reads(http, moto_endpoint).reader(bucket, "empty")
        assert await r.read(0, 100) == b""
        assert await r.size() == 0

    async def test_missing_object_is_gone(
        self, http: RangeClient | aiohttp.ClientSession, moto_endpoint: str, bucket: str
    ) -> None:
        """404 NoSuchKey is ObjectGone: final, not transient."""
        r = reads(http, moto_endpoint).reader(bucket, "nope.mp4", size=10)
        with pytest.raises(ObjectGone, match=r"s3://.*/nope\.mp4: no such object") as e:
            await r.read(0, 10)
        assert e.value.transient is False

    async def test_connection_refused_is_transient(self, http: RangeClient | aiohttp.ClientSession) -> None:
        """No server: a transient ReadError (the pipeline retries it)."""
        r = reads(http, "http://127.0.0.1:9").reader("media-x", "k", size=10)
        with pytest.raises(ReadError) as e:
            await r.read(0, 10)
        assert e.value.transient is True

    async def test_matching_etag_reads(
        self, http: RangeClient | aiohttp.ClientSession, moto_endpoint: str, bucket: str, s3: Any
    ) -> None:
        """The ETag from the event (unquoted) pins the read: the current object matches."""
        etag = s3.head_object(Bucket=bucket, Key="dir/a b+c.bin")["ETag"].strip('"')
        r = reads(http, moto_endpoint).reader(bucket, "dir/a b+c.bin", etag=etag)
        assert await r.read(0, 16) == BODY[:16]

    async def test_changed_object(
        self, http: RangeClient | aiohttp.ClientSession, moto_endpoint: str, bucket: str
    ) -> None:
        """If the ETag of the event no longer matches, the read fails permanently (412)."""
        r = reads(http, moto_endpoint).reader(bucket, "dir/a b+c.bin", etag="0123456789abcdef")
        with pytest.raises(ReadError, match="changed since the event") as e:
            await r.read(0, 10)
        assert e.value.status == 412


async def test_chain_credentials_from_env(moto_endpoint: str) -> None:
    """Credentials come from the standard chain (here the environment) and are reused when unchanged."""
    c = ChainCredentials(get_session())
    a, b = await c.get(), await c.get()
    assert a.access_key == "testing" and a is b


class _Rotating:
    """aiobotocore-like credentials whose frozen set the test changes; counts the asks."""

    def __init__(self) -> None:
        self.asks = 0
        self.secret = "s1"

    async def get_frozen_credentials(self) -> Any:
        self.asks += 1
        return SimpleNamespace(access_key="AK", secret_key=self.secret, token=None)


async def test_chain_credentials_asks_botocore_at_most_once_per_recheck() -> None:
    """Within ``recheck`` seconds the frozen set is reused without asking botocore; after it, a
    rotation is seen."""
    now = [100.0]
    creds = _Rotating()

    class Session:
        async def get_credentials(self) -> _Rotating:
            return creds

    c = ChainCredentials(Session(), recheck=1.0, clock=lambda: now[0])
    first = await c.get()
    creds.secret = "s2"
    now[0] += 0.5
    assert await c.get() is first and creds.asks == 1
    now[0] += 0.6
    second = await c.get()
    assert second.secret_key == "s2" and creds.asks == 2
    assert await c.get() is second and creds.asks == 2


@pytest.fixture
async def error_origin() -> AsyncIterator[str]:
    """A local S3-like origin answering each key with the status and AWS error code in its name."""

    async def handle(request: web.Request) -> web.Response:
        status, _, code = request.match_info["key"].partition("-")
        body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>"
        return web.Response(status=int(status), text=body, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/{bucket}/{key}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("key", "transient", "needle"),
    [
        ("403-AccessDenied", False, "access denied; the credentials need s3:GetObject"),
        ("403-ExpiredToken", True, "HTTP 403 ExpiredToken"),
        ("404-NoSuchBucket", False, "HTTP 404 NoSuchBucket"),
        ("503-SlowDown", True, "HTTP 503 SlowDown"),
        ("500-InternalError", True, "HTTP 500 InternalError"),
        ("429-TooManyRequests", True, "HTTP 429"),
        ("400-InvalidRequest", False, "HTTP 400 InvalidRequest"),
    ],
)
async def test_status_mapping(
    http: RangeClient | aiohttp.ClientSession, error_origin: str, key: str, transient: bool, needle: str
) -> None:
    """403 is permanent with a clear message (except expired tokens); 5xx/429 are transient."""
    r = reads(http, error_origin).reader("media-x", key, size=100)
    with pytest.raises(ReadError) as e:
        await r.read(0, 10)
    assert not isinstance(e.value, ObjectGone)
    assert e.value.transient is transient and needle in str(e.value) and "media-x" in str(e.value)
