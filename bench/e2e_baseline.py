"""The end-to-end baseline of ``bench e2e``: a prototype-style loop from the same libraries.

aiobotocore SQS (ReceiveMessage 10, DeleteMessageBatch), msgspec decoding of the S3 event,
our stdlib presigner, one aiohttp ranged GET of the head per object, the same media parser, an
NDJSON row per object appended to a file. No ledger, no batching stages, no tracking: what a
straightforward build of the same work costs. Runs until SIGTERM, or with ``--once`` until a
receive finds the queue empty (what ``bench e2e_instructions`` counts).

    python -m bench.e2e_baseline S3_ENDPOINT SQS_ENDPOINT QUEUE_URL OUT [--receivers 8] [--head 65536]
        [--once]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from urllib.parse import unquote_plus

import aiohttp
import msgspec
import uvloop
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from workers.probe.engine import step
from workers.probe.media import MediaInfo
from workers.probe.sparse import Sparse
from workers.sigv4 import Credentials
from workers.urls import S3UrlSigner


class Bucket(msgspec.Struct):
    name: str


class Obj(msgspec.Struct):
    key: str
    size: int = 0
    eTag: str = ""


class S3(msgspec.Struct):
    bucket: Bucket
    object: Obj


class Record(msgspec.Struct):
    s3: S3


class Event(msgspec.Struct):
    Records: list[Record]


class Row(msgspec.Struct, gc=False):
    row_data: str
    global_key: str
    media_type: str
    width: int | None
    height: int | None
    duration: float | None


_event = msgspec.json.Decoder(Event)
_rows = msgspec.json.Encoder()


async def main(a: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    signer = S3UrlSigner(region="us-east-1", endpoint_url=a.s3_endpoint, addressing_style="path")
    session = get_session()
    out = open(a.out, "ab", buffering=1 << 20)  # noqa: SIM115 - closed below
    cfg = AioConfig(max_pool_connections=a.receivers + 8, parameter_validation=False, read_timeout=30)
    async with (
        session.create_client("sqs", region_name="us-east-1", endpoint_url=a.sqs_endpoint, config=cfg) as sqs,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        ) as http,
    ):
        frozen = await (await session.get_credentials()).get_frozen_credentials()
        creds = Credentials(access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token)

        async def one(record: Record) -> bytes:
            bucket, obj = record.s3.bucket.name, record.s3.object
            key = unquote_plus(obj.key)
            url = signer.presign_get(creds, bucket, key, expires=900, now=time.time())
            headers = {"Range": f"bytes=0-{a.head - 1}", "If-Match": f'"{obj.eTag}"'}
            async with http.get(url, headers=headers) as r:
                head = await r.read()
            info = step(Sparse(obj.size, [(0, head)]))
            media = info if isinstance(info, MediaInfo) else None
            return _rows.encode(
                Row(
                    row_data=url,
                    global_key=key,
                    media_type=media.kind if media else "unknown",
                    width=media.width if media else None,
                    height=media.height if media else None,
                    duration=media.duration if media else None,
                )
            )

        async def receiver() -> None:
            while not stop.is_set():
                resp = await sqs.receive_message(
                    QueueUrl=a.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=20,
                    VisibilityTimeout=120,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
                msgs = resp.get("Messages") or []
                if not msgs:
                    if a.once:
                        return  # the others finish what they hold
                    continue
                records = [r for m in msgs for r in _event.decode(m["Body"]).Records]
                rows = await asyncio.gather(*(one(r) for r in records))
                out.write(b"\n".join(rows) + b"\n")
                await sqs.delete_message_batch(
                    QueueUrl=a.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
                )

        tasks = [asyncio.create_task(receiver()) for _ in range(a.receivers)]
        if a.once:
            await asyncio.gather(*tasks)
        else:
            await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("s3_endpoint")
    ap.add_argument("sqs_endpoint")
    ap.add_argument("queue_url")
    ap.add_argument("out")
    ap.add_argument("--receivers", type=int, default=8)
    ap.add_argument("--head", type=int, default=65536)
    ap.add_argument("--once", action="store_true", help="stop when a receive finds the queue empty")
    uvloop.run(main(ap.parse_args()))
