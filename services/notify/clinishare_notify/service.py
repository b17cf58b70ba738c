"""notify's use cases: what to do with each event it consumes (``events.consumed`` maps the types).

Each handler resolves the recipients (pure rules in ``domain.recipients``, with office members read from
the identity projection now, at processing time), writes one notification per recipient with a
deterministic id (a redelivery, even a concurrent one, inserts nothing new), and wakes the e-mail worker.

A share that ends (SPEC 10.1):
- ``charts.share.revoked`` / ``charts.share.expired``: the grant's notices are withdrawn (unread ones
  marked read, pending e-mails cancelled), so nobody is e-mailed about a share that no longer exists;
  then the recipients who were told of the grant are told it ended, and for an expiry the sharer too.
- ``documents.unshared`` / ``documents.share.expired``: existing notices stay as they are (a recipient
  may keep access through an office the document is still shared with, which notify cannot know), but a
  tombstone is left, as below; the recipients who were told of the share (and for an expiry the sharer)
  are told it ended.

Order-safe: every withdrawal also leaves a tombstone (what was withdrawn, and the withdrawing event's
time). A grant or share that arrives AFTER its own revoke or unshare (redelivery, another replica, a
consumer that was down) finds the tombstone and notifies nobody it names; a share made after the
withdrawal (a later event time) is not affected. The tombstone is checked again after the insert, so a
revoke processed concurrently by another replica cannot slip between the check and the insert.

An e-mail skipped because the recipient's address was not known yet (the identity event had not reached
this service) is re-evaluated when the address arrives (``identity.account.registered``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from clinishare_shared.bus.base import Handler
from clinishare_shared.events import (
    AccountRegistered, ChartNoteAdded, ChartShareExpired, ChartShareGranted, ChartShareRevoked, ConnectionCreated,
    DocumentShared, DocumentShareExpired, DocumentUnshared, Envelope, EventData, FormAssigned, FormShared,
    FormSubmitted,
)
from clinishare_shared.projection import IdentityProjection

from clinishare_notify.domain import delivery, messages
from clinishare_notify.domain.recipients import ENDED, Office, offices_needed, recipients
from clinishare_notify.settings import NotifySettings
from clinishare_notify.store import NotifyStore

log = structlog.get_logger("clinishare.notify.service")

NOTIFYING = (ChartShareGranted, DocumentShared, FormShared, FormAssigned, FormSubmitted, ChartNoteAdded,
             ConnectionCreated)


def _ref(data: EventData) -> dict[str, str]:
    """Ids that tie a notice to what it is about, for later events (a revoked grant). A notice that a share
    ENDED is keyed apart (``ended_*``), so a redelivered withdrawal never withdraws that notice itself."""
    keys = ("grant_id", "chart_id", "document_id", "form_id", "assignment_id", "submission_id", "connection_id")
    prefix = "ended_" if isinstance(data, ENDED) else ""
    return {prefix + k: v for k in keys if isinstance(v := getattr(data, k, None), str)}


class NotifyHandlers:
    def __init__(self, *, store: NotifyStore, projection: IdentityProjection, settings: NotifySettings,
                 on_created: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.projection = projection
        self.settings = settings
        self.on_created = on_created

    @property
    def handlers(self) -> dict[str, Handler]:
        own: dict[str, Handler] = {m.event_type: self._notify for m in NOTIFYING}
        own[ChartShareRevoked.event_type] = self._on_grant_revoked
        own[ChartShareExpired.event_type] = self._on_grant_revoked
        own[DocumentUnshared.event_type] = self._on_document_unshared
        own[DocumentShareExpired.event_type] = self._on_document_unshared
        own[AccountRegistered.event_type] = self._on_account
        return own

    async def _offices(self, office_ids: list[str]) -> dict[str, Office]:
        out: dict[str, Office] = {}
        for office_id in dict.fromkeys(office_ids):
            doc: dict[str, Any] | None = await self.projection.office(office_id)
            if doc is not None:
                out[office_id] = Office(members={m["account_id"]: m["role"] for m in doc.get("members", [])},
                                        owner_id=doc.get("owner_id"))
        return out

    async def _withdrawn(self, event: Envelope, data: EventData) -> EventData | None:
        """``data`` without what a later withdrawal took back (None: nothing is left to tell)."""
        if isinstance(data, ChartShareGranted):
            return None if await self.store.withdrawn_since([f"grant:{data.grant_id}"], event.time) else data
        if isinstance(data, DocumentShared):
            keys = {_doc_key(data.document_id, i): i for i in
                    [*data.practitioner_ids, *data.patient_ids, *(o.office_id for o in data.offices)]}
            gone = {keys[k] for k in await self.store.withdrawn_since(list(keys), event.time)}
            if not gone:
                return data
            return data.model_copy(update={
                "practitioner_ids": [i for i in data.practitioner_ids if i not in gone],
                "patient_ids": [i for i in data.patient_ids if i not in gone],
                "offices": [o for o in data.offices if o.office_id not in gone]})
        return data

    async def _notify(self, event: Envelope, *, only: set[str] | None = None) -> None:
        """``only``: tell no one else (an ended share is told to those who were told it began)."""
        data = await self._withdrawn(event, event.payload())
        if data is None:
            log.info("notifications_already_withdrawn")
            return
        targets = recipients(data, await self._offices(offices_needed(data)))
        if only is not None:
            targets = [r for r in targets if r.account_id in only]
        actor_id = messages.actor_of(data)
        actor = await self.projection.account(actor_id) if actor_id else None
        created = 0
        for r in targets:
            n = messages.notice(data, r, actor.get("name") if actor else None)
            account = await self.projection.account(r.account_id) or {}
            skip = delivery.skip_reason(smtp_enabled=self.settings.email_enabled,
                                        wants_email=await self.store.wants_email(r.account_id),
                                        address=account.get("email"), kind=r.kind)
            if await self.store.insert(event_id=event.id, event_type=event.type, recipient_id=r.account_id,
                                       recipient_kind=r.kind, title=n.title, item=n.item, link=n.link,
                                       actor_id=actor_id, ref=_ref(data), email_skip_reason=skip):
                created += 1
                if skip:  # with SMTP off this log line is the whole "e-mail" (ids only, never an address)
                    log.info("email_skipped", notification_id=f"{event.id}:{r.account_id}", reason=skip)
                if skip == "no_address":
                    # the address may have arrived while we decided (another replica processed the
                    # account event between our read and our insert): look again, after the insert
                    await self.store.reopen_if_address_known(self.projection, r.account_id)
        log.info("notifications_created", recipients=len(targets), created=created)
        if created and (again := await self._withdrawn(event, data)) != data:
            # a withdrawal processed meanwhile (another replica) left its tombstone after our check
            if isinstance(data, ChartShareGranted):
                await self.store.withdraw_grant(data.grant_id)
            elif isinstance(data, DocumentShared) and isinstance(again, DocumentShared):
                # the unshare overtook nothing here: it ran between our check and our insert, so the
                # notices it would have prevented are taken back
                removed = data.model_copy(update={
                    "practitioner_ids": [i for i in data.practitioner_ids if i not in again.practitioner_ids],
                    "patient_ids": [i for i in data.patient_ids if i not in again.patient_ids],
                    "offices": [o for o in data.offices if o not in again.offices]})
                targets = recipients(removed, await self._offices(offices_needed(removed)))
                await self.store.withdraw_document(data.document_id, [r.account_id for r in targets],
                                                   event_id=event.id)
        if created:
            self.on_created()

    async def _on_grant_revoked(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, ChartShareRevoked | ChartShareExpired)
        await self.store.tombstone([f"grant:{data.grant_id}"], event.time)
        withdrawn = await self.store.withdraw_grant(data.grant_id)
        log.info("notifications_withdrawn", count=withdrawn)
        # those who were told of the grant hear it ended (and, for an expiry, the sharer)
        told = await self.store.told_about(grant_id=data.grant_id)
        await self._notify(event, only=told | ({data.owner_id} if isinstance(data, ChartShareExpired) else set()))

    async def _on_document_unshared(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, DocumentUnshared | DocumentShareExpired)
        ids = [*data.practitioner_ids, *data.patient_ids, *(o.office_id for o in data.offices)]
        await self.store.tombstone([_doc_key(data.document_id, i) for i in ids], event.time)
        log.info("document_share_withdrawal_recorded", recipients=len(ids))
        told = await self.store.told_about(document_id=data.document_id)
        await self._notify(event, only=told | ({data.owner_id} if isinstance(data, DocumentShareExpired) else set()))

    async def _on_account(self, event: Envelope) -> None:
        """The address may have arrived after notices were decided without it: decide again."""
        data = event.payload()
        assert isinstance(data, AccountRegistered)
        if data.email and data.kind != "patient":
            reopened = await self.store.reopen_no_address(data.account_id)
            if reopened:
                log.info("emails_reopened_address_known", count=reopened)
                self.on_created()


def _doc_key(document_id: str, recipient_or_office_id: str) -> str:
    return f"document:{document_id}:{recipient_or_office_id}"
