async def test_sharing_list_via_office_membership_pin_and_member(api):
    me, partner, office_staff, pin_friend, office_owner = (
        await api.register(), await api.register(name="Dr Partner"), await api.register("staff"),
        await api.register(name="Dr Friend"), await api.register(name="Dr Elsewhere"))
    my_office = await api.office(me, (partner, "practitioner"), (office_staff, "staff"), name="My Office")
    other_office = await api.office(office_owner, name="Other Office")
    await api.connect(me, await api.pin(pin_friend))
    await api.connect(me, other_office["share_pin"])

    r = await api.client.get("/v1/sharing-list", headers=me.auth)
    assert r.status_code == 200
    body = r.json()
    assert {"id": partner.id, "name": "Dr Partner", "via": "office"} in body["practitioners"]
    assert {"id": my_office["id"], "name": "My Office", "via": "member"} in body["offices"]
    assert await api.sharing_list(me) == {
        "practitioners": {partner.id: "office", pin_friend.id: "pin"},  # staff and myself are never on it
        "offices": {my_office["id"]: "member", other_office["id"]: "pin"},
    }
    # connections are one-way: the friend did not connect to me
    assert await api.sharing_list(pin_friend) == {"practitioners": {}, "offices": {}}
    assert await api.sharing_list(partner) == {"practitioners": {me.id: "office"}, "offices": {my_office["id"]: "member"}}


async def test_leaving_an_office_or_deleting_a_connection_takes_them_off_the_list(api):
    me, partner, friend = await api.register(), await api.register(), await api.register()
    office = await api.office(me, (partner, "practitioner"))
    conn = await api.connect(partner, await api.pin(friend))
    assert await api.sharing_list(partner) == {"practitioners": {me.id: "office", friend.id: "pin"},
                                               "offices": {office["id"]: "member"}}

    assert (await api.client.delete(f"/v1/offices/{office['id']}/members/{partner.id}", headers=me.auth)).status_code == 204
    assert (await api.client.delete(f"/v1/connections/{conn['id']}", headers=friend.auth)).status_code == 204
    assert await api.sharing_list(partner) == {"practitioners": {}, "offices": {}}
    assert await api.sharing_list(me) == {"practitioners": {}, "offices": {office["id"]: "member"}}


async def test_sharing_list_is_for_practitioners(api, assert_problem):
    staff = await api.register("staff")
    assert_problem(await api.client.get("/v1/sharing-list", headers=staff.auth), 403)
