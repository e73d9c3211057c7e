"""The thin SQS client: the hot calls against moto_server, errors mapped, signatures as botocore's."""

from __future__ import annotations

import calendar
import datetime
import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import aiohttp
import botocore.auth
import botocore.credentials
import pytest
from aiohttp import web
from botocore.awsrequest import AWSRequest
from s3_moto import REGION, queue_counts

from daemon.sources.sqs_http import ThinSqs
from workers.reads.h1pool import RangeClient
from workers.reads.s3 import ChainCredentials
from workers.sigv4 import Credentials
from workers.sqs_wire import SqsError

CREDS = Credentials(access_key="AKIDTHIN", secret_key="thin/secret+key", token="session-token==")


class Static:
    def __init__(self, creds: Credentials) -> None:
        self.creds = creds

    async def get(self) -> Credentials:
        return self.creds


@pytest.fixture(params=["range_client", "aiohttp"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[RangeClient | aiohttp.ClientSession]:
    """Both clients ThinSqs takes: the source's RangeClient and an aiohttp session."""
    async with RangeClient() if request.param == "range_client" else aiohttp.ClientSession() as s:
        yield s


async def test_receive_delete_visibility_against_moto(
    moto_endpoint: str, sqs: Any, queue: str, http: RangeClient | aiohttp.ClientSession
) -> None:
    """Messages come back as botocore's dicts; batch deletes and visibility changes take effect,
    stale handles come back per entry in Failed (not as an error)."""
    for i in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=f"body {i} ü")
    thin = ThinSqs(http, moto_endpoint, region=REGION, credentials=ChainCredentials())
    got = await thin.receive_message(
        QueueUrl=queue,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        VisibilityTimeout=30,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )
    msgs = got["Messages"]
    assert sorted(m["Body"] for m in msgs) == ["body 0 ü", "body 1 ü", "body 2 ü"]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in msgs)
    assert queue_counts(sqs, queue) == (0, 3)
    released = await thin.change_message_visibility_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "0", "ReceiptHandle": msgs[0]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "1", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 0},
        ],
    )
    assert [e["Id"] for e in released["Successful"]] == ["0"]
    assert [(e["Id"], e["Code"]) for e in released["Failed"]] == [("1", "ReceiptHandleIsInvalid")]
    assert queue_counts(sqs, queue) == (1, 2)
    deleted = await thin.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs[1:])]
        + [{"Id": "9", "ReceiptHandle": "bogus"}],
    )
    assert sorted(e["Id"] for e in deleted["Successful"]) == ["0", "1"]
    assert [(e["Id"], e["Code"], e["SenderFault"]) for e in deleted["Failed"]] == [
        ("9", "ReceiptHandleIsInvalid", True)
    ]
    assert queue_counts(sqs, queue) == (1, 0)
    empty = await thin.receive_message(
        QueueUrl=queue, WaitTimeSeconds=0, VisibilityTimeout=0, MaxNumberOfMessages=1
    )
    assert len(empty["Messages"]) == 1


async def test_missing_queue_is_no_queue(
    moto_endpoint: str, http: RangeClient | aiohttp.ClientSession
) -> None:
    thin = ThinSqs(http, moto_endpoint, region=REGION, credentials=Static(CREDS))
    with pytest.raises(SqsError) as e:
        await thin.receive_message(QueueUrl=f"{moto_endpoint}/123456789012/no-such-queue", WaitTimeSeconds=0)
    assert e.value.kind == "no_queue" and not e.value.retryable
    assert e.value.code == "AWS.SimpleQueueService.NonExistentQueue"  # botocore's ClientError code
    assert e.value.status == 400


class StandIn:
    """An SQS stand-in answering each call with the next canned reply; checks each signature
    by re-signing the received request with botocore (the headers it says it signed)."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], bytes]] = []
        self.verified = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        auth = request.headers["Authorization"]
        names = auth.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
        signed = {n: request.headers[n] for n in names if n != "host"}
        at = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        url = f"http://{request.headers['Host']}{request.path}"
        bc = botocore.credentials.Credentials(CREDS.access_key, CREDS.secret_key, CREDS.token)
        again = AWSRequest(method=request.method, url=url, data=body, headers=signed)
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
            botocore.auth.SigV4Auth(bc, "sqs", REGION).add_auth(again)
        assert again.headers["Authorization"] == auth
        assert json.loads(body)["QueueUrl"] == "q"
        self.verified += 1
        status, headers, payload = self.replies.pop(0)
        return web.Response(
            status=status, headers=headers, body=payload, content_type="application/x-amz-json-1.0"
        )


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    s = StandIn()
    app = web.Application()
    app.router.add_post("/", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield s, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "headers", "body", "code", "kind"),
    [
        (
            400,
            {},
            b'{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}',
            "ThrottlingException",
            "throttled",
        ),
        (
            400,
            {"x-amzn-query-error": "RequestThrottled;Sender"},
            b'{"__type":"com.amazonaws.sqs#RequestThrottled"}',
            "RequestThrottled",
            "throttled",
        ),
        (
            403,
            {},
            b'{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"no"}',
            "AccessDeniedException",
            "denied",
        ),
        (
            403,
            {"x-amzn-query-error": "AccessDenied;Sender"},
            b'{"__type":"AccessDeniedException"}',
            "AccessDenied",
            "denied",
        ),
        (
            400,
            {"x-amzn-query-error": "ReceiptHandleIsInvalid;Sender"},
            b"{}",
            "ReceiptHandleIsInvalid",
            "bad_handle",
        ),
        (503, {}, b"<html>busy</html>", "ServiceUnavailable", "server"),
        (500, {}, b'{"__type":"com.amazonaws.sqs#InternalError"}', "InternalError", "server"),
    ],
)
async def test_errors_mapped(
    stand_in: tuple[StandIn, str],
    http: RangeClient | aiohttp.ClientSession,
    status: int,
    headers: dict[str, str],
    body: bytes,
    code: str,
    kind: str,
) -> None:
    server, url = stand_in
    server.replies.append((status, headers, body))
    thin = ThinSqs(http, url, region=REGION, credentials=Static(CREDS), clock=lambda: 1_900_000_000.0)
    with pytest.raises(SqsError) as e:
        await thin.delete_message_batch(QueueUrl="q", Entries=[{"Id": "0", "ReceiptHandle": "h"}])
    assert (e.value.code, e.value.kind, e.value.status) == (code, kind, status)
    assert e.value.retryable == (kind in ("throttled", "server"))
    assert server.verified == 1
    assert CREDS.secret_key not in str(e.value) and "session-token" not in str(e.value)


async def test_signed_on_the_wire_and_decoded(
    stand_in: tuple[StandIn, str], http: RangeClient | aiohttp.ClientSession
) -> None:
    """What the client sends (Host with port, body) is what was signed; the answer is decoded as is."""
    server, url = stand_in
    reply = {"Successful": [{"Id": "0"}], "Failed": []}
    server.replies += [(200, {}, json.dumps(reply).encode())] * 2
    clock = iter([calendar.timegm((2031, 1, 2, 3, 4, 5)), calendar.timegm((2031, 1, 3, 0, 0, 0))])
    thin = ThinSqs(http, url, region=REGION, credentials=Static(CREDS), clock=lambda: float(next(clock)))
    entries = [{"Id": "0", "ReceiptHandle": "h", "VisibilityTimeout": 5}]
    assert await thin.change_message_visibility_batch(QueueUrl="q", Entries=entries) == reply
    assert (
        await thin.change_message_visibility_batch(QueueUrl="q", Entries=entries) == reply
    )  # next day's key
    assert server.verified == 2


async def test_network_failure_is_retryable(http: RangeClient | aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    thin = ThinSqs(http, f"http://127.0.0.1:{port}", region=REGION, credentials=Static(CREDS))
    with pytest.raises(SqsError) as e:
        await thin.receive_message(QueueUrl="q")
    assert e.value.kind == "network" and e.value.retryable and e.value.status == 0
