"""S3 URLs: SigV4 query presigning, normalisation to virtual-hosted form, and URL rules.

Presigning follows the AWS SigV4 query-string specification
(docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html) with the standard
library only, and is byte-identical to botocore's ``generate_presigned_url("get_object")`` with
``Config(signature_version="s3v4", s3={"addressing_style": <style>})`` for the same
credentials, time, bucket, key, region, endpoint and expiry (tested against botocore). The host
follows botocore's S3 endpoint rules for the options we support:

* no endpoint: ``virtual`` gives ``<bucket>.s3.<region>.amazonaws.com`` (``s3.amazonaws.com``
  in us-east-1, ``amazonaws.com.cn`` in China) when the bucket is a DNS label, else path-style
  on the regional endpoint (dotted buckets: the TLS wildcard certificate would not match);
  ``path`` gives ``s3.<region>.amazonaws.com/<bucket>``.
* custom endpoint (``http://127.0.0.1:9000``, ``https://minio.example.com/base``): ``path``
  appends ``/<bucket>``; ``virtual`` prefixes the host with the bucket when botocore would (not
  for IP hosts; dotted buckets only over plain http).

Per URL the cost is a few HMAC-SHA256 calls: the derived signing key is cached per
(date, region, service, secret) in :mod:`workers.sigv4`, shared with the header signer.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

import msgspec

from workers.rules.verdict import Violation
from workers.sigv4 import Credentials as Credentials  # noqa: PLC0414 - re-exported, callers import it from here
from workers.sigv4 import Stamp, signature

AddressingStyle = Literal["virtual", "path"]
MAX_EXPIRES = 7 * 24 * 3600
ENCORD_MAX_URL_BYTES = 16 * 1024
LABELBOX_FORBIDDEN = "#<>|"
_SAFE_QUERY = "-_.~"
_ALGORITHM = "X-Amz-Algorithm=AWS4-HMAC-SHA256"
_HOST_LABEL = re.compile(r"^(?!-)[a-zA-Z\d-]{1,63}(?<!-)$")
_IPV4 = re.compile(r"^(?:[0-9]{1,3}\.){3}[0-9]{1,3}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,253}[a-z0-9]$", re.IGNORECASE)


class UrlError(ValueError):
    """A URL cannot be formed: the message names the bucket/key/option and why."""


def _dns_bucket(bucket: str, *, allow_dots: bool) -> bool:
    """botocore's ``aws.isVirtualHostableS3Bucket``."""
    if len(bucket) < 3 or bucket.lower() != bucket or _IPV4.match(bucket):
        return False
    labels = bucket.split(".") if allow_dots else [bucket]
    return all(_HOST_LABEL.match(label) for label in labels)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _dns_suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")
_PATH_BYTE = [chr(b) if b in _PATH_SAFE else f"%{b:02X}" for b in range(256)]
_PATH_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-~/]")


def _escape(m: re.Match[str]) -> str:
    return _PATH_BYTE[ord(m.group())]


_QUOTED: dict[str, str] = {}  # key -> path form: each object's key is quoted for its read and its URL
_QUOTED_MAX = 4096  # then forgotten all at once (a read and its URL are a few hundred objects apart)


def quote_key(key: str) -> str:
    """The URL path form of an S3 key (UTF-8, ``/`` and ``~`` kept): ``quote(key, safe="/~")``.

    Faster than :func:`urllib.parse.quote` (which calls Python per byte): ASCII keys escape only
    their unsafe characters, others go through a byte table; the last few thousand are kept.
    """
    found = _QUOTED.get(key)
    if found is None:
        found = _quote_key(key)
        if len(_QUOTED) >= _QUOTED_MAX:
            _QUOTED.clear()
        _QUOTED[key] = found
    return found


def _quote_key(key: str) -> str:
    if _PATH_UNSAFE.search(key) is None:
        return key
    if key.isascii():
        return _PATH_UNSAFE.sub(_escape, key)
    return "".join(map(_PATH_BYTE.__getitem__, key.encode()))


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an AWS endpoint (``http(s)://host[:port][/path]``), or None."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port out of range, a bad IPv6 literal
        ok = False
    if ok and "@" in parts.netloc:  # user:password@host: never echoed (it may be a secret)
        return "must not carry credentials (user:password@): the AWS credential chain signs"
    return None if ok else f"must be http(s)://host[:port][/path], got {url!r}"


class S3UrlSigner:
    """Presigns GET URLs for one region/endpoint/addressing style. No I/O, time is injected."""

    def __init__(self, *, region: str, endpoint_url: str = "", addressing_style: AddressingStyle = "virtual"):
        if not region:
            raise UrlError("region is required to sign S3 URLs")
        if addressing_style not in ("virtual", "path"):
            raise UrlError(f"addressing_style must be 'virtual' or 'path', got {addressing_style!r}")
        self.region = region
        self.style = addressing_style
        self._scope_tail = f"/{region}/s3/aws4_request"
        self._timestamp = Stamp()
        self._hosts: dict[str, tuple[str, str, str]] = {}
        self._creds_key: tuple[str, str, str | None, str] | None = None
        self._creds_query = ("", "", "")
        if endpoint_url:
            if (problem := endpoint_problem(endpoint_url)) is not None:
                raise UrlError(f"endpoint_url {problem}")
            parts = urlsplit(endpoint_url)
            assert parts.hostname is not None  # endpoint_problem says so
            self._scheme = parts.scheme
            self._authority = parts.netloc
            self._base = parts.path.rstrip("/")
            default = {"http": 80, "https": 443}[parts.scheme]
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            self._sign_host = host if parts.port in (None, default) else f"{host}:{parts.port}"
            self._custom = True
            self._ip = _is_ip(parts.hostname)
        else:
            suffix = _dns_suffix(region)
            self._scheme = "https"
            self._authority = self._sign_host = (
                "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.{suffix}"
            )
            self._base = ""
            self._custom = False
            self._ip = False

    def location(self, bucket: str, key: str) -> tuple[str, str, str]:
        """(scheme://authority, host header, path) of an object, following botocore's rules."""
        if not key:
            raise UrlError(f"s3://{bucket}/: empty key")
        origin, host, prefix = self._hosts.get(bucket) or self._bucket_host(bucket)
        return origin, host, prefix + quote_key(key)

    def _bucket_host(self, bucket: str) -> tuple[str, str, str]:
        """(origin, host header, path prefix) of a bucket; cached (a few buckets per process)."""
        if not bucket:
            raise UrlError("bucket is empty")
        virtual = False
        if self.style == "virtual":
            if _dns_bucket(bucket, allow_dots=False):
                virtual = not self._ip
            elif self._custom and self._scheme == "http":
                virtual = _dns_bucket(bucket, allow_dots=True)
        if virtual:
            found = (
                f"{self._scheme}://{bucket}.{self._authority}",
                f"{bucket}.{self._sign_host}",
                f"{self._base}/",
            )
        else:
            found = (
                f"{self._scheme}://{self._authority}",
                self._sign_host,
                f"{self._base}/{quote(bucket, safe='')}/",
            )
        if len(self._hosts) < 1024:
            self._hosts[bucket] = found
        return found

    def presign_get(self, creds: Credentials, bucket: str, key: str, *, expires: int, now: float) -> str:
        """A presigned GET URL valid for ``expires`` seconds (1..604800) from ``now`` (epoch s)."""
        origin, target = self.presign_target(creds, bucket, key, expires=expires, now=now)
        return origin + target

    def presign_target(
        self, creds: Credentials, bucket: str, key: str, *, expires: int, now: float
    ) -> tuple[str, str]:
        """:meth:`presign_get` in two parts: ``scheme://authority`` and the request target (path and
        query), for a client that keeps its connections per origin (no URL to parse back)."""
        origin, host, path = self.location(bucket, key)
        return origin, f"{path}?{self._signed_query(creds, host, path, expires, now)}"

    def presign_at(
        self, creds: Credentials, origin: str, host: str, path: str, *, expires: int, now: float
    ) -> str:
        """A presigned GET of an exact location: ``origin`` (scheme://authority), the ``host`` header
        and the already-quoted ``path``. Re-signing a URL this signer's region made keeps its place."""
        return f"{origin}{path}?{self._signed_query(creds, host, path, expires, now)}"

    def _signed_query(self, creds: Credentials, host: str, path: str, expires: int, now: float) -> str:
        """The presigned query string of a GET of ``path`` (quoted) with this ``host`` header."""
        if not 1 <= expires <= MAX_EXPIRES:
            raise UrlError(f"expires must be 1..{MAX_EXPIRES} seconds, got {expires}")
        stamp = self._timestamp(now)
        date = stamp[:8]
        credential, tail, canonical_tail = self._query_parts(creds, date)
        query = f"{_ALGORITHM}&X-Amz-Credential={credential}&X-Amz-Date={stamp}&X-Amz-Expires={expires}"
        canonical = f"GET\n{path}\n{query}{canonical_tail}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{date}{self._scope_tail}\n{digest}"
        sig = signature(creds, date, self.region, "s3", to_sign)
        return f"{query}{tail}&X-Amz-Signature={sig}"

    def _query_parts(self, creds: Credentials, date: str) -> tuple[str, str, str]:
        """Quoted credential scope, URL query tail and canonical query tail (cached per day/creds).

        The canonical query is sorted, so the session token comes before SignedHeaders there,
        while botocore writes it after SignedHeaders in the URL.
        """
        ck = (creds.access_key, creds.secret_key, creds.token, date)
        if ck != self._creds_key:
            credential = quote(f"{creds.access_key}/{date}{self._scope_tail}", safe=_SAFE_QUERY)
            if creds.token is not None:
                token = quote(creds.token, safe=_SAFE_QUERY)
                tail = f"&X-Amz-SignedHeaders=host&X-Amz-Security-Token={token}"
                canonical_tail = f"&X-Amz-Security-Token={token}&X-Amz-SignedHeaders=host"
            else:
                tail = canonical_tail = "&X-Amz-SignedHeaders=host"
            self._creds_key, self._creds_query = ck, (credential, tail, canonical_tail)
        return self._creds_query


# -- normalisation -------------------------------------------------------------------------------

_PATH_STYLE_HOST = re.compile(r"^s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com(?P<cn>\.cn)?$")
_VIRTUAL_HOST = re.compile(
    r"^(?P<bucket>.+)\.s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com(?P<cn>\.cn)?$"
)


class S3Location(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str
    key: str
    region: str | None = None


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/key``, path-style or virtual-hosted https URL -> bucket, key, region.

    https URLs are percent-decoded; ``s3://`` keys are taken literally. ``region`` is None when
    the URL does not say (``s3://``, the global ``s3.amazonaws.com``).
    """
    if url.startswith("s3://"):
        # s3:// URIs carry the key literally (as the AWS CLI writes them): no percent-decoding,
        # and '?', '#' and '%' are part of the key.
        bucket, _, key = url[5:].partition("/")
        region = None
    elif url.startswith(("https://", "http://")):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        path_m, virt_m = _PATH_STYLE_HOST.match(host), _VIRTUAL_HOST.match(host)
        if path_m:
            bucket, _, raw_key = parts.path[1:].partition("/")
            region = path_m.group("region")
        elif virt_m:
            bucket, raw_key, region = virt_m.group("bucket"), parts.path[1:], virt_m.group("region")
        else:
            raise UrlError(f"{_redact(url)}: not an S3 URL (host {host!r} is not *.amazonaws.com)")
        key = unquote(raw_key)
    else:
        raise UrlError(f"{_redact(url)}: scheme must be s3 or https, got {url.split(':', 1)[0]!r}")
    if region == "external-1":
        region = "us-east-1"
    if not bucket or not _BUCKET.match(bucket):
        raise UrlError(f"{_redact(url)}: bad bucket name {bucket!r}")
    if not key:
        raise UrlError(f"{_redact(url)}: no object key")
    return S3Location(bucket=bucket, key=key, region=region)


def virtual_hosted_url(bucket: str, key: str, *, region: str) -> str:
    """The canonical virtual-hosted https URL (IAM delegated access) of an object.

    Buckets whose names contain dots are rejected: ``a.b.s3.amazonaws.com`` does not match the
    ``*.s3.amazonaws.com`` TLS certificate, so a platform could not fetch it over https. Use
    ``url_mode = "presign"`` (path-style for such buckets) instead.
    """
    if "." in bucket:
        raise UrlError(
            f"s3://{bucket}/{key}: bucket name contains '.', a virtual-hosted https URL would fail "
            "TLS certificate checks; use url_mode='presign' (path-style) for this bucket"
        )
    if not _dns_bucket(bucket, allow_dots=False):
        raise UrlError(f"s3://{bucket}/{key}: bucket {bucket!r} is not a DNS label, cannot be virtual-hosted")
    if not key:
        raise UrlError(f"s3://{bucket}/: empty key")
    host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.{_dns_suffix(region)}"
    return f"https://{bucket}.{host}/{quote_key(key)}"


def normalise_url(url: str, *, default_region: str) -> str:
    """``s3://`` or path-style https S3 URL -> canonical virtual-hosted https URL."""
    loc = parse_s3_url(url)
    return virtual_hosted_url(loc.bucket, loc.key, region=loc.region or default_region)


def _redact(url: str) -> str:
    """A URL without its query string (never log signatures or tokens)."""
    return url.split("?", 1)[0]


# -- URL rules -------------------------------------------------------------------------------------

Platform = Literal["labelbox", "encord"]


def url_violations(url: str, platform: Platform) -> list[Violation]:
    """Each platform URL rule the URL breaks, naming the rule and the offending value."""
    found: list[Violation] = []
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme != "https":
        found.append(
            Violation(
                rule="url.https",
                message=f"{platform} needs an https URL, got scheme {scheme or '(none)'!r}",
                expected="https",
                actual=scheme or None,
            )
        )
    if platform == "labelbox":
        bad = [c for c in sorted(LABELBOX_FORBIDDEN) if c in url]  # 4 scans in C, not a loop per character
        if bad:
            found.append(
                Violation(
                    rule="labelbox.url.characters",
                    message=f"Labelbox does not accept {' '.join(repr(c) for c in bad)} in URLs",
                    expected=f"none of {' '.join(LABELBOX_FORBIDDEN)}",
                    actual="".join(bad),
                )
            )
    else:
        size = len(url.encode())
        if size > ENCORD_MAX_URL_BYTES:
            found.append(
                Violation(
                    rule="encord.url.length",
                    message=f"Encord URLs must be <= {ENCORD_MAX_URL_BYTES} bytes, this one has {size}",
                    expected=ENCORD_MAX_URL_BYTES,
                    actual=size,
                )
            )
    return found
