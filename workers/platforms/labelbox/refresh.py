"""Presigned ``row_data`` that never expires under a labeller: expiry and re-signing, pure.

Labelbox fetches ``row_data`` whenever a labeller opens the asset, and an S3 presigned URL lives
at most 7 days (shared/ref/labelbox.md section 4). A row whose URL expires soon is re-signed for
the same object and upserted by global key (``GKEY``: the row is updated in place).

* :func:`presigned`: where a SigV4 query-presigned URL points, in which region, and when it stops
  working (``X-Amz-Date`` + ``X-Amz-Expires``); ``None`` for any other URL (nothing to refresh).
  The ledger keeps only that: no signature, no session token at rest.
* :func:`resign`: the same location (scheme, host, path) signed again from ``now``.
* :func:`refresh_row`: the data row an upsert needs: the new ``row_data`` under its global key.
"""

from __future__ import annotations

import calendar
import time
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import msgspec

from workers.urls import Credentials, S3UrlSigner, UrlError

_encode = msgspec.json.Encoder().encode


def _query(url: str) -> dict[str, str]:
    try:
        return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    except ValueError:
        return {}


class Presigned(NamedTuple):
    """Where a presigned URL points (without its query: no signature or token kept) and when it
    stops working."""

    location: str  # scheme://authority/path, the path as signed
    region: str
    expires: float  # epoch seconds


def presigned(url: str) -> Presigned | None:
    """The location, region and expiry of a SigV4 query-presigned S3 URL; ``None`` for any other
    URL (nothing to refresh)."""
    q = _query(url)
    stamp, expires = q.get("X-Amz-Date", ""), q.get("X-Amz-Expires", "")
    scope = q.get("X-Amz-Credential", "").split("/")
    if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or not expires.isdigit() or len(scope) != 5:
        return None
    if scope[3] != "s3" or not scope[2]:
        return None
    try:
        signed = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    location = f"{parts.scheme}://{parts.netloc}{parts.path or '/'}"
    return Presigned(location, scope[2], float(signed + int(expires)))


def resign(location: str, region: str, creds: Credentials, *, expires: int, now: float) -> str:
    """The object at ``location`` presigned again from ``now`` for ``expires`` seconds."""
    parts = urlsplit(location)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UrlError("not an http(s) location: cannot re-sign it")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.netloc.rsplit(":", 1)[0] if parts.port == default else parts.netloc
    origin = f"{parts.scheme}://{parts.netloc}"
    return S3UrlSigner(region=region).presign_at(creds, origin, host, parts.path, expires=expires, now=now)


def refresh_row(global_key: str, url: str) -> bytes:
    """The encoded data row that replaces ``row_data`` of the row with ``global_key``."""
    return _encode({"row_data": url, "global_key": global_key})
