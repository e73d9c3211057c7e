"""Every decoder of outside input, fed arbitrary input: only its documented error comes out.

* config (``daemon.core.config.load``): a :class:`ConfigError` naming the key, or a Config;
* manifests (JSON, NDJSON, CSV): messages, each with refs or an ``error`` (the source never
  raises for a bad file's content);
* queue bodies (S3, SNS, EventBridge): :func:`decode_body` never raises, it answers ``error``;
* Redis stream entries: :func:`decode_entry` never raises either.

Inputs that once broke a decoder are kept under ``corpus/<decoder>/`` and replayed first.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.core.config import Config, ConfigError, load
from daemon.sources.manifest import ManifestSource
from daemon.sources.redis_entries import decode_entry
from daemon.sources.s3events import decode_body

CORPUS = Path(__file__).parent / "corpus"
# FUZZ_EXAMPLES=20000 for a longer hunt; the suite keeps it short
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
S3_KEYS = ["Records", "Event", "Type", "Message", "detail-type", "source", "detail", "s3", "bucket"]
S3_KEYS += ["eventName", "object", "key", "name", "size"]
event_like = st.recursive(
    st.none() | st.integers() | st.text(max_size=12) | st.sampled_from(["ObjectCreated:Put", "aws.s3"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(S3_KEYS), inner, max_size=5),
    max_leaves=15,
)


def corpus(kind: str) -> list[bytes]:
    folder = CORPUS / kind
    return [p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")]


# -- config -------------------------------------------------------------------------------------
def check_config(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_bytes(text)
        try:
            assert isinstance(load(p, environ={}), Config)
        except ConfigError as e:
            assert str(e)


@pytest.mark.parametrize("text", corpus("config"))
def test_config_corpus(text: bytes) -> None:
    check_config(text)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_bytes(text: bytes) -> None:
    check_config(text)


SECTIONS = ["source", "aws", "target", "probe", "sink", "ledger", "pipeline", "log", "http"]
KEYS = ["type", "path", "url", "max_items", "allowed_hosts", "global_key_template", "listen", "dsn"]


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(SECTIONS),
        st.dictionaries(st.sampled_from(KEYS), json_values.filter(lambda v: v is not None), max_size=4),
        max_size=4,
    )
)
def test_config_tables(raw: dict[str, dict[str, object]]) -> None:
    """Well-formed TOML with wrong values: a ConfigError naming the key, never anything else."""
    lines = []
    for section, table in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
    check_config("\n".join(lines).encode())


# -- manifests ----------------------------------------------------------------------------------
def check_manifest(data: bytes, suffix: str) -> None:
    async def drain() -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / f"m{suffix}"
            p.write_bytes(data)
            src = ManifestSource(p)
            async for chunk in src.batches():
                for m in chunk:
                    assert (m.error is None) == bool(m.refs), m
                    await m.ack()

    asyncio.run(drain())


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "manifest").glob("[!.]*")))
def test_manifest_corpus(name: str) -> None:
    check_manifest((CORPUS / "manifest" / name).read_bytes(), Path(name).suffix)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".json", ".ndjson", ".csv", ".txt"]))
def test_manifest_bytes(data: bytes, suffix: str) -> None:
    check_manifest(data, suffix)


@FUZZ
@given(st.lists(json_values, max_size=5), st.sampled_from([".json", ".ndjson"]))
def test_manifest_entries(entries: list[object], suffix: str) -> None:
    if suffix == ".json":
        data = json.dumps(entries).encode()
    else:
        data = "".join(json.dumps(e) + "\n" for e in entries).encode()
    check_manifest(data, suffix)


# -- queue bodies and stream entries ------------------------------------------------------------
def check_body(body: bytes) -> None:
    d = decode_body(body)
    assert (d.error is None) or d.refs == []


@pytest.mark.parametrize("body", corpus("s3events"))
def test_queue_body_corpus(body: bytes) -> None:
    check_body(body)


@FUZZ
@given(st.binary(max_size=200) | event_like.map(lambda v: json.dumps(v).encode()))
def test_queue_bodies(body: bytes) -> None:
    check_body(body)


def check_entry(fields: dict[bytes, bytes]) -> None:
    d = decode_entry("s", "1-0", fields, Path("."))
    assert (d.error is None) or (d.refs == [] and d.raw is not None)


@pytest.mark.parametrize("body", corpus("redis"))
def test_stream_entry_corpus(body: bytes) -> None:
    check_entry({b"body": body})


@FUZZ
@given(
    st.dictionaries(st.sampled_from([b"body", b"other"]), st.binary(max_size=100), max_size=2)
    | st.dictionaries(st.just(b"body"), event_like.map(lambda v: json.dumps(v).encode()), min_size=1)
)
def test_stream_entries(fields: dict[bytes, bytes]) -> None:
    check_entry(fields)
