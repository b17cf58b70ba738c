"""The Label Assignment Window: ordinary labels and share labels on one or many documents at once.

The whole call is validated before anything changes (one bad target refuses it all, with every reason);
then each document gets one update carrying its share events.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from clinishare_shared.auth import CurrentPractitioner
from clinishare_shared.problems import Problem

from clinishare_documents.api.deps import DirectoryDep, ProjectionDep, StoreDep, sharer_facts, to_read
from clinishare_documents.domain.rules import DocFacts, Targets, apply_change, validate_label_call
from clinishare_documents.domain.schemas import DocumentRead, LabelRequest, LabelResult
from clinishare_documents.events import share_events
from clinishare_documents.store import DocumentStore, shares_state

router = APIRouter(prefix="/v1/documents", tags=["labels"])
ATTEMPTS = 5


async def _apply_one(store: DocumentStore, doc: dict[str, Any], owner_id: str, add: Targets,
                     remove: Targets) -> dict[str, Any] | None:
    """Apply the change to one document; recomputed if someone else changed it between read and write."""
    for _ in range(ATTEMPTS):
        change = apply_change(doc["labels"], shares_state(doc), add=add, remove=remove)
        if not change.changed(doc["labels"]):
            return doc
        events = share_events(document_id=doc["_id"], owner_id=owner_id, workspace_patient_id=doc.get("patient_id"),
                              added=change.added, removed=change.removed)
        updated = await store.apply(doc, change, events)
        if updated is not None:
            return updated
        fresh = await store.get(doc["_id"])
        if fresh is None or fresh["owner_id"] != owner_id:
            return None  # deleted meanwhile: nothing left to label
        doc = fresh
    raise Problem(409, "a document is being changed concurrently; try again", document_id=doc["_id"])


@router.post("/labels", response_model=LabelResult, summary="Add and remove labels and share labels")
async def label_documents(body: LabelRequest, request: Request, principal: CurrentPractitioner, store: StoreDep,
                          projection: ProjectionDep, directory: DirectoryDep) -> LabelResult:
    ids = list(dict.fromkeys(body.document_ids))
    add, remove = body.add.targets(), body.remove.targets()
    owned = await store.owned(principal.id, ids)
    facts = {i: DocFacts(i, d["owner_id"], d.get("patient_id")) for i, d in owned.items()}
    sharer = await sharer_facts(projection, directory, sharer_id=principal.id,
                                authorization=request.headers["authorization"], add=add)
    refusals = validate_label_call(ids, facts, caller_id=principal.id, add=add, remove=remove, sharer=sharer)
    if refusals:
        errors = [{k: v for k, v in asdict(r).items() if v is not None} for r in refusals]
        invalid = list(dict.fromkeys(r.target.split(":", 1)[1] for r in refusals))
        raise Problem(422, "the call was refused; nothing was changed", errors=errors, invalid_ids=invalid)
    items: list[DocumentRead] = []
    for doc_id in ids:
        updated = await _apply_one(store, owned[doc_id], principal.id, add, remove)
        if updated is not None:
            items.append(to_read(updated, principal.id))
    return LabelResult(items=items)
