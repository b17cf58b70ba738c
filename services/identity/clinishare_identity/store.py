"""The only module that talks to MongoDB.

Every state change that others must hear about is one single-document write carrying its event (built by
the use case, ``service``) in the document's outbox (``with_events`` / ``push_events``), and tells the
relay which document it staged. Office membership and care teams are arrays on
their aggregate with a ``version``: a change is a version-checked update, so concurrent changes cannot
both win and every event's snapshot is the state that write produced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from clinishare_shared.domain.sharing import ConnectionView, OfficeView
from clinishare_shared.events import Envelope
from clinishare_shared.mongo import find_by_id, insert_new, now_ms
from clinishare_shared.outbox import Kick, NO_OUTBOX, no_kick, push_events, with_events
from clinishare_shared.pagination import PageQuery
from clinishare_shared.throttle import AttemptThrottle
from clinishare_identity.domain.stored import (
    AccountDoc, ConnectionDoc, InviteDoc, Jwk, OfficeDoc, PatientDoc, PublishedKeyDoc, StoredDoc,
)

ACCOUNTS, OFFICES, CONNECTIONS, PATIENTS = "accounts", "offices", "connections", "patients"
PIN_LOOKUPS, LOGIN_ATTEMPTS = "pin_lookups", "login_attempts"
EVENT_COLLECTIONS = [ACCOUNTS, OFFICES, CONNECTIONS, PATIENTS]

__all__ = ["DuplicateKeyError", "IdentityStore", "SigningKeyStore", "EVENT_COLLECTIONS"]


class IdentityStore:
    def __init__(self, db: Any, *, kick: Kick = no_kick,
                 clock: Callable[[], datetime] = now_ms, pin_fail_limit: int = 10,
                 pin_window: timedelta = timedelta(minutes=15), login_fail_limit: int = 5,
                 login_window: timedelta = timedelta(minutes=15)) -> None:
        self.db = db
        self._kick = kick
        self.now = clock
        self.accounts = db[ACCOUNTS]
        self.offices = db[OFFICES]
        self.connections = db[CONNECTIONS]
        self.patients = db[PATIENTS]
        # Share PIN look-ups per account, counted before the PIN is checked
        self.pin_throttle = AttemptThrottle(db[PIN_LOOKUPS], limit=pin_fail_limit, window=pin_window, clock=clock)
        # log-ins per e-mail (as typed, normalised: unknown addresses are counted the same way)
        self.login_throttle = AttemptThrottle(db[LOGIN_ATTEMPTS], limit=login_fail_limit, window=login_window,
                                              clock=clock)

    async def ensure_indexes(self) -> None:
        await self.accounts.create_index("email_norm", unique=True, name="email_unique")
        await self.accounts.create_index("share_pin", unique=True, sparse=True, name="pin_unique")
        await self.offices.create_index("share_pin", unique=True, name="pin_unique")
        await self.offices.create_index("members.account_id")
        await self.offices.create_index("owner_id")
        # live_key exists only on live connections, so one live connection per owner and target
        await self.connections.create_index("live_key", unique=True, sparse=True, name="live_unique")
        await self.connections.create_index([("owner_id", 1), ("_id", -1)])
        await self.connections.create_index([("target_id", 1), ("_id", -1)])
        await self.patients.create_index([("care_team", 1), ("_id", -1)])
        await self.patients.create_index("invite.token_hash", sparse=True)
        await self.pin_throttle.ensure_indexes()
        await self.login_throttle.ensure_indexes()

    # ---- accounts ---------------------------------------------------------------------------------

    async def insert_account(self, account: AccountDoc, event: Envelope) -> None:
        """Raises DuplicateKeyError for a taken e-mail (or id)."""
        await self.accounts.insert_one(with_events(dict(account), event))
        self._kick(ACCOUNTS, account["_id"])

    async def account(self, account_id: str) -> AccountDoc | None:
        return await self.accounts.find_one({"_id": account_id}, NO_OUTBOX)

    async def account_by_email(self, email_norm: str) -> AccountDoc | None:
        return await self.accounts.find_one({"email_norm": email_norm}, NO_OUTBOX)

    async def accounts_by_id(self, ids: Iterable[str]) -> dict[str, AccountDoc]:
        docs: list[AccountDoc] = await self.accounts.find({"_id": {"$in": list(set(ids))}}, NO_OUTBOX).to_list()
        return {d["_id"]: d for d in docs}

    async def set_account_pin(self, account_id: str, pin: str, event: Envelope) -> bool:
        """Rotate a practitioner's PIN with its event; raises DuplicateKeyError when the PIN is taken."""
        res = await self.accounts.update_one({"_id": account_id, "kind": "practitioner"},
                                             push_events({"$set": {"share_pin": pin}}, event))
        if res.matched_count:
            self._kick(ACCOUNTS, account_id)
        return res.matched_count == 1

    # ---- PINs -------------------------------------------------------------------------------------

    async def pin_taken(self, pin: str) -> bool:
        """PINs are unique per collection by index; this keeps an account's and an office's apart too."""
        return (await self.accounts.find_one({"share_pin": pin}, {"_id": 1}) is not None
                or await self.offices.find_one({"share_pin": pin}, {"_id": 1}) is not None)

    async def practitioner_by_pin(self, pin: str) -> AccountDoc | None:
        return await self.accounts.find_one({"share_pin": pin, "kind": "practitioner"}, NO_OUTBOX)

    async def office_by_pin(self, pin: str) -> OfficeDoc | None:
        return await self.offices.find_one({"share_pin": pin}, NO_OUTBOX)

    # ---- offices ----------------------------------------------------------------------------------

    async def insert_office(self, office: OfficeDoc, event: Envelope) -> None:
        await self.offices.insert_one(with_events(dict(office), event))
        self._kick(OFFICES, office["_id"])

    async def office(self, office_id: str) -> OfficeDoc | None:
        return await self.offices.find_one({"_id": office_id}, NO_OUTBOX)

    async def offices_of(self, account_id: str) -> list[OfficeDoc]:
        return await self.offices.find({"members.account_id": account_id}, NO_OUTBOX).sort("_id", 1).to_list()

    async def office_ids_owned(self, account_id: str) -> list[str]:
        return [d["_id"] for d in await self.offices.find({"owner_id": account_id}, {"_id": 1}).to_list()]

    async def offices_by_id(self, ids: Iterable[str]) -> dict[str, OfficeDoc]:
        docs: list[OfficeDoc] = await self.offices.find({"_id": {"$in": list(set(ids))}}, NO_OUTBOX).to_list()
        return {d["_id"]: d for d in docs}

    async def replace_members(self, read: OfficeDoc, written: OfficeDoc, event: Envelope) -> bool:
        """Write ``written``'s members and version if nobody changed the office since ``read`` was read;
        False on a concurrent change (the caller re-reads and decides again)."""
        res = await self.offices.update_one(
            {"_id": read["_id"], "version": read["version"]},
            push_events({"$set": {"members": written["members"], "version": written["version"]}}, event))
        if res.matched_count != 1:
            return False
        self._kick(OFFICES, read["_id"])
        return True

    async def set_office_pin(self, office_id: str, pin: str, event: Envelope) -> None:
        """Rotate an office's PIN with its event; raises DuplicateKeyError when the PIN is taken."""
        res = await self.offices.update_one({"_id": office_id}, push_events({"$set": {"share_pin": pin}}, event))
        if res.matched_count:
            self._kick(OFFICES, office_id)

    # ---- connections ------------------------------------------------------------------------------

    async def insert_connection(self, conn: ConnectionDoc, event: Envelope) -> None:
        """Raises DuplicateKeyError when the same live connection exists (its ``live_key``)."""
        await self.connections.insert_one(with_events(dict(conn), event))
        self._kick(CONNECTIONS, conn["_id"])

    async def connection(self, connection_id: str) -> ConnectionDoc | None:
        return await find_by_id(self.connections, connection_id, NO_OUTBOX, where={"deleted_at": None})

    async def list_connections(self, account_id: str, owned_office_ids: list[str],
                               page: PageQuery) -> list[ConnectionDoc]:
        mine_or_to_me: list[dict[str, Any]] = [{"owner_id": account_id},
                                               {"target_kind": "practitioner", "target_id": account_id}]
        if owned_office_ids:
            mine_or_to_me.append({"target_kind": "office", "target_id": {"$in": owned_office_ids}})
        query = {"deleted_at": None, "$or": mine_or_to_me, **page.id_filter()}
        return await self.connections.find(query, NO_OUTBOX).sort("_id", -1).limit(page.limit + 1).to_list()

    async def delete_connection(self, conn: ConnectionDoc, *, deleted_by: str, at: datetime,
                                event: Envelope) -> bool:
        """Soft delete, with its event in the same write; False if it was already gone."""
        update = {"$set": {"deleted_at": at, "deleted_by": deleted_by}, "$unset": {"live_key": ""}}
        res = await self.connections.update_one({"_id": conn["_id"], "deleted_at": None}, push_events(update, event))
        if res.matched_count == 1:
            self._kick(CONNECTIONS, conn["_id"])
        return res.matched_count == 1

    async def sharing_inputs(self, account_id: str) -> tuple[list[OfficeView], list[ConnectionView], set[str]]:
        """What the sharing list is computed from: my offices, my live connections, and which of their
        practitioner targets really are practitioners."""
        offices = [OfficeView(id=o["_id"], members={m["account_id"]: m["role"] for m in o["members"]})
                   for o in await self.offices_of(account_id)]
        docs = await self.connections.find({"owner_id": account_id, "deleted_at": None}, NO_OUTBOX).to_list()
        conns = [ConnectionView(target_kind=c["target_kind"], target_id=c["target_id"]) for c in docs]
        targets = [c.target_id for c in conns if c.target_kind == "practitioner"]
        practitioners = await self.accounts.find({"_id": {"$in": targets}, "kind": "practitioner"},
                                                 {"_id": 1}).to_list()
        return offices, conns, {p["_id"] for p in practitioners}

    # ---- patients ---------------------------------------------------------------------------------

    async def insert_patient(self, patient: PatientDoc, event: Envelope) -> None:
        await self.patients.insert_one(with_events(dict(patient), event))
        self._kick(PATIENTS, patient["_id"])

    async def patient(self, patient_id: str) -> PatientDoc | None:
        return await self.patients.find_one({"_id": patient_id}, NO_OUTBOX)

    async def list_patients(self, practitioner_id: str, q: str | None, page: PageQuery) -> list[PatientDoc]:
        query: dict[str, Any] = {"care_team": practitioner_id, **page.id_filter()}
        if q:
            query["name"] = {"$regex": re.escape(q), "$options": "i"}
        return await self.patients.find(query, NO_OUTBOX).sort("_id", -1).limit(page.limit + 1).to_list()

    async def portal_account_ids(self, patient_ids: Iterable[str]) -> set[str]:
        docs = await self.accounts.find({"_id": {"$in": list(patient_ids)}, "kind": "patient"}, {"_id": 1}).to_list()
        return {d["_id"] for d in docs}

    async def replace_care_team(self, read: PatientDoc, written: PatientDoc, event: Envelope) -> bool:
        """Version-checked like office membership; False on a concurrent change."""
        res = await self.patients.update_one(
            {"_id": read["_id"], "version": read["version"]},
            push_events({"$set": {"care_team": written["care_team"], "version": written["version"]}}, event))
        if res.matched_count != 1:
            return False
        self._kick(PATIENTS, read["_id"])
        return True

    async def set_invite(self, patient_id: str, invite: InviteDoc) -> None:
        # one invite per patient: a new one overwrites (and so revokes) any older one
        await self.patients.update_one({"_id": patient_id}, {"$set": {"invite": invite}})

    async def patient_by_invite(self, token_hash: str) -> PatientDoc | None:
        return await self.patients.find_one({"invite.token_hash": token_hash}, NO_OUTBOX)

    async def consume_invite(self, patient_id: str, token_hash: str) -> bool:
        """Remove the invite if it is still this one: only one redemption can win."""
        res = await self.patients.update_one({"_id": patient_id, "invite.token_hash": token_hash},
                                             {"$unset": {"invite": ""}})
        return res.matched_count == 1

    async def restore_invite(self, patient_id: str, invite: InviteDoc) -> None:
        await self.patients.update_one({"_id": patient_id, "invite": None}, {"$set": {"invite": invite}})

    # ---- the snapshot other services catch their projection up from ---------------------------------

    async def snapshot_docs(self, collection: str, after: str | None, limit: int) -> list[StoredDoc]:
        """The projected facts of ``collection`` (one of EVENT_COLLECTIONS) after ``after``, by ``_id``."""
        query = {"_id": {"$gt": after}} if after else {}
        return await self.db[collection].find(query, NO_OUTBOX).sort("_id", 1).limit(limit).to_list()

    async def facts_high_water(self) -> int:
        """How many projected identity events the current state stands for: one per account, an office's
        or a patient's version (each change bumps it by one), one per connection plus one if deleted.
        A projection that reflects every event counts the same (``projection.high_water``)."""
        total = await self.accounts.count_documents({})
        total += await self.connections.count_documents({})
        total += await self.connections.count_documents({"deleted_at": {"$ne": None}})
        for coll in (self.offices, self.patients):
            total += sum([d.get("version", 1) async for d in coll.find({}, {"version": 1})])
        return total


SIGNING_KEYS, CURRENT, PUBLIC = "signing_keys", "current", "public"  # PUBLIC: a published public key's kind


class SigningKeyStore:
    """The token signing key generated once and kept (when no secret gives one), and the public keys
    published in the JWKS (the current one, and retired ones until their tokens have expired)."""

    def __init__(self, db: Any) -> None:
        self.keys = db[SIGNING_KEYS]

    async def current_pem(self) -> str | None:
        doc = await self.keys.find_one({"_id": CURRENT})
        return doc["pem"] if doc else None

    async def insert_current(self, pem: str, *, at: datetime) -> bool:
        """Store ``pem`` as the key unless one is there already: replicas starting together race, one
        insert lands, the others get False and load the winner's key."""
        return await insert_new(self.keys, {"_id": CURRENT, "pem": pem, "created_at": at})

    async def replace_current(self, pem: str, *, at: datetime) -> None:
        await self.keys.update_one({"_id": CURRENT}, {"$set": {"pem": pem, "created_at": at}})

    async def publish(self, kid: str, jwk: Jwk, *, at: datetime) -> str:
        """Record ``kid``'s public key as the signing one; returns its document id."""
        doc_id = f"{PUBLIC}:{kid}"
        await self.keys.update_one({"_id": doc_id},
                                   {"$set": {"kind": PUBLIC, "kid": kid, "jwk": jwk, "retired_at": None,
                                             "expires_at": None},
                                    "$setOnInsert": {"since": at}}, upsert=True)
        return doc_id

    async def retire_all_but(self, current_id: str, *, at: datetime, expires_at: datetime) -> int:
        res = await self.keys.update_many({"kind": PUBLIC, "retired_at": None, "_id": {"$ne": current_id}},
                                          {"$set": {"retired_at": at, "expires_at": expires_at}})
        return int(res.modified_count)

    async def published(self) -> list[PublishedKeyDoc]:
        return await self.keys.find({"kind": PUBLIC}).to_list()
