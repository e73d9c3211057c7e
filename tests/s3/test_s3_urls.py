"""workers.urls: byte-identity with botocore's presigner, normalisation, URL rules."""

from __future__ import annotations

import calendar
import datetime
import os
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers import urls
from workers.sigv4 import Credentials, _hmac_pads, signing_key
from workers.urls import (
    ENCORD_MAX_URL_BYTES,
    S3UrlSigner,
    UrlError,
    normalise_url,
    parse_s3_url,
    url_violations,
    virtual_hosted_url,
)

_SESSION = botocore.session.get_session()
_CLIENTS: dict[tuple[str, str, str, str | None], object] = {}
AKID, SECRET = "AKIDEXAMPLE123", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+abc/def=="


def _make_client(region: str, style: str, endpoint: str | None, token: str | None) -> object:
    return _SESSION.create_client(
        "s3",
        region_name=region,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def botocore_url(
    bucket: str,
    key: str,
    *,
    region: str,
    style: str,
    endpoint: str | None,
    token: str | None,
    expires: int,
    at: datetime.datetime,
) -> str:
    ck = (region, style, endpoint or "", token)
    client = _CLIENTS.get(ck)
    if client is None:
        # a moto fixture of another test module may have set AWS_ENDPOINT_URL: sign for real AWS
        with mock.patch.dict(os.environ):
            os.environ.pop("AWS_ENDPOINT_URL", None)
            os.environ.pop("AWS_ENDPOINT_URL_S3", None)
            client = _make_client(region, style, endpoint, token)
        _CLIENTS[ck] = client
    # botocore.auth reads the clock through this module-level name: freezing it is the seam.
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )


def ours(
    bucket: str,
    key: str,
    *,
    region: str,
    style: str,
    endpoint: str | None,
    token: str | None,
    expires: int,
    at: datetime.datetime,
) -> str:
    signer = S3UrlSigner(region=region, endpoint_url=endpoint or "", addressing_style=style)
    creds = Credentials(access_key=AKID, secret_key=SECRET, token=token)
    now = calendar.timegm(at.timetuple())
    url = signer.presign_get(creds, bucket, key, expires=expires, now=now)
    origin, target = signer.presign_target(creds, bucket, key, expires=expires, now=now)
    parts = urlsplit(url)  # the two parts split the URL where a client would: origin, path?query
    assert (origin, target) == (f"{parts.scheme}://{parts.netloc}", f"{parts.path}?{parts.query}")
    return url


# Every character class S3 allows in a key: all of Unicode but surrogates, with the characters
# that trip signers (space, '+', '~', '#', '%', '?', '&', '=', ';', '/', '//', '.', '..') boosted.
_TRICKY = st.sampled_from([*list(" +~#%?&=;:@$,!*'()[]{}<>|^`\"\\/."), "//", "..", "./", "%2F", "%20"])
_CHAR = st.characters(codec="utf-8", exclude_categories=["Cs"])
KEYS = (
    st.lists(st.one_of(_CHAR, _TRICKY, st.text(alphabet=_CHAR, max_size=8)), min_size=1, max_size=60)
    .map("".join)
    .filter(lambda k: 0 < len(k.encode()) <= 1024)
)
LONG_KEYS = st.text(alphabet=_CHAR, min_size=300, max_size=1024).filter(lambda k: len(k.encode()) <= 1024)
BUCKETS = st.sampled_from(
    ["media-bucket", "my.dotted.bucket", "abc", "a" * 63, "xn--bucket", "bucket-123", "Legacy_Bucket"]
)
REGIONS = st.sampled_from(["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2", "cn-north-1"])
ENDPOINTS = st.sampled_from(
    [
        None,
        None,
        "http://127.0.0.1:5000",
        "https://minio.example.com",
        "http://minio.local:9000",
        "https://objects.example.com/base/",
    ]
)
TIMES = st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


class TestBotocoreIdentity:
    @settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(key=KEYS, bucket=BUCKETS, region=REGIONS, style=st.sampled_from(["virtual", "path"]))
    def test_keys_of_every_character_class(self, key: str, bucket: str, region: str, style: str) -> None:
        """Any key, bucket, region and style gives the same URL as botocore, byte for byte."""
        at = datetime.datetime(2024, 2, 29, 23, 59, 59)
        kw = {"region": region, "style": style, "endpoint": None, "token": None, "expires": 3600, "at": at}
        assert ours(bucket, key, **kw) == botocore_url(bucket, key, **kw)

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        key=st.one_of(KEYS, LONG_KEYS),
        bucket=BUCKETS,
        region=REGIONS,
        style=st.sampled_from(["virtual", "path"]),
        endpoint=ENDPOINTS,
        token=st.sampled_from([None, TOKEN, "short+token/=="]),
        expires=st.one_of(st.sampled_from([1, 604800]), st.integers(1, 604800)),
        at=TIMES,
    )
    def test_options(
        self,
        key: str,
        bucket: str,
        region: str,
        style: str,
        endpoint: str | None,
        token: str | None,
        expires: int,
        at: datetime.datetime,
    ) -> None:
        """Session tokens, custom endpoints, path-style, expiries and times all match botocore."""
        kw = {
            "region": region,
            "style": style,
            "endpoint": endpoint,
            "token": token,
            "expires": expires,
            "at": at,
        }
        assert ours(bucket, key, **kw) == botocore_url(bucket, key, **kw)

    def test_known_forms(self) -> None:
        """The host forms botocore uses: regional virtual host, us-east-1 global, path-style for dots."""
        at = datetime.datetime(2024, 1, 2, 3, 4, 5)
        kw = {"style": "virtual", "endpoint": None, "token": None, "expires": 60, "at": at}
        assert ours("media-bucket", "a b", region="eu-west-1", **kw).startswith(
            "https://media-bucket.s3.eu-west-1.amazonaws.com/a%20b?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
        )
        assert ours("media-bucket", "k", region="us-east-1", **kw).startswith(
            "https://media-bucket.s3.amazonaws.com/k?"
        )
        assert ours("my.bucket", "k", region="eu-west-1", **kw).startswith(
            "https://s3.eu-west-1.amazonaws.com/my.bucket/k?"
        )
        url = ours("media-bucket", "k", region="eu-west-1", **{**kw, "token": "t/+"})
        assert "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=t%2F%2B&X-Amz-Signature=" in url

    def test_signing_key_cached_per_day(self) -> None:
        """The derived key is computed once per (secret, date, region, service)."""
        signing_key.cache_clear()
        _hmac_pads.cache_clear()
        s = S3UrlSigner(region="us-west-2")
        c = Credentials(access_key=AKID, secret_key=SECRET)
        for i in range(50):
            s.presign_get(c, "media-bucket", f"k{i}", expires=60, now=1_700_000_000 + i)
        s.presign_get(c, "media-bucket", "k", expires=60, now=1_700_000_000 + 86400)
        pads = _hmac_pads.cache_info()
        assert (pads.misses, pads.hits) == (2, 49)
        assert signing_key.cache_info().misses == 2

    @pytest.mark.parametrize("expires", [0, -1, 604801])
    def test_expiry_bounds(self, expires: int) -> None:
        """Expiry outside 1 s..7 days is refused with the value."""
        with pytest.raises(UrlError, match=str(expires)):
            S3UrlSigner(region="us-west-2").presign_get(
                Credentials(access_key=AKID, secret_key=SECRET), "b-1", "k", expires=expires, now=0
            )

    def test_repr_hides_secret(self) -> None:
        """Credentials never print the secret or the token."""
        text = repr(Credentials(access_key=AKID, secret_key=SECRET, token=TOKEN))
        assert SECRET not in text and TOKEN not in text and AKID in text


class TestNormalise:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("s3://media/a b/c+d.mp4", "https://media.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd.mp4"),
            ("s3://media/100%.jpg", "https://media.s3.eu-west-1.amazonaws.com/100%25.jpg"),
            (
                "https://s3.us-west-2.amazonaws.com/media/x%20y.jpg",
                "https://media.s3.us-west-2.amazonaws.com/x%20y.jpg",
            ),
            (
                "https://s3-us-west-2.amazonaws.com/media/x.jpg",
                "https://media.s3.us-west-2.amazonaws.com/x.jpg",
            ),
            ("https://s3.amazonaws.com/media/x.jpg", "https://media.s3.eu-west-1.amazonaws.com/x.jpg"),
            ("https://media.s3.us-east-1.amazonaws.com/a/b.jpg", "https://media.s3.amazonaws.com/a/b.jpg"),
            (
                "https://media.s3.amazonaws.com/a%2Bb.jpg",
                "https://media.s3.eu-west-1.amazonaws.com/a%2Bb.jpg",
            ),
        ],
    )
    def test_to_virtual_hosted(self, url: str, expected: str) -> None:
        """s3:// and path-style URLs become canonical virtual-hosted https URLs."""
        assert normalise_url(url, default_region="eu-west-1") == expected

    def test_dotted_bucket_rejected(self) -> None:
        """A dotted bucket cannot be virtual-hosted over TLS: the error says why and what to do."""
        with pytest.raises(UrlError, match=r"my\.media.*contains '\.'.*presign"):
            normalise_url("s3://my.media/x.jpg", default_region="us-east-1")

    @pytest.mark.parametrize(
        "url", ["ftp://media/x", "https://example.com/media/x", "s3://media/", "s3://A/x"]
    )
    def test_not_s3(self, url: str) -> None:
        """Non-S3 URLs, empty keys and bad bucket names are refused naming the URL."""
        with pytest.raises(UrlError):
            parse_s3_url(url)

    @settings(max_examples=300, deadline=None)
    @given(key=KEYS)
    def test_round_trip(self, key: str) -> None:
        """Any key survives s3:// -> virtual-hosted -> parse unchanged."""
        url = virtual_hosted_url("media-bucket", key, region="eu-west-1")
        loc = parse_s3_url(url)
        assert (loc.bucket, loc.key, loc.region) == ("media-bucket", key, "eu-west-1")


class TestRules:
    def test_https_only(self) -> None:
        """http:// URLs break the https rule, naming the scheme."""
        (v,) = url_violations("http://x.example.com/a.jpg", "encord")
        assert (v.rule, v.actual) == ("url.https", "http")

    def test_labelbox_characters(self) -> None:
        """Labelbox refuses '#', '<', '>', '|': the violation lists the ones present."""
        (v,) = url_violations("https://x.example.com/a#b|c<d.jpg", "labelbox")
        assert v.rule == "labelbox.url.characters" and v.actual == "#<|"
        assert url_violations("https://x.example.com/a%23b.jpg", "labelbox") == []

    def test_encord_length(self) -> None:
        """Encord URLs over 16 KiB break the length rule with the actual byte count."""
        base = "https://x.example.com/"
        ok = base + "a" * (ENCORD_MAX_URL_BYTES - len(base))
        assert url_violations(ok, "encord") == []
        (v,) = url_violations(ok + "é", "encord")
        assert (v.rule, v.expected, v.actual) == ("encord.url.length", 16384, 16386)
        assert url_violations(ok + "é", "labelbox") == []


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_quote_key_is_urllib_quote_also_when_remembered(keys: list[str]) -> None:
    for key in [*keys, *keys]:  # the second time from what quote_key kept
        assert urls.quote_key(key) == quote(key, safe="/~")
    assert len(urls._QUOTED) <= urls._QUOTED_MAX


def test_quote_key_forgets_all_at_its_bound() -> None:
    with mock.patch.object(urls, "_QUOTED_MAX", 3):
        urls._QUOTED.clear()
        for key in ("a b", "c+d", "e", "f g"):
            assert urls.quote_key(key) == quote(key, safe="/~")
        assert urls._QUOTED == {"f g": "f%20g"}
