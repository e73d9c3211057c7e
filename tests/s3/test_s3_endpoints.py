"""``[aws] endpoints`` as ``ingestd run`` uses them: the bucket lives in one moto_server and the
queues in another (state of their own), so an object is only read, and a message only received,
deleted or dead-lettered, if each service's calls go to its own endpoint."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import boto3
from s3_moto import REGION, poll, queue_counts, unique
from test_s3_cli import PNG, gk, rows, run_once, s3_event


def dead_endpoint() -> str:
    """An endpoint where nothing listens (connections refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return f"http://127.0.0.2:{s.getsockname()[1]}"


def config(tmp: Path, source: str, aws: str) -> Path:
    cfg = tmp / "c.toml"
    cfg.write_text(
        f'[source]\ntype = "sqs"\nwait_time_seconds = 1\nvisibility_timeout = 30\n{source}'
        f'[aws]\nregion = "{REGION}"\naddressing_style = "path"\n{aws}'
        '[target]\nplatform = "labelbox"\nglobal_key_template = "{bucket}/{key}"\n'
        '[sink]\ntype = "files"\npath = "out"\nlinger_ms = 50\n'
        '[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
    )
    return cfg


def announced(s3: Any, sqs: Any, queue: str, n: int) -> list[str]:
    """``n`` PNGs in a new bucket of the S3 server, announced on the SQS server's ``queue``."""
    bucket = unique("split")
    s3.create_bucket(Bucket=bucket)
    keys = [f"img{i}.png" for i in range(n)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=PNG)
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [s3_event(bucket, k, len(PNG))]}))
    return [gk(bucket, k) for k in keys]


def drained(
    tmp: Path, sqs: Any, queue: str, expected: list[str], aws: str, source: str = ""
) -> dict[str, Any]:
    """``ingestd run --once`` on ``queue``: each announced object imported, the queue left empty."""
    summary = run_once(config(tmp, f'queue_url = "{queue}"\n{source}', aws))
    assert sorted(r["global_key"] for r in rows(tmp / "out")) == sorted(expected)
    assert summary["delivered"] == len(expected) and summary["unfinished"] == 0
    assert poll(lambda: queue_counts(sqs, queue) == (0, 0), timeout=15)
    return summary


def test_each_service_at_its_own_endpoint(
    s3: Any, moto_endpoint: str, moto_other: str, tmp_path: Path
) -> None:
    """endpoint_url refuses connections; endpoints.s3 and endpoints.sqs name the two servers.
    Received and deleted (thin client), dead-lettered (aiobotocore's SendMessage), read (S3 GETs
    to a loopback name the probe's fence lets through as the S3 endpoint): all at the overrides."""
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_other)
    queue = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    expected = announced(s3, sqs, queue, 3)
    sqs.send_message(QueueUrl=queue, MessageBody='{"Records": [ not json')
    by_name = moto_endpoint.replace("127.0.0.1", "localhost")  # resolved through the fence: trusted
    aws = f'endpoint_url = "{dead_endpoint()}"\nendpoints = {{ s3 = "{by_name}", sqs = "{moto_other}" }}\n'
    summary = drained(tmp_path, sqs, queue, expected, aws, f'dead_letter_queue_url = "{dlq}"\n')
    assert summary["dead_lettered"] == 1
    got = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
    assert [m["Body"] for m in got] == ['{"Records": [ not json']


def test_s3_falls_back_to_endpoint_url(s3: Any, moto_endpoint: str, moto_other: str, tmp_path: Path) -> None:
    """Only endpoints.sqs set: SQS calls go there, S3 reads to endpoint_url (the other server)."""
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_other)
    queue = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    expected = announced(s3, sqs, queue, 2)
    drained(
        tmp_path,
        sqs,
        queue,
        expected,
        f'endpoint_url = "{moto_endpoint}"\nendpoints = {{ sqs = "{moto_other}" }}\n',
    )
