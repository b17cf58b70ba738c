"""The documents service's use cases, as functions with keyword-only arguments: they load through the
store, check the pure rules of ``domain.access``, build the new documents and their events, and call the
store. Routes only parse, call these and serialise what they return.

The read check, the shared listings and "who can see this" all go through ``domain.access.grounds``.
Label calls are all or nothing, even across a crash: see ``label`` and ``settle_label_calls``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Literal, Protocol

from clinishare_shared.directory import Directory, patient_in_care, refused_recipients
from clinishare_shared.domain.access import Ground, Readable, Reader
from clinishare_shared.domain.sharing import SharingList
from clinishare_shared.gridfs import FileInfo
from clinishare_shared.ids import is_id
from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.pagination import PageQuery
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.projection import IdentityProjection
from clinishare_shared.retry import TryAgain, optimistic

from clinishare_documents import events
from clinishare_documents.domain.access import (
    Change, DocFacts, SharerFacts, Targets, apply_change, expired_shares, grounds, next_expiries, reader_keys,
    validate_label_call, who_can_read,
)
from clinishare_documents.domain.files import clean_content_type, clean_filename
from clinishare_documents.domain.stored import (
    AccessEntry, Document, LabelIntent, PlannedDocument, Shares, expiry_list,
)
from clinishare_documents.domain.schemas import DocumentRead, LabelRequest
from clinishare_documents.store import DocumentStore


# ---- reading ------------------------------------------------------------------------------------------


async def read_grounds(*, projection: IdentityProjection, doc: Document, account_id: str, kind: str,
                       now: datetime, roles: dict[str, str] | None = None,
                       sharer: SharingList | None = None) -> list[Ground]:
    """How a reader other than the owner reads the document now (empty: they may not)."""
    if roles is None:
        roles = {} if kind == "patient" else await projection.roles_of(account_id)
    if sharer is None:
        sharer = await projection.sharing_list(doc.owner_id)
    return grounds(owner_id=doc.owner_id, keys=doc.share_keys, expiries=doc.expiry_map(), sharer=sharer,
                   account_id=account_id, kind=kind, office_roles=roles, now=now)


async def readable(*, projection: IdentityProjection, docs: list[Document], account_id: str, kind: str,
                   now: datetime) -> list[Document]:
    """Of documents found by recipient key, those the reader can read now (expiry, sharing lists)."""
    roles = {} if kind == "patient" else await projection.roles_of(account_id)
    lists: dict[str, SharingList] = {}
    out = []
    for doc in docs:
        if doc.owner_id not in lists:
            lists[doc.owner_id] = await projection.sharing_list(doc.owner_id)
        if await read_grounds(projection=projection, doc=doc, account_id=account_id, kind=kind, now=now,
                              roles=roles, sharer=lists[doc.owner_id]):
            out.append(doc)
    return out


async def readers(*, projection: IdentityProjection, doc: Document, now: datetime) -> dict[Reader, list[Ground]]:
    """Everyone but the owner who can read the document now, office memberships expanded now."""
    offices = [k.split(":")[1] for k in doc.share_keys if k.startswith("office:")]
    return who_can_read(owner_id=doc.owner_id, keys=doc.share_keys, expiries=doc.expiry_map(),
                        sharer=await projection.sharing_list(doc.owner_id),
                        rosters=await projection.office_rosters(offices), now=now)


async def load_readable(*, store: DocumentStore, projection: IdentityProjection, document_id: str,
                        account_id: str, kind: str) -> Readable[Document]:
    """The document if the caller may read it now, else 404 (exactly like a missing one)."""
    doc = await store.get(document_id)
    if doc is None:
        raise not_found("document")
    if doc.owner_id == account_id and kind != "patient":
        return Readable(doc, [])
    found = await read_grounds(projection=projection, doc=doc, account_id=account_id, kind=kind, now=now_ms())
    if not found:
        raise not_found("document")
    return Readable(doc, found)


async def load_own(*, store: DocumentStore, document_id: str, account_id: str, kind: str) -> Document:
    doc = await store.get(document_id)
    if doc is None or doc.owner_id != account_id or kind == "patient":
        raise not_found("document")
    return doc


async def present(docs: list[Document], *, viewer_id: str, projection: IdentityProjection) -> list[DocumentRead]:
    """The documents as the viewer sees them, names read now from the projection (two queries in all)."""
    people = {d.owner_id for d in docs} | {p for d in docs if d.owner_id == viewer_id for p in d.shares.practitioner_ids}
    offices = {o.office_id for d in docs if d.owner_id == viewer_id for o in d.shares.offices}
    names = await projection.names(sorted(people))
    office_names = await projection.office_names(sorted(offices))
    return [DocumentRead.from_doc(d, viewer_id=viewer_id, names=names, office_names=office_names) for d in docs]


async def list_documents(*, store: DocumentStore, projection: IdentityProjection, account_id: str, kind: str,
                         scope: Literal["mine", "shared"], patient_id: str | None, label: str | None,
                         page: PageQuery) -> tuple[list[Document], str | None]:
    """My documents, or those shared with me (a patient: the portal) that I can read now; and the cursor."""
    if scope == "mine":
        return await store.list_mine(account_id, patient_id=patient_id, label=label, page=page)
    if label is not None:
        # Labels are the owner's own filing; a recipient neither sees nor filters by them.
        raise Problem(422, "label filters apply to scope=mine only")
    roles = {} if kind == "patient" else await projection.roles_of(account_id)
    items, cursor = await store.list_shared(reader_keys(account_id, kind, roles), patient_id=patient_id, page=page)
    # an expired share, or a recipient off the owner's sharing list, gives nothing
    return await readable(projection=projection, docs=items, account_id=account_id, kind=kind, now=now_ms()), cursor


async def record_download(*, store: DocumentStore, access: Readable[Document], accessor_id: str, accessor_kind: str) -> None:
    """A download by anyone but the owner is accounted for (audit) in one write with its event."""
    if access.own:
        return
    doc = access.item
    entry = AccessEntry(id=new_id(), document_id=doc.id, owner_id=doc.owner_id, patient_id=doc.patient_id,
                        accessor_id=accessor_id, accessor_kind=accessor_kind,
                        grant_ids=[g.grant_id for g in access.grounds], at=now_ms())
    await store.record_access(entry, events.document_accessed(entry))


# ---- uploading and deleting ---------------------------------------------------------------------------


class FormPart(Protocol):
    name: str
    filename: str | None
    content_type: str | None


class UploadForm(Protocol):
    """A multipart body read part by part (``api.multipart.StreamingForm``)."""

    async def next_part(self) -> FormPart | None: ...
    async def read_field(self, *, limit: int) -> str: ...
    def data(self) -> AsyncIterator[bytes]: ...


async def _ensure_in_care(projection: IdentityProjection, directory: Directory | None, *, patient_id: str,
                          practitioner_id: str, authorization: str) -> None:
    if not await patient_in_care(projection, directory, patient_id=patient_id, practitioner_id=practitioner_id,
                                 authorization=authorization):
        raise Problem(422, "the patient is not in your care", invalid_ids=[patient_id])


async def upload(*, store: DocumentStore, projection: IdentityProjection, directory: Directory | None,
                 form: UploadForm, owner_id: str, authorization: str, max_size: int) -> Document:
    """Stream the form's one file into GridFS (optionally into a patient's workspace) and record it. A
    ``patient_id`` field sent before the file is checked before anything is stored; on any failure the
    stored content is deleted again."""
    info: FileInfo | None = None
    try:
        patient_id: str | None = None
        checked = False
        filename = content_type = ""
        while (part := await form.next_part()) is not None:
            if part.name == "patient_id":
                patient_id = (await form.read_field(limit=256)).strip() or None
                if patient_id is not None and not is_id(patient_id):
                    raise Problem(422, "patient_id is not a valid id")
                checked = False
            elif part.name == "file":
                if info is not None:
                    raise Problem(422, "exactly one file part named 'file' is expected")
                if patient_id is not None:  # refuse before storing anything when the field came first
                    await _ensure_in_care(projection, directory, patient_id=patient_id, practitioner_id=owner_id,
                                          authorization=authorization)
                    checked = True
                filename, content_type = clean_filename(part.filename), clean_content_type(part.content_type)
                info = await store.save_content(form.data(), filename=filename, content_type=content_type,
                                                max_size=max_size, owner_id=owner_id)
        if info is None:
            raise Problem(422, "a file part named 'file' is required")
        if info.length == 0:
            raise Problem(422, "the file is empty")
        if patient_id is not None and not checked:
            await _ensure_in_care(projection, directory, patient_id=patient_id, practitioner_id=owner_id,
                                  authorization=authorization)
        now = now_ms()
        doc = Document(id=new_id(), owner_id=owner_id, filename=filename, content_type=content_type,
                       size=info.length, sha256=info.sha256, file_id=info.id, patient_id=patient_id,
                       created_at=now, updated_at=now)
        await store.insert(doc, events.uploaded(doc))
        return doc
    except BaseException:
        if info is not None:
            await store.delete_content(info.id)
        raise


async def delete(*, store: DocumentStore, projection: IdentityProjection, document_id: str, account_id: str,
                 kind: str) -> None:
    """The owner deletes (a recipient who can see it: 403; anyone else: 404). The metadata and the unshare
    are committed first, in one write; only then does the content go."""

    async def attempt() -> Document:
        doc = await store.get(document_id)
        if doc is None:
            raise not_found("document")
        if doc.owner_id != account_id or kind == "patient":
            if await read_grounds(projection=projection, doc=doc, account_id=account_id, kind=kind, now=now_ms()):
                raise Problem(403, "only the document's owner can delete it")
            raise not_found("document")
        if not await store.soft_delete(doc, events.deleted(doc, deleted_by=account_id)):
            raise TryAgain
        return doc

    doc = await optimistic(attempt, exhausted=Problem(409, "the document is being changed; try again"))
    await store.delete_content(doc.file_id)


# ---- labels -------------------------------------------------------------------------------------------


async def sharer_facts(projection: IdentityProjection, directory: Directory | None, *, sharer_id: str,
                       authorization: str, add: Targets) -> SharerFacts:
    """Which of the recipients the call would add the sharer may share with (only those are looked up)."""
    office_ids = list(dict.fromkeys(o for o, _ in add.offices))
    practitioner_ids = list(dict.fromkeys(add.practitioner_ids))
    bad: set[str] = set()
    if office_ids or practitioner_ids:
        bad = set(await refused_recipients(projection, directory, account_id=sharer_id, authorization=authorization,
                                           practitioner_ids=practitioner_ids, office_ids=office_ids))
    return SharerFacts(
        patients_in_care=frozenset([p for p in dict.fromkeys(add.patient_ids)
                                    if await patient_in_care(projection, directory, patient_id=p,
                                                             practitioner_id=sharer_id, authorization=authorization)]),
        practitioners=frozenset(p for p in practitioner_ids if p not in bad),
        offices=frozenset(o for o in office_ids if o not in bad),
    )


def _planned(doc: Document, change: Change, expiries: dict[str, datetime],
             expires_at: datetime | None) -> PlannedDocument:
    """``doc`` (as reserved) after the call, with the events announcing what it added and removed."""
    return PlannedDocument(
        document_id=doc.id, version=doc.version, labels=list(change.labels), shares=Shares.of(change.shares),
        expiries=expiry_list(expiries),
        events=events.share_events(document_id=doc.id, owner_id=doc.owner_id, workspace_patient_id=doc.patient_id,
                                   added=change.added, removed=change.removed, expires_at=expires_at))


def _after(doc: Document, planned: PlannedDocument | None) -> Document:
    if planned is None:
        return doc
    return doc.model_copy(update={"labels": planned.labels, "shares": planned.shares,
                                  "share_keys": planned.share_keys, "expiries": planned.expiries,
                                  "version": planned.version + 1, "label_lock": None})


async def roll_forward(store: DocumentStore, intent: LabelIntent) -> None:
    """Write every document's part of a committed intent (each write a no-op if already done), then mark
    it done. The label call runs this itself; the sweeper runs it for a call that did not finish."""
    for planned in intent.documents:
        await store.write_planned(intent.id, planned)
    await store.finish(intent.id)


async def label(*, store: DocumentStore, projection: IdentityProjection, directory: Directory | None,
                owner_id: str, authorization: str, call: LabelRequest, lease: timedelta) -> list[Document]:
    """The Label Assignment Window: validated whole, then all or nothing (SPEC 5), even across a crash.

    1. Every document to change is reserved at the version the call was validated against, or none is
       (a conflict: read and validate again, a few times, then 409; nothing changed).
    2. ONE intent document is inserted: the whole change set and its events. This is the commit point.
    3. Each document's part is written with its events (idempotent, see ``DocumentStore.write_planned``),
       then the intent is marked done. A crash after 2 leaves the rest to ``settle_label_calls``."""
    ids = list(dict.fromkeys(call.document_ids))
    add, remove = call.add.targets(), call.remove.targets()
    sharer = await sharer_facts(projection, directory, sharer_id=owner_id, authorization=authorization, add=add)

    async def attempt() -> list[Document]:
        owned = await store.owned(owner_id, ids)
        facts = {i: DocFacts(i, d.owner_id, d.patient_id) for i, d in owned.items()}
        refusals = validate_label_call(ids, facts, caller_id=owner_id, add=add, remove=remove, sharer=sharer)
        if refusals:
            errors = [{k: v for k, v in asdict(r).items() if v is not None} for r in refusals]
            invalid = list(dict.fromkeys(r.target.split(":", 1)[1] for r in refusals))
            raise Problem(422, "the call was refused; nothing was changed", errors=errors, invalid_ids=invalid)
        changes = {i: apply_change(owned[i].labels, owned[i].share_state(), add=add, remove=remove) for i in ids}
        expiries = {i: next_expiries(owned[i].expiry_map(), changes[i].shares, add, call.add.expires_at) for i in ids}
        changing = [owned[i] for i in ids if changes[i].changed(owned[i].labels) or expiries[i] != owned[i].expiry_map()]
        if not changing:
            return [owned[i] for i in ids]
        intent_id, now = new_id(), now_ms()
        reserved = await store.reserve(changing, intent_id, until=now + lease)
        if reserved is None:
            raise TryAgain
        intent = LabelIntent(id=intent_id, owner_id=owner_id, created_at=now, documents=[
            _planned(d, changes[d.id], expiries[d.id], call.add.expires_at) for d in reserved])
        if not await store.begin(intent):  # the sweeper fenced this call off: its reservations outlived the lease
            await store.release([d.id for d in reserved], intent_id)
            raise TryAgain
        await roll_forward(store, intent)
        planned = {p.document_id: p for p in intent.documents}
        return [_after(owned[i], planned.get(i)) for i in ids]

    return await optimistic(attempt, exhausted=Problem(
        409, "a document was being changed at the same time; nothing was changed, try again"))


async def settle_label_calls(*, store: DocumentStore, now: datetime, lease: timedelta) -> int:
    """What the label-call sweeper does (at start-up and on a slow timer, in every replica):
    - a call that reserved documents but never committed (its reservations outlived ``lease``) is fenced
      off by a unique insert under its id, so it can no longer commit, and its documents are freed;
    - a committed intent unfinished after ``lease`` is rolled forward, by exactly one worker per lease
      period (a unique claim insert); its writes are idempotent, so a slow holder and its successor
      still apply each document once. Returns how many intents this call rolled forward."""
    for call_id in await store.stale_reservations(now):
        intent = await store.abort(call_id, now=now)
        if intent is None or intent.aborted:
            await store.release(await store.reserved_by(call_id), call_id)
    rolled = 0
    for intent in await store.unfinished(older_than=now - lease):
        generation = int((now - intent.created_at) / lease)
        if await store.claim_roll_forward(intent.id, generation, now=now):
            await roll_forward(store, intent)
            rolled += 1
    return rolled


# ---- expiring shares ------------------------------------------------------------------------------------


async def expire_shares(*, store: DocumentStore, now: datetime) -> int:
    """Announce and drop the recipients whose share has expired. Each expiry (document, recipient, time) is
    claimed by a unique insert carrying its ``documents.share.expired`` event, so of several replicas
    sweeping at once exactly one announces it; then the recipients are dropped from the document
    (version-checked; a lost race is retried by the next sweep, whose claims find it announced).
    Returns how many expiries this call claimed."""
    claimed = 0
    for doc in await store.due_expiries(now):
        expiries, shares = doc.expiry_map(), doc.share_state()
        for key, at in sorted(expiries.items()):
            gone = expired_shares(shares, {key: at}, now)
            if gone and await store.claim_expiry(doc, key, at, now=now,
                                                 event=events.share_expired(doc, gone, expires_at=at)):
                claimed += 1
        await store.drop_recipients(doc, shares - expired_shares(shares, expiries, now),
                                    {k: v for k, v in expiries.items() if v > now})
    return claimed
