"""The daemon's aiobotocore clients, made one way from ``[aws]``: region, the service's endpoint
(``endpoints.<service>``, else ``endpoint_url``, else AWS's default), S3 addressing style and
botocore's own retries, entered on the caller's ``AsyncExitStack`` (one long-lived client per
service, closed with it). Opening a client reads botocore's service model; it sends nothing.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from daemon.core.aws_config import AwsConfig


async def aws_client(
    stack: AsyncExitStack,
    aws: AwsConfig,
    service: str,
    *,
    session: Any = None,
    attempts: int = 5,
    **config: Any,
) -> Any:
    """An aiobotocore ``service`` client for ``aws`` on ``stack``. ``attempts``: botocore's
    ``standard`` retry mode's total attempts (1 where the daemon's own retry policy decides);
    ``config``: further :class:`AioConfig` options (timeouts, pool size)."""
    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": attempts}, **config}
    if service == "s3":
        options["s3"] = {"addressing_style": aws.addressing_style}
    return await stack.enter_async_context(
        (session or get_session()).create_client(
            service,
            region_name=aws.region,
            endpoint_url=aws.endpoint(service) or None,
            config=AioConfig(**options),
        )
    )
