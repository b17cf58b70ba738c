async def test_create_office_makes_the_creator_owner_and_member(api):
    owner = await api.register(name="Dr Owner")
    r = await api.client.post("/v1/offices", json={"name": "North Clinic"}, headers=owner.auth)
    assert r.status_code == 201
    office = r.json()
    assert office["owner_id"] == owner.id and office["name"] == "North Clinic"
    assert office["members"] == [{"account_id": owner.id, "name": "Dr Owner", "email": owner.email,
                                  "role": "practitioner"}]
    assert len(office["share_pin"]) == 12
    me = (await api.client.get("/v1/me", headers=owner.auth)).json()
    assert me["offices"] == [{"id": office["id"], "name": "North Clinic", "role": "practitioner", "is_owner": True}]


async def test_only_practitioners_create_offices(api, assert_problem):
    staff = await api.register("staff")
    assert_problem(await api.client.post("/v1/offices", json={"name": "X"}, headers=staff.auth), 403)


async def test_members_see_the_office_and_its_pin_others_get_404(api, assert_problem):
    owner, colleague, admin, stranger = (await api.register(), await api.register(), await api.register("staff"),
                                         await api.register())
    office = await api.office(owner, (colleague, "practitioner"), (admin, "staff"))
    assert [(m["account_id"], m["role"]) for m in office["members"]] == [
        (owner.id, "practitioner"), (colleague.id, "practitioner"), (admin.id, "staff")]
    for member in (colleague, admin):
        r = await api.client.get(f"/v1/offices/{office['id']}", headers=member.auth)
        assert r.status_code == 200 and r.json()["share_pin"] == office["share_pin"]
    assert_problem(await api.client.get(f"/v1/offices/{office['id']}", headers=stranger.auth), 404)
    assert_problem(await api.client.get("/v1/offices/65f000000000000000000000", headers=owner.auth), 404)
    me = (await api.client.get("/v1/me", headers=admin.auth)).json()
    assert me["offices"] == [{"id": office["id"], "name": office["name"], "role": "staff", "is_owner": False}]


async def test_adding_members_is_for_the_owner_only(api, assert_problem):
    owner, colleague, stranger, newcomer = [await api.register() for _ in range(4)]
    office = await api.office(owner, (colleague, "practitioner"))
    body = {"email": newcomer.email, "role": "practitioner"}
    assert_problem(await api.client.post(f"/v1/offices/{office['id']}/members", json=body, headers=colleague.auth), 403)
    assert_problem(await api.client.post(f"/v1/offices/{office['id']}/members", json=body, headers=stranger.auth), 404)
    r = await api.client.get(f"/v1/offices/{office['id']}", headers=owner.auth)
    assert len(r.json()["members"]) == 2


async def test_member_add_rules(api, assert_problem):
    owner, colleague, staff = await api.register(), await api.register(), await api.register("staff")
    office = await api.office(owner, (colleague, "practitioner"))
    url = f"/v1/offices/{office['id']}/members"
    patient = await api.patient(owner)
    cases = [
        ({"email": "nobody@clinic.example.org", "role": "staff"}, 422),
        ({"email": staff.email, "role": "practitioner"}, 422),  # staff cannot be a practitioner member
        ({"email": colleague.email.upper(), "role": "practitioner"}, 409),
        ({"email": owner.email, "role": "practitioner"}, 409),
        ({"email": patient["email"], "role": "staff"}, 422),  # not an account yet
        ({"email": staff.email, "role": "owner"}, 422),
    ]
    for body, status in cases:
        assert_problem(await api.client.post(url, json=body, headers=owner.auth), status)
    r = await api.client.get(f"/v1/offices/{office['id']}", headers=owner.auth)
    assert len(r.json()["members"]) == 2
    r = await api.client.post(url, json={"email": staff.email, "role": "staff"}, headers=owner.auth)
    assert r.status_code == 201 and len(r.json()["members"]) == 3


async def test_removing_members(api, assert_problem):
    owner, colleague, stranger = await api.register(), await api.register(), await api.register()
    office = await api.office(owner, (colleague, "practitioner"))
    url = f"/v1/offices/{office['id']}/members"
    assert_problem(await api.client.delete(f"{url}/{owner.id}", headers=colleague.auth), 403)
    assert_problem(await api.client.delete(f"{url}/{colleague.id}", headers=stranger.auth), 404)
    assert_problem(await api.client.delete(f"{url}/{owner.id}", headers=owner.auth), 409)
    assert_problem(await api.client.delete(f"{url}/{stranger.id}", headers=owner.auth), 404)
    r = await api.client.delete(f"{url}/{colleague.id}", headers=owner.auth)
    assert r.status_code == 204 and r.content == b""
    # the removed member no longer sees the office
    assert_problem(await api.client.get(f"/v1/offices/{office['id']}", headers=colleague.auth), 404)
    assert (await api.client.get("/v1/me", headers=colleague.auth)).json()["offices"] == []
    assert_problem(await api.client.delete(f"{url}/{colleague.id}", headers=owner.auth), 404)


async def test_office_pin_rotation(api, assert_problem, observed):
    owner, colleague, stranger, visitor = [await api.register() for _ in range(4)]
    office = await api.office(owner, (colleague, "practitioner"))
    url = f"/v1/offices/{office['id']}/share-pin/rotate"
    assert_problem(await api.client.post(url, headers=colleague.auth), 403)
    assert_problem(await api.client.post(url, headers=stranger.auth), 404)
    r = await api.client.post(url, headers=owner.auth)
    assert r.status_code == 200
    new_pin = r.json()["pin"]
    assert new_pin != office["share_pin"]
    [rotated] = await observed.wait("identity.share_pin.rotated")  # only the owner's rotation, once
    assert rotated.data == {"owner_kind": "office", "owner_id": office["id"], "rotated_by": owner.id}
    assert new_pin.replace("-", "") not in rotated.model_dump_json()
    assert (await api.client.get(f"/v1/offices/{office['id']}", headers=colleague.auth)).json()["share_pin"] == new_pin
    assert_problem(await api.client.post("/v1/connections", json={"pin": office["share_pin"]}, headers=visitor.auth),
                   404)
    conn = await api.connect(visitor, new_pin)
    assert conn["target_kind"] == "office" and conn["target_id"] == office["id"]


async def test_a_member_leaves_an_office_but_the_owner_cannot(api, assert_problem, observed):
    owner, colleague, other = await api.register(), await api.register(), await api.register()
    office = await api.office(owner, (colleague, "practitioner"), (other, "practitioner"))
    url = f"/v1/offices/{office['id']}/members"
    # a member may remove only themselves
    assert_problem(await api.client.delete(f"{url}/{other.id}", headers=colleague.auth), 403)
    r = await api.client.delete(f"{url}/{colleague.id}", headers=colleague.auth)
    assert r.status_code == 204
    assert_problem(await api.client.get(f"/v1/offices/{office['id']}", headers=colleague.auth), 404)
    members = (await api.client.get(f"/v1/offices/{office['id']}", headers=owner.auth)).json()["members"]
    assert {m["account_id"] for m in members} == {owner.id, other.id}
    removed = await observed.wait("identity.office.member_removed")
    assert removed[-1].data["account_id"] == colleague.id
    # a former member is a stranger: 404, not 403
    assert_problem(await api.client.delete(f"{url}/{colleague.id}", headers=colleague.auth), 404)
    # the owner cannot leave, not even by removing themselves
    assert_problem(await api.client.delete(f"{url}/{owner.id}", headers=owner.auth), 409)
