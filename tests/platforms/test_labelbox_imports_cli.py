"""``ingestd run --once`` with ``[target] project``: media and their annotation sidecars end as
data rows, rows in a project batch and annotations imported once (MAL and ground truth), against
the local Labelbox server with a project (the real CLI in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from tests.annotations.conftest import DATA
from tests.annotations.test_annotation_ontology import covering
from tests.platforms.labelbox_project_server import ProjectServer
from tests.platforms.test_labelbox_cli import KEY, names, run, start, tiny_png

# the seed's frames reach 1,200 and its masks are 1920x1080: a gray H.264 video that size, made with
# ffmpeg -f lavfi -i color=c=gray:s=1920x1080:r=30 -frames:v 1210 -c:v libx264 -preset ultrafast
#   -crf 51 -g 1210 -pix_fmt yuv420p
LONG_VIDEO = Path(__file__).resolve().parent / "data" / "gray-1920x1080-1210f.mp4"
ONTOLOGY = {
    "tools": [{"name": "box", "tool": "rectangle"}],
    "classifications": [
        {
            "name": "weather",
            "instructions": "weather",
            "type": "radio",
            "options": [{"label": "sunny", "value": "sunny"}, {"label": "rainy", "value": "rainy"}],
        }
    ],
}


@pytest.fixture
async def ps() -> AsyncIterator[ProjectServer]:
    s = ProjectServer(normalized=ONTOLOGY)
    await s.start()
    yield s
    await s.stop()


def box(key: str, name: str = "box") -> dict[str, object]:
    bbox = {"top": 1, "left": 1, "height": 4, "width": 4}
    return {"name": name, "dataRow": {"globalKey": key}, "bbox": bbox}


def setup(tmp_path: Path, ps: ProjectServer, n: int, *, kind: str = "mal", extra: str = "") -> Path:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    listed = []
    for name in names(n):
        (media / name).write_bytes(tiny_png())
        sidecar = media / f"{name}.labels.ndjson"
        lines = [box(name), {"name": "weather", "answer": {"name": "sunny"}, "dataRow": {"globalKey": name}}]
        sidecar.write_text("".join(json.dumps(x) + "\n" for x in lines))
        listed += [name, sidecar.name]
    if listed:
        (media / "m.ndjson").write_text("".join(json.dumps(p) + "\n" for p in listed))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[source]\ntype = "manifest"\npath = "media/m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
        f'[target]\nplatform = "labelbox"\ndataset = "{ps.dataset_id}"\nproject = "{ps.project_id}"\n{extra}'
        f'[sink]\ntype = "labelbox"\nendpoint = "{ps.url}"\nmax_items = 100\nlinger_ms = 50\n'
        "request_timeout = 5\n"
        f'[annotations]\nkind = "{kind}"\n'
        '[ledger]\npath = "l.db"\n[log]\nlevel = "info"\n'
    )
    return cfg


def dead(tmp_path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(tmp_path / "l.db") as c:
        rows = c.execute("SELECT global_key, stage, message FROM dead_letters").fetchall()
    return {k: (s, m) for k, s, m in rows}


class TestProjectImports:
    @pytest.mark.parametrize("kind", ["mal", "ground_truth"])
    async def test_rows_batched_and_annotations_imported_once(
        self, tmp_path: Path, ps: ProjectServer, kind: str
    ) -> None:
        code, summary, text = await run(setup(tmp_path, ps, 6, kind=kind))
        assert code == 0, text[-3000:]
        assert summary["dead_lettered"] == 0 and summary["unfinished"] == 0, summary
        assert sorted(ps.creations) == names(6) and max(ps.creations.values()) == 1
        assert sorted(ps.in_project) == names(6) and ps.count("createBatchV2") >= 1
        assert set(ps.job_creations.values()) == {1} and {j.kind for j in ps.jobs.values()} == {kind}
        lines = ps.imported_lines()
        assert len(lines) == 12 and len({ln["uuid"] for ln in lines}) == 12
        assert ps.count("project") == 1  # the ontology is read once
        cfg = tmp_path / "c.toml"
        code, _, text = await run(cfg, KEY, "status", "-c", str(cfg), "--json")  # the daemon is gone
        status = json.loads(text.strip().splitlines()[-1])
        assert status["annotation_imports"] == {"finished": len(ps.jobs)}, status
        assert status["annotation_lines"] == {"imported": 12} and status["annotations_waiting"]["count"] == 0

    @pytest.mark.parametrize("batch_async_at", [1000, 2])
    async def test_a_spool_folder_through_the_project(
        self, tmp_path: Path, ps: ProjectServer, batch_async_at: int
    ) -> None:
        """Media and their sidecars dropped in a spool folder: data rows in the dataset, rows in a
        project batch (createBatchV2, or the empty batch + async add), each annotation imported once."""
        cfg = setup(tmp_path, ps, 4, extra=f"batch_async_at = {batch_async_at}\n")
        (tmp_path / "media" / "m.ndjson").unlink()
        text = cfg.read_text().replace(
            'type = "manifest"\npath = "media/m.ndjson"', 'type = "spool"\npath = "media"'
        )
        cfg.write_text(text.replace("[target]", "stable_seconds = 0\n[target]"))
        code, summary, text = await run(cfg)
        assert code == 0 and summary["unfinished"] == 0 and summary["dead_lettered"] == 0, text[-3000:]
        assert sorted(ps.creations) == names(4) and sorted(ps.in_project) == names(4)
        path = "createBatchV2" if batch_async_at > 4 else "addDataRowsToBatchAsync"
        assert ps.count(path) >= 1 and len(ps.batches) >= 1
        assert set(ps.job_creations.values()) == {1} and len(ps.imported_lines()) == 8
        code, _, text = await run(cfg)  # again: nothing new
        assert code == 0 and len(ps.imported_lines()) == 8 and set(ps.job_creations.values()) == {1}

    async def test_async_batch_path_and_refused_lines(self, tmp_path: Path, ps: ProjectServer) -> None:
        """batch_async_at = 2 sends the rows by the empty batch + async add path; a line the server
        refuses is a dead letter for its sidecar with Labelbox's message and the line's uuid."""
        cfg = setup(tmp_path, ps, 4, extra="batch_async_at = 2\n")
        ps.feature_failures = {"weather": "Classification weather is not allowed here"}
        code, _, text = await run(cfg)
        assert code == 0, text[-3000:]
        assert ps.count("createEmptyBatch") >= 1 and ps.count("createBatchV2") == 0
        assert sorted(ps.in_project) == names(4)
        letters = dead(tmp_path)
        assert sorted(letters) == [f"{n}.labels.ndjson" for n in names(4)]
        stage, message = letters["img00000.png.labels.ndjson"]
        assert stage == "annotation" and "Classification weather is not allowed here" in message
        assert "'weather'" in message and "uuid" in message and "img00000.png" in message
        code, _, listed = await run(cfg, KEY, "dlq", "list", "-c", str(cfg), "--stage", "annotation")
        assert code == 0 and listed.count("[annotation]") == 4
        code, _, listed = await run(cfg, KEY, "dlq", "list", "-c", str(cfg), "--stage", "deliver")
        assert code == 0 and "[annotation]" not in listed

    async def test_unknown_feature_is_refused_before_upload(self, tmp_path: Path, ps: ProjectServer) -> None:
        cfg = setup(tmp_path, ps, 2)
        bad = tmp_path / "media" / "img00001.png.labels.ndjson"
        bad.write_text(json.dumps(box("img00001.png", "bx")) + "\n")
        code, _, text = await run(cfg)
        assert code == 0, text[-3000:]
        stage, message = dead(tmp_path)["img00001.png.labels.ndjson"]
        assert stage == "annotation" and "'box'" in message
        assert all(ln["dataRow"]["globalKey"] == "img00000.png" for ln in ps.imported_lines())

    async def test_sigkill_between_create_and_record_then_restart(
        self, tmp_path: Path, ps: ProjectServer
    ) -> None:
        """The create arrived and the daemon died before its answer: the restart finds the job by
        name; no second import job."""
        cfg = setup(tmp_path, ps, 3)
        ps.hold_create = asyncio.Event()
        proc = await start(cfg)
        async with asyncio.timeout(60):
            await ps.create_seen.wait()
        proc.send_signal(signal.SIGKILL)
        await proc.communicate()
        ps.hold_create.set()
        assert len(ps.jobs) == 1
        code, summary, text = await run(cfg)
        assert code == 0, text[-3000:]
        assert "labelbox.import_found" in text
        assert len(ps.jobs) == 1 and set(ps.job_creations.values()) == {1}
        assert summary["dead_lettered"] == 0

    async def test_an_unreadable_ontology_gives_the_sidecar_back(
        self, tmp_path: Path, ps: ProjectServer
    ) -> None:
        """An unknown feature makes the annotation stage read the ontology again; that read fails
        (5xx) twice: the sidecar is retried, then refused for its feature, never for the 5xx."""
        failed: list[int] = []

        def plan(n: int, op: str) -> str | None:
            if op == "project" and ps.count("createBatchV2") and len(failed) < 2:
                failed.append(n)
                return "500"
            return None

        cfg = setup(tmp_path, ps, 2)
        (tmp_path / "media" / "img00001.png.labels.ndjson").write_text(json.dumps(box("img00001.png", "bx")))
        ps.plan = plan
        code, summary, text = await run(cfg)
        assert code == 0, text[-3000:]  # given back twice, then final: the run finished
        assert len(failed) == 2 and (summary["delivered"], summary["dead_lettered"]) == (3, 1), summary
        assert text.count("the project's ontology: Labelbox at 127.0.0.1/graphql: Internal server error") == 2
        stage, message = dead(tmp_path)["img00001.png.labels.ndjson"]
        assert stage == "annotation" and "'box'" in message
        assert len(ps.imported_lines()) == 2 and set(ps.job_creations.values()) == {1}

    async def test_sidecars_before_their_media_in_a_room_of_one(
        self, tmp_path: Path, ps: ProjectServer
    ) -> None:
        """Every sidecar is listed before its media and only one may wait: the others wait over
        capacity (their media is in flight here) instead of being given back until the source gives
        up on them; every object ends final, so --once exits 0."""
        cfg = setup(tmp_path, ps, 4)
        listed = [f"{n}.labels.ndjson" for n in names(4)] + names(4)
        (tmp_path / "media" / "m.ndjson").write_text("".join(json.dumps(p) + "\n" for p in listed))
        room = "[annotations]\nmax_waiting = 1\nrecheck_seconds = 0.1\n"
        cfg.write_text(cfg.read_text().replace("[annotations]\n", room))
        code, summary, text = await run(cfg)
        assert code == 0, text[-3000:]
        assert summary["unfinished"] == 0 and summary["delivered"] == 8, summary
        assert "message abandoned" not in text
        assert sorted(ln["dataRow"]["globalKey"] for ln in ps.imported_lines()) == sorted(names(4) * 2)

    async def test_a_lost_ledger_meets_batched_rows_and_names_that_exist(
        self, tmp_path: Path, ps: ProjectServer
    ) -> None:
        """The ledger is lost (or another instance did the work): rows already in a batch of the
        project, even listed as failed among new rows, are a success, and an import whose name
        exists, refused in other words than RESOURCE_CONFLICT, is that job (both answers of the
        test server are guesses: Labelbox's are unverified)."""
        cfg = setup(tmp_path, ps, 3)
        code, _, text = await run(cfg)
        assert code == 0, text[-3000:]
        jobs = set(ps.jobs)
        for f in tmp_path.glob("l.db*"):
            f.unlink()
        ps.batched_rows_failed, ps.duplicate_name_code = True, "MALFORMED_REQUEST"
        for name in ("new0.png", "new1.png"):
            (tmp_path / "media" / name).write_bytes(tiny_png())
        with (tmp_path / "media" / "m.ndjson").open("a") as f:
            f.write('"new0.png"\n"new1.png"\n')
        code, summary, text = await run(cfg)
        assert code == 0 and summary["dead_lettered"] == 0 and summary["unfinished"] == 0, text[-3000:]
        assert "labelbox.batch_rows_recheck" in text and "labelbox.import_exists" in text
        assert {"new0.png", "new1.png"} <= set(ps.in_project) and len(ps.in_project) == 5
        assert set(ps.jobs) == jobs and set(ps.job_creations.values()) == {1}

    async def test_check_reads_the_project(self, tmp_path: Path, ps: ProjectServer) -> None:
        cfg = setup(tmp_path, ps, 1)
        code, _, text = await run(cfg, KEY, "check", "-c", str(cfg))
        assert code == 0 and "ok    sink reachable" in text and "labelbox.project" in text
        ps.project_id = "proj-other"
        code, _, text = await run(cfg, KEY, "check", "-c", str(cfg))
        assert code == 1 and "FAIL  sink reachable" in text and "Project proj-1 not found" in text

    async def test_5xx_storm_and_rate_limits_lose_and_double_nothing(
        self, tmp_path: Path, ps: ProjectServer
    ) -> None:
        faults = {2: "500", 5: "429:1", 8: "lost", 11: "502html", 14: "exceeded", 17: "lost", 20: "reset"}
        ps.plan = lambda n, _op: faults.get(n)
        code, summary, text = await run(setup(tmp_path, ps, 5))
        assert code == 0, text[-3000:]
        assert summary["dead_lettered"] == 0 and summary["unfinished"] == 0, summary
        assert sorted(ps.creations) == names(5) and max(ps.creations.values()) == 1
        assert set(ps.job_creations.values()) == {1} and len(ps.imported_lines()) == 10


class TestSeedExample:
    async def test_every_step_5_annotation_type_goes_through(self, tmp_path: Path) -> None:
        """Seed 002 Step 5: every example (video tools, masks, global / frame / temporal
        classifications, nested) on one video, validated against the project's ontology
        (read from the server), imported as ground truth in one job, every line accepted."""
        seed = json.loads((DATA / "seed_ontology.json").read_text())
        normalized = msgspec.to_builtins(covering(seed))
        ps = ProjectServer(media_type="VIDEO", normalized=normalized)
        await ps.start()
        try:
            media = tmp_path / "media"
            media.mkdir()
            shutil.copy(LONG_VIDEO, media / "street.mp4")
            examples = json.loads((DATA / "seed_examples.json").read_text())
            # the seed's one slip (a nested checklist answer as one object) fixed, as in
            # tests/annotations/test_annotation_ontology.py
            nested = examples["nested_checklist_annotation_ndjson"]["answer"][0]["classifications"][0]
            nested["answer"] = [nested["answer"]]
            # ... and its two "instances" that are the same line twice kept once (same uuid)
            unique = [v for i, v in enumerate(examples.values()) if v not in list(examples.values())[:i]]
            assert len(unique) == len(examples) - 1
            lines = [{**v, "dataRow": {"globalKey": "street.mp4"}} for v in unique]
            (media / "street.mp4.labels.ndjson").write_text("".join(json.dumps(x) + "\n" for x in lines))
            (media / "m.ndjson").write_text('"street.mp4"\n"street.mp4.labels.ndjson"\n')
            cfg = setup(tmp_path, ps, 0, kind="ground_truth")
            code, summary, text = await run(cfg)
            assert code == 0, text[-3000:]
            assert summary["dead_lettered"] == 0, dead(tmp_path)
            assert ps.in_project == {"street.mp4": next(iter(ps.batches))}
            [job] = ps.jobs.values()
            assert job.kind == "ground_truth" and job.state == "FINISHED"
            assert len(job.lines) == len(unique)
            assert b"FAILURE" not in ps.status_files[job.id]
        finally:
            await ps.stop()
