"""The local Encord server itself: it refuses what Encord would refuse and keeps URLs once."""

from __future__ import annotations

import time

import aiohttp
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from tests.platforms.encord_server import PREFIX, EncordServer
from workers.platforms.encord import signing

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


async def _call(
    base: str, method: str, target: str, body: bytes = b"", key: Ed25519PrivateKey = KEY
) -> tuple[int, object]:
    headers = signing.sign(method, target, body, key, int(time.time()))
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, URL(base + target, encoded=True), data=body, headers=headers) as r,
    ):
        return r.status, msgspec.json.decode(await r.read())


def _server(**kw: object) -> EncordServer:
    return EncordServer(keys={signing.key_id(KEY): KEY.public_key()}, **kw)  # type: ignore[arg-type]


def _job(urls: list[str], integration: str) -> bytes:
    items = [{"objectUrl": u, "title": u.rsplit("/", 1)[-1]} for u in urls]
    return msgspec.json.encode(
        {
            "dataItems": {"images": items, "skipDuplicateUrls": True},
            "integrationHash": integration,
            "ignoreErrors": True,
        }
    )


class TestEncordServer:
    async def test_signatures_are_checked(self) -> None:
        """A valid signature passes; another key or a changed query is refused with 401."""
        server = _server()
        base = await server.start()
        try:
            status, doc = await _call(base, "GET", PREFIX + "/cloud-integrations?includeOrgAccess=false")
            assert status == 200 and doc == {"result": server.integrations}
            other = Ed25519PrivateKey.from_private_bytes(bytes(32))
            status, doc = await _call(base, "GET", PREFIX + "/cloud-integrations", key=other)
            assert status == 401 and "unknown public key" in doc["message"]  # type: ignore[index]
            headers = signing.sign("GET", PREFIX + "/cloud-integrations", b"", KEY, int(time.time()))
            async with (
                aiohttp.ClientSession() as s,
                s.get(base + PREFIX + "/cloud-integrations?x=1", headers=headers) as r,
            ):
                assert r.status == 401
        finally:
            await server.stop()

    async def test_jobs_register_each_url_once_and_report_errors(self) -> None:
        """Second job with the same URLs: skipped, nothing registered twice; unit errors reported."""
        server = _server(unit_errors={"https://h/bad.png": "Unsupported file"})
        base = await server.start()
        integration = server.integrations[0]["integrationUuid"]
        jobs = f"{PREFIX}/storage/folders/{server.folder}/data-upload-jobs"
        try:
            urls = ["https://h/a.png", "https://h/bad.png"]
            for _ in range(2):
                status, job = await _call(base, "POST", jobs, _job(urls, integration))
                assert status == 200 and isinstance(job, str)
                status, state = await _call(base, "GET", f"{jobs}/{job}?timeoutSeconds=5")
                assert state["status"] == "DONE"  # type: ignore[index]
                assert state["unitErrors"][0]["error"] == "Unsupported file"  # type: ignore[index]
            assert server.registered.keys() == {"https://h/a.png"}
            assert all(len(v) == 1 for v in server.registered.values())
            status, doc = await _call(base, "POST", jobs, _job(urls, "not-an-integration"))
            assert status == 422 and "not found" in doc["message"]  # type: ignore[index]
        finally:
            await server.stop()
