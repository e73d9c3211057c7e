"""Labelbox specs and the streaming chunker (workers/platforms/labelbox/specs.py)."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.payloads import labelbox as lb
from workers.platforms.labelbox.specs import SpecTooLarge, chunks, fits, manifest, spec


def _row(key: str, url: str = "https://cdn.example.com/a.jpg") -> bytes:
    return lb.encode(lb.DataRow(row_data=url, global_key=key, media_type="IMAGE"))


class TestSpec:
    def test_auto_spec_splices_the_dataset_into_the_payload(self) -> None:
        """An AUTO spec holds the row's own fields plus dataset_id, as the SDK sends it."""
        doc = json.loads(spec(_row("k1"), "ds1"))
        assert doc == {
            "id": {"type": "AUTO", "value": ""},
            "payload": {
                "row_data": "https://cdn.example.com/a.jpg",
                "global_key": "k1",
                "media_type": "IMAGE",
                "dataset_id": "ds1",
            },
        }

    def test_gkey_spec_names_the_global_key(self) -> None:
        """Upsert mode addresses the row by its global key (escaped as JSON)."""
        doc = json.loads(spec(_row('k"1'), "ds1", id_type="GKEY", key='k"1'))
        assert doc["id"] == {"type": "GKEY", "value": 'k"1'}
        assert doc["payload"]["global_key"] == 'k"1'

    def test_empty_object_and_non_objects(self) -> None:
        """An empty row gets only dataset_id; a body that is not an object is refused."""
        assert json.loads(spec(b"{}", "d"))["payload"] == {"dataset_id": "d"}
        with pytest.raises(ValueError, match="JSON object"):
            spec(b"[1]", "d")


_keys = st.lists(st.text(min_size=1, max_size=30), min_size=0, max_size=60, unique=True)


class TestChunks:
    @settings(max_examples=60, deadline=None)
    @given(keys=_keys, limit=st.integers(min_value=400, max_value=3000), task_rows=st.integers(1, 20))
    def test_chunks_hold_every_spec_in_order_within_the_limits(
        self, keys: list[str], limit: int, task_rows: int
    ) -> None:
        """Each chunk is valid JSON <= limit; chunks concatenated are all specs in order;
        no task has more than task_rows rows and a chunk never straddles two tasks."""
        specs = [(k, spec(_row(k), "ds")) for k in keys]
        specs = [(k, s) for k, s in specs if fits(s, limit)]
        out = list(chunks(specs, limit=limit, task_rows=task_rows))
        seen: list[bytes] = []
        per_task: dict[int, int] = {}
        for c in out:
            assert len(c.data) <= limit
            items = json.loads(c.data)
            assert len(items) == len(c.keys) > 0
            seen.extend(msgspec.json.encode(i) for i in items)
            per_task[c.task] = per_task.get(c.task, 0) + len(c.keys)
        assert seen == [msgspec.json.encode(json.loads(s)) for _, s in specs]
        assert [k for c in out for k in c.keys] == [k for k, _ in specs]
        assert all(n <= task_rows for n in per_task.values())
        assert sorted(per_task) == list(range(len(per_task)))
        assert [c.task for c in out] == sorted(c.task for c in out)

    def test_a_spec_larger_than_any_chunk_is_named(self) -> None:
        """A single spec over the limit raises with its key (the sink rejects that row)."""
        big = spec(_row("big", "https://x.example.com/" + "a" * 500), "ds")
        with pytest.raises(SpecTooLarge) as e:
            list(chunks([("big", big)], limit=300))
        assert e.value.key == "big"

    def test_task_boundaries_cut_chunks(self) -> None:
        """Five rows, two per task: three tasks, three chunks."""
        specs = [(str(i), spec(_row(str(i)), "d")) for i in range(5)]
        out = list(chunks(specs, task_rows=2))
        assert [(c.task, c.keys) for c in out] == [(0, ["0", "1"]), (1, ["2", "3"]), (2, ["4"])]

    def test_manifest(self) -> None:
        """The manifest lists the chunk URLs and the row count."""
        assert json.loads(manifest(["u1", "u2"], 7)) == {
            "source": "SDK",
            "item_count": 7,
            "chunk_uris": ["u1", "u2"],
        }
