"""The fence on real reads: a manifest naming loopback, cloud metadata, a name resolving to a
private address and a redirect to a private address; each refused with its reason (a dead
letter ``url.fenced`` naming the host), while allowed hosts flow on to the sink.

A real aiohttp server on 127.0.0.1 serves the media; names resolve through an injected resolver
(``media.test`` -> 127.0.0.1, ``evil.test`` -> 10.0.0.7), so no system DNS or /etc/hosts.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from daemon.core.config import Config, ConfigError, from_dict
from daemon.core.jobs import ObjectRef
from daemon.ledger.store import open_store
from daemon.pipeline.build import Builder
from daemon.pipeline.pipeline import Pipeline
from daemon.service.wiring import Readers, key_maker, probe_fence, settings
from daemon.sinks.files import FilesSink
from daemon.sources.manifest import ManifestSource
from workers.reads import UrlFenced

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"


class FakeDNS(AbstractResolver):
    """Answers from a table; counts lookups (the fence must not make a second one)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=self.table[host],
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def origin() -> AsyncIterator[int]:
    """Media with Range support, and ``/go?to=URL`` redirecting anywhere."""
    hits: list[str] = []

    async def media(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.FileResponse(MEDIA / "images" / request.match_info["name"])

    async def go(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/img/{name}", media)
    app.router.add_get("/go", go)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def config(tmp: Path, manifest: Path, hosts: list[str] | None) -> Config:
    probe: dict[str, object] = {"timeout": 5.0}
    if hosts is not None:
        probe["allowed_hosts"] = hosts
    return from_dict(
        {
            "source": {"type": "manifest", "path": str(manifest)},
            "target": {"platform": "labelbox", "global_key_template": "{key}"},
            "sink": {"type": "files", "path": str(tmp / "out"), "linger_ms": 0},
            "ledger": {"path": str(tmp / "ledger.db")},
            "probe": probe,
        }
    )


class TestProber:
    async def test_each_refusal_names_its_reason(self, tmp_path: Path, origin: int) -> None:
        dns = FakeDNS({"media.test": "127.0.0.1", "evil.test": "10.0.0.7"})
        cfg = config(tmp_path, tmp_path / "m.ndjson", ["*", "media.test"])
        ok = f"http://media.test:{origin}/img/fractal.png"
        cases = {
            f"http://127.0.0.1:{origin}/img/fractal.png": ("127.0.0.1", "loopback"),
            "http://169.254.169.254/latest/meta-data/": ("169.254.169.254", "link-local"),
            f"http://evil.test:{origin}/img/fractal.png": ("evil.test", "resolves to 10.0.0.7"),
            f"http://media.test:{origin}/go?to=http://127.0.0.1:{origin}/img/chart.jpg": (
                "127.0.0.1",
                "loopback",
            ),
            f"http://media.test:{origin}/go?to=http://evil.test:{origin}/img/chart.jpg": (
                "evil.test",
                "private",
            ),
        }
        async with AsyncExitStack() as stack:
            readers = Readers(cfg, stack, dns=dns)
            for url, (host, words) in cases.items():
                with pytest.raises(UrlFenced) as e:
                    await readers.probe(ObjectRef(origin="url", key=url, url=url))
                assert e.value.rule == "url.fenced"
                assert e.value.refusal.host == host and words in e.value.refusal.reason, url
            info = await readers.probe(ObjectRef(origin="url", key=ok, url=ok))
            assert info.valid and info.kind == "image"
            redirected = f"http://media.test:{origin}/go?to=http://media.test:{origin}/img/chart.jpg"
            info = await readers.probe(ObjectRef(origin="url", key="r", url=redirected))
            assert info.valid and info.container == "jpeg"
        assert "169.254.169.254" not in dns.lookups  # literals are checked, never resolved

    async def test_buckets_outside_the_list_are_refused(self, tmp_path: Path) -> None:
        cfg = config(tmp_path, tmp_path / "m.ndjson", None)
        cfg.probe.allowed_buckets = ["media-in"]
        async with AsyncExitStack() as stack:
            readers = Readers(cfg, stack)
            with pytest.raises(UrlFenced) as e:
                await readers.probe(ObjectRef(origin="s3", bucket="secrets", key="k"))
        assert e.value.refusal.host == "s3://secrets"


class TestPipeline:
    async def test_refused_urls_are_dead_letters_allowed_ones_are_delivered(
        self, tmp_path: Path, origin: int
    ) -> None:
        allowed = [f"http://media.test:{origin}/img/{n}" for n in ("fractal.png", "chart.jpg", "rgb.bmp")]
        refused = {
            f"http://127.0.0.1:{origin}/img/fractal.png": "127.0.0.1",
            "http://169.254.169.254/latest/meta-data/iam": "169.254.169.254",
            f"http://evil.test:{origin}/img/chart.jpg": "evil.test",
            f"http://media.test:{origin}/go?to=http://10.0.0.9/img/x.png": "10.0.0.9",
        }
        manifest = tmp_path / "m.ndjson"
        manifest.write_text("".join(json.dumps(u) + "\n" for u in [*allowed, *refused]))
        cfg = config(tmp_path, manifest, ["media.test"])
        dns = FakeDNS({"media.test": "127.0.0.1", "evil.test": "10.0.0.7"})
        async with AsyncExitStack() as stack:
            ledger = await open_store(cfg, stack)
            readers = Readers(cfg, stack, dns=dns)
            pipeline = Pipeline(
                source=ManifestSource(manifest),
                deliverer=FilesSink(tmp_path / "out", "labelbox"),
                ledger=ledger,
                prober=lambda job: readers.probe(job.ref),
                # the platform gets an https URL (a CDN in front of the origin): not under test
                builder=Builder(
                    platform="labelbox",
                    accept_kinds=["image"],
                    strict=False,
                    make_url=lambda ref: str(ref.url).replace("http://", "https://"),
                ),
                key_for=key_maker(cfg),
                settings=settings(cfg),
            )
            counters = await pipeline.run()
            letters = {d.key: d for d in await ledger.dead_letters()}
        assert counters.delivered == len(allowed) and counters.dead == len(refused)
        rows = [r for f in (tmp_path / "out").glob("*.json") for r in json.loads(f.read_bytes())]
        assert sorted(r["global_key"] for r in rows) == sorted(allowed)
        for url, host in refused.items():
            d = letters[url.casefold()]
            assert (d.stage, d.rule, d.actual) == ("read", "url.fenced", host), d
            assert host in d.message


def test_an_allowed_host_entry_not_understood_fails_at_start(tmp_path: Path) -> None:
    cfg = config(tmp_path, tmp_path / "m.ndjson", ["cdn.example.com", "http://x/"])
    with pytest.raises(ConfigError, match=r"probe\.allowed_hosts: 'http://x/'"):
        probe_fence(cfg)
