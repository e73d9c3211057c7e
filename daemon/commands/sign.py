"""``ingestd sign``: print a presigned GET URL for an S3 object.

    ingestd sign [-c CONFIG] [--expires SECONDS] [--region R] [--endpoint-url URL] [--path-style]
                 s3://bucket/key

Credentials come from the standard AWS chain (environment, config/credentials files, SSO,
container or instance role). Region, endpoint and addressing style come from the options, else
the config's ``[aws]`` table (``endpoints.s3``, else ``endpoint_url``), else the URL /
``AWS_REGION`` and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` as botocore reads them.
Errors say what is missing; the secret is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import botocore.exceptions
import botocore.session

from daemon.commands.common import load_config
from workers.sigv4 import Credentials
from workers.urls import MAX_EXPIRES, AddressingStyle, S3UrlSigner, UrlError, parse_s3_url

_clock = time.time  # the signing time (a seam for tests)


def register(sub: Any) -> None:
    """Add ``sign`` to an argparse subparsers object."""
    p = sub.add_parser("sign", help="print a presigned GET URL for s3://bucket/key")
    p.add_argument("url", help="s3://bucket/key (or a path-style / virtual-hosted https S3 URL)")
    p.add_argument("--expires", type=int, default=3600, help=f"seconds, 1..{MAX_EXPIRES} (default 3600)")
    p.add_argument("--region", default="", help="bucket region (default: from the URL or the AWS config)")
    p.add_argument("--endpoint-url", default="", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    p.add_argument(
        "--path-style", action="store_true", help="path-style addressing instead of virtual-hosted"
    )
    p.add_argument("-c", "--config", default="", help="take region, endpoint and addressing style from [aws]")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"ingestd sign: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        loc = parse_s3_url(args.url)
    except UrlError as e:
        return _fail(str(e))
    session = botocore.session.get_session()
    aws = load_config(args.config).aws if args.config else None
    region = (
        args.region
        or (aws.region if aws else "")
        or loc.region
        or os.environ.get("AWS_REGION", "")  # what the SDKs and our error message say; botocore reads
        or session.get_config_variable("region")  # only AWS_DEFAULT_REGION and the config file
    )
    endpoint = (
        args.endpoint_url
        or (aws.endpoint("s3") if aws else "")
        or os.environ.get("AWS_ENDPOINT_URL_S3", "")
        or os.environ.get("AWS_ENDPOINT_URL", "")
    )
    style: AddressingStyle = (
        "path" if args.path_style or (aws and aws.addressing_style == "path") else "virtual"
    )
    if not region:
        return _fail("no region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    try:
        found = session.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except botocore.exceptions.BotoCoreError as e:
        return _fail(f"cannot load AWS credentials: {type(e).__name__}: {e}")
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        return _fail(
            "no AWS credentials found in the standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "~/.aws/credentials, AWS_PROFILE/SSO, container or instance role)"
        )
    creds = Credentials(access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token)
    try:
        signer = S3UrlSigner(region=region, endpoint_url=endpoint, addressing_style=style)
        url = signer.presign_get(creds, loc.bucket, loc.key, expires=args.expires, now=_clock())
    except UrlError as e:
        return _fail(str(e))
    print(url)
    return 0
