"""workers.sigv4: header signatures byte-identical to botocore's SigV4Auth for SQS JSON calls."""

from __future__ import annotations

import calendar
import datetime
from unittest import mock

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.sigv4 import Credentials, HeaderSigner, canonical_path, host_header

TARGETS = [
    "AmazonSQS.ReceiveMessage",
    "AmazonSQS.DeleteMessageBatch",
    "AmazonSQS.ChangeMessageVisibilityBatch",
    "AmazonSQS.SendMessage",
]
ENDPOINTS = [
    "https://sqs.us-east-1.amazonaws.com/",
    "https://sqs.eu-west-1.amazonaws.com",
    "https://sqs.cn-north-1.amazonaws.com.cn:443/",
    "http://127.0.0.1:9324/",
    "http://LocalHost:4566",
    "http://[::1]:9000/",
    "http://10.0.0.1:80/base/../q/./x//",
]
JSON_TYPE = "application/x-amz-json-1.0"
REGIONS = ["us-east-1", "eu-west-1", "cn-north-1", "ap-southeast-2"]
Request = tuple[str, str, Credentials, dict[str, str], bytes, datetime.datetime]
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=40)


def botocore_headers(
    url: str, region: str, creds: Credentials, headers: dict[str, str], body: bytes, at: datetime.datetime
) -> dict[str, str]:
    bc = botocore.credentials.Credentials(creds.access_key, creds.secret_key, creds.token)
    req = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    # botocore.auth reads the clock through this module-level name: freezing it is the seam.
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        botocore.auth.SigV4Auth(bc, "sqs", region).add_auth(req)
    return dict(req.headers.items())


@st.composite
def requests(draw: st.DrawFn) -> Request:
    url = draw(st.sampled_from(ENDPOINTS))
    region = draw(st.sampled_from(REGIONS))
    creds = Credentials(
        access_key=draw(st.from_regex(r"[A-Z0-9]{16,20}", fullmatch=True)),
        secret_key=draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)),
        token=draw(st.none() | st.just("") | st.from_regex(r"[A-Za-z0-9+/=]{1,300}", fullmatch=True)),
    )
    headers = {
        "X-Amz-Target": draw(st.sampled_from(TARGETS)),
        "Content-Type": draw(
            st.sampled_from(["application/x-amz-json-1.0", "  application/x-amz-json-1.0 "])
        ),
    }
    if draw(st.booleans()):
        headers["x-amzn-query-mode"] = "true"
    if draw(st.booleans()):
        headers["User-Agent"] = "ingestd/1 " + draw(st.from_regex(r"[a-z ]{0,10}", fullmatch=True))
    if draw(st.booleans()):
        headers["X-Custom-Thing"] = draw(st.from_regex(r"[ a-zA-Z0-9]{0,20}", fullmatch=True))
    body = draw(st.binary(max_size=300) | _text.map(lambda t: f'{{"QueueUrl": "{t}"}}'.encode()))
    at = draw(st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2099, 12, 31)))
    return url, region, creds, headers, body, at.replace(microsecond=0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_identical_to_botocore(
    req: tuple[str, str, Credentials, dict[str, str], bytes, datetime.datetime],
) -> None:
    url, region, creds, headers, body, at = req
    signer = HeaderSigner(url, region=region, service="sqs")
    ours = signer.sign(creds, "POST", headers, body, now=calendar.timegm(at.timetuple()))
    theirs = botocore_headers(url, region, creds, headers, body, at)
    assert ours == theirs


def test_signer_replaces_stale_auth_headers_and_reuses_canonical_headers() -> None:
    """A re-signed request (a retry) carries one fresh date/token/Authorization, like botocore's."""
    signer = HeaderSigner("https://sqs.us-east-1.amazonaws.com/", region="us-east-1", service="sqs")
    creds = Credentials(access_key="AKID", secret_key="secret", token="tok")
    first = signer.sign(creds, "POST", {"X-Amz-Target": TARGETS[0]}, b"{}", now=1_900_000_000)
    again = signer.sign(creds, "POST", first, b"{}", now=1_900_000_001)
    at = datetime.datetime(2030, 3, 17, 17, 46, 41)
    assert again == botocore_headers(signer.url, "us-east-1", creds, dict(first), b"{}", at)
    assert again["X-Amz-Date"] == "20300317T174641Z" and again["Authorization"] != first["Authorization"]
    unsigned = Credentials(access_key="AKID", secret_key="secret")
    assert "X-Amz-Security-Token" not in signer.sign(unsigned, "POST", first, b"{}", now=1_900_000_001)


@pytest.mark.parametrize(
    ("url", "host", "path"),
    [
        ("https://sqs.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com", "/"),
        ("https://SQS.example.com:443/a b/", "sqs.example.com", "/a%20b/"),
        ("http://127.0.0.1:8080/x/../y/./z", "127.0.0.1:8080", "/y/z"),
        ("http://[::1]/", "[::1]", "/"),
    ],
)
def test_host_and_path(url: str, host: str, path: str) -> None:
    from urllib.parse import urlsplit  # noqa: PLC0415 - only here

    assert host_header(url) == host
    assert canonical_path(urlsplit(url).path) == path


def test_region_and_service_required() -> None:
    with pytest.raises(ValueError, match="region and service"):
        HeaderSigner("https://sqs.us-east-1.amazonaws.com/", region="", service="sqs")
