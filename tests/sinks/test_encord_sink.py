"""The Encord sink against the local Encord server: job checkpoints, refusals, the Deliverer's
handling of a refused key. (The whole CLI path: tests/e2e/test_encord_sink_cli.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from daemon.core.config import ConfigError, from_dict
from daemon.sinks.base import Batch, BatchItem, CredentialsError, PermanentError, TransientError
from daemon.sinks.delivery import Deliverer
from daemon.sinks.encord.sink import EncordSink, open_encord_deliverer
from tests.platforms.encord_server import EncordServer
from workers.payloads import encord as enc
from workers.platforms.encord import signing

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))
KEY_TEXT = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
).decode()


class Checkpoints:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes: list[tuple[str, str]] = []

    async def get_checkpoint(self, name: str) -> str | None:
        return self.values.get(name)

    async def put_checkpoint(self, name: str, value: str) -> None:
        self.values[name] = value
        self.writes.append((name, value))


def batch(n: int, prefix: str = "o") -> Batch:
    items = [
        BatchItem(
            f"{prefix}{i}",
            "IMAGE",
            enc.encode(enc.Item(objectUrl=f"https://h/{prefix}{i}.png", title=f"t{i}")),
        )
        for i in range(n)
    ]
    return Batch.of(items)


@pytest.fixture
async def srv() -> AsyncIterator[EncordServer]:
    server = EncordServer(keys={signing.key_id(KEY): KEY.public_key()})
    server.base = await server.start()  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        await server.stop()


async def deliverer(
    srv: EncordServer, stack: AsyncExitStack, ckpt: Checkpoints, key: str = KEY_TEXT, **target: str
) -> Deliverer:
    cfg = from_dict(
        {
            "source": {"type": "manifest", "path": "m"},
            "target": {"platform": "encord", "dataset": srv.folder, "integration": "s3-prod", **target},
            "sink": {
                "type": "encord",
                "endpoint": srv.base,  # type: ignore[attr-defined]
                "private_key_secret": "k",
                "requests_per_second": 1000,
                "max_retries": 0,
            },
        }
    )
    d = await open_encord_deliverer(cfg, stack, ckpt, environ={"INGESTD_SECRET_K": key})
    assert isinstance(d, Deliverer)
    return d


def sink_of(d: Deliverer) -> EncordSink:
    assert isinstance(d.sink, EncordSink)
    return d.sink


class TestJobCheckpoints:
    async def test_job_id_is_checkpointed_before_polling_and_cleared_after(self, srv: EncordServer) -> None:
        ckpt = Checkpoints()
        b = batch(3)
        async with AsyncExitStack() as stack:
            results = await sink_of(await deliverer(srv, stack, ckpt)).deliver(b)
        job = next(iter(srv.jobs))
        name = f"encord.job:{b.id}"
        assert ckpt.writes == [(name, "sent"), (name, job), (name, "")]
        first_poll = next(i for i, h in enumerate(srv.hits) if h.method == "GET" and job in h.path)
        assert srv.hits[first_poll - 1].method == "POST"  # created, then (checkpoint), then polled
        assert [r.status for r in results] == ["accepted"] * 3

    async def test_recorded_job_is_resumed_not_created_again(self, srv: EncordServer) -> None:
        """A job id in the ledger (a crash mid-poll) is polled; no POST is sent. Polls answered
        "still running" count as deliberate waits (the watchdog's progress)."""
        ckpt = Checkpoints()
        b = batch(2)
        async with AsyncExitStack() as stack:
            d = await deliverer(srv, stack, ckpt)
            sink = sink_of(d)
            sink.poll_seconds = 0  # the server answers PENDING at once
            srv.hold_jobs = True
            task = asyncio.create_task(sink.deliver(b))
            async with asyncio.timeout(10):
                while sum(h.method == "GET" and "data-upload-jobs/" in h.path for h in srv.hits) < 3:
                    await asyncio.sleep(0.01)
            task.cancel()  # a crash, as far as the sink can tell
            with pytest.raises(asyncio.CancelledError):
                await task
            job = ckpt.values[f"encord.job:{b.id}"]
            assert d.endpoint.stats.platform_waits >= 2
            srv.release()
            with capture_logs() as logs:
                results = await sink.deliver(b)
        assert len(srv.creates()) == 1 and [r.status for r in results] == ["accepted"] * 2
        assert any(e["event"] == "encord.job.resumed" and e["job"] == job for e in logs)

    async def test_vanished_job_is_re_sent_and_its_items_come_back_duplicates(
        self, srv: EncordServer
    ) -> None:
        ckpt = Checkpoints()
        b = batch(2)
        async with AsyncExitStack() as stack:
            sink = sink_of(await deliverer(srv, stack, ckpt))
            await sink.deliver(b)
            ckpt.values[f"encord.job:{b.id}"] = "0f0f0f0f-0000-4000-8000-000000000000"  # expired
            with pytest.raises(TransientError, match="is gone"):
                await sink.deliver(b)
            with capture_logs() as logs:
                results = await sink.deliver(b)
        assert [r.status for r in results] == ["duplicate", "duplicate"]
        assert any(e["event"] == "encord.job.resend" and "skipDuplicateUrls" in e["reason"] for e in logs)

    async def test_a_refused_create_clears_the_sent_mark(self, srv: EncordServer) -> None:
        """429 means no job: the next attempt is a plain create, not an announced re-send."""
        ckpt = Checkpoints()
        b = batch(1)
        srv.fault("create", 429, retry_after="7")
        async with AsyncExitStack() as stack:
            sink = sink_of(await deliverer(srv, stack, ckpt))
            with pytest.raises(TransientError) as err:
                await sink.deliver(b)
            assert err.value.status == 429 and err.value.retry_after == 7
            assert ckpt.values[f"encord.job:{b.id}"] == ""
            with capture_logs() as logs:
                await sink.deliver(b)
        assert not [e for e in logs if e["event"] == "encord.job.resend"]

    async def test_invalid_batches_are_permanent_and_422_is_splittable(self, srv: EncordServer) -> None:
        """Encord's 422 keeps its status (the Deliverer splits on it); an item of a kind it cannot
        take is rejected alone, naming the kind."""
        srv.fault("create", 422)
        pdf = Batch.of([BatchItem("x", "PDF", enc.encode(enc.Item(objectUrl="https://h/x.pdf")))])
        async with AsyncExitStack() as stack:
            sink = sink_of(await deliverer(srv, stack, Checkpoints()))
            with pytest.raises(PermanentError) as err:
                await sink.deliver(batch(2))
            assert err.value.status == 422 and "Injected fault 422" in str(err.value)
            mixed = Batch.of([*pdf.items, *batch(1, "m").items])
            results = await sink.deliver(mixed)
        assert [(r.key, r.status) for r in results] == [("m0", "accepted"), ("x", "rejected")]
        assert results[1].reason == "Encord registers video, image and audio, not PDF"


class TestRefusals:
    async def test_refused_key_is_given_back_at_once_without_retry(self, srv: EncordServer) -> None:
        """401: every item retryable with Encord's reason, one request, nothing rejected."""
        other = Ed25519PrivateKey.from_private_bytes(bytes(32)).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        async with AsyncExitStack() as stack:
            d = await deliverer(srv, stack, Checkpoints(), key=other.decode())
            results = await d.deliver(batch(3))
            assert not d.ready() and "Encord refused our credentials" in (d.refused or "")
        assert {r.status for r in results} == {"retryable"}
        assert "unknown public key" in (results[0].reason or "") and len(srv.hits) == 1

    async def test_check_names_the_missing_folder_and_integration(self, srv: EncordServer) -> None:
        async with AsyncExitStack() as stack:
            d = await deliverer(srv, stack, Checkpoints(), dataset="0a0a0a0a-0000-4000-8000-0000000000aa")
            with pytest.raises(CredentialsError, match=r"0000000000aa \(target.dataset\) not found"):
                await d.check()
            d = await deliverer(srv, stack, Checkpoints(), integration="nope")
            with pytest.raises(CredentialsError, match=r"'nope' \(target.integration\).*\['s3-prod'\]"):
                await d.check()
            await (await deliverer(srv, stack, Checkpoints())).check()

    async def test_an_unusable_key_is_a_config_error_naming_the_secret(self, srv: EncordServer) -> None:
        rsa_like = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretbits\n-----END OPENSSH PRIVATE KEY-----"
        async with AsyncExitStack() as stack:
            with pytest.raises(ConfigError, match=r"sink\.private_key_secret: secret 'k'") as err:
                await deliverer(srv, stack, Checkpoints(), key=rsa_like)
        assert "secretbits" not in str(err.value)


class TestConfig:
    def test_encord_sink_requires_key_folder_and_integration(self) -> None:
        base = {"source": {"type": "manifest", "path": "m"}}
        full = {
            "target": {"platform": "encord", "dataset": "f", "integration": "i"},
            "sink": {"type": "encord", "private_key_secret": "k"},
        }
        from_dict({**base, **full})
        for section, key in (
            ("sink", "private_key_secret"),
            ("target", "dataset"),
            ("target", "integration"),
        ):
            broken = {s: dict(v) for s, v in full.items()}
            del broken[section][key]
            with pytest.raises(ConfigError, match=rf"{section}\.{key}: required for sink type 'encord'"):
                from_dict({**base, **broken})
        with pytest.raises(ConfigError, match=r"sink\.endpoint: must be an http"):
            from_dict({**base, **full, "sink": {**full["sink"], "endpoint": "api.encord.com"}})
