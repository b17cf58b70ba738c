"""notify's use cases, as functions with keyword-only arguments: what to do with each event it consumes
(``events.consumed`` maps the types to them), and the inbox's own.

Each handler resolves the recipients (pure rules in ``domain.recipients``, with office members read from
the identity projection now, at processing time), writes one notification per recipient with a
deterministic id (a redelivery, even a concurrent one, inserts nothing new), and hands its e-mail to the
e-mail worker of this process (``EmailIntake``), or wakes it for the due queue.

A share that ends (SPEC 10.1):
- ``charts.share.revoked`` / ``charts.share.expired``: the grant's notices are withdrawn (unread ones
  marked read, e-mails not sent yet cancelled: pending ones, and those this process's worker took and has
  not begun to send; one another replica's worker claimed still goes out), so nobody is e-mailed about a
  share that no longer exists;
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

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import structlog

from clinishare_shared.events import (
    AccountRegistered, ChartNoteAdded, ChartShareExpired, ChartShareGranted, ChartShareRevoked, ConnectionCreated,
    DocumentShared, DocumentShareExpired, DocumentUnshared, Envelope, EventData, FormAssigned, FormShared,
    FormSubmitted,
)
from clinishare_shared.mongo import new_id
from clinishare_shared.projection import IdentityProjection

from clinishare_notify.domain import delivery, messages
from clinishare_notify.domain.stored import EmailState, NotificationDoc, notification_id
from clinishare_notify.domain.recipients import ENDED, Office, Recipient, offices_needed, recipients
from clinishare_notify.settings import NotifySettings
from clinishare_notify.store import Held, NotifyStore, now

log = structlog.get_logger("clinishare.notify.service")

NOTIFYING = (ChartShareGranted, DocumentShared, FormShared, FormAssigned, FormSubmitted, ChartNoteAdded,
             ConnectionCreated)
GRANT_ENDED = (ChartShareRevoked, ChartShareExpired)
DOCUMENT_SHARE_ENDED = (DocumentUnshared, DocumentShareExpired)


def _ref(data: EventData) -> dict[str, str]:
    """Ids that tie a notice to what it is about, for later events (a revoked grant). A notice that a share
    ENDED is keyed apart (``ended_*``), so a redelivered withdrawal never withdraws that notice itself."""
    keys = ("grant_id", "chart_id", "document_id", "form_id", "assignment_id", "submission_id", "connection_id")
    prefix = "ended_" if isinstance(data, ENDED) else ""
    fields = type(data).model_fields  # (a missing attribute is a slow path of pydantic's __getattr__)
    return {prefix + k: v for k in keys if k in fields and isinstance(v := getattr(data, k), str)}


def _doc_key(document_id: str, recipient_or_office_id: str) -> str:
    return f"document:{document_id}:{recipient_or_office_id}"


def new_notification(event: Envelope, data: EventData, recipient: Recipient, notice: messages.Notice, *,
                     actor_id: str | None, email_skip_reason: str | None,
                     claimed_until: datetime | None = None) -> NotificationDoc:
    """One recipient's notice of ``event``, with its e-mail due now (or skipped, with the reason), or, with
    ``claimed_until``, already claimed for its first attempt until then (``EmailIntake``)."""
    at = now()
    if email_skip_reason:
        email = EmailState(status="skipped", reason=email_skip_reason, attempts=0)
    elif claimed_until is not None:
        email = EmailState(status="sending", attempts=1, lease_until=claimed_until)
    else:
        email = EmailState(status="pending", attempts=0, next_attempt_at=at)
    return NotificationDoc(
        _id=notification_id(event.id, recipient.account_id), seq=new_id(), event_id=event.id, type=event.type,
        recipient_id=recipient.account_id, recipient_kind=recipient.kind, title=notice.title, item=notice.item,
        link=notice.link, actor_id=actor_id, ref=_ref(data), created_at=at, read=False, read_at=None, email=email)


# account id -> account (those the projection knows), and account id -> whether they want e-mail
People = tuple[dict[str, dict[str, Any]], dict[str, bool]]


class EmailIntake(Protocol):
    """The e-mail worker running beside the consumer (``delivery.EmailWorker``), which takes the e-mail of a
    notice this process just wrote straight from memory: the notice is inserted with its first attempt
    already claimed in the worker's name (nobody else can hold a claim on a document that did not exist),
    so the e-mail costs no read of the due queue, no re-read of the notice or its recipient and no claim.
    If the worker dies first, the claim runs out and any worker sends it from the due queue, as any other."""

    def lease(self) -> datetime | None:
        """Until when a new notice's e-mail is claimed for this worker; None when it sends nothing now."""

    def take(self, notification: NotificationDoc, address: str) -> None:
        """Send the e-mail of ``notification`` (written, claimed by ``lease``) to ``address``."""

    def withdraw(self, notification_ids: list[str]) -> list[str]:
        """Give up the e-mails of these notices that were taken and are not being sent yet (their share was
        withdrawn); which ones."""


def _held(emails: EmailIntake | None) -> Held | None:
    """What a withdrawal asks of the worker beside the consumer: to give up the e-mails it took."""
    return emails.withdraw if emails is not None else None


async def people(store: NotifyStore, projection: IdentityProjection, account_ids: list[str],
                 preference_ids: list[str]) -> People:
    """The accounts of ``account_ids`` the projection knows, and whether each of ``preference_ids`` wants
    e-mail: each set in one read, both at once."""
    accounts, wants = await asyncio.gather(projection.accounts(account_ids), store.wants_emails(preference_ids))
    return accounts, wants


async def _offices(projection: IdentityProjection, office_ids: list[str]) -> dict[str, Office]:
    ids = list(dict.fromkeys(office_ids))
    docs = await asyncio.gather(*(projection.office(office_id) for office_id in ids))
    return {office_id: Office(members={m["account_id"]: m["role"] for m in doc.get("members", [])},
                              owner_id=doc.get("owner_id"))
            for office_id, doc in zip(ids, docs) if doc is not None}


async def _withdrawn(store: NotifyStore, event: Envelope, data: EventData) -> EventData | None:
    """``data`` without what a later withdrawal took back (None: nothing is left to tell)."""
    if isinstance(data, ChartShareGranted):
        return None if await store.withdrawn_since([f"grant:{data.grant_id}"], event.time) else data
    if isinstance(data, DocumentShared):
        keys = {_doc_key(data.document_id, i): i for i in
                [*data.practitioner_ids, *data.patient_ids, *(o.office_id for o in data.offices)]}
        gone = {keys[k] for k in await store.withdrawn_since(list(keys), event.time)}
        if not gone:
            return data
        return data.model_copy(update={
            "practitioner_ids": [i for i in data.practitioner_ids if i not in gone],
            "patient_ids": [i for i in data.patient_ids if i not in gone],
            "offices": [o for o in data.offices if o.office_id not in gone]})
    return data


async def reopen_if_address_known(*, store: NotifyStore, projection: IdentityProjection, account_id: str) -> int:
    """Make e-mails skipped for want of an address due again if the identity projection now has one
    (closes the race with a replica that processed the account event meanwhile)."""
    account = await projection.account(account_id) or {}
    if account.get("email") and account.get("kind") != "patient":
        return await store.reopen_no_address(account_id)
    return 0


async def reopen_all_known(*, store: NotifyStore, projection: IdentityProjection) -> int:
    """After the projection caught up: every e-mail skipped for want of an address whose recipient's
    address is known now becomes due."""
    return sum([await reopen_if_address_known(store=store, projection=projection, account_id=r)
                for r in await store.no_address_recipients()])


async def notify(event: Envelope, *, store: NotifyStore, projection: IdentityProjection, settings: NotifySettings,
                 on_created: Callable[[], None], only: set[str] | None = None,
                 emails: EmailIntake | None = None) -> None:
    """One notice per recipient of ``event``. ``only``: tell no one else (an ended share is told to those
    who were told it began). ``emails``: the worker that takes the e-mails of the notices written here."""
    # the reads a notice depends on, all at once (each by _id): whether it was withdrawn, the offices it
    # names, who acted (every read is independent; the round trips, not the work, are the cost)
    payload = event.payload()
    actor_id = messages.actor_of(payload)
    needed = offices_needed(payload)
    # When the event names no office, whom it tells is known from the event alone: their accounts and
    # e-mail preferences are read in that same first round (office members only once the offices are in).
    early = [] if needed else list(dict.fromkeys(r.account_id for r in recipients(payload, {})))
    data, offices, (accounts, wants) = await asyncio.gather(
        _withdrawn(store, event, payload), _offices(projection, needed),
        people(store, projection, [actor_id, *early] if actor_id else early, early))
    if data is None:
        log.info("notifications_already_withdrawn")
        return
    targets = recipients(data, offices)
    if only is not None:
        targets = [r for r in targets if r.account_id in only]
    if later := list(dict.fromkeys(r.account_id for r in targets if r.account_id not in wants)):
        more_accounts, more_wants = await people(store, projection, later, later)
        accounts, wants = accounts | more_accounts, wants | more_wants
    actor = accounts.get(actor_id) if actor_id else None
    # a new grant's notices start its notice lookup (inserted, not appended to)
    new_refs = isinstance(data, ChartShareGranted)

    async def tell(r: Recipient) -> bool:
        notice = messages.notice(data, r, actor.get("name") if actor else None)
        address = (accounts.get(r.account_id) or {}).get("email")
        skip = delivery.skip_reason(smtp_enabled=settings.email_enabled, wants_email=wants[r.account_id],
                                    address=address, kind=r.kind)
        # an e-mail to send (so an address) goes to this process's worker, claimed for it as it is written
        intake = emails if skip is None and address else None
        claimed_until = intake.lease() if intake is not None else None
        doc = new_notification(event, data, r, notice, actor_id=actor_id, email_skip_reason=skip,
                               claimed_until=claimed_until)
        if not await store.insert(doc, new_refs=new_refs):
            return False
        if intake is not None and claimed_until is not None:
            intake.take(doc, address)
        if skip:  # with SMTP off this log line is the whole "e-mail" (ids only, never an address)
            log.info("email_skipped", notification_id=notification_id(event.id, r.account_id), reason=skip)
        if skip == "no_address":
            # the address may have arrived while we decided (another replica processed the
            # account event between our read and our insert): look again, after the insert
            await reopen_if_address_known(store=store, projection=projection, account_id=r.account_id)
        return True

    created = sum(await asyncio.gather(*(tell(r) for r in targets)))  # recipients are independent
    log.info("notifications_created", recipients=len(targets), created=created)
    if created and (again := await _withdrawn(store, event, data)) != data:
        # a withdrawal processed meanwhile (another replica) left its tombstone after our check
        if isinstance(data, ChartShareGranted):
            await store.withdraw_grant(data.grant_id, _held(emails))
        elif isinstance(data, DocumentShared) and isinstance(again, DocumentShared):
            # the unshare overtook nothing here: it ran between our check and our insert, so the
            # notices it would have prevented are taken back
            removed = data.model_copy(update={
                "practitioner_ids": [i for i in data.practitioner_ids if i not in again.practitioner_ids],
                "patient_ids": [i for i in data.patient_ids if i not in again.patient_ids],
                "offices": [o for o in data.offices if o not in again.offices]})
            targets = recipients(removed, await _offices(projection, offices_needed(removed)))
            await store.withdraw_document(data.document_id, [r.account_id for r in targets], event_id=event.id,
                                          held=_held(emails))
    if created:
        on_created()


async def grant_ended(event: Envelope, *, store: NotifyStore, projection: IdentityProjection,
                      settings: NotifySettings, on_created: Callable[[], None],
                      emails: EmailIntake | None = None) -> None:
    data = event.payload()
    assert isinstance(data, GRANT_ENDED)
    await store.tombstone([f"grant:{data.grant_id}"], event.time)
    withdrawn = await store.withdraw_grant(data.grant_id, _held(emails))
    log.info("notifications_withdrawn", count=withdrawn)
    # those who were told of the grant hear it ended (and, for an expiry, the sharer)
    told = await store.told_about(grant_id=data.grant_id)
    await notify(event, store=store, projection=projection, settings=settings, on_created=on_created,
                 only=told | ({data.owner_id} if isinstance(data, ChartShareExpired) else set()), emails=emails)


async def document_share_ended(event: Envelope, *, store: NotifyStore, projection: IdentityProjection,
                               settings: NotifySettings, on_created: Callable[[], None],
                               emails: EmailIntake | None = None) -> None:
    data = event.payload()
    assert isinstance(data, DOCUMENT_SHARE_ENDED)
    ids = [*data.practitioner_ids, *data.patient_ids, *(o.office_id for o in data.offices)]
    await store.tombstone([_doc_key(data.document_id, i) for i in ids], event.time)
    log.info("document_share_withdrawal_recorded", recipients=len(ids))
    told = await store.told_about(document_id=data.document_id)
    await notify(event, store=store, projection=projection, settings=settings, on_created=on_created,
                 only=told | ({data.owner_id} if isinstance(data, DocumentShareExpired) else set()), emails=emails)


async def account_registered(event: Envelope, *, store: NotifyStore, on_created: Callable[[], None]) -> None:
    """The address may have arrived after notices were decided without it: decide again."""
    data = event.payload()
    assert isinstance(data, AccountRegistered)
    if data.email and data.kind != "patient":
        reopened = await store.reopen_no_address(data.account_id)
        if reopened:
            log.info("emails_reopened_address_known", count=reopened)
            on_created()


# ---- the inbox ------------------------------------------------------------------------------------

async def mark_read(*, store: NotifyStore, notification: NotificationDoc) -> NotificationDoc:
    """Idempotent: an already-read notification keeps its first ``read_at``."""
    return await store.mark_read(notification["_id"], notification["recipient_id"]) or notification


async def set_email_preference(*, store: NotifyStore, account_id: str, email: bool) -> bool:
    """Whether the account wants e-mail now."""
    await store.set_email_preference(account_id, email)
    return await store.wants_email(account_id)
