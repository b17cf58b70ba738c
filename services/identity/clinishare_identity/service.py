"""Identity's use cases, as functions with keyword-only arguments: each loads what it needs, checks the
rules (``domain.access``, ``domain.password_rules``), builds the new document and its event
(``events``) and hands both to the store. Routes only parse, call these and serialise.

Version-checked changes (office membership, care teams) and PIN rotations (a freshly drawn PIN may be
taken between the check and the write) run on ``clinishare_shared.retry.optimistic``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import structlog

from clinishare_shared.auth import TokenSigner
from clinishare_shared.domain.sharing import SharingList, sharing_list
from clinishare_shared.events import Envelope
from clinishare_shared.mongo import new_id
from clinishare_shared.pagination import PageQuery
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.retry import TryAgain, optimistic
from clinishare_shared.throttle import Throttled
from clinishare_identity import events
from clinishare_identity.domain.access import (
    is_member, is_party, member_removal_refusal, own_pin_holder, role_fits, sees_patient,
)
from clinishare_identity.domain.stored import (
    AccountDoc, ConnectionDoc, InviteDoc, OfficeDoc, PatientDoc, Role, StoredDoc, TargetKind,
)
from clinishare_identity.domain.models import normalise_email
from clinishare_identity.domain.password_rules import password_refusal
from clinishare_identity.domain.pins import generate_pin, normalise_pin
from clinishare_identity.passwords import Passwords
from clinishare_identity.store import (
    ACCOUNTS, CONNECTIONS, EVENT_COLLECTIONS, OFFICES, PATIENTS, DuplicateKeyError, IdentityStore,
)

log = structlog.get_logger("clinishare.identity.service")

CANNOT_ADD = "no account with this e-mail address can be added in this role"
PIN_ATTEMPTS = 3  # fresh PINs drawn for one rotation before giving up (a clash is all but impossible)


# ---- PINs and the sharing list --------------------------------------------------------------------

async def fresh_pin(*, store: IdentityStore, attempts: int = 5) -> str:
    """A PIN no account or office holds. At 50 bits a clash is all but impossible; the unique indexes
    still catch a race between this check and the write."""
    for _ in range(attempts):
        pin = generate_pin()
        if not await store.pin_taken(pin):
            return pin
    raise RuntimeError("could not find a free PIN")  # pragma: no cover - would mean a broken RNG


async def _rotate(write_with: Callable[[str], Awaitable[None]], *, store: IdentityStore) -> str:
    """Draw PINs until ``write_with(pin)`` lands one nobody took meanwhile; 503 if none did."""
    async def step() -> str:
        pin = await fresh_pin(store=store)
        try:
            # one $set: the old PIN stops matching in the same write that makes the new one match
            await write_with(pin)
        except DuplicateKeyError:
            raise TryAgain from None
        return pin

    return await optimistic(step, attempts=PIN_ATTEMPTS, exhausted=Problem(503, "could not rotate the PIN; try again"))


async def rotate_account_pin(*, store: IdentityStore, account_id: str) -> str:
    """A practitioner's new Share PIN (stored form), announced without the PIN."""
    async def write(pin: str) -> None:
        await store.set_account_pin(account_id, pin, events.share_pin_rotated("practitioner", account_id,
                                                                             rotated_by=account_id))

    pin = await _rotate(write, store=store)
    log.info("share_pin_rotated", holder_kind="practitioner", holder_id=account_id)
    return pin


async def rotate_office_pin(*, store: IdentityStore, office: OfficeDoc, rotated_by: str) -> str:
    async def write(pin: str) -> None:
        await store.set_office_pin(office["_id"], pin, events.share_pin_rotated("office", office["_id"],
                                                                               rotated_by=rotated_by))

    pin = await _rotate(write, store=store)
    log.info("share_pin_rotated", holder_kind="office", holder_id=office["_id"], by=rotated_by)
    return pin


async def sharing_list_of(*, store: IdentityStore, account_id: str) -> SharingList:
    offices, connections, practitioners = await store.sharing_inputs(account_id)
    return sharing_list(account_id, my_offices=offices, connections=connections, practitioner_ids=practitioners)


async def names_of(*, store: IdentityStore, account_ids: Iterable[str] = (),
                   office_ids: Iterable[str] = ()) -> dict[str, str]:
    """Account and office names by id (ids are unique across both)."""
    account_ids, office_ids = list(account_ids), list(office_ids)
    accounts = await store.accounts_by_id(account_ids) if account_ids else {}
    offices = await store.offices_by_id(office_ids) if office_ids else {}
    return {**{i: a["name"] for i, a in accounts.items()}, **{i: o["name"] for i, o in offices.items()}}


async def member_accounts(*, store: IdentityStore, office: OfficeDoc) -> dict[str, AccountDoc]:
    """The accounts of an office's members (what its members are shown with)."""
    return await store.accounts_by_id(m["account_id"] for m in office["members"])


async def with_portal_account(*, store: IdentityStore, patients: list[PatientDoc]) -> set[str]:
    """Which of these patients have a portal account."""
    return await store.portal_account_ids(p["_id"] for p in patients)


# ---- accounts -------------------------------------------------------------------------------------

def check_password(password: str, email: str) -> None:
    refused = password_refusal(password, email)
    if refused is not None:
        raise Problem(422, refused.detail, rule=refused.rule)


async def register_account(*, store: IdentityStore, passwords: Passwords, email: str, name: str,
                           kind: Role, password: str) -> AccountDoc:
    check_password(password, email)
    email_norm = normalise_email(email)
    if await store.account_by_email(email_norm) is not None:
        raise Problem(409, "an account with this e-mail already exists")
    account = AccountDoc(_id=new_id(), email=email, email_norm=email_norm, name=name, kind=kind,
                         password_hash=await passwords.hash(password), created_at=store.now())
    if kind == "practitioner":
        account["share_pin"] = await fresh_pin(store=store)
    try:
        await store.insert_account(account, events.account_registered(account))
    except DuplicateKeyError:
        raise Problem(409, "an account with this e-mail already exists") from None
    log.info("account_registered", account_id=account["_id"], kind=kind)
    return account


async def log_in(*, store: IdentityStore, passwords: Passwords, signer: TokenSigner, email: str,
                 password: str) -> str:
    """An access token, or 401 (wrong e-mail or password, told apart by nothing) or 429 (throttled)."""
    email_norm = normalise_email(email)
    try:
        # keyed by the e-mail as typed, before looking it up: an unknown address is throttled the same way
        attempt = await store.login_throttle.begin(email_norm)
    except Throttled as exc:
        log.warning("login_throttled")
        raise exc.problem("too many failed log-ins for this e-mail; try again later") from None
    account = await store.account_by_email(email_norm)
    # an unknown e-mail is checked against a dummy hash: as slow as a wrong password
    if not await passwords.verify(account["password_hash"] if account else None, password) or account is None:
        log.info("login_failed", account_id=account["_id"] if account else None)
        raise Problem(401, "wrong e-mail or password", headers={"WWW-Authenticate": "Bearer"})
    await attempt.succeeded()
    return signer.issue(account["_id"], account["kind"])


# ---- offices --------------------------------------------------------------------------------------

async def create_office(*, store: IdentityStore, owner_id: str, name: str) -> OfficeDoc:
    office = OfficeDoc(_id=new_id(), name=name, owner_id=owner_id, share_pin=await fresh_pin(store=store),
                       members=[{"account_id": owner_id, "role": "practitioner"}], version=1,
                       created_at=store.now())
    await store.insert_office(office, events.office_created(office))
    log.info("office_created", office_id=office["_id"], owner_id=owner_id)
    return office


async def add_member(*, store: IdentityStore, office: OfficeDoc, email: str, role: Role) -> OfficeDoc:
    account = await store.account_by_email(normalise_email(email))
    if account is None or not role_fits(account["kind"], role):
        # one answer for both: telling them apart would tell any practitioner which e-mails are patients'
        raise Problem(422, CANNOT_ADD)
    added = account["_id"]
    read = office

    async def step() -> OfficeDoc:
        nonlocal read
        if is_member(read, added):
            raise Problem(409, "this account is already a member")
        written = OfficeDoc(**{**read, "members": [*read["members"], {"account_id": added, "role": role}],
                               "version": read["version"] + 1})
        if not await store.replace_members(read, written, events.office_member_added(written, added)):
            read = await store.office(read["_id"]) or read
            raise TryAgain
        return written

    written = await optimistic(step, exhausted=Problem(409, "the office changed at the same time; try again"))
    log.info("office_member_added", office_id=office["_id"], account_id=added, role=role)
    return written


async def remove_member(*, store: IdentityStore, office: OfficeDoc, actor_id: str, account_id: str) -> None:
    refused = member_removal_refusal(office, actor_id=actor_id, account_id=account_id)
    if refused is not None:
        raise Problem(*refused)
    read = office

    async def step() -> None:
        nonlocal read
        if not is_member(read, account_id):
            raise Problem(404, "not a member of this office")
        written = OfficeDoc(**{**read, "members": [m for m in read["members"] if m["account_id"] != account_id],
                               "version": read["version"] + 1})
        if not await store.replace_members(read, written, events.office_member_removed(written, account_id)):
            read = await store.office(read["_id"]) or read
            raise TryAgain

    await optimistic(step, exhausted=Problem(409, "the office changed at the same time; try again"))
    log.info("office_member_removed", office_id=office["_id"], account_id=account_id, by=actor_id)


# ---- connections ----------------------------------------------------------------------------------

async def connect(*, store: IdentityStore, me: str, raw_pin: str) -> ConnectionDoc:
    """Connect to the holder of a Share PIN. Every look-up is throttled (counted before the PIN is checked)
    and logged without the PIN."""
    try:
        attempt = await store.pin_throttle.begin(me)
    except Throttled as exc:
        log.warning("pin_lookup", account_id=me, outcome="throttled")
        raise exc.problem("too many failed PIN look-ups; try again later") from None
    pin = normalise_pin(raw_pin)
    if pin is None:
        # cannot match any PIN, so it is not a guess worth counting: just bad input
        await attempt.discard()
        log.info("pin_lookup", account_id=me, outcome="malformed")
        raise Problem(422, "a Share PIN is 10 letters and digits, like 7QK4-M2XD-9T")
    target_kind: TargetKind
    practitioner = await store.practitioner_by_pin(pin)
    if practitioner is not None:
        target_kind, target_id, target_owner = "practitioner", practitioner["_id"], None
    elif (office := await store.office_by_pin(pin)) is not None:
        target_kind, target_id, target_owner = "office", office["_id"], office["owner_id"]
    else:
        log.info("pin_lookup", account_id=me, outcome="not_found")
        raise Problem(404, "no practitioner or office has this Share PIN")
    await attempt.succeeded()
    log.info("pin_lookup", account_id=me, outcome="found", target_kind=target_kind, target_id=target_id)
    if own_pin_holder(target_kind, target_id, target_owner, me):
        raise Problem(422, "this is your own Share PIN")
    conn = ConnectionDoc(_id=new_id(), owner_id=me, target_kind=target_kind, target_id=target_id,
                         created_at=store.now(), deleted_at=None,
                         live_key=f"{me}:{target_kind}:{target_id}")  # one live connection per pair
    try:
        await store.insert_connection(conn, events.connection_created(conn))
    except DuplicateKeyError:
        raise Problem(409, "you are already connected to this Share PIN's holder") from None
    log.info("connection_created", connection_id=conn["_id"], owner_id=me, target_kind=target_kind)
    return conn


async def connections_of(*, store: IdentityStore, me: str, page: PageQuery) -> list[ConnectionDoc]:
    """Connections I made, and those made to me or to an office I own (one more than the page, to page)."""
    return await store.list_connections(me, await store.office_ids_owned(me), page)


async def connection_names(*, store: IdentityStore, conns: list[ConnectionDoc]) -> dict[str, str]:
    """The names a connection is shown with: its owner's and its target's."""
    return await names_of(
        store=store, account_ids=[c["owner_id"] for c in conns] + [c["target_id"] for c in conns
                                                                    if c["target_kind"] == "practitioner"],
        office_ids=[c["target_id"] for c in conns if c["target_kind"] == "office"])


async def delete_connection(*, store: IdentityStore, me: str, connection_id: str) -> None:
    """Either side deletes it; for anyone else it does not exist."""
    conn = await store.connection(connection_id)
    target_office = await store.office(conn["target_id"]) \
        if conn is not None and conn["target_kind"] == "office" and conn["owner_id"] != me else None
    if conn is None or not is_party(conn, me, target_office=target_office):
        raise not_found("connection")
    if not await store.delete_connection(conn, deleted_by=me, at=store.now(),
                                         event=events.connection_deleted(conn, me)):
        raise not_found("connection")
    log.info("connection_deleted", connection_id=connection_id, deleted_by=me)


# ---- patients and care teams ----------------------------------------------------------------------

async def visible_patient(*, store: IdentityStore, patient_id: str, viewer_id: str, viewer_kind: str) -> PatientDoc:
    patient = await store.patient(patient_id)
    if patient is None or not sees_patient(patient, viewer_id=viewer_id, viewer_kind=viewer_kind):
        raise not_found("patient")
    return patient


async def register_patient(*, store: IdentityStore, practitioner_id: str, name: str, email: str,
                           date_of_birth: date | None) -> PatientDoc:
    patient = PatientDoc(_id=new_id(), name=name, email=email, email_norm=normalise_email(email),
                         date_of_birth=date_of_birth.isoformat() if date_of_birth else None,
                         care_team=[practitioner_id], version=1, registered_by=practitioner_id,
                         created_at=store.now())
    await store.insert_patient(patient, events.patient_registered(patient))
    log.info("patient_registered", patient_id=patient["_id"], registered_by=practitioner_id)
    return patient


async def add_to_care_team(*, store: IdentityStore, patient: PatientDoc, practitioner_id: str,
                           added_by: str) -> PatientDoc:
    """Only a practitioner on the adder's sharing list joins (else 422 naming them)."""
    if practitioner_id in patient["care_team"]:
        raise Problem(409, "already in the care team")
    refused = (await sharing_list_of(store=store, account_id=added_by)).refused(practitioner_ids=[practitioner_id])
    if refused:
        raise Problem(422, "only practitioners on your sharing list can join the care team", invalid_ids=refused)
    read = patient

    async def step() -> PatientDoc:
        nonlocal read
        if practitioner_id in read["care_team"]:
            raise Problem(409, "already in the care team")
        written = PatientDoc(**{**read, "care_team": [*read["care_team"], practitioner_id],
                                "version": read["version"] + 1})
        event = events.patient_care_team_changed(written, added_by, added=[practitioner_id])
        if not await store.replace_care_team(read, written, event):
            read = await store.patient(read["_id"]) or read
            raise TryAgain
        return written

    written = await optimistic(step, exhausted=Problem(409, "the care team changed at the same time; try again"))
    log.info("care_team_changed", patient_id=patient["_id"], added=practitioner_id, by=added_by)
    return written


async def remove_from_care_team(*, store: IdentityStore, patient: PatientDoc, practitioner_id: str,
                                removed_by: str) -> None:
    """Anyone of the care team removes anyone (themself included); the last member stays (409)."""
    read = patient

    async def step() -> None:
        nonlocal read
        if removed_by not in read["care_team"]:
            raise not_found("patient")  # removed meanwhile: the patient is no longer theirs to see
        if practitioner_id not in read["care_team"]:
            raise not_found("care-team member")
        if read["care_team"] == [practitioner_id]:
            raise Problem(409, "the last member of a care team cannot leave it")
        written = PatientDoc(**{**read, "care_team": [p for p in read["care_team"] if p != practitioner_id],
                                "version": read["version"] + 1})
        event = events.patient_care_team_changed(written, removed_by, removed=[practitioner_id])
        if not await store.replace_care_team(read, written, event):
            read = await store.patient(read["_id"]) or read
            raise TryAgain

    await optimistic(step, exhausted=Problem(409, "the care team changed at the same time; try again"))
    log.info("care_team_changed", patient_id=patient["_id"], removed=practitioner_id, by=removed_by)


# ---- the snapshot other services catch their identity projection up from ---------------------------

def as_event(collection: str, doc: StoredDoc) -> Envelope:
    """The event that states ``doc`` as it is now (what a projection applies)."""
    if collection == ACCOUNTS:
        return events.account_registered(cast(AccountDoc, doc))
    if collection == OFFICES:
        return events.office_created(cast(OfficeDoc, doc))
    if collection == CONNECTIONS:
        conn = cast(ConnectionDoc, doc)
        if conn.get("deleted_at") is not None:
            return events.connection_deleted(conn, conn.get("deleted_by") or conn["owner_id"])
        return events.connection_created(conn)
    assert collection == PATIENTS
    return events.patient_registered(cast(PatientDoc, doc))


async def snapshot(*, store: IdentityStore, collection: str, after: str | None,
                   limit: int) -> tuple[list[Envelope], str | None]:
    """Up to ``limit`` facts from ``collection`` after the id ``after`` on (the collections in
    EVENT_COLLECTIONS order), and the cursor to continue from (None at the end)."""
    index, facts = EVENT_COLLECTIONS.index(collection), []
    while index < len(EVENT_COLLECTIONS) and len(facts) < limit:
        collection = EVENT_COLLECTIONS[index]
        want = limit - len(facts)
        docs = await store.snapshot_docs(collection, after, want)
        facts += [as_event(collection, d) for d in docs]
        if len(docs) == want:
            return facts, f"{collection}:{docs[-1]['_id']}"
        index, after = index + 1, None
    return facts, None


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Invite:
    token: str  # handed out once; only its hash is stored
    doc: InviteDoc


async def invite_to_portal(*, store: IdentityStore, patient: PatientDoc, invited_by: str,
                           ttl_seconds: int) -> Invite:
    """A new portal invite for the patient (replacing, and so revoking, any earlier one)."""
    token = secrets.token_urlsafe(32)  # 256 bits
    now = store.now()
    invite = InviteDoc(token_hash=_hash_token(token), expires_at=now + timedelta(seconds=ttl_seconds),
                       created_by=invited_by, created_at=now)
    await store.set_invite(patient["_id"], invite)
    log.info("portal_invite_created", patient_id=patient["_id"], by=invited_by)
    return Invite(token=token, doc=invite)


async def activate_portal(*, store: IdentityStore, passwords: Passwords, invite_token: str,
                          password: str) -> AccountDoc:
    """Redeem a portal invite: the patient's own account, whose id is the patient's."""
    token_hash = _hash_token(invite_token)
    patient = await store.patient_by_invite(token_hash)
    invalid = Problem(422, "this invite is unknown, expired or already used")
    if patient is None or "invite" not in patient:
        raise invalid
    invite = patient["invite"]
    expires_at = invite["expires_at"]
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=store.now().tzinfo)
    if expires_at <= store.now():
        raise invalid
    check_password(password, patient["email"])
    if await store.account(patient["_id"]) is not None:
        raise Problem(409, "this patient already has a portal account")
    if await store.account_by_email(patient["email_norm"]) is not None:
        raise Problem(409, "another account already uses this patient's e-mail address")
    account = AccountDoc(_id=patient["_id"], email=patient["email"], email_norm=patient["email_norm"],
                         name=patient["name"], kind="patient", password_hash=await passwords.hash(password),
                         created_at=store.now())
    if not await store.consume_invite(patient["_id"], token_hash):
        raise invalid  # redeemed (or replaced) concurrently
    try:
        await store.insert_account(account, events.account_registered(account))
    except DuplicateKeyError:
        await store.restore_invite(patient["_id"], invite)
        raise Problem(409, "this patient already has a portal account") from None
    log.info("portal_account_activated", patient_id=patient["_id"])
    return account
