"""Documents: upload (streamed into GridFS), list (mine / shared with me), read, download, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from clinishare_shared.access import AccessList, access_list
from clinishare_shared.mongo import now_ms
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.gridfs import FileInfo, TooLarge
from clinishare_shared.pagination import PageParams
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.ids import Id, PathId, is_id

from clinishare_documents.api.deps import (
    CurrentReader, DirectoryDep, OwnDocument, ProjectionDep, ReadableDocument, SettingsDep, StoreDep,
    patients_refused, to_read,
)
from clinishare_documents.api.multipart import (
    MultipartError, StreamingForm, boundary_of, clean_content_type, clean_filename,
)
from clinishare_documents.domain.access import ShareState, reader_keys
from clinishare_documents.service import read_grounds, readable, readers
from clinishare_documents.domain.schemas import DocumentPage, DocumentRead
from clinishare_documents import events as document_events
from clinishare_documents.events import share_events
from clinishare_documents.store import shares_state

router = APIRouter(prefix="/v1/documents", tags=["documents"])

# Room for the multipart framing and the small fields around the file when judging Content-Length.
MULTIPART_OVERHEAD = 16 * 1024
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "patient_id": {"type": "string", "description": "upload to this patient's workspace"}},
}}}}}


async def _ensure_in_care(projection: ProjectionDep, directory: DirectoryDep, *, patient_id: str,
                          practitioner_id: str, authorization: str) -> None:
    if await patients_refused(projection, directory, practitioner_id=practitioner_id, authorization=authorization,
                              patient_ids=[patient_id]):
        raise Problem(422, "the patient is not in your care", invalid_ids=[patient_id])


@router.post("", status_code=201, response_model=DocumentRead, summary="Upload a document",
             openapi_extra=UPLOAD_BODY, responses={413: {"description": "larger than the configured limit"}})
async def upload_document(request: Request, principal: CurrentPractitioner, store: StoreDep,
                          settings: SettingsDep, projection: ProjectionDep, directory: DirectoryDep) -> DocumentRead:
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise Problem(413, f"the file is larger than {limit} bytes", max_bytes=limit)
    authorization = request.headers["authorization"]
    info: FileInfo | None = None
    try:
        form = StreamingForm(request.stream(), boundary_of(request.headers.get("content-type")))
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
                    await _ensure_in_care(projection, directory, patient_id=patient_id,
                                          practitioner_id=principal.id, authorization=authorization)
                    checked = True
                filename, content_type = clean_filename(part.filename), clean_content_type(part.content_type)
                info = await store.save_content(form.data(), filename=filename, content_type=content_type,
                                                max_size=limit, owner_id=principal.id)
        if info is None:
            raise Problem(422, "a file part named 'file' is required")
        if info.length == 0:
            raise Problem(422, "the file is empty")
        if patient_id is not None and not checked:
            await _ensure_in_care(projection, directory, patient_id=patient_id, practitioner_id=principal.id,
                                  authorization=authorization)
        doc = await store.create(owner_id=principal.id, filename=filename, content_type=content_type,
                                 patient_id=patient_id, info=info)
    except BaseException as exc:
        if info is not None:
            await store.delete_content(info.id)
        if isinstance(exc, TooLarge):
            raise Problem(413, f"the file is larger than {limit} bytes", max_bytes=limit) from None
        if isinstance(exc, MultipartError):
            raise Problem(422, str(exc)) from None
        raise
    return await to_read(doc, principal.id, projection)


@router.get("", response_model=DocumentPage, summary="My documents, or documents shared with me")
async def list_documents(principal: CurrentReader, store: StoreDep, projection: ProjectionDep, page: PageParams,
                         scope: Literal["mine", "shared"] = "mine",
                         patient_id: Annotated[Id | None, Query()] = None,
                         label: Annotated[str | None, Query(max_length=100)] = None) -> DocumentPage:
    if scope == "mine":
        docs = await store.list_mine(principal.id, patient_id=patient_id, label=label, page=page)
    else:
        if label is not None:
            # Labels are the owner's own filing; a recipient neither sees nor filters by them.
            raise Problem(422, "label filters apply to scope=mine only")
        keys = reader_keys(principal.id, principal.kind, await projection.roles_of(principal.id))
        docs = await store.list_shared(keys, patient_id=patient_id, page=page)
    items, cursor = page.page(docs)
    if scope == "shared":  # an expired share, or a recipient off the owner's sharing list, gives nothing
        items = await readable(projection=projection, docs=items, account_id=principal.id, kind=principal.kind,
                               now=now_ms())
    return DocumentPage(items=[await to_read(d, principal.id, projection) for d in items], next_cursor=cursor)


@router.get("/{document_id}", response_model=DocumentRead, summary="A document I own or that is shared with me")
async def get_document(access: ReadableDocument, principal: CurrentPrincipal,
                       projection: ProjectionDep) -> DocumentRead:
    return await to_read(access.item, principal.id, projection)


@router.get("/{document_id}/access", response_model=AccessList,
            summary="Who can read this document now, and through which shares (its owner only)")
async def document_access(doc: OwnDocument, projection: ProjectionDep) -> AccessList:
    return await access_list(await readers(projection=projection, doc=doc, now=now_ms()), projection)


def _attachment(filename: str) -> str:
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._- ") else "_" for c in filename) or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/{document_id}/content", summary="The document's content, streamed",
            response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
async def document_content(access: ReadableDocument, principal: CurrentPrincipal,
                           store: StoreDep) -> StreamingResponse:
    doc = access.item
    if not access.own:
        # the download is accounted for (audit) in the same write as its access-log entry
        await store.record_access(doc=doc, accessor_id=principal.id, accessor_kind=principal.kind,
                                  grant_ids=[g.grant_id for g in access.grounds])
    headers = {
        "content-type": doc["content_type"],  # exactly as stored (no charset added)
        "content-length": str(doc["size"]),
        "content-disposition": _attachment(doc["filename"]),
        "x-content-type-options": "nosniff",
        "cache-control": "private, no-store",
    }
    return StreamingResponse(store.content(doc["file_id"]), headers=headers)


@router.delete("/{document_id}", status_code=204, summary="Delete my document (its content and its shares)")
async def delete_document(document_id: PathId, principal: CurrentPrincipal, store: StoreDep,
                          projection: ProjectionDep) -> Response:
    for _ in range(5):
        doc: dict[str, Any] | None = await store.get(document_id)
        if doc is None:
            raise not_found("document")
        is_owner = doc["owner_id"] == principal.id and principal.kind != "patient"
        reads = is_owner or bool(await read_grounds(projection=projection, doc=doc, account_id=principal.id,
                                                    kind=principal.kind, now=now_ms()))
        decision = "allowed" if is_owner else "forbidden" if reads else "not_found"
        if decision == "not_found":
            raise not_found("document")
        if decision == "forbidden":
            raise Problem(403, "only the document's owner can delete it")
        events = share_events(document_id=doc["_id"], owner_id=doc["owner_id"],
                              workspace_patient_id=doc.get("patient_id"), added=ShareState(),
                              removed=shares_state(doc)) + [document_events.deleted(doc, deleted_by=principal.id)]
        if await store.soft_delete(doc, events):
            # The metadata and the unshare are committed; only then does the content go.
            await store.delete_content(doc["file_id"])
            return Response(status_code=204)
    raise Problem(409, "the document is being changed; try again")
