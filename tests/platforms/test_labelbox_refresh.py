"""Presigned row_data refreshed before it expires: pure expiry/re-signing, and the refresher
against the local Labelbox server with the SQLite ledger, a short expiry and an injected clock."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path

from daemon.core.config import SinkConfig, TargetConfig
from daemon.ledger.sqlite import Ledger
from daemon.ledger.store import SqliteStore
from daemon.sinks.base import Batch, BatchItem
from daemon.sinks.labelbox import UrlRefresher, open_labelbox_deliverer
from tests.conftest import ingestd
from tests.platforms.labelbox_server import TEST_KEY, LabelboxServer
from workers.payloads import labelbox as lb
from workers.platforms.labelbox.refresh import presigned, refresh_row, resign
from workers.urls import Credentials, S3UrlSigner

CREDS = Credentials(
    access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token="tok/en+1"
)
SIGNER = S3UrlSigner(region="eu-west-1")


class TestPure:
    def test_expiry_location_and_resigning_round_trip(self) -> None:
        """A presigned URL gives its location, region and expiry; re-signing the location at the
        same time and expiry gives the very same URL (no signature or token is kept)."""
        t0 = 1_700_000_000.0
        url = SIGNER.presign_get(CREDS, "media-bucket", "a b/c+d.mp4", expires=900, now=t0)
        p = presigned(url)
        assert p is not None
        assert p.location == "https://media-bucket.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd.mp4"
        assert p.region == "eu-west-1" and p.expires == t0 + 900
        assert "Signature" not in p.location and "tok" not in p.location
        assert resign(p.location, p.region, CREDS, expires=900, now=t0) == url
        later = resign(p.location, p.region, CREDS, expires=900, now=t0 + 60)
        assert presigned(later) == p._replace(expires=t0 + 960)

    def test_other_urls_are_not_refreshable(self) -> None:
        """Plain https URLs and unsigned queries have no expiry."""
        assert presigned("https://cdn.example.com/a.jpg") is None
        assert presigned("https://x.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256") is None

    def test_refresh_row(self) -> None:
        """The upsert row carries only the new row_data under its global key."""
        assert refresh_row("k", "https://u") == b'{"row_data":"https://u","global_key":"k"}'


class TestRefresher:
    async def test_rows_re_signed_before_expiry_and_upserted_by_key(
        self, tmp_path: Path, server: LabelboxServer
    ) -> None:
        """Rows upserted with 1-hour URLs; at 50 minutes (margin 15) they are re-signed and
        upserted again by global key, and the ledger's expiries move forward; then nothing is due."""
        t0 = time.time()
        now = [t0]
        ledger = Ledger(tmp_path / "l.db").open()
        store = SqliteStore(ledger)
        items = []
        for i in range(3):
            key = f"clip{i}.mp4"
            url = SIGNER.presign_get(CREDS, "media-bucket", key, expires=3600, now=t0)
            items.append(BatchItem(key, "VIDEO", lb.encode(lb.DataRow(row_data=url, global_key=key))))
        cfg = SinkConfig(type="labelbox", endpoint=server.url, upsert=True)
        target = TargetConfig(platform="labelbox", dataset=server.dataset_id)
        env = {"INGESTD_SECRET_LABELBOX_API_KEY": TEST_KEY}

        async def creds() -> Credentials:
            return CREDS

        try:
            async with AsyncExitStack() as stack:
                d = await open_labelbox_deliverer(
                    cfg, target, stack, store, expiries=store, environ=env, poll_interval=0.01
                )
                results = await d.deliver(Batch.of(items))
                assert {r.status for r in results} == {"accepted"}
                recorded = await store.urls_expiring(t0 + 7200, 10)
                assert [e for *_, e in recorded] == [int(t0) + 3600.0] * 3  # X-Amz-Date has seconds
                r = UrlRefresher(d, store, creds, margin=900, expires=3600, clock=lambda: now[0])
                now[0] = t0 + 2000
                assert await r.refresh_due() == 0
                now[0] = t0 + 3000
                assert await r.refresh_due() == 3
                assert await r.refresh_due() == 0
        finally:
            stats = ledger.stats()
            ledger.close()
        assert all(server.updates[i.key] == 2 for i in items)
        row = server.rows["clip1.mp4"]
        assert presigned(row["row_data"]) is not None
        assert presigned(row["row_data"]) == (
            "https://media-bucket.s3.eu-west-1.amazonaws.com/clip1.mp4",
            "eu-west-1",
            int(t0 + 3000) + 3600.0,
        )
        assert stats["urls_expiring_24h"] == 3
        cfg_file = tmp_path / "c.toml"
        cfg_file.write_text('[source]\ntype = "manifest"\npath = "m.ndjson"\n[ledger]\npath = "l.db"\n')
        out = ingestd("status", "-c", str(cfg_file), check=True).stdout
        assert "URLs expiring 24h 3" in out
