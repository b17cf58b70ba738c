import jwt


async def test_register_and_read_a_patient(api):
    doc = await api.register()
    r = await api.client.post("/v1/patients", json={"name": "Ada Lovelace", "email": "ada@mail.example.org",
                                                    "date_of_birth": "1985-12-10"}, headers=doc.auth)
    assert r.status_code == 201
    patient = r.json()
    assert {k: patient[k] for k in ("name", "email", "date_of_birth", "care_team", "has_portal_account")} == {
        "name": "Ada Lovelace", "email": "ada@mail.example.org", "date_of_birth": "1985-12-10",
        "care_team": [doc.id], "has_portal_account": False}
    r = await api.client.get(f"/v1/patients/{patient['id']}", headers=doc.auth)
    assert r.status_code == 200 and r.json() == patient


async def test_patients_outside_my_care_are_404(api, assert_problem):
    doc, other, staff = await api.register(), await api.register(), await api.register("staff")
    patient = await api.patient(doc)
    for user in (other, staff):
        assert_problem(await api.client.get(f"/v1/patients/{patient['id']}", headers=user.auth), 404)
    assert_problem(await api.client.get("/v1/patients/does-not-exist", headers=doc.auth), 404)
    assert_problem(await api.client.post("/v1/patients", json={"name": "X", "email": "x@mail.example.org"},
                                         headers=staff.auth), 403)


async def test_list_is_mine_newest_first_and_searchable(api):
    doc, other = await api.register(), await api.register()
    ada = await api.patient(doc, "Ada Lovelace")
    alan = await api.patient(doc, "Alan Turing")
    grace = await api.patient(doc, "Grace Hopper")
    await api.patient(other, "Adam Other")

    r = await api.client.get("/v1/patients", headers=doc.auth)
    assert [p["id"] for p in r.json()["items"]] == [grace["id"], alan["id"], ada["id"]]
    r = await api.client.get("/v1/patients", params={"q": "LOVE"}, headers=doc.auth)
    assert [p["id"] for p in r.json()["items"]] == [ada["id"]]
    r = await api.client.get("/v1/patients", params={"q": "a.*"}, headers=doc.auth)  # literal, not a regex
    assert r.json()["items"] == []
    page = (await api.client.get("/v1/patients", params={"limit": 2}, headers=doc.auth)).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (await api.client.get("/v1/patients", params={"limit": 2, "cursor": page["next_cursor"]},
                                 headers=doc.auth)).json()
    assert [p["id"] for p in rest["items"]] == [ada["id"]] and rest["next_cursor"] is None


async def test_care_team_add_needs_the_sharing_list(api, assert_problem):
    doc, partner, stranger, outsider = [await api.register() for _ in range(4)]
    await api.office(doc, (partner, "practitioner"))
    patient = await api.patient(doc)
    url = f"/v1/patients/{patient['id']}/care-team"

    problem = assert_problem(await api.client.post(url, json={"practitioner_id": stranger.id}, headers=doc.auth), 422)
    assert problem["invalid_ids"] == [stranger.id]
    assert (await api.client.get(f"/v1/patients/{patient['id']}", headers=doc.auth)).json()["care_team"] == [doc.id]

    assert_problem(await api.client.post(url, json={"practitioner_id": partner.id}, headers=outsider.auth), 404)
    assert_problem(await api.client.post(url, json={"practitioner_id": "bad"}, headers=doc.auth), 422)

    r = await api.client.post(url, json={"practitioner_id": partner.id}, headers=doc.auth)
    assert r.status_code == 200 and r.json()["care_team"] == [doc.id, partner.id]
    assert_problem(await api.client.post(url, json={"practitioner_id": partner.id}, headers=doc.auth), 409)
    # the new member now sees the patient
    assert (await api.client.get(f"/v1/patients/{patient['id']}", headers=partner.auth)).status_code == 200
    assert [p["id"] for p in (await api.client.get("/v1/patients", headers=partner.auth)).json()["items"]] == [
        patient["id"]]


async def test_portal_invite_activation_and_patient_login(api, assert_problem):
    doc, stranger = await api.register(), await api.register()
    patient = await api.patient(doc, "Ada Lovelace")
    assert_problem(await api.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=stranger.auth), 404)
    r = await api.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=doc.auth)
    assert r.status_code == 201
    token = r.json()["invite_token"]
    assert len(token) >= 22  # at least 128 bits, URL-safe base64

    assert_problem(await api.client.post("/v1/portal/activate", json={"invite_token": token, "password": "short"}), 422)
    local = patient["email"].split("@")[0]
    for password, rule in (("1234567890", "common"), (f"I am {local}!", "contains_email")):
        r = await api.client.post("/v1/portal/activate", json={"invite_token": token, "password": password})
        assert assert_problem(r, 422)["rule"] == rule
    r = await api.client.post("/v1/portal/activate", json={"invite_token": token, "password": "patient pass 42"})
    assert r.status_code == 201
    account = r.json()
    assert account["id"] == patient["id"] and account["kind"] == "patient"
    assert account["email"] == patient["email"] and account["name"] == "Ada Lovelace"

    access = await api.login(patient["email"], "patient pass 42")
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["sub"] == patient["id"] and claims["kind"] == "patient"
    headers = {"Authorization": f"Bearer {access}"}
    me = (await api.client.get("/v1/me", headers=headers)).json()
    assert me["kind"] == "patient" and me["offices"] == []
    assert (await api.client.get(f"/v1/patients/{patient['id']}", headers=headers)).json()["has_portal_account"]

    # single use; and a fresh invite for an activated patient is refused at redemption
    assert_problem(await api.client.post("/v1/portal/activate", json={"invite_token": token, "password": "another patient pass"}),
                   422)
    again = (await api.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=doc.auth)).json()
    assert_problem(await api.client.post("/v1/portal/activate", json={"invite_token": again["invite_token"],
                                                                      "password": "another patient pass"}), 409)
    await api.login(patient["email"], "patient pass 42")  # unchanged


async def test_a_new_invite_replaces_the_old_one(api, assert_problem):
    doc = await api.register()
    patient = await api.patient(doc)
    first = (await api.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=doc.auth)).json()
    second = (await api.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=doc.auth)).json()
    assert_problem(await api.client.post("/v1/portal/activate", json={"invite_token": first["invite_token"],
                                                                      "password": "patient pass 42"}), 422)
    r = await api.client.post("/v1/portal/activate", json={"invite_token": second["invite_token"],
                                                           "password": "patient pass 42"})
    assert r.status_code == 201


async def test_unknown_token_is_422(api, assert_problem):
    assert_problem(await api.client.post("/v1/portal/activate", json={"invite_token": "nope", "password": "long-enough"}),
                   422)


async def test_patient_accounts_cannot_join_offices(api, assert_problem):
    doc = await api.register()
    office = await api.office(doc)
    patient = await api.activate(doc, await api.patient(doc))
    staff = await api.register("staff")
    answers = []
    for email, role in ((patient.email, "staff"), (patient.email, "practitioner"), ("nobody@mail.example.org", "staff"),
                        (staff.email, "practitioner")):
        r = await api.client.post(f"/v1/offices/{office['id']}/members", json={"email": email, "role": role},
                                  headers=doc.auth)
        body = assert_problem(r, 422)
        answers.append((body["detail"], sorted(body)))
    # a patient's e-mail, an unknown one and a wrong role get the very same answer: no account-kind oracle
    assert len(set(map(str, answers))) == 1
    assert_problem(await api.client.post("/v1/offices", json={"name": "Mine"}, headers=patient.auth), 403)


async def test_bad_patient_input_is_422_and_changes_nothing(api, assert_problem):
    doc = await api.register()
    for body in ({"name": "", "email": "a@mail.example.org"}, {"name": "A", "email": "nope"},
                 {"name": "A", "email": "a@mail.example.org", "date_of_birth": "2999-01-01"}, {"name": "A"}):
        assert_problem(await api.client.post("/v1/patients", json=body, headers=doc.auth), 422)
    assert (await api.client.get("/v1/patients", headers=doc.auth)).json()["items"] == []


async def test_care_team_removal_and_the_last_member(api, assert_problem, observed):
    doc, partner, stranger = await api.register(), await api.register(), await api.register()
    await api.office(doc, (partner, "practitioner"))
    patient = await api.patient(doc)
    team_url = f"/v1/patients/{patient['id']}/care-team"
    assert (await api.client.post(team_url, json={"practitioner_id": partner.id}, headers=doc.auth)).status_code == 200
    # not in the care team: the patient does not exist for them
    assert_problem(await api.client.delete(f"{team_url}/{partner.id}", headers=stranger.auth), 404)
    assert_problem(await api.client.delete(f"{team_url}/{stranger.id}", headers=doc.auth), 404)
    # a member removes another member
    assert (await api.client.delete(f"{team_url}/{partner.id}", headers=doc.auth)).status_code == 204
    assert_problem(await api.client.get(f"/v1/patients/{patient['id']}", headers=partner.auth), 404)
    changed = await observed.wait("identity.patient.care_team_changed", 2)
    assert changed[-1].data["removed"] == [partner.id] and changed[-1].data["care_team"] == [doc.id]
    # the last member cannot leave
    assert_problem(await api.client.delete(f"{team_url}/{doc.id}", headers=doc.auth), 409)
    # a member removes themselves
    assert (await api.client.post(team_url, json={"practitioner_id": partner.id}, headers=doc.auth)).status_code == 200
    assert (await api.client.delete(f"{team_url}/{partner.id}", headers=partner.auth)).status_code == 204
    assert (await api.client.get(f"/v1/patients/{patient['id']}", headers=doc.auth)).json()["care_team"] == [doc.id]
