"""SigV4 header signing (the ``Authorization`` header) for AWS JSON-protocol calls, sans I/O.

Follows the SigV4 specification (docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)
with the standard library only, and is byte-identical to botocore's ``SigV4Auth.add_auth`` for the
same request, credentials and time (tested against botocore): canonical headers are the request's
headers minus botocore's never-signed list, lower-cased, values trimmed and inner whitespace
collapsed, plus ``host`` (without a default port), ``x-amz-date`` and, with a session token,
``x-amz-security-token``; the payload hash is the SHA-256 of the body. Requests carry no query string
(the JSON protocol posts to ``/``).

The pieces the query presigner (:mod:`workers.urls`) shares live here too: the derived signing key
and its primed HMAC states are cached per (secret, date, region, service), the timestamp per second.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

# botocore.auth.SIGNED_HEADERS_BLACKLIST: hop-by-hop and tracing headers a proxy may change
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# replaced by the signer (as botocore replaces them on a retry)
_SET_BY_SIGNER = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    """Frozen AWS credentials. ``repr`` never shows the secret or the token."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        token = "***" if self.token else None
        return f"Credentials(access_key={self.access_key!r}, secret_key=***, token={token})"


@lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """``kSigning`` of SigV4 for one day/region/service/secret (cached: it changes once a day)."""
    k = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
    k = hmac.digest(k, region.encode(), "sha256")
    k = hmac.digest(k, service.encode(), "sha256")
    return hmac.digest(k, b"aws4_request", "sha256")


@lru_cache(maxsize=64)
def _hmac_pads(secret: str, date: str, region: str, service: str) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner/outer pads of the signing key (RFC 2104).

    Copying a primed state per signature is ~2.5x faster than ``hmac.digest`` (which re-derives
    the padded key every call)."""
    key = signing_key(secret, date, region, service).ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in key)),
        hashlib.sha256(bytes(b ^ 0x5C for b in key)),
    )


def signature(creds: Credentials, date: str, region: str, service: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign with the (cached) derived key."""
    inner_pad, outer_pad = _hmac_pads(creds.secret_key, date, region, service)
    inner = inner_pad.copy()
    inner.update(to_sign.encode())
    outer = outer_pad.copy()
    outer.update(inner.digest())
    return str(outer.hexdigest())


class Stamp:
    """``YYYYMMDDTHHMMSSZ`` of an epoch time, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._stamp


def canonical_path(path: str) -> str:
    """botocore's canonical URI: dot segments and empty segments removed, ``quote(safe="/~")``."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if out:
                out.pop()
        elif seg and seg != ".":
            out.append(seg)
    joined = "/" + "/".join(out)
    if path.endswith("/") and joined != "/":
        joined += "/"
    return quote(joined, safe="/~")


def host_header(url: str) -> str:
    """The Host a client sends for ``url``: lower-case, default port left out, no userinfo."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _trim(value: str) -> str:
    return " ".join(value.split())


class HeaderSigner:
    """Signs requests to one endpoint URL (scheme, host, path) for one region and service.

    ``sign()`` returns the headers to send: the given ones plus ``X-Amz-Date``,
    ``X-Amz-Security-Token`` (with a session token) and ``Authorization``. No I/O; time is
    injected as epoch seconds.
    """

    def __init__(self, url: str, *, region: str, service: str) -> None:
        if not region or not service:
            raise ValueError("region and service are required to sign requests")
        self.url = url
        self.host = host_header(url)
        self.region = region
        self.service = service
        self._path = canonical_path(urlsplit(url).path)
        self._scope_tail = f"/{region}/{service}/aws4_request"
        self._stamp = Stamp()
        # canonical header lines of a header set, keyed by its (name, value) items
        self._canon: dict[tuple[tuple[str, str], ...], list[tuple[str, str]]] = {}

    def _canonical(self, headers: Mapping[str, str]) -> list[tuple[str, str]]:
        """Sorted lower-case (name, trimmed value) of the given headers that are signed, + host."""
        items = tuple(headers.items())
        found = self._canon.get(items)
        if found is None:
            merged: dict[str, list[str]] = {}
            for name, value in items:
                lname = name.lower()
                if lname not in UNSIGNED_HEADERS and lname not in _SET_BY_SIGNER:
                    merged.setdefault(lname, []).append(_trim(value))
            merged.setdefault("host", [self.host])
            lines = sorted((name, ",".join(values)) for name, values in merged.items())
            found = lines
            if len(self._canon) < 256:
                self._canon[items] = found
        return found

    def sign(
        self, creds: Credentials, method: str, headers: Mapping[str, str], body: bytes, *, now: float
    ) -> dict[str, str]:
        stamp = self._stamp(now)
        date = stamp[:8]
        extra = [("x-amz-date", stamp)]
        if creds.token:
            extra.append(("x-amz-security-token", creds.token))
        signed = sorted(self._canonical(headers) + extra)
        names = ";".join(n for n, _ in signed)
        canon_headers = "".join(f"{n}:{v}\n" for n, v in signed)
        payload = hashlib.sha256(body).hexdigest()
        canonical = f"{method.upper()}\n{self._path}\n\n{canon_headers}\n{names}\n{payload}"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{date}{self._scope_tail}\n{digest}"
        sig = signature(creds, date, self.region, self.service, to_sign)
        out = {k: v for k, v in headers.items() if k.lower() not in _SET_BY_SIGNER}
        out["X-Amz-Date"] = stamp
        if creds.token:
            out["X-Amz-Security-Token"] = creds.token
        out["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{date}{self._scope_tail}, "
            f"SignedHeaders={names}, Signature={sig}"
        )
        return out
