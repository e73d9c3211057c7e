"""Shared helpers of the S3/SQS tests: names, queue inspection, bounded polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

REGION = "us-east-1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, not visible) messages of a queue."""
    a = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def poll(condition: Any, *, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Return condition()'s first truthy value, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


async def apoll(condition: Any, *, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Async poll: lets the event loop (heartbeats, deleters) run between checks."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)
