"""The annotation stage: a sidecar file becomes validated Labelbox NDJSON for its media.

A sidecar (``clip.mp4.labels.ndjson``, ``.json``, ``.csv``, ``.xml``, ``.txt``; suffixes from
``[annotations] suffixes``) travels like media: the same sources announce it, its own global key
(made from its own key) dedupes it in the ledger. It names its media by position: the same key
without the suffix, whose global key is made the same way as the media's own.

:meth:`Annotator.prepare` answers for one sidecar job:

* ``ready``: the media is accepted (now or before); the sidecar was read, converted, validated
  against the probed media (frames, bounds, mask sizes) and the ontology, and encoded into
  ``job.body`` (kind ``ANNOTATIONS``);
* ``dead``: ``job.rejection`` says why: the media was dead-lettered (naming its rule), the file
  broke a rule (file, line, JSON path, expected, actual), or the media does not exist in a
  ``--once`` run;
* ``wait``: the media is not final yet; the job is parked in the waiting room
  (:mod:`daemon.pipeline.waiting`) until it is, or until ``media_wait_seconds`` pass.
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec

from daemon.core.config import AnnotationsConfig
from daemon.core.jobs import Job, ObjectRef, Rejection
from daemon.ledger.records import FinalState, fold
from daemon.ledger.store import LedgerStore
from daemon.sinks.base import PermanentError, TransientError
from workers.annotations.encode import encode_ndjson
from workers.annotations.facts import MediaFacts
from workers.annotations.ontology import Ontology, OntologyError, load_ontology
from workers.annotations.problems import Problem, errors
from workers.annotations.sidecar import LoadOptions, load_sidecar
from workers.annotations.validate import validate_lines
from workers.probe.media import MediaInfo
from workers.reads import ReadError

KIND = "ANNOTATIONS"  # BatchItem.kind of an annotation item
MAX_LISTED = 5  # problems quoted in one dead letter's message

Prepared = Literal["ready", "dead", "wait"]
KeyFor = Callable[[ObjectRef], str]
# the target's ontology (normalized JSON), cached by its owner; True = fetch again (a miss)
OntologySource = Callable[[bool], Awaitable[bytes | None]]
MISSES = ("ontology.feature.unknown", "ontology.answer.unknown")


class RefReads(Protocol):
    """The reads the annotation stage makes (``daemon.service.wiring.Readers``)."""

    async def read_all(self, ref: ObjectRef, limit: int) -> bytes:
        """The whole object; a ReadError if it is larger than ``limit``."""
        ...

    async def probe(self, ref: ObjectRef) -> MediaInfo: ...


class Pairing(msgspec.Struct, frozen=True):
    """A sidecar's media: its ref, its global key, and the suffix that made the pair."""

    media: ObjectRef
    media_key: str
    suffix: str


class Sidecars:
    """Which refs are sidecars, and the media each names (pure)."""

    def __init__(self, suffixes: Sequence[str]) -> None:
        self.suffixes = sorted(suffixes, key=len, reverse=True)
        self._lower = tuple(s.lower() for s in self.suffixes)  # once, not per object

    def suffix_of(self, key: str) -> str | None:
        low = key.lower()
        if not low.endswith(self._lower):  # media (nearly every object): one C call
            return None
        for s, s_low in zip(self.suffixes, self._lower, strict=True):
            if low.endswith(s_low) and len(key) > len(s):
                return s
        return None

    def media_of(self, ref: ObjectRef) -> tuple[ObjectRef, str] | None:
        name = ref.key if ref.origin != "url" else urlsplit(ref.url or ref.key).path
        suffix = self.suffix_of(name)
        if suffix is None:
            return None
        cut = len(suffix)
        if ref.origin == "url":
            parts = urlsplit(ref.url or ref.key)
            url = urlunsplit(parts._replace(path=parts.path[:-cut]))
            return ObjectRef(origin="url", key=url, url=url), suffix
        path = ref.path[:-cut] if ref.path and ref.path.lower().endswith(suffix.lower()) else None
        return ObjectRef(origin=ref.origin, key=ref.key[:-cut], bucket=ref.bucket, path=path), suffix


def media_rejection(media_key: str, state: FinalState) -> Rejection:
    return Rejection(
        stage="annotation",
        rule="annotation.media_rejected",
        message=f"media dead-lettered: {state.rule}"
        + (f" ({state.message})" if state.message else "")
        + f"; the annotation for {media_key} is not imported",
        expected="media accepted",
        actual={"media": media_key, "rule": state.rule},
    )


def missing_rejection(media_key: str, why: str) -> Rejection:
    return Rejection(
        stage="annotation",
        rule="annotation.media_missing",
        message=f"media never arrived: {media_key} {why}",
        expected="the media accepted first",
        actual={"media": media_key},
    )


def problems_rejection(problems: list[Problem]) -> Rejection:
    first = problems[0]
    listed = "; ".join(p.render() for p in problems[:MAX_LISTED])
    more = f" (+{len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return Rejection(
        stage="annotation",
        rule=first.rule,
        message=listed + more,
        expected=first.expected or None,
        actual=first.actual or None,
    )


class Annotator:
    """Prepares sidecar jobs; I/O (reading the sidecar, probing the media) is injected."""

    def __init__(
        self,
        cfg: AnnotationsConfig,
        *,
        key_for: KeyFor,
        ledger: LedgerStore,
        reads: RefReads,
        ontology: Ontology | None = None,
        refuse: str | None = None,
        ontologies: OntologySource | None = None,
    ) -> None:
        self.ontologies = ontologies  # the project's ontology (it wins over ``ontology``)
        self.cfg = cfg
        self.sidecars = Sidecars(cfg.suffixes)
        self.key_for = key_for
        self.ledger = ledger
        self.reads = reads
        self.ontology = ontology
        self.refuse = refuse  # why this target cannot take annotations (None: it can)
        self.options = LoadOptions(
            format=cfg.format,
            names=tuple(cfg.names),
            default_name=cfg.default_name,
            tolerance=cfg.tolerance,
        )

    async def _ontology(self, fresh: bool) -> Ontology | None:
        if self.ontologies is None:
            return self.ontology
        try:
            raw = await self.ontologies(fresh)
            return load_ontology(raw) if raw else None
        except TransientError as e:  # the sidecar goes back to the source and comes again
            raise ReadError(f"the project's ontology: {e}", transient=True) from None
        except (PermanentError, OntologyError) as e:
            raise ReadError(f"the project's ontology: {e}", transient=False) from None

    def pair(self, job: Job) -> Pairing | None:
        """The sidecar's pairing, or None for media. Raises ValueError for an unusable media key."""
        meta = job.ref.metadata or {}
        if "annotations_for" in meta:  # named by a manifest entry (daemon.sources.manifest)
            try:
                media = msgspec.convert(meta["annotations_for"], ObjectRef)
            except msgspec.ValidationError as e:
                raise ValueError(f"annotations_for: {e}") from None
            where = job.ref.url or job.ref.path or job.ref.key
            suffix = posixpath.splitext(urlsplit(where).path)[1] or ".ndjson"
            return Pairing(media, self.key_for(media), suffix)
        found = self.sidecars.media_of(job.ref)
        if found is None:
            return None
        media, suffix = found
        return Pairing(media, self.key_for(media), suffix)

    async def state(self, media_key: str) -> FinalState | None:
        return (await self.ledger.final_states([media_key])).get(fold(media_key))

    async def prepare(self, job: Job, pairing: Pairing) -> Prepared:
        if self.refuse is not None:
            job.rejection = Rejection(
                stage="annotation", rule="annotation.unsupported", message=self.refuse, actual=job.ref.key
            )
            return "dead"
        state = await self.state(pairing.media_key)
        if state is None:
            return "wait"
        if not state.usable:
            job.rejection = media_rejection(pairing.media_key, state)
            return "dead"
        return await self.build(job, pairing)

    async def build(self, job: Job, pairing: Pairing) -> Prepared:
        inline = (job.ref.metadata or {}).get("annotations_inline")
        if inline is not None:
            data = b"".join(msgspec.json.encode(x) + b"\n" for x in inline)
        else:
            data = await self.reads.read_all(job.ref, self.cfg.max_bytes)
        info = await self.reads.probe(pairing.media)
        facts = MediaFacts.from_media_info(info) if info.valid else None
        lines, problems = load_sidecar(
            data,
            source=job.ref.key,
            suffix=pairing.suffix,
            global_key=pairing.media_key,
            facts=facts,
            options=self.options,
        )
        if not errors(problems):
            checked, found = validate_lines(
                lines,
                media=facts,
                ontology=await self._ontology(False),
                kind=self.cfg.kind,
                clip=self.cfg.clip,
            )
            if self.ontologies is not None and any(p.rule in MISSES for p in errors(found)):
                checked, found = validate_lines(  # the project's ontology may have grown: read it again
                    lines,
                    media=facts,
                    ontology=await self._ontology(True),
                    kind=self.cfg.kind,
                    clip=self.cfg.clip,
                )
            lines = checked
            problems.extend(found)
        bad = errors(problems)
        if bad:
            job.rejection = problems_rejection(bad)
            return "dead"
        if not lines:
            job.rejection = Rejection(
                stage="annotation",
                rule="annotation.empty",
                message=f"no annotation lines in {job.ref.key}",
                expected=">= 1 line",
                actual=0,
            )
            return "dead"
        job.warnings.extend(p.render() for p in problems)
        job.kind = KIND
        job.body = encode_ndjson(lines)
        job.state = "built"
        return "ready"
