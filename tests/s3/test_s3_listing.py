"""The s3-listing backfill against moto_server: pages, suffix filter, contiguous checkpoints, resume."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiobotocore.session import get_session
from hypothesis import given, settings
from hypothesis import strategies as st
from s3_moto import REGION, unique

from daemon.core.config import from_dict
from daemon.sources.listing import ListingMessage, ListingSource, open_listing_source

N = 2500


class SqliteCheckpoints:
    """The Checkpoints protocol over SQLite, as the ledger implements it."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.writes = 0

    async def get_checkpoint(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM checkpoints WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    async def put_checkpoint(self, name: str, value: str) -> None:
        self.writes += 1
        with self.db:
            self.db.execute(
                "INSERT INTO checkpoints VALUES (?,?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (name, value),
            )


@pytest.fixture(scope="module")
def backfill_bucket(s3: Any) -> tuple[str, list[str]]:
    """A bucket WITHOUT notifications (fast puts) holding N objects, 1 in 5 an .mp4."""
    bucket = unique("backfill")
    s3.create_bucket(Bucket=bucket)
    keys = [f"media/{i:05d}{'.mp4' if i % 5 == 0 else '.txt'}" for i in range(N)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    s3.put_object(Bucket=bucket, Key="other/x.mp4", Body=b"x")
    return bucket, keys


@pytest.fixture
async def s3_client(moto_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("s3", region_name=REGION, endpoint_url=moto_endpoint) as c:
        yield c


async def first_batches(src: ListingSource, n: int) -> list[ListingMessage]:
    got: list[ListingMessage] = []
    async for batch in src.batches():
        got.extend(batch)  # type: ignore[arg-type]
        if len(got) >= n:
            break
    return got


class TestBackfill:
    async def test_lists_everything_with_sizes(
        self, backfill_bucket: tuple[str, list[str]], s3_client: Any, tmp_path: Any
    ) -> None:
        """Every object under the prefix is one message with size and unquoted ETag; the checkpoint
        ends at the last key."""
        bucket, keys = backfill_bucket
        ckpt = SqliteCheckpoints(str(tmp_path / "c.db"))
        src = ListingSource(s3_client, ckpt, bucket=bucket, prefix="media/", max_in_flight=5000)
        seen: list[str] = []

        async def run() -> None:
            async for batch in src.batches():
                assert len(batch) <= 100
                for m in batch:
                    (ref,) = m.refs
                    assert ref.size == len(ref.key) and ref.etag and '"' not in ref.etag
                    seen.append(ref.key)
                    await m.ack()

        await asyncio.wait_for(run(), 60)
        assert seen == keys
        assert await ckpt.get_checkpoint(src.checkpoint_name) == keys[-1]
        assert src.stats["pages"] == 3

    async def test_resume_from_contiguous_checkpoint(
        self, backfill_bucket: tuple[str, list[str]], s3_client: Any, tmp_path: Any
    ) -> None:
        """Acks out of order advance the checkpoint only over whole finished pages; a new run
        resumes after it, so finished pages are not listed again and nothing is lost."""
        bucket, keys = backfill_bucket
        ckpt = SqliteCheckpoints(str(tmp_path / "c.db"))
        src = ListingSource(
            s3_client, ckpt, bucket=bucket, prefix="media/", suffix=".mp4", max_in_flight=5000
        )
        # pages of 1000 keys hold 200 .mp4 each: take 2 pages + a bit of the third
        msgs = await first_batches(src, 500)
        page1, page2, page3 = msgs[:200], msgs[200:400], msgs[400:]
        for m in page3:  # finished, but after an unfinished page: no checkpoint yet
            await m.ack()
        assert await ckpt.get_checkpoint(src.checkpoint_name) is None
        for m in page1:
            await m.ack()
        assert await ckpt.get_checkpoint(src.checkpoint_name) == keys[999]
        for m in page2[:-1]:
            await m.ack()
        assert await ckpt.get_checkpoint(src.checkpoint_name) == keys[999]  # page2 still has one open
        await src.close()  # "crash": page2's last object was never finished

        src2 = ListingSource(
            s3_client, ckpt, bucket=bucket, prefix="media/", suffix=".mp4", max_in_flight=5000
        )
        again: list[str] = []

        async def run() -> None:
            async for batch in src2.batches():
                for m in batch:
                    again.append(m.refs[0].key)
                    await m.ack()

        await asyncio.wait_for(run(), 60)
        mp4 = [k for k in keys if k.endswith(".mp4")]
        assert again == mp4[200:]  # page 1 is not repeated; pages 2-3 are (the ledger skips repeats)
        assert await ckpt.get_checkpoint(src2.checkpoint_name) == keys[-1]
        assert set(again) | {m.refs[0].key for m in page1} == set(mp4)

    async def test_retry_later_hands_out_again(
        self, backfill_bucket: tuple[str, list[str]], s3_client: Any
    ) -> None:
        """A message given back is yielded again and the listing only ends when it is acked."""
        bucket, _ = backfill_bucket
        ckpt = SqliteCheckpoints(":memory:")
        src = ListingSource(s3_client, ckpt, bucket=bucket, prefix="other/")
        yielded: list[str] = []

        async def run() -> None:
            async for batch in src.batches():
                for m in batch:
                    yielded.append(m.refs[0].key)
                    if len(yielded) == 1:
                        await m.retry_later(0.05)
                    else:
                        await m.ack()

        await asyncio.wait_for(run(), 10)
        assert yielded == ["other/x.mp4", "other/x.mp4"]
        assert await ckpt.get_checkpoint(src.checkpoint_name) == "other/x.mp4"

    async def test_backpressure(self, backfill_bucket: tuple[str, list[str]], s3_client: Any) -> None:
        """With max_in_flight 1000 nothing past the first page is listed until objects are acked."""
        bucket, _ = backfill_bucket
        src = ListingSource(
            s3_client, SqliteCheckpoints(":memory:"), bucket=bucket, prefix="media/", max_in_flight=1000
        )
        gen = src.batches()
        msgs: list[Any] = []
        for _ in range(10):
            msgs.extend(await anext(gen))
        pending = asyncio.ensure_future(anext(gen))
        done, _ = await asyncio.wait({pending}, timeout=0.3)
        assert not done and src.stats["pages"] == 1
        await msgs[0].ack()
        batch = await asyncio.wait_for(pending, 10)
        assert src.stats["pages"] == 2 and batch[0].refs[0].key == "media/01000.mp4"
        await gen.aclose()

    async def test_open_from_config(self, backfill_bucket: tuple[str, list[str]], moto_endpoint: str) -> None:
        """open_listing_source builds the source from [source]/[aws] config."""
        bucket, _ = backfill_bucket
        cfg = from_dict(
            {
                "source": {"type": "s3-listing", "bucket": bucket, "prefix": "other/", "suffix": ".mp4"},
                "aws": {"region": REGION, "endpoint_url": moto_endpoint, "addressing_style": "path"},
            }
        )
        async with AsyncExitStack() as stack:
            src = await open_listing_source(cfg, stack, SqliteCheckpoints(":memory:"))
            keys = [m.refs[0].key async for batch in src.batches() for m in batch if not await m.ack()]
        assert keys == ["other/x.mp4"]


class PagedBucket:
    """An in-memory ListObjectsV2 (sorted keys, StartAfter, ContinuationToken, MaxKeys) for
    property tests of the checkpoint logic; the real protocol is exercised against moto above."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys)

    async def list_objects_v2(self, *, Bucket: str, Prefix: str, MaxKeys: int, **kw: Any) -> dict[str, Any]:
        start = int(kw["ContinuationToken"]) if "ContinuationToken" in kw else 0
        if "StartAfter" in kw:
            start = next((i for i, k in enumerate(self.keys) if k > kw["StartAfter"]), len(self.keys))
        page = self.keys[start : start + MaxKeys]
        more = start + MaxKeys < len(self.keys)
        resp: dict[str, Any] = {
            "Contents": [{"Key": k, "Size": 1, "ETag": '"e"'} for k in page],
            "IsTruncated": more,
        }
        if more:
            resp["NextContinuationToken"] = str(start + MaxKeys)
        return resp


async def take_n(src: ListingSource, n: int) -> tuple[Any, list[Any]]:
    """The first n messages (not acked) and the still-open batch iterator."""
    gen = src.batches()
    got: list[Any] = []
    while len(got) < n:
        got.extend(await asyncio.wait_for(anext(gen), 10))
    return gen, got


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 60), page=st.integers(1, 9), data=st.data())
async def test_checkpoint_is_last_key_of_finished_page_prefix(n: int, page: int, data: st.DataObject) -> None:
    """Whatever the order of acks, the checkpoint is the last key of the longest prefix of pages
    whose objects are all acked; resuming from it lists exactly the rest."""
    keys = [f"k{i:03d}" for i in range(n)]
    ckpt = SqliteCheckpoints(":memory:")
    src = ListingSource(PagedBucket(keys), ckpt, bucket="b", page_size=page, max_in_flight=10_000)
    gen, msgs = await take_n(src, n)
    await gen.aclose()
    assert [m.refs[0].key for m in msgs] == keys
    order = data.draw(st.permutations(range(n)))
    acked = set(order[: data.draw(st.integers(0, n))])
    for i in order:
        if i in acked:
            await msgs[i].ack()
    pages = [range(p, min(p + page, n)) for p in range(0, n, page)]
    done = 0
    while done < len(pages) and all(j in acked for j in pages[done]):
        done += 1
    position = pages[done - 1][-1] + 1 if done else 0
    assert await ckpt.get_checkpoint(src.checkpoint_name) == (keys[position - 1] if done else None)
    resumed = ListingSource(PagedBucket(keys), ckpt, bucket="b", page_size=page, max_in_flight=10_000)
    gen, rest = await take_n(resumed, n - position)
    assert [m.refs[0].key for m in rest] == keys[position:]
    for m in rest:
        await m.ack()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(gen), 10)
