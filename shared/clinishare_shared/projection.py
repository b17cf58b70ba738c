"""The identity projection every sharing service keeps in its own database, built from ``identity.*``
events: accounts, offices and their members, connections, patients and their care teams.

It lets a service answer "who is in office O now", "is P on A's sharing list", "is this patient in P's
care" without calling identity, so reading shared data keeps working while identity is down. Office and
care-team events carry a version and a snapshot: an older or repeated event never overwrites a newer one,
so the projection is right whatever order events arrive in and however often.

"Which offices is A in", "which connections does A own", "whose care team is P on" are answered through
lookup documents in ``idp_links`` (``offices:<account>``, ``connections:<owner>``, ``patients:<practitioner>``
-> ids, kept as ``lookups.ChunkedSets`` of bounded documents), then the documents by ``_id``: FerretDB's
SQLite handler scans a whole collection for any filter but a bare ``_id`` equality, and these ran on every
share and every listing. An id is added BEFORE the
document that it points at is written, and never removed (a member who left, a deleted connection): the
lookup is a superset, and every read checks each document it loads. ``ensure_indexes`` builds the lookups
once from documents written before they existed (the marker ``built`` records that it ran to its end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from pymongo.errors import DuplicateKeyError

from clinishare_shared.bus.base import Handler
from clinishare_shared.domain.sharing import ConnectionView, OfficeView, SharingList, sharing_list
from clinishare_shared.events import (
    AccountRegistered, ConnectionCreated, ConnectionDeleted, Envelope, OfficeCreated, OfficeMemberAdded,
    OfficeMemberRemoved, PatientCareTeamChanged, PatientRegistered,
)
from clinishare_shared.lookups import ChunkedSets
from clinishare_shared.mongo import find_by_ids

ACCOUNTS, OFFICES, CONNECTIONS, PATIENTS = "idp_accounts", "idp_offices", "idp_connections", "idp_patients"
LINKS, LINKS_BUILT = "idp_links", "built"
LINKS_CHUNK = 512


async def _versioned_upsert(coll: Any, _id: str, version: int, fields: dict[str, Any]) -> None:
    """Write ``fields`` unless the stored version is the same or newer."""
    older = {"_id": _id, "version": {"$lt": version}}
    update = {"$set": {**fields, "version": version}}
    if (await coll.update_one(older, update)).matched_count:
        return
    try:
        await coll.insert_one({"_id": _id, **fields, "version": version})
    except DuplicateKeyError:
        # another version was inserted between our update and our insert, and it may be the older one:
        # the version-checked update again (the document exists now, so this settles it either way)
        await coll.update_one(older, update)


class IdentityProjection:
    def __init__(self, db: Any) -> None:
        self.db = db
        # a busy practitioner's patients, a big office's members: bounded documents, whatever the count
        # (none without a database: topology builds a projection only to read its event types)
        self.links = ChunkedSets(db[LINKS], "ids", chunk=LINKS_CHUNK) if db is not None else None

    async def ensure_indexes(self) -> None:
        await self.db[OFFICES].create_index("member_ids")
        await self.db[CONNECTIONS].create_index([("owner_id", 1), ("deleted", 1)])
        await self.db[PATIENTS].create_index("care_team")
        await self.build_links()

    # ---- the lookups: account -> its offices, owner -> its connections, practitioner -> patients in care --

    async def _link(self, kind: str, keys: Iterable[str], target: str) -> None:
        """Add ``target`` to the lookups ``<kind>:<key>`` (before ``target`` itself is written)."""
        await asyncio.gather(*(self.links.add(f"{kind}:{k}", target) for k in dict.fromkeys(keys)))

    async def _linked(self, kind: str, coll: str, keys: Iterable[str]) -> list[dict[str, Any]]:
        """The documents of ``coll`` that the lookups ``<kind>:<key>`` name (unchecked: callers check)."""
        return (await self._linked_kinds({kind: coll}, keys))[kind]

    async def _linked_kinds(self, kinds: dict[str, str], keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """``_linked`` for several kinds (kind -> its collection) at once: the lookups of every kind in one
        read, then each kind's documents, all at once."""
        keys = list(keys)
        links = await self.links.members([f"{kind}:{k}" for kind in kinds for k in keys])
        named: dict[str, list[Any]] = {kind: [] for kind in kinds}
        for key, ids in links.items():
            named[key.partition(":")[0]].extend(ids)
        found = await asyncio.gather(*(find_by_ids(self.db[coll], named[kind]) for kind, coll in kinds.items()))
        return dict(zip(kinds, found))

    async def build_links(self, *, force: bool = False) -> int:
        """The lookups of documents written before they existed: one scan of each collection, once per
        database (``force``: again, as ``rebuild-lookups`` does after an upgrade from code that wrote no
        lookups; adding what is there already changes nothing). How many lookup keys were written."""
        if not force and await self.db[LINKS].find_one({"_id": LINKS_BUILT}):
            return 0
        links: dict[str, set[str]] = {}
        async for o in self.db[OFFICES].find({}, {"member_ids": 1}):
            for m in o.get("member_ids", []):
                links.setdefault(f"offices:{m}", set()).add(o["_id"])
        async for c in self.db[CONNECTIONS].find({}, {"owner_id": 1}):
            links.setdefault(f"connections:{c['owner_id']}", set()).add(c["_id"])
        async for p in self.db[PATIENTS].find({}, {"care_team": 1}):
            for m in p.get("care_team", []):
                links.setdefault(f"patients:{m}", set()).add(p["_id"])
        for key, ids in links.items():
            await self.links.add(key, *sorted(ids))
        await self.db[LINKS].update_one({"_id": LINKS_BUILT}, {"$set": {"built": True}}, upsert=True)
        return len(links)

    # ---- events ------------------------------------------------------------------------------------

    @property
    def handlers(self) -> dict[str, Handler]:
        return {
            AccountRegistered.event_type: self._on_account,
            OfficeCreated.event_type: self._on_office,
            OfficeMemberAdded.event_type: self._on_office,
            OfficeMemberRemoved.event_type: self._on_office,
            ConnectionCreated.event_type: self._on_connection_created,
            ConnectionDeleted.event_type: self._on_connection_deleted,
            PatientRegistered.event_type: self._on_patient,
            PatientCareTeamChanged.event_type: self._on_patient,
        }

    async def _on_account(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, AccountRegistered)
        await self.db[ACCOUNTS].update_one(
            {"_id": data.account_id},
            {"$set": {"kind": data.kind, "name": data.name, "email": data.email}},
            upsert=True,
        )

    async def _on_office(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, OfficeCreated | OfficeMemberAdded | OfficeMemberRemoved)
        fields: dict[str, Any] = {
            "members": [m.model_dump() for m in data.members],
            "member_ids": [m.account_id for m in data.members],
        }
        if isinstance(data, OfficeCreated):
            fields.update(name=data.name, owner_id=data.owner_id)
        await self._link("offices", fields["member_ids"], data.office_id)
        await _versioned_upsert(self.db[OFFICES], data.office_id, data.version, fields)
        if isinstance(data, OfficeCreated):
            # name and owner come only with "created" and never change: set them even when a newer
            # member event overtook this one (whose snapshot then rightly wins for the members).
            await self.db[OFFICES].update_one({"_id": data.office_id},
                                              {"$set": {"name": data.name, "owner_id": data.owner_id}})

    async def _on_connection_created(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, ConnectionCreated)
        await self._link("connections", [data.owner_id], data.connection_id)
        # $setOnInsert: a "deleted" that overtook this event must not be undone by it
        await self.db[CONNECTIONS].update_one(
            {"_id": data.connection_id},
            {"$setOnInsert": {"owner_id": data.owner_id, "target_kind": data.target_kind,
                              "target_id": data.target_id, "deleted": False}},
            upsert=True,
        )

    async def _on_connection_deleted(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, ConnectionDeleted)
        await self._link("connections", [data.owner_id], data.connection_id)
        await self.db[CONNECTIONS].update_one(
            {"_id": data.connection_id},
            {"$set": {"owner_id": data.owner_id, "target_kind": data.target_kind,
                      "target_id": data.target_id, "deleted": True}},
            upsert=True,
        )

    async def _on_patient(self, event: Envelope) -> None:
        data = event.payload()
        assert isinstance(data, PatientRegistered | PatientCareTeamChanged)
        await self._link("patients", data.care_team, data.patient_id)
        await _versioned_upsert(self.db[PATIENTS], data.patient_id, data.version, {"care_team": data.care_team})

    async def high_water(self) -> int:
        """How many identity events this projection reflects, counted as identity counts its state
        (``GET /v1/internal/identity-snapshot/high-water``): one per account, an office's or a patient's
        version, one per connection plus one if deleted. Fewer than identity's: the projection is behind."""
        total = await self.db[ACCOUNTS].count_documents({})
        total += await self.db[CONNECTIONS].count_documents({})
        total += await self.db[CONNECTIONS].count_documents({"deleted": True})
        for name in (OFFICES, PATIENTS):
            total += sum([d.get("version", 1) async for d in self.db[name].find({}, {"version": 1})])
        return total

    # ---- queries -----------------------------------------------------------------------------------

    async def account(self, account_id: str) -> dict[str, Any] | None:
        return await self.db[ACCOUNTS].find_one({"_id": account_id})

    async def accounts(self, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Account id -> its document, for the accounts the projection knows (one read for them all)."""
        return {d["_id"]: d for d in await find_by_ids(self.db[ACCOUNTS], account_ids)}

    async def names(self, account_ids: Iterable[str]) -> dict[str, str]:
        """Account id -> name now, for the accounts the projection knows (patients have no name here)."""
        ids = list(dict.fromkeys(account_ids))
        if not ids:
            return {}
        docs = await find_by_ids(self.db[ACCOUNTS], ids, {"name": 1})
        return {d["_id"]: d["name"] for d in docs if d.get("name")}

    async def office_names(self, office_ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(office_ids))
        if not ids:
            return {}
        docs = await find_by_ids(self.db[OFFICES], ids, {"name": 1})
        return {d["_id"]: d["name"] for d in docs if d.get("name")}

    async def office_rosters(self, office_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Office id -> {member account id: role} now."""
        ids = list(dict.fromkeys(office_ids))
        if not ids:
            return {}
        docs = await find_by_ids(self.db[OFFICES], ids, {"members": 1})
        return {d["_id"]: {m["account_id"]: m["role"] for m in d.get("members", [])} for d in docs}

    async def offices_of(self, account_id: str) -> list[dict[str, Any]]:
        return [o for o in await self._linked("offices", OFFICES, [account_id])
                if account_id in o.get("member_ids", [])]

    async def roles_of(self, account_id: str) -> dict[str, str]:
        """Office id -> the account's role there now (membership is read at read time, principle 2)."""
        return {o["_id"]: m["role"] for o in await self.offices_of(account_id)
                for m in o["members"] if m["account_id"] == account_id}

    async def office_ids_of(self, account_id: str, *, role: str | None = None) -> list[str]:
        offices = await self.offices_of(account_id)
        if role is None:
            return [o["_id"] for o in offices]
        return [o["_id"] for o in offices
                if any(m["account_id"] == account_id and m["role"] == role for m in o["members"])]

    async def office(self, office_id: str) -> dict[str, Any] | None:
        return await self.db[OFFICES].find_one({"_id": office_id})

    async def sharing_list(self, account_id: str) -> SharingList:
        return (await self.sharing_lists([account_id]))[account_id]

    async def sharing_lists(self, account_ids: Iterable[str]) -> dict[str, SharingList]:
        """The sharing lists of several accounts together: their lookups (offices and connections in one
        read), then the offices and connections they name, each read by ``_id`` and all at once (two rounds
        of reads whatever their number), so a listing reaching the grants of many sharers waits once, not
        per sharer."""
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        linked = await self._linked_kinds({"offices": OFFICES, "connections": CONNECTIONS}, ids)
        offices, conns = linked["offices"], linked["connections"]
        conns = [c for c in conns if c.get("deleted") is False]
        out = {}
        for account_id in ids:
            out[account_id] = sharing_list(
                account_id,
                my_offices=[OfficeView(o["_id"], {m["account_id"]: m["role"] for m in o["members"]})
                            for o in offices if account_id in o.get("member_ids", [])],
                connections=[ConnectionView(c["target_kind"], c["target_id"]) for c in conns
                             if c["owner_id"] == account_id],
            )
        return out

    async def care_team(self, patient_id: str) -> list[str]:
        patient = await self.db[PATIENTS].find_one({"_id": patient_id}, {"care_team": 1})
        return list(patient["care_team"]) if patient else []

    async def in_care(self, patient_id: str, practitioner_id: str) -> bool:
        return practitioner_id in await self.care_team(patient_id)  # by bare _id: no scan on FerretDB

    async def patients_in_care(self, practitioner_id: str) -> list[str]:
        return [p["_id"] for p in await self._linked("patients", PATIENTS, [practitioner_id])
                if practitioner_id in p.get("care_team", [])]


async def rebuild_links(db: Any, settings: Any = None) -> dict[str, Any]:
    """``python -m clinishare_<service> rebuild-lookups`` for the projection: its lookups from its documents
    again (after an upgrade from a release whose replicas wrote no lookups: run it once the last of them has
    stopped). Safe while the service runs."""
    return {"projection_lookups": await IdentityProjection(db).build_links(force=True)}
