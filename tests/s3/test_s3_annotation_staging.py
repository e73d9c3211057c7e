"""Large annotation imports by a presigned URL of an object we wrote (``[target] annotation_staging``),
through the real CLI: the NDJSON is written to moto S3 under a key made from the import name, the
local Labelbox server GETs the presigned ``fileUrl`` from moto (as Labelbox does, no HEAD) and
imports the bytes it received; a retry writes the same object; the signature is never printed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from s3_moto import REGION, unique

from tests.platforms.labelbox_project_server import ProjectServer
from tests.platforms.test_labelbox_cli import KEY, names, run
from tests.platforms.test_labelbox_imports_cli import ONTOLOGY, setup
from workers.platforms.labelbox.imports import import_name

MAL = "createModelAssistedLabelingPredictionImport"


@pytest.fixture
async def ps() -> AsyncIterator[ProjectServer]:
    """The local Labelbox server with the test project (its ontology covers the sidecars)."""
    server = ProjectServer(normalized=ONTOLOGY)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def staged_config(tmp_path: Path, ps: ProjectServer, moto: str, bucket: str, n: int) -> Path:
    cfg = setup(
        tmp_path,
        ps,
        n,
        extra=(
            f'annotation_staging = "s3://{bucket}/staged/"\nannotation_inline_bytes = 1\n'
            f'url_endpoint = "{moto}"\n'
        ),
    )
    cfg.write_text(cfg.read_text() + f'[aws]\nregion = "{REGION}"\nendpoint_url = "{moto}"\n')
    return cfg


def staged(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


async def test_large_imports_go_by_a_presigned_url_of_our_object(
    s3: Any, moto_endpoint: str, tmp_path: Path, ps: ProjectServer
) -> None:
    bucket = unique("staging")
    s3.create_bucket(Bucket=bucket)
    cfg = staged_config(tmp_path, ps, moto_endpoint, bucket, 3)
    ps.plan = lambda _n, op: "500" if op == MAL and ps.count(MAL) == 0 else None  # the first create fails
    code, summary, text = await run(cfg)
    assert code == 0 and summary["unfinished"] == 0, text[-3000:]
    [job] = ps.jobs.values()
    objects = staged(s3, bucket)
    assert list(objects) == [f"staged/{job.name}.ndjson"], "the retry wrote the same object"
    assert text.count("labelbox.import_staged") == 2 and ps.count(MAL) == 2
    assert set(ps.job_creations.values()) == {1}
    [(url, (status, body))] = ps.fetched.items()
    parts = urlsplit(url)
    assert status == 200 and parts.path == f"/{bucket}/staged/{job.name}.ndjson"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["21600"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert body == objects[f"staged/{job.name}.ndjson"] and import_name(body) == job.name
    assert [json.loads(x) for x in body.split(b"\n")] == job.lines  # the lines, no blank one
    assert sorted({ln["dataRow"]["globalKey"] for ln in job.lines}) == names(3) and len(job.lines) == 6
    assert query["X-Amz-Signature"][0] not in text, "the signed URL is never logged"
    assert (tmp_path / "l.db").read_bytes().count(query["X-Amz-Signature"][0].encode()) == 0

    code, _, text = await run(cfg)  # again: everything is known, nothing staged or created
    assert code == 0 and "labelbox.import_staged" not in text and len(staged(s3, bucket)) == 1
    assert ps.count(MAL) == 2


async def test_without_staging_large_imports_use_labelbox_storage(tmp_path: Path, ps: ProjectServer) -> None:
    """No staging location: above the inline size the NDJSON goes through uploadFile, as before."""
    cfg = setup(tmp_path, ps, 2, extra="annotation_inline_bytes = 1\n")
    code, _, text = await run(cfg)
    assert code == 0, text[-3000:]
    [create] = [r for r in ps.requests if r.operation == MAL]
    assert create.variables["fileUrl"] in ps.files and not ps.fetched
    assert KEY not in text


async def test_check_names_a_staging_bucket_that_is_not_there(
    s3: Any, moto_endpoint: str, tmp_path: Path, ps: ProjectServer
) -> None:
    bucket = unique("staging")
    cfg = staged_config(tmp_path, ps, moto_endpoint, bucket, 1)
    code, _, text = await run(cfg, KEY, "check", "-c", str(cfg))
    assert code == 1 and "FAIL  sink reachable" in text
    assert f"annotation staging s3://{bucket}/staged/" in text
    s3.create_bucket(Bucket=bucket)
    code, _, text = await run(cfg, KEY, "check", "-c", str(cfg))
    assert code == 0 and "ok    sink reachable" in text, text[-2000:]
