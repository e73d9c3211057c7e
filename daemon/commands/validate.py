"""``ingestd validate FILE... [--media PATH|URL] [--format F] [--ontology F] [--convert OUT] [--json]``.

Checks annotation files before anything is sent: Labelbox NDJSON as is, or MOT / CVAT / COCO /
YOLO through the converters of ``workers.annotations.convert`` (imported only when asked for).
All FILEs are one import (uuids unique across them, the 5,000-lines limit counted across them).
``--media`` probes the media (path, http(s) URL or s3://, like ``ingestd probe``) so frames and
geometry are checked against its frame count and size; ``--ontology`` takes the project's
ontology in Labelbox's normalized JSON. Output: one line per problem,
``file:line: path: rule: message (expected X, got Y)``, or with ``--json`` one JSON object per
problem. ``--convert OUT.ndjson`` writes the import-ready lines (clipped with ``--clip``, without
``confidence`` for ``--kind``, a deterministic uuid on every line) when there is no error.
Exit status: 0 valid (warnings allowed), 1 problems, 2 usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from daemon.commands.common import CommandError
from workers.annotations.decode import convert_dicts, decode_ndjson
from workers.annotations.encode import encode_ndjson, line_with_deterministic_uuid
from workers.annotations.facts import MediaFacts
from workers.annotations.model import Line
from workers.annotations.ontology import Ontology, OntologyError, load_ontology
from workers.annotations.problems import Problem, errors
from workers.annotations.validate import validate_lines

FORMATS = ("auto", "ndjson", "mot", "cvat", "coco", "yolo")
_BY_SUFFIX = {".ndjson": "ndjson", ".jsonl": "ndjson", ".xml": "cvat", ".csv": "mot", ".txt": "yolo"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate (and convert) annotation files before import")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--media", metavar="PATH|URL", help="probe this media: frames and size are checked")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (auto: by suffix/content)")
    p.add_argument("--ontology", metavar="F", help="the project's ontology, Labelbox normalized JSON")
    p.add_argument("--convert", metavar="OUT.ndjson", help="write the import-ready NDJSON here when valid")
    p.add_argument("--json", action="store_true", help="one JSON object per problem")
    p.add_argument("--kind", choices=("mal", "ground_truth"), help="import kind (confidence is dropped)")
    p.add_argument("--clip", action="store_true", help="clip geometry to the media instead of refusing it")
    p.add_argument("--global-key", help="data row of converted lines (default: the media's file name)")
    p.set_defaults(func=run)


def detect(path: str, data: bytes) -> str:
    """The format of a file from its suffix; a .json is COCO when it has images and annotations."""
    suffix = Path(path).suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix == ".json":
        try:
            top = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return "ndjson"
        if isinstance(top, dict) and "images" in top and "annotations" in top:
            return "coco"
    return "ndjson"


def _media(target: str) -> MediaFacts:
    import uvloop  # noqa: PLC0415 - only --media needs an event loop

    from daemon.commands.probe import probe_one  # noqa: PLC0415 - and the probe's readers

    info = uvloop.run(probe_one(target))
    if not info.valid:
        raise CommandError(f"media {target}: cannot probe: {info.error}")
    return MediaFacts.from_media_info(info)


def _ontology(path: str) -> Ontology:
    try:
        return load_ontology(Path(path).read_bytes())
    except OSError as e:
        raise CommandError(f"ontology {path}: {e.strerror}") from None
    except OntologyError as e:
        raise CommandError(f"ontology {path}: {e}") from None


def _as_problem(p: Any, source: str) -> Problem:
    """A converter's problem (any Struct with the same fields, ``source`` or ``file``) as ours."""
    fields = msgspec.to_builtins(p)
    fields["file"] = fields.pop("source", None) or fields.get("file") or source
    return msgspec.convert(fields, type=Problem)


def convert_file(
    fmt: str, data: bytes, *, source: str, media: MediaFacts | None, global_key: str | None
) -> tuple[list[Line], list[Problem]]:
    """Run ``workers.annotations.convert.<fmt>.convert`` and decode its dicts through the model."""
    try:
        module = importlib.import_module(f"workers.annotations.convert.{fmt}")
    except ModuleNotFoundError:
        raise CommandError(
            f"--format {fmt}: no {fmt} converter in this build (workers.annotations.convert.{fmt})"
        ) from None
    offered: dict[str, Any] = {
        "source": source,
        "media": media,
        "global_key": global_key,
        "global_key_for": lambda name: Path(name).name,
        "width": media.width if media else None,
        "height": media.height if media else None,
    }
    params = inspect.signature(module.convert).parameters
    missing = [
        n
        for n, p in params.items()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty and offered.get(n) is None
    ]
    if missing:
        raise CommandError(
            f"--format {fmt}: the converter needs {', '.join(missing)} (give --media / --global-key)"
        )
    result = module.convert(data, **{k: v for k, v in offered.items() if k in params})
    dicts = result if isinstance(result, list) else result.lines
    problems = [] if isinstance(result, list) else [_as_problem(p, source) for p in result.problems]
    lines, found = convert_dicts(dicts, source=source)
    return lines, problems + found


def _write_atomic(path: str, data: bytes) -> None:
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or Path(), prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    media = _media(args.media) if args.media else None
    ontology = _ontology(args.ontology) if args.ontology else None
    global_key = args.global_key or (Path(args.media).name if args.media else None)
    lines: list[Line] = []
    problems: list[Problem] = []
    for path in args.files:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise CommandError(f"{path}: {e.strerror}") from None
        fmt = detect(path, data) if args.format == "auto" else args.format
        if fmt == "ndjson":
            got, found = decode_ndjson(data, source=path)
        else:
            got, found = convert_file(fmt, data, source=path, media=media, global_key=global_key)
        lines.extend(got)
        problems.extend(found)
    lines, found = validate_lines(lines, media=media, ontology=ontology, kind=args.kind, clip=args.clip)
    problems.extend(found)
    problems.sort(key=lambda p: (p.file, p.line))
    for p in problems:
        sys.stdout.write((msgspec.json.encode(p).decode() if args.json else p.render()) + "\n")
    bad = errors(problems)
    if args.convert:
        if bad:
            sys.stderr.write(f"ingestd: {args.convert} not written: {len(bad)} error(s)\n")
        else:
            _write_atomic(args.convert, encode_ndjson(line_with_deterministic_uuid(x) for x in lines))
    if not args.json:
        sys.stderr.write(
            f"{len(lines)} line(s), {len(bad)} error(s), {len(problems) - len(bad)} warning(s)\n"
        )
    return 1 if bad else 0
