"""The build stage: rules, URL and payload for one probed object (pure given its inputs).

``Builder.build(job)`` fills ``job.body``/``job.kind`` or ``job.rejection``; it never raises
for bad input. URL making is injected (``UrlMaker``) so S3 presigning lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec

from daemon.core.jobs import Job, ObjectRef, Rejection
from workers.payloads import encord as enc
from workers.payloads import labelbox as lb
from workers.payloads.keys import check_key
from workers.probe.media import MediaInfo
from workers.rules import encord as encord_rules
from workers.rules import labelbox as labelbox_rules
from workers.rules.verdict import Violation
from workers.urls import Platform, url_violations

UrlMaker = Callable[[ObjectRef], str]


class BuildError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


def _reject(v: Violation, stage: str = "validate", *, also: list[Violation] | None = None) -> BuildError:
    message = v.message if not also else "; ".join(str(x) for x in [v, *also])
    return BuildError(
        Rejection(stage=stage, rule=v.rule, message=message, expected=v.expected, actual=v.actual)
    )


def file_url(prefix: str, relpath: str) -> str:
    """``url_prefix`` + the percent-encoded relative path of a local file."""
    return prefix + quote(relpath, safe="/~!$&'()*+,;=:@")


def _convert(value: Any, typ: Any) -> Any:
    return None if value is None else msgspec.convert(value, typ)


class Builder:
    def __init__(
        self, *, platform: Platform, accept_kinds: list[str], strict: bool, make_url: UrlMaker
    ) -> None:
        self.platform = platform
        self.accept_kinds = frozenset(accept_kinds)
        self.strict = strict
        self.make_url = make_url

    def build(self, job: Job) -> None:
        try:
            self._build(job)
        except BuildError as e:
            job.rejection = e.rejection
            job.state = "dead"

    def _build(self, job: Job) -> None:
        info = job.info
        assert info is not None
        if not info.valid:
            raise BuildError(
                Rejection(
                    stage="probe",
                    rule="media.invalid",
                    message=info.error or "invalid media",
                    actual=info.container,
                )
            )
        if info.kind not in self.accept_kinds:
            raise _reject(
                Violation(
                    rule="target.kind",
                    message=f"{info.kind} objects are not accepted",
                    expected=sorted(self.accept_kinds),
                    actual=f"{info.kind} ({info.container})",
                )
            )
        try:
            url = self.make_url(job.ref)
        except ValueError as e:
            raise _reject(
                Violation(rule="url.make", message=str(e), actual=job.ref.key), stage="url"
            ) from None
        if problems := url_violations(url, self.platform):
            raise _reject(problems[0], stage="url", also=problems[1:])
        meta = job.ref.metadata or {}
        if self.platform == "labelbox":
            self._labelbox(job, info, url, meta)
        else:
            self._encord(job, info, url, meta)
        job.state = "built"

    def _labelbox(self, job: Job, info: MediaInfo, url: str, meta: dict[str, Any]) -> None:
        report = labelbox_rules.check(info)
        if report.errors:
            raise _reject(report.errors[0], also=report.errors[1:])
        job.warnings.extend(str(w) for w in report.warnings)
        media_type = labelbox_rules.media_type(info)
        given = meta.get("media_type")
        if given and str(given).upper() != media_type:
            raise _reject(
                Violation(
                    rule="labelbox.media_type",
                    message="manifest media_type does not match the media",
                    expected=media_type,
                    actual=given,
                )
            )
        try:
            fields = _convert(meta.get("metadata_fields"), list[lb.MetadataField])
            atts = _convert(meta.get("attachments"), list[lb.Attachment])
        except msgspec.ValidationError as e:
            raise _reject(
                Violation(rule="labelbox.row.schema", message=f"manifest data row: {e}"), stage="build"
            ) from None
        for a in atts or ():
            if (problem := lb.attachment_problem(a)) is not None:
                raise _reject(
                    Violation(rule="labelbox.attachment", message=problem, actual=a.type), stage="build"
                )
        row = lb.DataRow(
            row_data=url,
            global_key=job.global_key,
            media_type=media_type,
            external_id=meta.get("external_id"),
            metadata_fields=fields,
            attachments=atts,
        )
        job.kind = media_type
        job.body = lb.encode(row)

    def _encord(self, job: Job, info: MediaInfo, url: str, meta: dict[str, Any]) -> None:
        report = encord_rules.check(info, strict=self.strict)
        if report.errors:
            raise _reject(report.errors[0], also=report.errors[1:])
        job.warnings.extend(str(w) for w in report.warnings)
        client = meta.get("clientMetadata")
        if client is not None and not isinstance(client, dict):
            raise _reject(
                Violation(
                    rule="encord.client_metadata",
                    message="clientMetadata must be a JSON object",
                    actual=type(client).__name__,
                ),
                stage="build",
            )
        item = enc.Item(
            objectUrl=url,
            title=meta.get("title") or job.ref.key,
            clientMetadata=client,
            videoMetadata=report.videoMetadata,
            imageMetadata=report.imageMetadata,
            audioMetadata=report.audioMetadata,
        )
        job.kind = {"video": "VIDEO", "image": "IMAGE", "audio": "AUDIO"}[info.kind]
        job.body = enc.encode(item)


def manifest_key_problem(key: str, platform: str) -> Violation | None:
    """A global key given explicitly in a manifest is checked, not rewritten."""
    return check_key(key) if platform == "labelbox" else None
