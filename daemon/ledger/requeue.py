"""Bringing dead-lettered objects back to a queue source (``ingestd dlq requeue``).

For the spool and manifest sources, forgetting the dead letter is enough: the next run reads
the object again. A queue source's message was deleted once the object was dead-lettered, so
forgetting it would bring nothing back: for ``sqs`` a fresh S3 ``ObjectCreated`` notification
is sent to the queue, for ``redis`` a fresh entry naming the object is added to the stream.
A dead letter for a message that could not be decoded names no object and is not re-sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote_plus

import msgspec

from daemon.core.aws import aws_client
from daemon.core.config import Config
from daemon.core.jobs import ObjectRef
from daemon.ledger.records import DeadLetter


class Requeued(msgspec.Struct, kw_only=True):
    sent: list[str]  # keys whose object was announced to the queue again
    skipped: dict[str, str]  # key -> why it could not be re-sent


def notification(ref: ObjectRef) -> bytes:
    """An S3 event notification body for one object, as S3 itself would send it."""
    obj: dict[str, Any] = {"key": quote_plus(ref.key, safe="/"), "size": ref.size or 0}
    if ref.etag:
        obj["eTag"] = ref.etag
    if ref.version:
        obj["versionId"] = ref.version
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": ref.bucket}, "object": obj},
        "requeuedBy": "ingestd dlq requeue",
    }
    return msgspec.json.encode({"Records": [record]})


def stream_body(ref: ObjectRef) -> bytes:
    """A stream entry naming the object as the original did: the same location string (so
    the same key) and the same manifest fields (global key, metadata...)."""
    if ref.origin == "s3":
        return notification(ref)
    where = {"url": ref.url} if ref.origin == "url" else {"path": ref.key}
    return msgspec.json.encode({**(ref.metadata or {}), **where})


def refs_of(letters: Sequence[DeadLetter]) -> tuple[list[tuple[str, ObjectRef]], dict[str, str]]:
    refs: list[tuple[str, ObjectRef]] = []
    skipped: dict[str, str] = {}
    for d in letters:
        if d.object is None:
            skipped[d.key] = "the message itself could not be decoded: nothing to announce again"
            continue
        try:
            refs.append((d.key, msgspec.convert(d.object, ObjectRef)))
        except msgspec.ValidationError as e:
            skipped[d.key] = f"stored object is not readable: {e}"
    return refs, skipped


async def announce(cfg: Config, letters: Sequence[DeadLetter]) -> Requeued:
    """Put the dead-lettered objects back on the configured queue source."""
    refs, skipped = refs_of(letters)
    sent: list[str] = []
    s = cfg.source
    async with AsyncExitStack() as stack:
        if s.type == "sqs":
            client = await aws_client(stack, cfg.aws, "sqs")
            for i in range(0, len(refs), 10):
                chunk = [(k, r) for k, r in refs[i : i + 10] if r.origin == "s3"]
                skipped.update({k: "not an S3 object" for k, r in refs[i : i + 10] if r.origin != "s3"})
                if not chunk:
                    continue
                out = await client.send_message_batch(
                    QueueUrl=s.queue_url,
                    Entries=[
                        {"Id": str(n), "MessageBody": notification(r).decode()}
                        for n, (_, r) in enumerate(chunk)
                    ],
                )
                failed = {int(f["Id"]): f.get("Message", "failed") for f in out.get("Failed", [])}
                for n, (k, _) in enumerate(chunk):
                    if n in failed:
                        skipped[k] = f"SendMessageBatch: {failed[n]}"
                    else:
                        sent.append(k)
        elif s.type == "redis":
            from daemon.sources.redis_streams import make_client  # noqa: PLC0415 - redis only here

            client = make_client(s.redis_url)
            stack.push_async_callback(client.aclose)
            for k, r in refs:
                await client.xadd(s.stream, {"body": stream_body(r)})
                sent.append(k)
    return Requeued(sent=sent, skipped=skipped)
