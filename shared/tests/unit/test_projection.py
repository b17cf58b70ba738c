import asyncio
from typing import Any

from clinishare_shared.events import (
    AccountRegistered, ConnectionCreated, ConnectionDeleted, OfficeCreated, OfficeMember, OfficeMemberRemoved,
    PatientCareTeamChanged, PatientRegistered, make_event,
)
from clinishare_shared.projection import CONNECTIONS, LINKS, OFFICES, PATIENTS, IdentityProjection, rebuild_links


def _members(m: dict[str, str]) -> list[OfficeMember]:
    return [OfficeMember(account_id=a, role=r) for a, r in m.items()]  # type: ignore[arg-type]


async def _apply(proj: IdentityProjection, data: Any) -> None:
    await proj.handlers[data.event_type](make_event(data, source="identity", subject="s"))


async def test_office_versions_any_order(db: Any, member_added) -> None:
    proj = IdentityProjection(db)
    await proj.ensure_indexes()
    created = OfficeCreated(office_id="o1", owner_id="p1", name="North", version=1,
                            members=_members({"p1": "practitioner"}))
    added = member_added("o1", "p2", 2, {"p1": "practitioner", "p2": "practitioner"})
    removed = OfficeMemberRemoved(office_id="o1", account_id="p2", version=3, members=_members({"p1": "practitioner"}))
    # newest first: removed(3), then the older added(2) and created(1) change nothing
    await _apply(proj, removed)
    await proj.handlers[added.type](added)
    await _apply(proj, created)
    assert await proj.office_rosters(["o1"]) == {"o1": {"p1": "practitioner"}}
    assert await proj.office_ids_of("p2") == []
    office = await proj.office("o1")
    assert office["version"] == 3 and office["name"] == "North" and office["owner_id"] == "p1"
    # redelivery of anything is a no-op
    await proj.handlers[added.type](added)
    await _apply(proj, removed)
    assert await proj.office_rosters(["o1"]) == {"o1": {"p1": "practitioner"}}
    assert (await proj.office("o1"))["version"] == 3


async def test_office_in_order_and_roles(db: Any, member_added) -> None:
    proj = IdentityProjection(db)
    await _apply(proj, OfficeCreated(office_id="o1", owner_id="p1", name="N", version=1,
                                     members=_members({"p1": "practitioner"})))
    await proj.handlers["identity.office.member_added"](member_added("o1", "s1", 2, {"p1": "practitioner", "s1": "staff"}))
    await proj.handlers["identity.office.member_added"](
        member_added("o1", "p2", 3, {"p1": "practitioner", "s1": "staff", "p2": "practitioner"}))
    assert await proj.office_rosters(["o1", "nope"]) == {"o1": {"p1": "practitioner", "s1": "staff",
                                                                 "p2": "practitioner"}}
    assert await proj.roles_of("s1") == {"o1": "staff"}
    assert await proj.office_ids_of("s1", role="staff") == ["o1"]
    assert await proj.office_ids_of("s1", role="practitioner") == []
    sl = await proj.sharing_list("p1")
    assert sl.practitioners == {"p2": "office"} and sl.offices == {"o1": "member"}
    staff_list = await proj.sharing_list("s1")
    assert staff_list.practitioners == {"p1": "office", "p2": "office"}


async def test_connection_deleted_overtaking_created_stays_deleted(db: Any) -> None:
    proj = IdentityProjection(db)
    created = ConnectionCreated(connection_id="c1", owner_id="p1", target_kind="office", target_id="o7")
    deleted = ConnectionDeleted(connection_id="c1", owner_id="p1", target_kind="office", target_id="o7",
                                deleted_by="p1")
    await _apply(proj, deleted)
    await _apply(proj, created)
    await _apply(proj, created)
    assert (await proj.sharing_list("p1")).offices == {}
    await _apply(proj, ConnectionCreated(connection_id="c2", owner_id="p1", target_kind="office", target_id="o8"))
    assert (await proj.sharing_list("p1")).offices == {"o8": "pin"}
    # someone else's connection is not mine
    await _apply(proj, ConnectionCreated(connection_id="c3", owner_id="p9", target_kind="practitioner", target_id="p1"))
    assert (await proj.sharing_list("p1")).practitioners == {}


async def test_left_office_leaves_the_sharing_list(db: Any, member_added) -> None:
    proj = IdentityProjection(db)
    await proj.handlers["identity.office.member_added"](
        member_added("o1", "p2", 2, {"p1": "practitioner", "p2": "practitioner"}))
    assert (await proj.sharing_list("p2")).practitioners == {"p1": "office"}
    await _apply(proj, OfficeMemberRemoved(office_id="o1", account_id="p2", version=3,
                                           members=_members({"p1": "practitioner"})))
    sl = await proj.sharing_list("p2")
    assert sl.practitioners == {} and sl.offices == {}


async def test_care_team(db: Any) -> None:
    proj = IdentityProjection(db)
    await _apply(proj, PatientCareTeamChanged(patient_id="pt1", changed_by="p1", version=2, care_team=["p1", "p2"],
                                              added=["p2"]))
    await _apply(proj, PatientRegistered(patient_id="pt1", registered_by="p1", version=1, care_team=["p1"]))
    assert await proj.in_care("pt1", "p2") and await proj.in_care("pt1", "p1")
    assert not await proj.in_care("pt1", "p3") and not await proj.in_care("nope", "p1")
    await _apply(proj, PatientRegistered(patient_id="pt2", registered_by="p2", version=1, care_team=["p2"]))
    assert sorted(await proj.patients_in_care("p2")) == ["pt1", "pt2"]
    assert await proj.care_team("pt1") == ["p1", "p2"] and await proj.care_team("nobody") == []
    assert await proj.in_care("pt1", "p1") and await proj.in_care("pt1", "p2")
    assert not await proj.in_care("pt1", "p3") and not await proj.in_care("nobody", "p1")


async def test_accounts(db: Any) -> None:
    proj = IdentityProjection(db)
    await _apply(proj, AccountRegistered(account_id="p1", kind="practitioner", name="Dr A", email="a@x"))
    await _apply(proj, AccountRegistered(account_id="p1", kind="practitioner", name="Dr A", email="a@x"))
    assert await proj.account("p1") == {"_id": "p1", "kind": "practitioner", "name": "Dr A", "email": "a@x"}
    assert await proj.account("nope") is None
    assert await db[OFFICES].count_documents({}) == 0


class _Gated:
    """The offices collection with the interleaving that lost an update: version 3's update finds
    nothing, version 2's update finds nothing and inserts, then version 3's insert collides."""

    def __init__(self, coll: Any) -> None:
        self._c = coll
        self.v3_updated = asyncio.Event()
        self.v2_inserted = asyncio.Event()

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], **kw: Any) -> Any:
        version = update["$set"].get("version")
        if version == 2 and not self.v2_inserted.is_set():
            await self.v3_updated.wait()
        res = await self._c.update_one(query, update, **kw)
        if version == 3:
            self.v3_updated.set()
        return res

    async def insert_one(self, doc: dict[str, Any]) -> Any:
        if doc.get("version") == 3:
            await self.v2_inserted.wait()
        try:
            return await self._c.insert_one(doc)
        finally:
            if doc.get("version") == 2:
                self.v2_inserted.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


class _Db:
    def __init__(self, db: Any, offices: _Gated) -> None:
        self._db, self._offices = db, offices

    def __getitem__(self, name: str) -> Any:
        return self._offices if name == OFFICES else self._db[name]


async def test_racing_versions_of_a_new_office_keep_the_newest(db: Any, member_added) -> None:
    gated = _Gated(db[OFFICES])
    proj = IdentityProjection(_Db(db, gated))
    v2 = member_added("o1", "p2", 2, {"p1": "practitioner", "p2": "practitioner"})
    v3 = member_added("o1", "p3", 3, {"p1": "practitioner", "p2": "practitioner", "p3": "staff"})
    await asyncio.wait_for(asyncio.gather(proj.handlers[v3.type](v3), proj.handlers[v2.type](v2)), timeout=5)
    assert gated.v2_inserted.is_set() and gated.v3_updated.is_set()  # the interleaving really happened
    office = await db[OFFICES].find_one({"_id": "o1"})
    assert office["version"] == 3
    assert sorted(office["member_ids"]) == ["p1", "p2", "p3"]


async def test_a_lookup_naming_a_document_never_written_is_ignored(db: Any) -> None:
    """The lookup is written before its document: a crash between leaves an id naming nothing."""
    proj = IdentityProjection(db)
    await proj._link("offices", ["p1"], "o-lost")
    await proj._link("connections", ["p1"], "k-lost")
    await proj._link("patients", ["p1"], "pat-lost")
    await _apply(proj, OfficeCreated(office_id="o1", owner_id="p1", name="N", version=1,
                                     members=_members({"p1": "practitioner"})))
    assert await proj.office_ids_of("p1") == ["o1"]
    assert (await proj.sharing_list("p1")).offices == {"o1": "member"}
    assert await proj.patients_in_care("p1") == []


async def test_lookups_are_built_once_for_documents_written_before_them(db: Any) -> None:
    await db[OFFICES].insert_one({"_id": "o1", "members": [{"account_id": "p1", "role": "practitioner"}],
                                  "member_ids": ["p1"], "version": 1})
    await db[CONNECTIONS].insert_one({"_id": "k1", "owner_id": "p1", "target_kind": "practitioner",
                                      "target_id": "p2", "deleted": False})
    await db[PATIENTS].insert_one({"_id": "pat1", "care_team": ["p1"], "version": 1})
    proj = IdentityProjection(db)
    assert await proj.office_ids_of("p1") == []  # not built yet: the lookups name nothing
    await proj.ensure_indexes()
    assert await proj.office_ids_of("p1") == ["o1"]
    assert (await proj.sharing_list("p1")).practitioners == {"p2": "pin"}
    assert await proj.patients_in_care("p1") == ["pat1"] and await proj.in_care("pat1", "p1")
    assert not await proj.in_care("pat1", "p2")
    assert await db[LINKS].find_one({"_id": "built"}) is not None
    assert await proj.build_links() == 0  # once
    # a connection written afterwards by a release that kept no lookups: found once rebuild-lookups ran
    await db[CONNECTIONS].insert_one({"_id": "k2", "owner_id": "p1", "target_kind": "practitioner",
                                      "target_id": "p3", "deleted": False})
    assert "p3" not in (await proj.sharing_list("p1")).practitioners
    assert await rebuild_links(db) == {"projection_lookups": 3}
    assert set((await proj.sharing_list("p1")).practitioners) == {"p2", "p3"}
