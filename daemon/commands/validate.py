"""``ingestd validate FILE... [--media PATH|URL] [--format F] [--ontology F] [--convert OUT] [--json]``.

Checks annotation files before anything is sent: Labelbox NDJSON (``.ndjson``, ``.jsonl``) as is,
or MOT / plain tracks / CVAT / COCO / YOLO through the sidecar loader and its converters
(``workers.annotations.sidecar``; by suffix with ``--format auto``). Converted lines name the
data row ``--global-key`` (default: the ``--media`` file name).
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
import os
import sys
import tempfile
from pathlib import Path

import msgspec

from daemon.commands.common import CommandError
from workers.annotations.decode import decode_ndjson
from workers.annotations.encode import encode_ndjson, line_with_deterministic_uuid
from workers.annotations.facts import MediaFacts
from workers.annotations.model import Line
from workers.annotations.ontology import Ontology, OntologyError, load_ontology
from workers.annotations.problems import Problem, errors
from workers.annotations.validate import validate_lines

FORMATS = ("auto", "ndjson", "mot", "tracks", "cvat", "coco", "yolo")
_NDJSON_SUFFIXES = (".ndjson", ".jsonl")


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
    p.add_argument("--names", help="class names for YOLO (0-based ids) / MOT (1-based), comma-separated")
    p.set_defaults(func=run)


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


def load_file(
    path: str, data: bytes, args: argparse.Namespace, media: MediaFacts | None
) -> tuple[list[Line], list[Problem]]:
    """NDJSON as is; any other format through the sidecar loader (the converters, by suffix)."""
    fmt = args.format
    if fmt == "ndjson" or (fmt == "auto" and Path(path).suffix.lower() in _NDJSON_SUFFIXES):
        return decode_ndjson(data, source=path)
    from workers.annotations.sidecar import LoadOptions, load_sidecar  # noqa: PLC0415 - converters on demand

    global_key = args.global_key or (Path(args.media).name if args.media else None)
    if global_key is None:
        raise CommandError(f"{path}: converted lines need a data row: give --global-key or --media")
    names = tuple(n.strip() for n in args.names.split(",")) if args.names else ()
    options = LoadOptions(format=fmt, names=names)
    suffix = Path(path).suffix
    return load_sidecar(data, source=path, suffix=suffix, global_key=global_key, facts=media, options=options)


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
    lines: list[Line] = []
    problems: list[Problem] = []
    for path in args.files:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise CommandError(f"{path}: {e.strerror}") from None
        got, found = load_file(path, data, args, media)
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
