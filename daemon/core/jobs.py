"""What travels through the pipeline: one ``Job`` per object, made from an ``ObjectRef``."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from workers.probe.media import MediaInfo

Origin = Literal["s3", "file", "url"]


class ObjectRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Identity of one object as the source announced it.

    ``origin`` says how to read it: ``s3`` (``bucket`` + ``key``), ``file`` (``path`` on this
    machine, ``key`` relative to the source root) or ``url`` (``url``; ``key`` is the URL).
    ``metadata`` carries per-item input from a manifest (global key, metadata fields,
    attachments, title, client metadata) and is passed through to the payload builder.
    """

    origin: Origin
    key: str
    bucket: str | None = None
    version: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    path: str | None = None
    url: str | None = None
    metadata: dict[str, Any] | None = None


JobState = Literal["new", "probed", "built", "delivered", "duplicate", "dead", "gone", "released"]
FINAL_STATES: frozenset[str] = frozenset({"delivered", "duplicate", "dead", "gone"})


class Rejection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why an object was refused: the stage, the rule, what was expected and what was found."""

    stage: str
    rule: str
    message: str
    expected: Any = None
    actual: Any = None


class Job(msgspec.Struct, kw_only=True):
    """One object on its way through the stages. Mutable: each stage records what it learned."""

    ref: ObjectRef
    message_id: str
    global_key: str = ""
    state: JobState = "new"
    info: MediaInfo | None = None
    kind: str = ""  # payload kind: VIDEO / IMAGE / AUDIO / ... (Encord groups by it)
    body: bytes = b""  # the encoded payload item
    rejection: Rejection | None = None
    warnings: list[str] = msgspec.field(default_factory=list)
