"""``ingestd probe [--json] [--head-bytes N] TARGET...``: what the probe sees, and the verdicts.

TARGET is a local path, an http(s) URL or ``s3://bucket/key``. With ``--json`` one JSON object
per target per line (the contract other tools read: see README). Exit status 0 when every
target is valid media, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import msgspec

from workers.probe.engine import DEFAULT_HEAD_BYTES, probe
from workers.probe.media import MediaInfo, invalid
from workers.reads import RangeReader, ReadError
from workers.reads.file import FileReader
from workers.rules import encord as encord_rules
from workers.rules import labelbox as labelbox_rules

if TYPE_CHECKING:
    import aiohttp

_ALWAYS = ("kind", "container", "mime_type", "file_size", "width", "height")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("probe", help="probe media headers with ranged reads")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="path, http(s) URL or s3://bucket/key")
    p.add_argument("--json", action="store_true", help="one JSON object per target per line")
    p.add_argument("--head-bytes", type=int, default=DEFAULT_HEAD_BYTES, help="size of the first read")
    p.add_argument("--strict", action="store_true", help="Encord strict client-only access rules")
    p.add_argument("--concurrency", type=int, default=16)
    p.set_defaults(func=run)


def report(target: str, info: MediaInfo, *, strict: bool = False) -> dict[str, Any]:
    """The JSON object for one target (pure)."""
    out: dict[str, Any] = {"target": target}
    fields = msgspec.to_builtins(info)
    for k in _ALWAYS:
        out[k] = fields.pop(k, None)
    out.update(fields)
    out["valid"] = info.valid
    lb = labelbox_rules.check(info)
    out["labelbox"] = msgspec.to_builtins(lb)
    out["encord"] = msgspec.to_builtins(encord_rules.check(info, strict=strict))
    out["bytes_read"] = info.bytes_read
    out["requests"] = info.requests
    return out


def _human(rep: dict[str, Any]) -> str:
    if not rep["valid"]:
        return f"{rep['target']}: INVALID {rep.get('error')}"
    parts = [f"{rep['kind']}/{rep['container']}"]
    if rep.get("width"):
        parts.append(f"{rep['width']}x{rep['height']}")
    for k in ("codec", "fps", "duration", "frames", "sample_rate", "channels"):
        if rep.get(k) is not None:
            parts.append(f"{k}={rep[k]}")
    lb = rep["labelbox"]
    verdict = "labelbox: ok" if lb["accept"] else "labelbox: " + "; ".join(e["rule"] for e in lb["errors"])
    return f"{rep['target']}: {' '.join(parts)}  [{verdict}]  ({rep['bytes_read']} B, {rep['requests']} req)"


async def _reader_for(
    target: str, stack: AsyncExitStack, session: list[aiohttp.ClientSession]
) -> RangeReader:
    if target.startswith(("http://", "https://")):
        import aiohttp  # noqa: PLC0415 - only probes of URLs pay for importing aiohttp

        from workers.reads.http import HttpReader  # noqa: PLC0415 - same reason

        if not session:
            session.append(
                await stack.enter_async_context(
                    aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
                )
            )
        return HttpReader(session[0], target)
    if target.startswith("s3://"):
        return await _s3_reader(target, stack, session)
    return FileReader(target)


async def _s3_reader(target: str, stack: AsyncExitStack, session: list[aiohttp.ClientSession]) -> RangeReader:
    """s3://bucket/key through presigned ranged GETs; [aws] settings from the environment
    (AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) and the standard
    credential chain."""
    import os  # noqa: PLC0415 - only s3:// probes need these

    from workers.reads.s3 import ChainCredentials, S3Reads, http_session  # noqa: PLC0415 - same reason
    from workers.urls import S3UrlSigner, UrlError, parse_s3_url  # noqa: PLC0415 - same reason

    try:
        loc = parse_s3_url(target)
    except UrlError as e:
        raise ReadError(str(e), transient=False) from None
    if not session:
        session.append(await stack.enter_async_context(http_session(16)))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    signer = S3UrlSigner(
        region=region, endpoint_url=endpoint, addressing_style="path" if endpoint else "virtual"
    )
    return S3Reads(session[0], signer, ChainCredentials()).reader(loc.bucket, loc.key)


async def probe_target(
    target: str,
    stack: AsyncExitStack,
    sessions: list[aiohttp.ClientSession],
    *,
    head_bytes: int = DEFAULT_HEAD_BYTES,
) -> MediaInfo:
    """Probe one path, http(s) URL or s3:// object; a failed read is an invalid result, not an error."""
    try:
        reader = await _reader_for(target, stack, sessions)
        info = await probe(reader, head_bytes=head_bytes)
        if isinstance(reader, FileReader):
            reader.close()
    except ReadError as e:
        info = invalid(str(e))
    return info


async def probe_one(target: str, *, head_bytes: int = DEFAULT_HEAD_BYTES) -> MediaInfo:
    """:func:`probe_target` with its own readers, for commands that probe a single object."""
    sessions: list[aiohttp.ClientSession] = []
    async with AsyncExitStack() as stack:
        return await probe_target(target, stack, sessions, head_bytes=head_bytes)


async def _probe_all(args: argparse.Namespace) -> int:
    sem = asyncio.Semaphore(max(1, args.concurrency))
    sessions: list[aiohttp.ClientSession] = []
    bad = 0
    async with AsyncExitStack() as stack:

        async def one(target: str) -> dict[str, Any]:
            async with sem:
                info = await probe_target(target, stack, sessions, head_bytes=args.head_bytes)
                return report(target, info, strict=args.strict)

        tasks = [asyncio.ensure_future(one(t)) for t in args.targets]
        for t in tasks:
            rep = await t
            bad += not rep["valid"]
            line = msgspec.json.encode(rep).decode() if args.json else _human(rep)
            sys.stdout.write(line + "\n")
    return 1 if bad else 0


def run(args: argparse.Namespace) -> int:
    import uvloop  # noqa: PLC0415 - keep the light commands fast

    return uvloop.run(_probe_all(args))
