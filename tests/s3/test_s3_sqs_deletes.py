"""Deletes that fail, against a real moto_server: retried by the one deleter under the daemon's
retry policy, never lost at close, and given up (logged, left to come back as a duplicate) after
``DELETE_ATTEMPTS``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from aiobotocore.session import get_session
from s3_moto import REGION, queue_counts

from daemon.sources.sqs_calls import DELETE_ATTEMPTS, SqsCalls
from workers.retry import Backoff

NO_WAIT = Backoff(random=lambda: 0.0)  # the policy with its jitter at 0: retries due at once


@dataclass
class Held:
    id: str
    receipt: str
    visible_at: float = 0.0


class Flaky:
    """The real client, with DeleteMessageBatch failing as scripted: ``"raise"`` (the call fails),
    ``"first"`` (the first entry answered Failed/InternalError, not sent), ``"ok"``; the last
    script entry repeats."""

    def __init__(self, client: Any, script: list[str]) -> None:
        self.client = client
        self.script = script
        self.calls: list[list[str]] = []

    async def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:
        what = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append([e["ReceiptHandle"] for e in Entries])
        if what == "raise":
            raise ConnectionResetError("connection reset by peer")
        failed = []
        if what == "first":
            failed = [{"Id": Entries[0]["Id"], "Code": "InternalError", "SenderFault": False}]
            Entries = Entries[1:]
        resp = await self.client.delete_message_batch(QueueUrl=QueueUrl, Entries=Entries) if Entries else {}
        return {"Successful": resp.get("Successful", []), "Failed": failed + resp.get("Failed", [])}


@pytest.fixture
async def client(moto_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client("sqs", region_name=REGION, endpoint_url=moto_endpoint) as c:
        yield c


def received(sqs: Any, queue: str, n: int) -> list[Held]:
    for i in range(n):
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
    got: list[Held] = []
    while len(got) < n:
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=300).get(
            "Messages", []
        ):
            got.append(Held(m["MessageId"], m["ReceiptHandle"]))
    return got


def calls(client: Flaky, **kw: Any) -> tuple[SqsCalls, dict[str, int]]:
    stats = {"deleted": 0, "stale": 0}
    c = SqsCalls(client, kw.pop("queue"), linger=0.05, clock=time.monotonic, stats=stats, backoff=NO_WAIT)
    c.start()
    return c, stats


async def test_failed_calls_and_entries_are_retried_until_deleted(sqs: Any, queue: str, client: Any) -> None:
    """A call that fails, then an entry the queue refuses: both come back to the deleter and every
    message is deleted, once; close() waits for the retries."""
    msgs = received(sqs, queue, 3)
    flaky = Flaky(client, ["raise", "first", "ok"])
    c, stats = calls(flaky, queue=queue)
    for m in msgs:
        c.delete(m)
    await c.close()
    assert stats["deleted"] == 3
    assert queue_counts(sqs, queue) == (0, 0)
    sent = [h for call in flaky.calls for h in call]
    assert sorted(set(sent)) == sorted(m.receipt for m in msgs)
    assert len(flaky.calls) >= 3  # the failed call, the partial one, the retry of the refused entry


async def test_a_delete_that_keeps_failing_is_given_up_and_logged(sqs: Any, queue: str, client: Any) -> None:
    """After DELETE_ATTEMPTS the message is left (it comes back; the ledger makes it a duplicate):
    said once with its id, and close() returns."""
    (m,) = received(sqs, queue, 1)
    flaky = Flaky(client, ["raise"])
    c, stats = calls(flaky, queue=queue)
    with structlog.testing.capture_logs() as logs:
        c.delete(m)
        await c.close()
    assert len(flaky.calls) == DELETE_ATTEMPTS
    assert stats["deleted"] == 0
    gave_up = [e for e in logs if e["event"] == "sqs.delete_gave_up"]
    assert [(e["message_id"], e["attempts"]) for e in gave_up] == [(m.id, DELETE_ATTEMPTS)]
    assert queue_counts(sqs, queue) == (0, 1)  # still in flight: visible again when its timeout ends


async def test_a_stale_handle_is_not_retried(sqs: Any, queue: str, client: Any) -> None:
    """A receipt handle the queue no longer knows is counted stale and dropped, not retried."""
    (m,) = received(sqs, queue, 1)
    stale = Held(m.id, m.receipt + "x")
    flaky = Flaky(client, ["ok"])
    c, stats = calls(flaky, queue=queue)
    c.delete(stale)
    await c.close()
    assert len(flaky.calls) == 1
    assert stats["stale"] == 1 and stats["deleted"] == 0
