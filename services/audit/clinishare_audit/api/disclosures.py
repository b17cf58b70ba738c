"""The accounting of disclosures: a patient's care team reads it (``/v1/patients/{id}/disclosures``), the
patient reads their own (``/v1/portal/disclosures``); newest first, paginated, with names; CSV; and the
hash chain's verification. Anyone else, a patient asking about another patient included, gets 404."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from clinishare_audit.domain.schemas import DisclosurePage, DisclosureRead, VerifyRead
from clinishare_audit.api.deps import OwnPatient, StoreDep, VisiblePatient
from clinishare_audit.domain.stored import DisclosureDoc
from clinishare_audit.service import chains_of, names_in, verify_patient
from clinishare_audit.store import AuditStore
from clinishare_shared.deps import ProjectionDep
from clinishare_shared.pagination import PageParams, PageQuery
from clinishare_shared.projection import IdentityProjection

router = APIRouter(tags=["disclosures"])
Since = Annotated[datetime | None, Query(alias="from", description="RFC 3339: entries at or after")]
Until = Annotated[datetime | None, Query(alias="to", description="RFC 3339: entries at or before")]


async def _reads(docs: list[DisclosureDoc], patient_id: str, projection: IdentityProjection) -> list[DisclosureRead]:
    names = await names_in(entries=docs, projection=projection)
    return [DisclosureRead.from_doc(d, patient_id=patient_id, people=names.people, offices=names.offices)
            for d in docs]


async def _page(patient_id: str, store: AuditStore, projection: IdentityProjection, page: PageQuery,
                since: datetime | None, until: datetime | None) -> DisclosurePage:
    chains = await chains_of(patient_id=patient_id, projection=projection)
    items, cursor = page.page(await store.page(chains, since=since, until=until, page=page))
    return DisclosurePage(items=await _reads(items, patient_id, projection), next_cursor=cursor)


CSV_COLUMNS = ["at", "action", "item_type", "item_id", "rule", "grant_id", "discloser_id", "discloser_name",
               "recipients", "accessor_id", "accessor_kind", "accessor_name", "grant_ids", "consent_attested_by",
               "consent_attested_at", "expires_at", "seq", "hash", "prev_hash"]


def _cell(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else "" if value is None else str(value)
    # a spreadsheet must not run a cell as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([_cell(v) for v in values])
    return buf.getvalue()


async def _csv(patient_id: str, store: AuditStore, projection: IdentityProjection, since: datetime | None,
               until: datetime | None) -> StreamingResponse:
    chains = await chains_of(patient_id=patient_id, projection=projection)

    async def body() -> AsyncIterator[str]:
        yield _csv_line(CSV_COLUMNS)
        batch: list[DisclosureDoc] = []
        async for doc in store.all(chains, since=since, until=until):
            batch.append(doc)
            if len(batch) == 100:
                for row in await _reads(batch, patient_id, projection):
                    yield _row(row)
                batch = []
        for row in await _reads(batch, patient_id, projection):
            yield _row(row)

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="disclosures.csv"'})


def _row(r: DisclosureRead) -> str:
    recipients = ";".join(f"{x.kind}:{x.id}" + (f":{x.audience}" if x.audience else "") + (f" ({x.name})" if x.name else "")
                          for x in r.recipients)
    values = {**r.model_dump(), "recipients": recipients, "grant_ids": ";".join(r.grant_ids)}
    return _csv_line([values[c] for c in CSV_COLUMNS])


@router.get("/v1/patients/{patient_id}/disclosures", response_model=DisclosurePage,
            summary="The accounting of disclosures of a patient in my care, newest first")
async def patient_disclosures(patient_id: VisiblePatient, store: StoreDep, projection: ProjectionDep,
                              page: PageParams, since: Since = None, until: Until = None) -> DisclosurePage:
    return await _page(patient_id, store, projection, page, since, until)


@router.get("/v1/patients/{patient_id}/disclosures.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}}, summary="The same, as CSV")
async def patient_disclosures_csv(patient_id: VisiblePatient, store: StoreDep, projection: ProjectionDep,
                                  since: Since = None, until: Until = None) -> StreamingResponse:
    return await _csv(patient_id, store, projection, since, until)


@router.get("/v1/patients/{patient_id}/disclosures/verify", response_model=VerifyRead,
            summary="Check the hash chains of a patient's disclosures")
async def verify_disclosures(patient_id: VisiblePatient, store: StoreDep, projection: ProjectionDep) -> VerifyRead:
    ok, entries, first_bad = await verify_patient(patient_id=patient_id, store=store, projection=projection)
    return VerifyRead(ok=ok, entries=entries, first_bad=first_bad)


@router.get("/v1/portal/disclosures", response_model=DisclosurePage, tags=["portal"],
            summary="Who saw my data: my accounting of disclosures, newest first (patient)")
async def portal_disclosures(patient_id: OwnPatient, store: StoreDep, projection: ProjectionDep, page: PageParams,
                             since: Since = None, until: Until = None) -> DisclosurePage:
    return await _page(patient_id, store, projection, page, since, until)


@router.get("/v1/portal/disclosures.csv", response_class=StreamingResponse, tags=["portal"],
            responses={200: {"content": {"text/csv": {}}}}, summary="My accounting of disclosures, as CSV")
async def portal_disclosures_csv(patient_id: OwnPatient, store: StoreDep, projection: ProjectionDep,
                                 since: Since = None, until: Until = None) -> StreamingResponse:
    return await _csv(patient_id, store, projection, since, until)
