"""workers.reads.fence: which URLs, addresses and buckets a message may make the probe read."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.reads.fence import Fence, Refusal, address_kind, host_entry_problem

PUBLIC = Fence()  # the manifest default: any public host, any bucket


def reason(r: Refusal | None) -> str:
    assert r is not None, "expected a refusal"
    assert r.rule == "url.fenced"
    return r.reason


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("http://127.0.0.1:8080/x.mp4", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://10.1.2.3/a.png", "private"),
            ("http://[::1]/a.png", "loopback"),
            ("http://[::ffff:169.254.169.254]/a", "link-local"),
            ("http://0.0.0.0/a", "unspecified"),
            ("http://224.0.0.1/a", "multicast"),
            ("http://2130706433/a", "numeric host"),
            ("http://127.1/a", "numeric host"),
            ("file:///etc/passwd", "scheme 'file'"),
            ("ftp://example.com/a", "scheme 'ftp'"),
            ("http://user:pw@example.com/a", "credentials"),
            ("http:///a", "no host"),
        ],
    )
    def test_refused_with_the_reason(self, url: str, words: str) -> None:
        assert words in reason(PUBLIC.url(url))

    def test_public_hosts_pass_by_default(self) -> None:
        assert PUBLIC.url("https://cdn.example.com/a.mp4?X-Amz-Signature=abc") is None
        assert PUBLIC.url("http://93.184.216.34/a.mp4") is None

    def test_allow_list_limits_names(self) -> None:
        f = Fence(hosts=["cdn.example.com", "*.media.example.org"])
        assert f.url("https://cdn.example.com/a") is None
        assert f.url("https://CDN.Example.Com./a") is None
        assert f.url("https://x.media.example.org/a") is None
        assert "not in probe.allowed_hosts" in reason(f.url("https://media.example.org/a"))
        assert "not in probe.allowed_hosts" in reason(f.url("https://evil.example.net/a"))
        assert "not in probe.allowed_hosts" in reason(f.url("http://93.184.216.34/a"))

    def test_listed_addresses_and_networks(self) -> None:
        f = Fence(hosts=["127.0.0.1", "10.8.0.0/16"])
        assert f.url("http://127.0.0.1:9000/a") is None
        assert f.url("http://10.8.3.4/a") is None
        assert "private" in reason(f.url("http://10.9.0.1/a"))

    def test_trusted_endpoint_and_its_subdomains(self) -> None:
        f = Fence(hosts=["cdn.example.com"], trusted=["minio.internal"])
        assert f.url("http://minio.internal:9000/b/k") is None
        assert f.address("bucket.minio.internal", "10.0.0.5") is None


class TestAddresses:
    def test_name_resolving_to_private_is_refused(self) -> None:
        r = reason(PUBLIC.address("evil.example.com", "10.0.0.7"))
        assert "resolves to 10.0.0.7" in r and "private" in r

    def test_exactly_named_host_may_resolve_privately_wildcard_may_not(self) -> None:
        f = Fence(hosts=["minio.corp", "*.corp"])
        assert f.address("minio.corp", "10.0.0.5") is None
        assert "private" in reason(f.address("other.corp", "10.0.0.5"))

    def test_public_address_passes(self) -> None:
        assert PUBLIC.address("cdn.example.com", "93.184.216.34") is None
        assert PUBLIC.address("cdn.example.com", "2606:2800:220:1::1") is None

    @given(st.ip_addresses())
    def test_every_non_public_address_is_refused_and_says_why(
        self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> None:
        kind = address_kind(ip)
        r = PUBLIC.address("some.example.com", str(ip))
        assert (r is None) == (kind is None)
        if r is not None:
            assert kind is not None and kind in r.reason


class TestBuckets:
    def test_any_by_default_and_listed_only_when_given(self) -> None:
        assert PUBLIC.bucket("anything") is None
        f = Fence(buckets=["media-in"])
        assert f.bucket("media-in") is None
        r = f.bucket("other")
        assert r is not None and r.host == "s3://other" and "allowed_buckets" in r.reason


class TestEntries:
    @pytest.mark.parametrize(
        "entry", ["*", "cdn.example.com", "*.example.com", "10.0.0.0/8", "127.0.0.1", "::1"]
    )
    def test_understood(self, entry: str) -> None:
        assert host_entry_problem(entry) is None

    @pytest.mark.parametrize("entry", ["", "http://x", "a b", "10.0.0.0/33", "*.10.0.0.1", ".x", "a..b"])
    def test_refused(self, entry: str) -> None:
        assert host_entry_problem(entry) is not None


@given(st.text(max_size=80))
def test_url_check_never_raises(text: str) -> None:
    """Any string: an answer, never an exception."""
    for candidate in (text, "http://" + text, "https://" + text + "/x"):
        r = PUBLIC.url(candidate)
        assert r is None or isinstance(r, Refusal)
