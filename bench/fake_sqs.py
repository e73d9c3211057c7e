"""A minimal, fast SQS stand-in for benchmarks (moto manages ~250 messages/s; this does >10k).

It speaks the AWS JSON 1.0 protocol botocore uses for SQS (``POST /``, ``X-Amz-Target:
AmazonSQS.<Action>``, ``Content-Type: application/x-amz-json-1.0``) over a raw asyncio HTTP/1.1
server with keep-alive, for one queue preloaded with S3 event notifications:
ReceiveMessage, DeleteMessageBatch, ChangeMessageVisibility(Batch), GetQueueAttributes,
SendMessage, and ``BenchStats`` (receives and deletes so far).
Signatures are not checked; visibility timeouts are not enforced (a received
message stays in flight until deleted), which is all a throughput benchmark needs.

Its CPU per message is part of what a benchmark's machine spends, so it is kept small: each
message's JSON is encoded once at start (ReceiveMessage answers are joins of those bytes and the
receipt handles), requests are decoded by msgspec into Structs, headers are not parsed beyond
Content-Length and X-Amz-Target.

    python -m bench.fake_sqs --port 0 --messages 100000   # prints "PORT <n>" when ready
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any

import msgspec

DEFAULT_ETAG = "d41d8cd98f00b204e9800998ecf8427e"  # of the empty object


def s3_event(i: int, *, size: int | None = None, etag: str = DEFAULT_ETAG) -> str:
    """A realistic ~900-byte S3 ObjectCreated notification body (``size``/``etag``: of the object
    the S3 stand-in serves for every key; by default a made-up size per key)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {
                        "x-amz-request-id": "C3D13FE58DE4C810",
                        "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
                    },
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "ingestd",
                        "bucket": {
                            "name": "media-bucket",
                            "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                            "arn": "arn:aws:s3:::media-bucket",
                        },
                        "object": {
                            "key": f"videos/2026/01/clip+{i:08d}.mp4",
                            "size": 1048576 + i if size is None else size,
                            "eTag": etag,
                            "sequencer": f"0055AED6DCD9{i:08X}",
                        },
                    },
                }
            ]
        }
    )


def s3_events(n: int, *, size: int | None = None, etag: str = DEFAULT_ETAG) -> Iterator[bytes]:
    """``s3_event(i, ...)`` for ``i < n``, UTF-8, formatted from one template (a ``json.dumps``
    per message would be most of a large queue's start-up)."""
    first = s3_event(0, size=size, etag=etag).encode()
    size0 = 1048576 if size is None else size
    template = (
        first.replace(b"%", b"%%")
        .replace(b"clip+00000000.mp4", b"clip+%08d.mp4")
        .replace(b'"size": %d,' % size0, b'"size": %d,')
        .replace(b'"sequencer": "0055AED6DCD900000000"', b'"sequencer": "0055AED6DCD9%08X"')
    )
    if template % (0, size0, 0) != first:
        raise AssertionError("s3_event changed: update the template of s3_events")
    return (template % (i, size0 + i if size is None else size, i) for i in range(n))


class Entry(msgspec.Struct):
    Id: str
    ReceiptHandle: str
    VisibilityTimeout: int = 30


class Batch(msgspec.Struct):  # DeleteMessageBatch, ChangeMessageVisibilityBatch
    Entries: list[Entry] = []


class Receive(msgspec.Struct):
    MaxNumberOfMessages: int = 1


_RECEIVE = msgspec.json.Decoder(Receive, strict=False)  # strict=False: "10" is taken as 10
_BATCH = msgspec.json.Decoder(Batch, strict=False)
_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()
_INVALID = b'"SenderFault":true,"Code":"ReceiptHandleIsInvalid","Message":"x"}'


class Queue:
    """One queue of ``n`` messages. Each message's JSON in a ReceiveMessage answer is encoded once,
    at start, as the bytes before and after its receipt handle (the one part that changes per
    receive), so an answer is a join of ready pieces."""

    def __init__(self, n: int, **event: Any) -> None:
        self.visible: deque[int] = deque(range(n))
        self.in_flight: dict[str, int] = {}
        self.deleted = 0
        self.receives = 0
        self.counter = 0
        self.before: list[bytes] = []
        self.after: list[bytes] = []
        for i, body in enumerate(s3_events(n, **event)):
            md5 = hashlib.md5(body).hexdigest().encode()
            self.before.append(b'{"MessageId":"m-%d","ReceiptHandle":"' % i)
            self.after.append(
                b'","MD5OfBody":"%s","Body":%s,"Attributes":{"ApproximateReceiveCount":"1"}}'
                % (md5, _ENC.encode(body.decode()))
            )

    def receive(self, body: bytes) -> bytes:
        self.receives += 1
        want = min(10, _RECEIVE.decode(body or b"{}").MaxNumberOfMessages)
        out = [b'{"Messages":[']  # the answer's pieces, joined once
        for _ in range(want):
            if not self.visible:
                break
            i = self.visible.popleft()
            self.counter += 1
            handle = f"rh-{i}-{self.counter}"
            self.in_flight[handle] = i
            out += (self.before[i], handle.encode(), self.after[i], b",")
        if len(out) == 1:
            return b"{}"
        out[-1] = b"]}"
        return b"".join(out)

    def delete_batch(self, body: bytes) -> bytes:
        ok, failed = [], []
        pop = self.in_flight.pop
        for e in _BATCH.decode(body or b"{}").Entries:
            if pop(e.ReceiptHandle, None) is None:
                failed.append(b'{"Id":%s,%s' % (_ENC.encode(e.Id), _INVALID))
            else:
                ok.append(b'{"Id":%s}' % _ENC.encode(e.Id))
        self.deleted += len(ok)
        return b'{"Successful":[%s],"Failed":[%s]}' % (b",".join(ok), b",".join(failed))

    def visibility_batch(self, body: bytes) -> bytes:
        return self._visibility(_BATCH.decode(body or b"{}").Entries)

    def _visibility(self, entries: list[Entry]) -> bytes:
        ok, failed = [], []
        for e in entries:
            i = self.in_flight.get(e.ReceiptHandle)
            if i is None:
                failed.append(b'{"Id":%s,%s' % (_ENC.encode(e.Id), _INVALID))
                continue
            if e.VisibilityTimeout == 0:
                del self.in_flight[e.ReceiptHandle]
                self.visible.append(i)
            ok.append(b'{"Id":%s}' % _ENC.encode(e.Id))
        return b'{"Successful":[%s],"Failed":[%s]}' % (b",".join(ok), b",".join(failed))

    def handle(self, action: str, body: bytes) -> bytes:
        """The answer to one request (its JSON body as sent); KeyError for an unknown action."""
        if action == "ReceiveMessage":
            return self.receive(body)
        if action == "DeleteMessageBatch":
            return self.delete_batch(body)
        if action == "ChangeMessageVisibilityBatch":
            return self.visibility_batch(body)
        req: dict[str, Any] = _DEC.decode(body) if body else {}
        if action == "ChangeMessageVisibility":
            self._visibility([msgspec.convert({"Id": "0", **req}, Entry, strict=False)])
            return b"{}"
        if action == "GetQueueAttributes":
            attributes = {
                "ApproximateNumberOfMessages": str(len(self.visible)),
                "ApproximateNumberOfMessagesNotVisible": str(len(self.in_flight)),
            }
            return _ENC.encode({"Attributes": attributes})
        if action == "BenchStats":  # not SQS: what a benchmark reads between its windows
            stats = {"Receives": self.receives, "Deleted": self.deleted, "Visible": len(self.visible)}
            return _ENC.encode(stats)
        if action == "SendMessage":
            md5 = hashlib.md5(req["MessageBody"].encode()).hexdigest()
            return _ENC.encode({"MessageId": "dlq", "MD5OfMessageBody": md5})
        raise KeyError(action)


_HEAD_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_TARGET = re.compile(rb"\r\nx-amz-target:[ \t]*[^\r.]*\.([^\r \t]*)", re.IGNORECASE)
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n"
_TAIL = b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nContent-Length: %d\r\n\r\n"


class SqsProtocol(asyncio.Protocol):
    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(_HEAD_END)
            if end < 0:
                return
            head = bytes(buf[:end])
            length = m.group(1) if (m := _LENGTH.search(head)) else b"0"
            stop = end + 4 + int(length)
            if len(buf) < stop:
                return
            body = bytes(buf[end + 4 : stop])
            del buf[:stop]
            target = _TARGET.search(head)
            self.respond(target.group(1).decode() if target else "", body)

    def respond(self, action: str, body: bytes) -> None:
        assert self.transport is not None
        try:
            payload, status = self.queue.handle(action, body), _OK
        except KeyError:
            payload = _ENC.encode({"__type": "com.amazonaws.sqs#InvalidAction", "message": action})
            status = _BAD
        self.transport.writelines((status, _TAIL % len(payload), payload))  # one send, no copy


async def serve(port: int, messages: int, **event: Any) -> None:
    queue = Queue(messages, **event)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SqsProtocol(queue), "127.0.0.1", port)
    actual = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {actual}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--size", type=int, default=None, help="object size in every event")
    ap.add_argument("--etag", default=DEFAULT_ETAG, help="ETag in every event")
    a = ap.parse_args()
    event: dict[str, Any] = {"size": a.size, "etag": a.etag}
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.run(serve(a.port, a.messages, **event))
    except ImportError:
        asyncio.run(serve(a.port, a.messages, **event))


if __name__ == "__main__":
    main()
