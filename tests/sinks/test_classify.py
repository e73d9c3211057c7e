"""The classification table: what each HTTP answer means for delivery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.classify import BodyKind, Verdict, body_kind, classify, parse_overrides

J, H, OT, E = BodyKind.JSON, BodyKind.HTML, BodyKind.OTHER, BodyKind.EMPTY


@pytest.mark.parametrize(
    ("status", "kind", "verdict"),
    [
        (200, J, Verdict.ACCEPTED),
        (201, E, Verdict.ACCEPTED),
        (204, OT, Verdict.ACCEPTED),
        (200, H, Verdict.TRANSIENT),  # a captive portal / proxy page, not the endpoint
        (409, J, Verdict.DUPLICATE),
        (400, J, Verdict.SPLIT),
        (413, H, Verdict.SPLIT),  # nginx's own 413 page still means "too large"
        (422, J, Verdict.SPLIT),
        (401, J, Verdict.PERMANENT),
        (403, H, Verdict.PERMANENT),
        (404, J, Verdict.PERMANENT),
        (408, J, Verdict.TRANSIENT),
        (429, E, Verdict.TRANSIENT),
        (405, J, Verdict.PERMANENT),  # the endpoint itself said no
        (405, H, Verdict.TRANSIENT),  # an intermediary's error page
        (418, OT, Verdict.TRANSIENT),
        (500, J, Verdict.TRANSIENT),
        (502, H, Verdict.TRANSIENT),
        (503, E, Verdict.TRANSIENT),
        (599, OT, Verdict.TRANSIENT),
        (301, H, Verdict.PERMANENT),  # redirects are not followed
        (101, E, Verdict.PERMANENT),
    ],
)
def test_default_table(status: int, kind: BodyKind, verdict: Verdict) -> None:
    assert classify(status, kind) is verdict


def test_overrides_win() -> None:
    over = {404: Verdict.TRANSIENT, 500: Verdict.PERMANENT, 200: Verdict.TRANSIENT}
    assert classify(404, J, over) is Verdict.TRANSIENT
    assert classify(500, J, over) is Verdict.PERMANENT
    assert classify(200, J, over) is Verdict.TRANSIENT
    assert classify(403, J, over) is Verdict.PERMANENT


@pytest.mark.parametrize(
    ("ctype", "body", "kind"),
    [
        ("application/json; charset=utf-8", b'{"a":1}', J),
        ("application/problem+json", b'{"title":"x"}', J),
        ("", b'  {"a":1}', J),
        ("text/plain", b"[1]", J),
        ("text/html", b"<p>x</p>", H),
        ("application/octet-stream", b"<!DOCTYPE html><html>", H),
        ("", b"<HTML><BODY>", H),
        ("text/plain", b"oops", OT),
        ("application/json", b"   ", E),
        ("", b"", E),
    ],
)
def test_body_kind(ctype: str, body: bytes, kind: BodyKind) -> None:
    assert body_kind(ctype, body) is kind


def test_parse_overrides_from_config() -> None:
    assert parse_overrides({"404": "transient", "409": "accepted"}) == {
        404: Verdict.TRANSIENT,
        409: Verdict.ACCEPTED,
    }
    with pytest.raises(ValueError, match="status override 'abc': not an HTTP status"):
        parse_overrides({"abc": "transient"})
    with pytest.raises(ValueError, match="status override 404: 'later' is not one of accepted"):
        parse_overrides({"404": "later"})


@given(
    status=st.integers(100, 599),
    kind=st.sampled_from(list(BodyKind)),
    override=st.sampled_from(list(Verdict)),
)
def test_every_status_has_a_verdict_and_overrides_always_win(
    status: int, kind: BodyKind, override: Verdict
) -> None:
    assert isinstance(classify(status, kind), Verdict)
    assert classify(status, kind, {status: override}) is override
    if status >= 500:
        assert classify(status, kind) is Verdict.TRANSIENT


@given(ctype=st.text(max_size=30), body=st.binary(max_size=64))
def test_body_kind_is_total(ctype: str, body: bytes) -> None:
    kind = body_kind(ctype, body)
    assert (kind is BodyKind.EMPTY) == (body.strip() == b"")
