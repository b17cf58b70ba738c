"""Dependencies of the documents API: the store, the projection, "load it or 404", and the checks that
turn identity facts (projection first, identity itself as tie-breaker) into the rules' plain data."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from clinishare_shared.access import NamedRecipient, named_recipients
from clinishare_shared.deps import DirectoryDep, ProjectionDep, from_state
from clinishare_shared.domain.access import Readable
from clinishare_shared.mongo import now_ms
from clinishare_shared.auth import CurrentPrincipal, Principal, require_kind
from clinishare_shared.directory import Directory, refused_recipients
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.ids import PathId

from clinishare_documents.domain.access import SharerFacts, Targets
from clinishare_documents.domain.schemas import DocumentRead, Shares
from clinishare_documents.settings import DocumentsSettings
from clinishare_documents.service import read_grounds
from clinishare_documents.store import DocumentStore, expiries_of, shares_state


StoreDep = Annotated[DocumentStore, from_state("store")]
SettingsDep = Annotated[DocumentsSettings, from_state("settings")]
CurrentReader = Annotated[Principal, require_kind("practitioner", "staff")]


async def _readable(document_id: PathId, principal: CurrentPrincipal, store: StoreDep,
                    projection: ProjectionDep) -> Readable:
    doc = await store.get(document_id)
    if doc is None:
        raise not_found("document")
    if doc["owner_id"] == principal.id and principal.kind != "patient":
        return Readable(doc, [])
    found = await read_grounds(projection=projection, doc=doc, account_id=principal.id, kind=principal.kind,
                               now=now_ms())
    if not found:
        raise not_found("document")
    return Readable(doc, found)


ReadableDocument = Annotated[Readable, Depends(_readable)]


async def _own_document(document_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
    doc = await store.get(document_id)
    if doc is None or doc["owner_id"] != principal.id or principal.kind == "patient":
        raise not_found("document")
    return doc


OwnDocument = Annotated[dict[str, Any], Depends(_own_document)]


async def to_read(doc: dict[str, Any], viewer_id: str, projection: IdentityProjection) -> DocumentRead:
    """The owner sees labels and recipients (named); a recipient sees the document and who shared it,
    not who else has it. Names are read now, from the projection."""
    owner = doc["owner_id"] == viewer_id
    owner_name = (await projection.names([doc["owner_id"]])).get(doc["owner_id"])
    shares, recipients = Shares(), []
    if owner:
        state = shares_state(doc)
        shares = Shares.from_state(state)
        expiries = expiries_of(doc)
        offices = await projection.office_names(o for o, _ in state.offices)
        named = await named_recipients(projection, practitioner_ids=sorted(state.practitioner_ids))
        recipients = (
            [NamedRecipient(kind="patient", id=p, expires_at=expiries.get(f"patient:{p}"))
             for p in sorted(state.patient_ids)]
            + [r.model_copy(update={"expires_at": expiries.get(f"practitioner:{r.id}")}) for r in named]
            + [NamedRecipient(kind="office", id=o, name=offices.get(o), audience=a,  # type: ignore[arg-type]
                              expires_at=expiries.get(f"office:{o}:{a}")) for o, a in sorted(state.offices)])
    return DocumentRead(
        id=doc["_id"], owner_id=doc["owner_id"], filename=doc["filename"], content_type=doc["content_type"],
        size=doc["size"], sha256=doc["sha256"], patient_id=doc.get("patient_id"),
        labels=list(doc.get("labels", [])) if owner else [], shares=shares, recipients=recipients,
        owner_name=owner_name,
        sharer_name=None if owner else owner_name, created_at=doc["created_at"],
    )


async def patients_refused(projection: IdentityProjection, directory: Directory | None, *, practitioner_id: str,
                           authorization: str, patient_ids: list[str]) -> set[str]:
    """Patients not in the practitioner's care. The projection answers first; a patient it refuses is
    asked about at identity (the projection may be an event behind), and stays refused if identity says
    so or cannot answer."""
    refused = set()
    for patient_id in dict.fromkeys(patient_ids):
        if await projection.in_care(patient_id, practitioner_id):
            continue
        found = None
        if directory is not None:
            try:
                found = await directory.patient(patient_id, authorization=authorization)
            except Problem:
                found = None
        if found is None:
            refused.add(patient_id)
    return refused


async def sharer_facts(projection: IdentityProjection, directory: Directory | None, *, sharer_id: str,
                       authorization: str, add: Targets) -> SharerFacts:
    """Which of the recipients the call would add the sharer may share with (only those are looked up)."""
    office_ids = list(dict.fromkeys(o for o, _ in add.offices))
    practitioner_ids = list(dict.fromkeys(add.practitioner_ids))
    bad: set[str] = set()
    if office_ids or practitioner_ids:
        bad = set(await refused_recipients(projection, directory, account_id=sharer_id, authorization=authorization,
                                           practitioner_ids=practitioner_ids, office_ids=office_ids))
    refused_patients = await patients_refused(projection, directory, practitioner_id=sharer_id,
                                              authorization=authorization, patient_ids=list(add.patient_ids))
    return SharerFacts(
        patients_in_care=frozenset(p for p in add.patient_ids if p not in refused_patients),
        practitioners=frozenset(p for p in practitioner_ids if p not in bad),
        offices=frozenset(o for o in office_ids if o not in bad),
    )
