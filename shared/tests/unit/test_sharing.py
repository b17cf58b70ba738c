from hypothesis import given
from hypothesis import strategies as st

from clinishare_shared.domain.sharing import ConnectionView, OfficeView, SharingList, sharing_list

ME = "me"


def test_office_practitioners_but_not_staff_nor_self() -> None:
    office = OfficeView("o1", {ME: "practitioner", "p2": "practitioner", "s1": "staff"})
    sl = sharing_list(ME, my_offices=[office], connections=[])
    assert sl.practitioners == {"p2": "office"}
    assert sl.offices == {"o1": "member"}


def test_staff_member_gets_office_practitioners_and_office() -> None:
    office = OfficeView("o1", {ME: "staff", "p2": "practitioner"})
    sl = sharing_list(ME, my_offices=[office], connections=[])
    assert sl.practitioners == {"p2": "office"} and sl.offices == {"o1": "member"}


def test_pin_practitioners_and_pin_offices() -> None:
    sl = sharing_list(ME, my_offices=[], connections=[ConnectionView("practitioner", "p3"),
                                                      ConnectionView("office", "o9")])
    assert sl.practitioners == {"p3": "pin"}
    assert sl.offices == {"o9": "pin"}


def test_membership_wins_over_pin_when_both() -> None:
    office = OfficeView("o1", {ME: "practitioner", "p2": "practitioner"})
    for conns in ([ConnectionView("practitioner", "p2"), ConnectionView("office", "o1")],
                  [ConnectionView("office", "o1"), ConnectionView("practitioner", "p2")]):
        sl = sharing_list(ME, my_offices=[office], connections=conns)
        assert sl.practitioners == {"p2": "office"}
        assert sl.offices == {"o1": "member"}


def test_left_office_gives_nothing() -> None:
    # identity's projection no longer lists me in o1: whatever the caller passes, a snapshot without me
    # must not put its practitioners or itself on my list
    left = OfficeView("o1", {"p2": "practitioner"})
    sl = sharing_list(ME, my_offices=[left], connections=[])
    assert sl == SharingList()
    assert sharing_list(ME, my_offices=[], connections=[]) == SharingList()


def test_pin_to_myself_is_ignored_and_unknown_practitioners_filtered() -> None:
    conns = [ConnectionView("practitioner", ME), ConnectionView("practitioner", "p3"),
             ConnectionView("practitioner", "ghost")]
    sl = sharing_list(ME, my_offices=[], connections=conns, practitioner_ids=["p3"])
    assert sl.practitioners == {"p3": "pin"}


async def test_deleted_connection_absent(db) -> None:
    # through the projection: a deleted connection is not a live one
    from clinishare_shared.events import ConnectionCreated, ConnectionDeleted, make_event
    from clinishare_shared.projection import IdentityProjection

    proj = IdentityProjection(db)
    h = proj.handlers
    created = ConnectionCreated(connection_id="c1", owner_id=ME, target_kind="practitioner", target_id="p3")
    await h[created.event_type](make_event(created, source="identity", subject="c1"))
    assert (await proj.sharing_list(ME)).practitioners == {"p3": "pin"}
    deleted = ConnectionDeleted(connection_id="c1", owner_id=ME, target_kind="practitioner", target_id="p3",
                                deleted_by="p3")
    await h[deleted.event_type](make_event(deleted, source="identity", subject="c1"))
    assert (await proj.sharing_list(ME)).practitioners == {}


def test_refused_keeps_order_and_dedupes() -> None:
    sl = SharingList(practitioners={"p1": "office"}, offices={"o1": "member"})
    assert sl.refused(practitioner_ids=["x", "p1", "y", "x"], office_ids=["o2", "o1", "y", "o2"]) == ["x", "y", "o2"]
    assert sl.refused(practitioner_ids=["p1"], office_ids=["o1"]) == []
    assert sl.refused() == []
    # a practitioner id offered as an office is refused (and vice versa)
    assert sl.refused(practitioner_ids=["o1"], office_ids=["p1"]) == ["o1", "p1"]


ids = st.sampled_from(["me", "a", "b", "c", "d", "o1", "o2", "o3"])
roles = st.sampled_from(["practitioner", "staff"])
offices_st = st.lists(st.builds(lambda i, m: OfficeView(i, m), st.sampled_from(["o1", "o2", "o3"]),
                                st.dictionaries(ids, roles, max_size=5)), max_size=3, unique_by=lambda o: o.id)
conns_st = st.lists(st.builds(ConnectionView, st.sampled_from(["practitioner", "office"]), ids), max_size=6)


@given(offices_st, conns_st)
def test_sharing_list_properties(offices: list[OfficeView], conns: list[ConnectionView]) -> None:
    sl = sharing_list(ME, my_offices=offices, connections=conns)
    mine = [o for o in offices if ME in o.members]
    office_practitioners = {a for o in mine for a, r in o.members.items() if r == "practitioner"} - {ME}
    pin_practitioners = {c.target_id for c in conns if c.target_kind == "practitioner"} - {ME}
    assert ME not in sl.practitioners
    assert set(sl.practitioners) == office_practitioners | pin_practitioners
    for p, via in sl.practitioners.items():
        assert via == ("office" if p in office_practitioners else "pin")
    member_offices = {o.id for o in mine}
    pin_offices = {c.target_id for c in conns if c.target_kind == "office"}
    assert set(sl.offices) == member_offices | pin_offices
    for o, via in sl.offices.items():
        assert via == ("member" if o in member_offices else "pin")
    # staff of my offices are never on it unless connected by PIN or practitioners elsewhere in my offices
    for o in mine:
        for a, r in o.members.items():
            if r == "staff" and a not in office_practitioners and a not in pin_practitioners:
                assert a not in sl.practitioners
    # order of the inputs does not change the result
    assert sharing_list(ME, my_offices=list(reversed(offices)), connections=list(reversed(conns))) == sl
    # refused is exactly "not on the list"
    everyone = ["me", "a", "b", "c", "d", "o1", "o2", "o3"]
    assert sl.refused(practitioner_ids=everyone) == [p for p in everyone if p not in sl.practitioners]
    assert sl.refused(office_ids=everyone) == [o for o in everyone if o not in sl.offices]
