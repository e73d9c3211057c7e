"""Queueing data rows into a project, sans-I/O (shared/ref/labelbox.md 1.5 and addendum A2.1-A2.2).

* the project read (its media type and its ontology in normalized form, for the validator);
* the processed check the SDK polls before any batch (``queryAllDataRowsHaveBeenProcessed``,
  <= 100,000 keys per call; "processed" means finished, failed rows included);
* ``createBatchV2`` for fewer than :data:`SYNC_BATCH_ROWS` rows (one request, ``failedDataRowIds``
  synchronously); at or above it ``createEmptyBatch`` + ``addDataRowsToBatchAsync`` (a task to
  poll), then the batch read whose ``size`` is compared with what was sent;
* deterministic batch names: a pure function of the sorted, case-folded global keys, so a retried
  batch has the name of the first attempt and ``RESOURCE_CONFLICT`` means "already created".

Rows are addressed by global key throughout (``dataRowIds`` is then ``[]``, as the SDK sends it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

SYNC_BATCH_ROWS = 1_000  # the SDK's MAX_SYNC_BATCH_ROW_COUNT
MAX_BATCH_ROWS = 100_000
PROCESSED_KEYS = 100_000  # keys per processed check
NAME_PREFIX = "ingestd-"

PROJECT = (
    "query IngestdProject($projectId: ID!) { project(where: {id: $projectId}) "
    "{ id name mediaType ontology { normalized } } }"
)
PROCESSED = (
    "query IngestdRowsProcessed($globalKeys: [ID!]) "
    "{ queryAllDataRowsHaveBeenProcessed(globalKeys: $globalKeys) { allDataRowsHaveBeenProcessed } }"
)
BATCH_FIELDS = "consensusSettingsJson createdAt name size id updatedAt"
CREATE_BATCH = (
    "mutation IngestdCreateBatchV2($projectId: ID!, $batchInput: CreateBatchInput!) "
    "{ project(where: {id: $projectId}) { createBatchV2(input: $batchInput) "
    f"{{ batch {{ {BATCH_FIELDS} }} failedDataRowIds }} }} }}"
)
CREATE_EMPTY_BATCH = (
    "mutation IngestdCreateEmptyBatch($projectId: ID!, $input: CreateEmptyBatchInput!) "
    "{ project(where: {id: $projectId}) { createEmptyBatch(input: $input) { id } } }"
)
ADD_TO_BATCH = (
    "mutation IngestdAddToBatchAsync($projectId: ID!, $input: AddDataRowsToBatchInput!) "
    "{ project(where: {id: $projectId}) { addDataRowsToBatchAsync(input: $input) { taskId } } }"
)
BATCH_BY_NAME = (
    "query IngestdBatchByName($projectId: ID!, $name: String!) { project(where: {id: $projectId}) "
    f"{{ batches(where: {{name: $name}}) {{ nodes {{ {BATCH_FIELDS} }} }} }} }}"
)
# the answer a batch gets when every row is already in a batch of the project (A2.2, unverified text)
NOTHING_TO_ADD = "No valid data rows to add to project"


def batch_name(keys: Iterable[str]) -> str:
    """``ingestd-<32 hex>``: SHA-256 of the sorted, case-folded keys (global keys are case-insensitive)."""
    h = hashlib.sha256()
    for k in sorted({k.casefold() for k in keys}):
        h.update(k.encode())
        h.update(b"\n")
    return NAME_PREFIX + h.hexdigest()[:32]


def consensus_input(number_of_labels: int, coverage_percentage: float) -> dict[str, Any] | None:
    """``consensusSettings`` as the SDK dumps it (camelCase); None when consensus is off."""
    if number_of_labels <= 1:
        return None
    return {"numberOfLabels": number_of_labels, "coveragePercentage": coverage_percentage}


def create_batch_variables(
    project: str, name: str, keys: Sequence[str], *, priority: int, consensus: dict[str, Any] | None
) -> dict[str, Any]:
    if not 0 < len(keys) < SYNC_BATCH_ROWS:
        raise ValueError(f"createBatchV2 takes 1..{SYNC_BATCH_ROWS - 1} rows, not {len(keys)}")
    return {
        "projectId": project,
        "batchInput": {
            "name": name,
            "dataRowIds": [],
            "globalKeys": list(keys),
            "priority": priority,
            "consensusSettings": consensus,
        },
    }


def empty_batch_variables(project: str, name: str, consensus: dict[str, Any] | None) -> dict[str, Any]:
    return {"projectId": project, "input": {"name": name, "consensusSettings": consensus}}


def add_rows_variables(project: str, batch_id: str, keys: Sequence[str], *, priority: int) -> dict[str, Any]:
    if not 0 < len(keys) <= MAX_BATCH_ROWS:
        raise ValueError(f"a batch takes 1..{MAX_BATCH_ROWS} rows, not {len(keys)}")
    return {
        "projectId": project,
        "input": {"batchId": batch_id, "dataRowIds": [], "globalKeys": list(keys), "priority": priority},
    }


# -- answers ------------------------------------------------------------------------------------


class OntologyView(msgspec.Struct):
    normalized: Any = None  # an object, or the same JSON as a string


class ProjectView(msgspec.Struct):
    id: str
    name: str = ""
    mediaType: str | None = None
    ontology: OntologyView | None = None

    def ontology_json(self) -> bytes | None:
        """The normalized ontology as JSON bytes (None when the project has none)."""
        if self.ontology is None or self.ontology.normalized is None:
            return None
        n = self.ontology.normalized
        return n.encode() if isinstance(n, str) else msgspec.json.encode(n)


class ProjectData(msgspec.Struct):
    project: ProjectView | None = None


class _Processed(msgspec.Struct):
    allDataRowsHaveBeenProcessed: bool


class ProcessedData(msgspec.Struct):
    queryAllDataRowsHaveBeenProcessed: _Processed

    @property
    def done(self) -> bool:
        return self.queryAllDataRowsHaveBeenProcessed.allDataRowsHaveBeenProcessed


class BatchView(msgspec.Struct):
    id: str
    name: str = ""
    size: int | None = None
    consensusSettingsJson: Any = None


class _CreatedBatch(msgspec.Struct):
    batch: BatchView
    failedDataRowIds: list[str] = msgspec.field(default_factory=list)


class _CreateBatchProject(msgspec.Struct):
    createBatchV2: _CreatedBatch


class CreateBatchData(msgspec.Struct):
    project: _CreateBatchProject


class _Id(msgspec.Struct):
    id: str


class _EmptyBatchProject(msgspec.Struct):
    createEmptyBatch: _Id


class EmptyBatchData(msgspec.Struct):
    project: _EmptyBatchProject


class _TaskId(msgspec.Struct):
    taskId: str


class _AddProject(msgspec.Struct):
    addDataRowsToBatchAsync: _TaskId


class AddToBatchData(msgspec.Struct):
    project: _AddProject


class _Nodes(msgspec.Struct):
    nodes: list[BatchView] = msgspec.field(default_factory=list)


class _BatchesProject(msgspec.Struct):
    batches: _Nodes


class BatchByNameData(msgspec.Struct):
    project: _BatchesProject | None = None

    def first(self) -> BatchView | None:
        if self.project is None or not self.project.batches.nodes:
            return None
        return self.project.batches.nodes[0]


def media_mismatch(row_kind: str, project_media: str | None) -> str | None:
    """Why a row of ``row_kind`` (VIDEO, IMAGE, ...) cannot join a project of ``project_media``."""
    if not project_media or not row_kind or row_kind.upper() == project_media.upper():
        return None
    return f"data row media type {row_kind.upper()} differs from the project's {project_media.upper()}"
