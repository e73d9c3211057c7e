"""``[aws]``: region, endpoints and S3 addressing style (``AwsConfig``, re-exported by
``daemon.core.config``; its own module so config.py stays small).

Where each AWS service is reached, first set wins (as ``AWS_ENDPOINT_URL_<SERVICE>`` and
``AWS_ENDPOINT_URL`` in the AWS SDKs):

1. ``endpoints.<service>``: one service's endpoint (``endpoints = { s3 = "http://minio:9000",
   sqs = "http://elasticmq:9324" }``; VPC interface endpoints differ per service too);
2. ``endpoint_url``: every service's;
3. the AWS SDKs' variables, read once when the config is loaded (:func:`with_sdk_environment`):
   ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_SQS``, then ``AWS_ENDPOINT_URL``, unless
   ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true; so S3 reads and signed URLs go where
   botocore's own clients (listing, SQS) would, never to AWS while the listing goes to MinIO;
4. AWS's default for the region.

Services are those ingestd calls (:data:`SERVICES`); another name, or a URL that is not
``http(s)://host[:port][/path]``, is refused when the config is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from workers.urls import endpoint_problem

SERVICES = ("s3", "sqs")  # S3: listing, reads, URL signing, staging uploads; SQS: the source, requeue


class AwsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    region: str = "us-east-1"
    endpoint_url: str = ""  # every service's endpoint; empty = AWS's default
    endpoints: dict[str, str] = msgspec.field(default_factory=dict)  # service -> its own endpoint
    addressing_style: Literal["virtual", "path"] = "virtual"

    def __post_init__(self) -> None:
        if self.endpoint_url and (problem := endpoint_problem(self.endpoint_url)) is not None:
            raise ValueError(f"aws.endpoint_url: {problem}")
        for service, url in self.endpoints.items():
            if service not in SERVICES:
                known = ", ".join(SERVICES)
                raise ValueError(
                    f"aws.endpoints.{service}: unknown service {service!r} (ingestd calls: {known})"
                )
            if url and (problem := endpoint_problem(url)) is not None:
                raise ValueError(f"aws.endpoints.{service}: {problem}")

    def endpoint(self, service: str) -> str:
        """The endpoint URL of ``service`` (one of :data:`SERVICES`); empty: AWS's default."""
        if service not in SERVICES:
            raise ValueError(f"no [aws] endpoint for service {service!r}")
        return self.endpoints.get(service) or self.endpoint_url


def with_sdk_environment(aws: AwsConfig, environ: Mapping[str, str]) -> AwsConfig:
    """``aws`` with the AWS SDKs' endpoint variables applied to each service ``[aws]`` gives no
    endpoint (neither ``endpoints.<service>`` nor ``endpoint_url``). Raises ``ValueError`` naming
    the variable when its URL is not an endpoint."""
    if aws.endpoint_url or environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return aws
    found: dict[str, str] = {}
    for service in SERVICES:
        if aws.endpoints.get(service):
            continue
        for name in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
            if url := environ.get(name, ""):
                if (problem := endpoint_problem(url)) is not None:
                    raise ValueError(f"{name} (the AWS SDKs' endpoint for {service}): {problem}")
                found[service] = url
                break
    if not found:
        return aws
    return msgspec.structs.replace(aws, endpoints={**aws.endpoints, **found})
