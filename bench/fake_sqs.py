"""A minimal, fast SQS stand-in for benchmarks (moto manages ~250 messages/s; this does >10k).

It speaks the AWS JSON 1.0 protocol botocore uses for SQS (``POST /``, ``X-Amz-Target:
AmazonSQS.<Action>``, ``Content-Type: application/x-amz-json-1.0``) over a raw asyncio HTTP/1.1
server with keep-alive, for one queue preloaded with S3 event notifications:
ReceiveMessage, DeleteMessageBatch, ChangeMessageVisibility(Batch), GetQueueAttributes,
SendMessage, and ``BenchStats`` (receives and deletes so far).
Signatures are not checked; visibility timeouts are not enforced (a received
message stays in flight until deleted), which is all a throughput benchmark needs.

    python -m bench.fake_sqs --port 0 --messages 100000   # prints "PORT <n>" when ready
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections import deque
from typing import Any

import msgspec


def s3_event(i: int, *, size: int | None = None, etag: str = "d41d8cd98f00b204e9800998ecf8427e") -> str:
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


class Queue:
    def __init__(self, n: int, **event: Any) -> None:
        self.visible: deque[int] = deque(range(n))
        self.in_flight: dict[str, int] = {}
        self.bodies = [s3_event(i, **event) for i in range(n)]
        self.deleted = 0
        self.md5 = [hashlib.md5(b.encode()).hexdigest() for b in self.bodies]
        self.receives = 0
        self.counter = 0

    def receive(self, req: dict[str, Any]) -> dict[str, Any]:
        self.receives += 1
        out = []
        for _ in range(min(10, int(req.get("MaxNumberOfMessages", 1)))):
            if not self.visible:
                break
            i = self.visible.popleft()
            self.counter += 1
            handle = f"rh-{i}-{self.counter}"
            self.in_flight[handle] = i
            out.append(
                {
                    "MessageId": f"m-{i}",
                    "ReceiptHandle": handle,
                    "MD5OfBody": self.md5[i],
                    "Body": self.bodies[i],
                    "Attributes": {"ApproximateReceiveCount": "1"},
                }
            )
        return {"Messages": out} if out else {}

    def delete_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        ok, failed = [], []
        for e in req.get("Entries", []):
            if self.in_flight.pop(e["ReceiptHandle"], None) is None:
                failed.append(
                    {"Id": e["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "x"}
                )
            else:
                ok.append({"Id": e["Id"]})
        self.deleted += len(ok)
        return {"Successful": ok, "Failed": failed}

    def visibility_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        ok, failed = [], []
        for e in req.get("Entries", []):
            i = self.in_flight.get(e["ReceiptHandle"])
            if i is None:
                failed.append(
                    {"Id": e["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "x"}
                )
                continue
            if int(e.get("VisibilityTimeout", 30)) == 0:
                del self.in_flight[e["ReceiptHandle"]]
                self.visible.append(i)
            ok.append({"Id": e["Id"]})
        return {"Successful": ok, "Failed": failed}

    def handle(self, action: str, req: dict[str, Any]) -> dict[str, Any]:
        if action == "ReceiveMessage":
            return self.receive(req)
        if action == "DeleteMessageBatch":
            return self.delete_batch(req)
        if action == "ChangeMessageVisibilityBatch":
            return self.visibility_batch(req)
        if action == "ChangeMessageVisibility":
            self.visibility_batch({"Entries": [{"Id": "0", **req}]})
            return {}
        if action == "GetQueueAttributes":
            return {
                "Attributes": {
                    "ApproximateNumberOfMessages": str(len(self.visible)),
                    "ApproximateNumberOfMessagesNotVisible": str(len(self.in_flight)),
                }
            }
        if action == "BenchStats":  # not SQS: what a benchmark reads between its windows
            return {"Receives": self.receives, "Deleted": self.deleted, "Visible": len(self.visible)}
        if action == "SendMessage":
            return {
                "MessageId": "dlq",
                "MD5OfMessageBody": hashlib.md5(req["MessageBody"].encode()).hexdigest(),
            }
        raise KeyError(action)


_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()


class SqsProtocol(asyncio.Protocol):
    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self.respond(headers.get("x-amz-target", "").rpartition(".")[2], body)

    def respond(self, action: str, body: bytes) -> None:
        assert self.transport is not None
        try:
            payload = _ENC.encode(self.queue.handle(action, _DEC.decode(body) if body else {}))
            status = b"200 OK"
        except KeyError:
            payload = _ENC.encode({"__type": "com.amazonaws.sqs#InvalidAction", "message": action})
            status = b"400 Bad Request"
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/x-amz-json-1.0\r\n"
            b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )


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
    ap.add_argument("--etag", default="d41d8cd98f00b204e9800998ecf8427e", help="ETag in every event")
    a = ap.parse_args()
    event: dict[str, Any] = {"size": a.size, "etag": a.etag}
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.run(serve(a.port, a.messages, **event))
    except ImportError:
        asyncio.run(serve(a.port, a.messages, **event))


if __name__ == "__main__":
    main()
