"""The Label Assignment Window: ordinary labels and share labels on one or many documents at once.

The whole call is validated before anything changes (one bad target refuses it all, with every reason);
then every document to change is reserved at the version it was validated at (if any changed meanwhile,
none is: the call reads, validates and tries again), and only then each gets one update carrying its
share events. So a call is applied whole or not at all (SPEC 5).
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from clinishare_shared.auth import CurrentPractitioner
from clinishare_shared.mongo import new_id
from clinishare_shared.problems import Problem
from clinishare_shared.retry import TryAgain, optimistic

from clinishare_documents.api.deps import DirectoryDep, ProjectionDep, StoreDep, sharer_facts, to_read
from clinishare_documents.domain.access import DocFacts, apply_change, next_expiries, validate_label_call
from clinishare_documents.domain.schemas import LabelRequest, LabelResult
from clinishare_documents.events import share_events
from clinishare_documents.store import expiries_of, shares_state

router = APIRouter(prefix="/v1/documents", tags=["labels"])


@router.post("/labels", response_model=LabelResult, operation_id="documents.labels.apply", summary="Add and remove labels and share labels")
async def label_documents(body: LabelRequest, request: Request, principal: CurrentPractitioner, store: StoreDep,
                          projection: ProjectionDep, directory: DirectoryDep) -> LabelResult:
    ids = list(dict.fromkeys(body.document_ids))
    add, remove = body.add.targets(), body.remove.targets()
    sharer = await sharer_facts(projection, directory, sharer_id=principal.id,
                                authorization=request.headers["authorization"], add=add)

    async def attempt() -> LabelResult:
        owned = await store.owned(principal.id, ids)
        facts = {i: DocFacts(i, d["owner_id"], d.get("patient_id")) for i, d in owned.items()}
        refusals = validate_label_call(ids, facts, caller_id=principal.id, add=add, remove=remove, sharer=sharer)
        if refusals:
            errors = [{k: v for k, v in asdict(r).items() if v is not None} for r in refusals]
            invalid = list(dict.fromkeys(r.target.split(":", 1)[1] for r in refusals))
            raise Problem(422, "the call was refused; nothing was changed", errors=errors, invalid_ids=invalid)
        changes = {i: apply_change(owned[i]["labels"], shares_state(owned[i]), add=add, remove=remove) for i in ids}
        expiries = {i: next_expiries(expiries_of(owned[i]), changes[i].shares, add, body.add.expires_at) for i in ids}
        changing = [owned[i] for i in ids
                    if changes[i].changed(owned[i]["labels"]) or expiries[i] != expiries_of(owned[i])]
        # all or nothing (SPEC 5): every document to change is reserved at the version read, else none is
        call_id = new_id()
        if not await store.claim(changing, call_id):
            raise TryAgain
        written = {}
        for doc in changing:
            change = changes[doc["_id"]]
            events = share_events(document_id=doc["_id"], owner_id=principal.id,
                                  workspace_patient_id=doc.get("patient_id"), added=change.added,
                                  removed=change.removed, expires_at=body.add.expires_at)
            written[doc["_id"]] = await store.apply(doc["_id"], change, events, call_id=call_id,
                                                    expiries=expiries[doc["_id"]])
        return LabelResult(items=[await to_read(written.get(i, owned[i]), principal.id, projection) for i in ids])

    return await optimistic(attempt, exhausted=Problem(
        409, "a document was being changed at the same time; nothing was changed, try again"))
