"""workers.reads.h1pool.RangeClient against real servers on 127.0.0.1: nginx (ranges, keep-alive,
the pool limit), TLS with a test CA (verified: an unknown CA and a wrong name are refused), the
fence's resolver, and raw asyncio servers that misbehave (close kept-alive connections, never
answer, send garbage)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.nginx import nginx
from tests.conftest import require_tool
from tests.service.test_fence_reads import FakeDNS
from workers.reads.fence import Fence
from workers.reads.h1 import H1Error
from workers.reads.h1pool import Disconnected, RangeClient
from workers.reads.http import FencedAddress, FencedResolver

DATA = bytes(range(256)) * 400


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_tool("nginx")
    root = tmp_path_factory.mktemp("h1pool")
    (root / "obj.bin").write_bytes(DATA)
    with nginx(root) as base:
        yield base


async def test_ranges_keep_alive_and_reuse(origin: str) -> None:
    async with RangeClient(limit=4) as c:
        for offset in (0, 1000, 100_000):
            answer = await c.get(f"{origin}/obj.bin", {"Range": f"bytes={offset}-{offset + 4095}"})
            assert answer.status == 206 and answer.body == DATA[offset : offset + 4096]
            assert answer.headers["content-range"].endswith(f"/{len(DATA)}")
        assert c.idle == 1  # one connection carried all three


async def test_many_at_once_within_the_limit(origin: str) -> None:
    async with RangeClient(limit=3) as c:
        answers = await asyncio.gather(
            *(c.get(f"{origin}/obj.bin", {"Range": f"bytes={i}-{i + 9}"}) for i in range(40))
        )
        assert [a.body for a in answers] == [DATA[i : i + 10] for i in range(40)]
        assert c.idle <= 3


async def test_the_cap_cuts_the_body_and_drops_the_connection(origin: str) -> None:
    async with RangeClient() as c:
        answer = await c.get(f"{origin}/obj.bin", {"Range": "bytes=0-65535"}, cap=lambda s: 100)
        assert answer.body == DATA[:100] and answer.truncated and c.idle == 0
        whole = await c.get(f"{origin}/obj.bin", cap=len(DATA))
        assert whole.status == 200 and whole.body == DATA and c.idle == 1


async def test_missing_object_answers_its_status(origin: str) -> None:
    async with RangeClient() as c:
        assert (await c.get(f"{origin}/nope.bin")).status == 404


# -- misbehaving servers ----------------------------------------------------------------------------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Starts asyncio servers running a handler per connection; closes every connection after."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> str:
        async def each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(each, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()
    for w in writers:
        w.close()
    await asyncio.sleep(0)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_a_kept_alive_connection_closed_by_the_server_is_replaced(raw_server) -> None:  # type: ignore[no-untyped-def]
    connections = 0

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # says keep-alive, then closes
        await writer.drain()
        writer.close()

    url = await raw_server(once)
    async with RangeClient() as c:
        assert (await c.get(url)).body == b"ok"
        await asyncio.sleep(0)  # let the close arrive (or not: both paths end in a new connection)
        assert (await c.get(url)).body == b"ok"
    assert connections == 2


async def test_a_server_that_never_answers_times_out(raw_server) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await reader.read()  # until the client gives up

    url = await raw_server(silent)
    async with RangeClient(timeout=0.3) as c:
        with pytest.raises(TimeoutError):
            await c.get(url)
        assert c.idle == 0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", H1Error),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", Disconnected),
    ],
)
async def test_garbage_or_a_short_answer_is_an_error(
    raw_server, answer: bytes, error: type[Exception]
) -> None:  # type: ignore[no-untyped-def]
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    url = await raw_server(bad)
    async with RangeClient() as c:
        with pytest.raises(error):
            await c.get(url)


async def test_cancelled_mid_answer_closes_the_connection(raw_server) -> None:  # type: ignore[no-untyped-def]
    asked = asyncio.Event()
    gone = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        asked.set()
        await reader.read()  # returns when the client closes
        gone.set()

    url = await raw_server(slow)
    async with RangeClient() as c:
        task = asyncio.create_task(c.get(url))
        await asked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gone.wait()
        assert c.idle == 0


# -- the fence and TLS ------------------------------------------------------------------------------
async def test_the_fence_refuses_a_name_resolving_to_a_private_address() -> None:
    dns = FakeDNS({"evil.test": "10.0.0.7"})
    async with RangeClient(resolver=FencedResolver(Fence(hosts=["*"]), dns)) as c:
        with pytest.raises(FencedAddress, match=r"10\.0\.0\.7"):
            await c.get("http://evil.test/x")


def _cert(tmp: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for ``names`` signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingestd test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
async def tls_origin(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    ca, cert, key = _cert(tmp_path, ["s3.test"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def obj(request: web.Request) -> web.Response:
        return web.Response(body=DATA[:1000])

    app = web.Application()
    app.router.add_get("/obj", obj)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    yield site._server.sockets[0].getsockname()[1], ca  # type: ignore[union-attr]
    await runner.cleanup()


async def test_tls_verified_against_the_trusted_ca(tls_origin: tuple[int, Path]) -> None:
    port, ca = tls_origin
    dns = FakeDNS({"s3.test": "127.0.0.1", "wrong.test": "127.0.0.1"})
    trusted = ssl.create_default_context(cafile=str(ca))
    async with RangeClient(resolver=dns, ssl_context=trusted) as c:
        assert (await c.get(f"https://s3.test:{port}/obj")).body == DATA[:1000]
        with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|match"):
            await c.get(f"https://wrong.test:{port}/obj")  # the certificate names another host
    async with RangeClient(resolver=dns) as c:  # the system's CAs do not know the test CA
        with pytest.raises(ssl.SSLCertVerificationError):
            await c.get(f"https://s3.test:{port}/obj")
    assert ipaddress.ip_address(dns.table["s3.test"]).is_loopback


# -- origins, fixed fields, the deadline sweep ------------------------------------------------------
async def test_fetch_at_an_origin_is_a_get_of_the_url(origin: str) -> None:
    async with RangeClient() as c:
        at = c.origin(origin)
        assert c.origin(origin) is at  # parsed once
        answer = await c.fetch(at, "/obj.bin?X-Amz-Signature=abc", {"Range": "bytes=10-19"}, cap=100)
        assert answer.status == 206 and answer.body == DATA[10:20]
        assert (await c.get(f"{origin}/obj.bin", {"Range": "bytes=10-19"})).body == DATA[10:20]
        assert c.idle == 1  # both on the one connection of that origin


@pytest.mark.parametrize("bad", ["ftp://h", "http://", "http://h/path", "http://h?q", "h:80"])
def test_an_origin_is_scheme_and_authority_only(bad: str) -> None:
    with pytest.raises(ValueError):
        RangeClient().origin(bad)


async def test_the_request_carries_host_and_one_user_agent(raw_server) -> None:  # type: ignore[no-untyped-def]
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                seen.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    url = await raw_server(record)
    port = url.rsplit(":", 1)[1]
    async with RangeClient(user_agent="ingestd/test") as c:
        await c.get(f"{url}/a?b=1", {"Range": "bytes=0-1"})
        await c.get(f"{url}/a", {"User-Agent": "mine"})
    assert seen == [
        f"GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: ingestd/test\r\n"
        "Range: bytes=0-1\r\n\r\n".encode(),
        f"GET /a HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: mine\r\n\r\n".encode(),
    ]


async def test_only_the_unanswered_request_times_out(raw_server) -> None:  # type: ignore[no-untyped-def]
    """One sweep per client checks the deadlines: the request never answered fails with a
    timeout, the ones answered meanwhile on other connections are not disturbed."""

    url = await raw_server(_answer_unless_silent)
    async with RangeClient(timeout=0.5, limit=4) as c:
        silent = asyncio.create_task(c.get(f"{url}/silent"))
        for _ in range(5):
            assert (await c.get(f"{url}/fine")).body == b"ok"
        with pytest.raises(TimeoutError):
            await silent
        assert (await c.get(f"{url}/fine")).body == b"ok"  # the client goes on


async def test_waiting_for_a_slot_times_out_and_gives_none_away(raw_server) -> None:  # type: ignore[no-untyped-def]
    """At the limit a request waits for a slot within its own timeout; one that gave up (timed
    out or cancelled) takes no slot with it: the next requests still get through."""

    url = await raw_server(_answer_unless_silent)
    async with RangeClient(timeout=0.5, limit=1) as c:
        silent = asyncio.create_task(c.get(f"{url}/silent"))
        await asyncio.sleep(0)  # the silent request takes the only slot
        cancelled = asyncio.create_task(c.get(f"{url}/fine"))
        waiting = asyncio.create_task(c.get(f"{url}/fine"))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(TimeoutError):
            await silent
        with pytest.raises(TimeoutError):
            await waiting  # its deadline (the silent one's) passed while it waited for the slot
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        answers = await asyncio.gather(*(c.get(f"{url}/fine") for _ in range(3)))
        assert [a.body for a in answers] == [b"ok"] * 3  # the slot came back, handed on in turn


async def _answer_unless_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``GET /silent`` is never answered (until the client gives up); anything else gets ``ok``."""
    while True:
        try:
            head = await _read_request(reader)
        except asyncio.IncompleteReadError:
            return
        if head.startswith(b"GET /silent "):
            await reader.read()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
