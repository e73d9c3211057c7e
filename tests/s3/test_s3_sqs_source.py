"""The sqs source against a real moto_server: events, acks, heartbeats, poison, release."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiobotocore.session import get_session
from s3_moto import REGION, apoll, queue_arn, queue_counts, unique

from daemon.core.config import from_dict
from daemon.sources.sqs import SqsMessage, SqsSource, open_sqs_source, retry_visibility
from daemon.sources.sqs_http import open_thin_sqs


class CountingClient:
    """A real client (aiobotocore's or the thin one), counting the calls made through it.
    ``hot``: the thin client for the hot calls, counted in the same Counter, or None."""

    def __init__(self, client: Any, calls: Counter[str] | None = None) -> None:
        self._client = client
        self.calls: Counter[str] = Counter() if calls is None else calls
        self.hot: CountingClient | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await attr(*args, **kwargs)

        return call


@pytest.fixture(params=["aiobotocore", "thin"])
async def sqs_client(moto_endpoint: str, request: pytest.FixtureRequest) -> AsyncIterator[CountingClient]:
    """Every source test runs with aiobotocore for all calls, and with the thin client for the hot ones."""
    session = get_session()
    async with AsyncExitStack() as stack:
        c = await stack.enter_async_context(
            session.create_client("sqs", region_name=REGION, endpoint_url=moto_endpoint)
        )
        counting = CountingClient(c)
        if request.param == "thin":
            thin = await open_thin_sqs(c, session, stack, connections=8, read_timeout=15)
            counting.hot = CountingClient(thin, counting.calls)
        yield counting


def source(client: Any, queue_url: str, **kw: Any) -> SqsSource:
    opts: dict[str, Any] = {"receivers": 2, "wait_time_seconds": 1, "visibility_timeout": 30, "once": True}
    opts["hot"] = getattr(client, "hot", None)
    opts.update(kw)
    return SqsSource(client, queue_url=queue_url, **opts)


async def take(src: SqsSource, n: int, timeout: float = 60.0) -> list[SqsMessage]:
    """The first ``n`` messages handed out (kept un-acked)."""
    got: list[SqsMessage] = []

    async def run() -> None:
        async for batch in src.batches():
            got.extend(batch)  # type: ignore[arg-type]
            if len(got) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def drain(src: SqsSource, timeout: float = 20.0) -> list[SqsMessage]:
    """Every message until the once-mode source ends, acking each after collecting it."""
    got: list[SqsMessage] = []

    async def run() -> None:
        async for batch in src.batches():
            for m in batch:
                got.append(m)  # type: ignore[arg-type]
                await m.ack()

    await asyncio.wait_for(run(), timeout)
    return got


def s3_event(*keys: str, bucket: str = "media", event: str = "ObjectCreated:Put") -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventName": event,
                    "s3": {"bucket": {"name": bucket}, "object": {"key": k, "size": 5, "eTag": "e"}},
                }
                for k in keys
            ]
        }
    )


class TestBucketNotifications:
    async def test_objects_put_give_refs_once(self, s3: Any, sqs: Any, queue: str) -> None:
        """Real S3 events from moto: each object once, keys decoded, queue empty after acks."""
        bucket = unique("media")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn(sqs, queue),
                        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    }
                ]
            },
        )
        keys = ["a.mp4", "dir/red flower.jpg", "c++ notes/x+y%z.png", "ünï/ça.wav"]
        for k in keys:
            s3.put_object(Bucket=bucket, Key=k, Body=b"hello " + k.encode())
        s3.delete_object(Bucket=bucket, Key="a.mp4")
        cfg = from_dict(
            {
                "source": {"type": "sqs", "queue_url": queue, "receivers": 2, "wait_time_seconds": 1},
                "aws": {"region": REGION, "endpoint_url": s3.meta.endpoint_url},
            }
        )
        async with AsyncExitStack() as stack:
            src = await open_sqs_source(cfg, stack, once=True)
            msgs = await drain(src)
            stats = src.stats
        refs = [r for m in msgs for r in m.refs]
        assert sorted(r.key for r in refs) == sorted(keys)
        by_key = {r.key: r for r in refs}
        assert by_key["dir/red flower.jpg"].bucket == bucket
        assert by_key["dir/red flower.jpg"].size == len(b"hello dir/red flower.jpg")
        assert by_key["c++ notes/x+y%z.png"].etag
        assert all(m.error is None for m in msgs)
        assert stats["skipped"] >= 1  # the ObjectRemoved event (and moto's s3:TestEvent, if any)
        assert queue_counts(sqs, queue) == (0, 0)


class TestBodies:
    async def test_sns_eventbridge_test_event_malformed(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """SNS-wrapped and EventBridge give refs; a test event is skipped; garbage is an error with raw."""
        sns = json.dumps({"Type": "Notification", "MessageId": "1", "Message": s3_event("sns+key.jpg")})
        eb = json.dumps(
            {
                "detail-type": "Object Created",
                "source": "aws.s3",
                "detail": {"bucket": {"name": "media"}, "object": {"key": "eb+key.jpg", "size": 3}},
            }
        )
        test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "media"})
        for body in (sns, eb, test_event, "{not json"):
            sqs.send_message(QueueUrl=queue, MessageBody=body)
        src = source(sqs_client, queue)
        try:
            msgs = await drain(src)
        finally:
            await src.aclose()
        good = sorted(r.key for m in msgs for r in m.refs)
        assert good == ["eb+key.jpg", "sns key.jpg"]
        (bad,) = [m for m in msgs if m.error]
        assert bad.raw == b"{not json" and "not JSON" in (bad.error or "") and bad.poison is None
        assert src.stats["skipped"] == 1 and len(msgs) == 3
        assert queue_counts(sqs, queue) == (0, 0)

    async def test_multi_record_deleted_once_in_batches(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """A 3-record message is one message; it stays until acked; a second ack does nothing;
        12 acks go out as 2 DeleteMessageBatch calls."""
        sqs.send_message(QueueUrl=queue, MessageBody=s3_event("a", "b", "c"))
        for i in range(11):
            sqs.send_message(QueueUrl=queue, MessageBody=s3_event(f"k{i}"))
        src = source(sqs_client, queue, delete_linger=0.5)
        try:
            msgs = await take(src, 12)
            (multi,) = [m for m in msgs if len(m.refs) == 3]
            assert [r.key for r in multi.refs] == ["a", "b", "c"]
            assert queue_counts(sqs, queue) == (0, 12)
            for m in msgs:
                await m.ack()
            await multi.ack()
            await apoll(lambda: src.stats["deleted"] == 12)
        finally:
            await src.aclose()
        assert sqs_client.calls["delete_message_batch"] == 2
        assert queue_counts(sqs, queue) == (0, 0)


class TestPoisonAndRetry:
    async def test_poison_goes_to_dlq_and_is_deleted(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """Past max_receive_count the message is handed out as poison, copied to the DLQ on ack, deleted."""
        dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody=s3_event("p.jpg"))
        src = source(sqs_client, queue, max_receive_count=1, dead_letter_queue_url=dlq, once=False)
        try:
            (first,) = await take(src, 1)
            assert first.refs and first.poison is None
            await first.retry_later(0)  # released: received again at once
            (again,) = await take(src, 1)
            assert again.poison is not None and again.poison.count == 2 and again.error is None
            assert again.refs == first.refs  # it still names its object (dead-lettered per object)
            assert again.raw == s3_event("p.jpg").encode()
            await again.ack()
            await apoll(lambda: src.stats["deleted"] == 1)
        finally:
            await src.aclose()
        got = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
        assert got[0]["Body"] == s3_event("p.jpg")
        assert "max_receive_count=1" in got[0]["MessageAttributes"]["ingestd-error"]["StringValue"]
        assert queue_counts(sqs, queue) == (0, 0)

    async def test_retry_later_hides_with_backoff(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """retry_later(delay>0) keeps the message invisible (exponential in receive count), never 0."""
        sqs.send_message(QueueUrl=queue, MessageBody=s3_event("r.jpg"))
        src = source(sqs_client, queue)
        try:
            (m,) = await take(src, 1)
            await m.retry_later(1)
            assert queue_counts(sqs, queue) == (0, 1)
        finally:
            await src.aclose()
        assert queue_counts(sqs, queue) == (0, 1)  # close does not release what was retried
        assert [retry_visibility(1, n) for n in (1, 2, 3, 10, 20)] == [5, 10, 20, 900, 900]
        assert retry_visibility(60, 1) == 60


class TestVisibility:
    async def test_heartbeat_keeps_message_invisible(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """With a 2 s visibility timeout, an un-acked message stays invisible for 3x that."""
        sqs.send_message(QueueUrl=queue, MessageBody=s3_event("slow.mp4"))
        src = source(sqs_client, queue, visibility_timeout=2, once=False)
        try:
            (m,) = await take(src, 1)
            loop = asyncio.get_running_loop()
            until = loop.time() + 6.0
            while loop.time() < until:  # another consumer must never get it
                got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0, VisibilityTimeout=0)
                assert not got.get("Messages"), "message became visible while held"
                await asyncio.sleep(0.2)
            assert src.stats["extended"] >= 2
            await m.ack()
            await apoll(lambda: src.stats["deleted"] == 1)
        finally:
            await src.aclose()
        assert queue_counts(sqs, queue) == (0, 0)

    async def test_close_releases_unhanded_messages(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """close() releases what was received but not handed out at once; a handed-out message
        stays ours (heartbeat) until aclose() releases it too."""
        for i in range(15):
            sqs.send_message(QueueUrl=queue, MessageBody=s3_event(f"k{i}"))
        src = source(sqs_client, queue, once=False, receivers=2, visibility_timeout=2)
        (handed,) = (await take(src, 1))[:1]
        await apoll(lambda: src.stats["received"] >= 15)
        assert queue_counts(sqs, queue) == (0, 15)
        await src.close()
        handed_batch = 15 - src.stats["released"]
        assert handed_batch >= 1 and queue_counts(sqs, queue) == (15 - handed_batch, handed_batch)
        await apoll(lambda: src.stats["extended"] >= 1)  # heartbeat still runs after close()
        await src.aclose()
        assert queue_counts(sqs, queue) == (15, 0)
        assert handed.id

    async def test_close_during_long_poll_loses_nothing(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """A message arriving while receivers long-poll and close() runs is given back at once,
        not left invisible by a cancelled receive."""
        src = source(sqs_client, queue, once=False, wait_time_seconds=2)
        await src.start()
        await apoll(lambda: sqs_client.calls["receive_message"] >= 2)  # both receivers polling
        sqs.send_message(QueueUrl=queue, MessageBody=s3_event("late.jpg"))
        await src.close()
        assert queue_counts(sqs, queue) == (1, 0)
        await src.aclose()

    async def test_acks_after_close_still_delete(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """The pipeline acks while draining, after close(): those deletes still go out."""
        for i in range(3):
            sqs.send_message(QueueUrl=queue, MessageBody=s3_event(f"k{i}"))
        src = source(sqs_client, queue, once=False)
        msgs = await take(src, 3)
        await src.close()
        for m in msgs:
            await m.ack()
        await src.aclose()
        assert src.stats["deleted"] == 3
        assert queue_counts(sqs, queue) == (0, 0)

    async def test_backpressure_bounds_in_flight(self, sqs: Any, queue: str, sqs_client: Any) -> None:
        """With max_in_flight 20 and nobody acking, no more than 20 messages are taken from the queue."""
        for i in range(40):
            sqs.send_message(QueueUrl=queue, MessageBody=s3_event(f"k{i}"))
        src = source(sqs_client, queue, once=False, max_in_flight=20, receivers=3)
        try:
            msgs = await take(src, 20)
            await apoll(lambda: queue_counts(sqs, queue) == (20, 20), timeout=30)
            for m in msgs[:10]:
                await m.ack()
            await apoll(lambda: src.stats["received"] >= 30)
        finally:
            await src.aclose()
