"""Documents: upload (streamed into GridFS), list (mine / shared with me), read, download, delete."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from clinishare_shared.access import AccessList, access_list
from clinishare_shared.auth import CurrentPractitioner, CurrentPrincipal
from clinishare_shared.deps import AuthorizationHeader, DirectoryDep, ProjectionDep
from clinishare_shared.gridfs import TooLarge
from clinishare_shared.ids import Id, PathId
from clinishare_shared.mongo import now_ms
from clinishare_shared.pagination import PageParams
from clinishare_shared.problems import Problem

from clinishare_documents import service
from clinishare_documents.api.deps import CurrentReader, OwnDocument, ReadableDocument, SettingsDep, StoreDep
from clinishare_documents.api.multipart import MultipartError, StreamingForm, boundary_of
from clinishare_documents.domain.schemas import DocumentPage, DocumentRead

router = APIRouter(prefix="/v1/documents", tags=["documents"])

# Room for the multipart framing and the small fields around the file when judging Content-Length.
MULTIPART_OVERHEAD = 16 * 1024
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "patient_id": {"type": "string", "description": "upload to this patient's workspace"}},
}}}}}


@router.post("", status_code=201, response_model=DocumentRead, summary="Upload a document",
             openapi_extra=UPLOAD_BODY, responses={413: {"description": "larger than the configured limit"}})
async def upload_document(request: Request, principal: CurrentPractitioner, store: StoreDep, settings: SettingsDep,
                          projection: ProjectionDep, directory: DirectoryDep,
                          authorization: AuthorizationHeader) -> DocumentRead:
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise Problem(413, f"the file is larger than {limit} bytes", max_bytes=limit)
    try:
        form = StreamingForm(request.stream(), boundary_of(request.headers.get("content-type")))
        doc = await service.upload(store=store, projection=projection, directory=directory, form=form,
                                   owner_id=principal.id, authorization=authorization, max_size=limit)
    except TooLarge:
        raise Problem(413, f"the file is larger than {limit} bytes", max_bytes=limit) from None
    except MultipartError as exc:
        raise Problem(422, str(exc)) from None
    (read,) = await service.present([doc], viewer_id=principal.id, projection=projection)
    return read


@router.get("", response_model=DocumentPage, summary="My documents, or documents shared with me")
async def list_documents(principal: CurrentReader, store: StoreDep, projection: ProjectionDep, page: PageParams,
                         scope: Literal["mine", "shared"] = "mine",
                         patient_id: Annotated[Id | None, Query()] = None,
                         label: Annotated[str | None, Query(max_length=100)] = None) -> DocumentPage:
    docs, cursor = await service.list_documents(store=store, projection=projection, account_id=principal.id,
                                                kind=principal.kind, scope=scope, patient_id=patient_id,
                                                label=label, page=page)
    return DocumentPage(items=await service.present(docs, viewer_id=principal.id, projection=projection),
                        next_cursor=cursor)


@router.get("/{document_id}", response_model=DocumentRead, summary="A document I own or that is shared with me")
async def get_document(access: ReadableDocument, principal: CurrentPrincipal,
                       projection: ProjectionDep) -> DocumentRead:
    (read,) = await service.present([access.item], viewer_id=principal.id, projection=projection)
    return read


@router.get("/{document_id}/access", response_model=AccessList,
            summary="Who can read this document now, and through which shares (its owner only)")
async def document_access(doc: OwnDocument, projection: ProjectionDep) -> AccessList:
    return await access_list(await service.readers(projection=projection, doc=doc, now=now_ms()), projection)



def _attachment(filename: str) -> str:
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._- ") else "_" for c in filename) or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/{document_id}/content", summary="The document's content, streamed",
            response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
async def document_content(access: ReadableDocument, principal: CurrentPrincipal,
                           store: StoreDep) -> StreamingResponse:
    doc = access.item
    await service.record_download(store=store, access=access, accessor_id=principal.id,
                                  accessor_kind=principal.kind)
    headers = {
        "content-type": doc.content_type,  # exactly as stored (no charset added)
        "content-length": str(doc.size),
        "content-disposition": _attachment(doc.filename),
        "x-content-type-options": "nosniff",
        "cache-control": "private, no-store",
    }
    return StreamingResponse(store.content(doc.file_id), headers=headers)


@router.delete("/{document_id}", status_code=204, summary="Delete my document (its content and its shares)")
async def delete_document(document_id: PathId, principal: CurrentPrincipal, store: StoreDep,
                          projection: ProjectionDep) -> Response:
    await service.delete(store=store, projection=projection, document_id=document_id, account_id=principal.id,
                         kind=principal.kind)
    return Response(status_code=204)
