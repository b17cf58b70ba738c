"""Dependencies of the documents API: the store, the settings, and "load it or 404"."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from clinishare_shared.auth import CurrentPrincipal, Principal, require_kind
from clinishare_shared.deps import ProjectionDep, from_state
from clinishare_shared.domain.access import Readable
from clinishare_shared.ids import PathId

from clinishare_documents import service
from clinishare_documents.domain.stored import Document
from clinishare_documents.settings import DocumentsSettings
from clinishare_documents.store import DocumentStore


StoreDep = Annotated[DocumentStore, from_state("store")]
SettingsDep = Annotated[DocumentsSettings, from_state("settings")]
CurrentReader = Annotated[Principal, require_kind("practitioner", "staff")]


async def _readable(document_id: PathId, principal: CurrentPrincipal, store: StoreDep,
                    projection: ProjectionDep) -> Readable[Document]:
    return await service.load_readable(store=store, projection=projection, document_id=document_id,
                                       account_id=principal.id, kind=principal.kind)


ReadableDocument = Annotated[Readable[Document], Depends(_readable)]


async def _own_document(document_id: PathId, principal: CurrentPrincipal, store: StoreDep) -> Document:
    return await service.load_own(store=store, document_id=document_id, account_id=principal.id,
                                  kind=principal.kind)


OwnDocument = Annotated[Document, Depends(_own_document)]
