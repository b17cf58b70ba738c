"""Forms over HTTP: build, list, read, edit, share; who may do which."""

from __future__ import annotations

import asyncio

import pytest

from clinishare_shared.testing import wait_for

A, B, D, E, OFFICE = "prac-a", "prac-b", "prac-d", "prac-e", "office-o"
FIELDS = [{"type": "text", "key": "q1", "label": "Question", "required": True}]


async def test_every_endpoint_needs_a_token(clinic):
    for method, path in [("POST", "/v1/forms"), ("GET", "/v1/forms"), ("GET", "/v1/forms/x"),
                         ("PATCH", "/v1/forms/x"), ("POST", "/v1/forms/x/assignments"),
                         ("GET", "/v1/portal/forms"), ("POST", "/v1/assignments/x/submission"),
                         ("GET", "/v1/forms/x/submissions"), ("GET", "/v1/forms/x/submissions.csv")]:
        resp = await clinic.http.request(method, path, json={})
        assert resp.status_code == 401, (method, path)
        assert resp.headers["content-type"].startswith("application/problem+json")


async def test_create_returns_the_form_and_announces_the_share(clinic):
    form = await clinic.create_form(author_all=True)
    assert form["version"] == 1 and form["author_id"] == A and form["can_edit"] is True
    assert set(form) >= {"id", "title", "fields", "sharing", "version", "author_id", "can_edit", "created_at",
                         "updated_at"}
    assert form["sharing"]["practitioner_ids"] == [B] and form["sharing"]["office_ids"] == [OFFICE]
    assert [f["key"] for f in form["fields"]] == ["name_of_study", "weight", "smoker", "pain"]
    shared = await wait_for(lambda: [e for e in clinic.published if e.type == "forms.shared"])
    assert shared[0].data["form_id"] == form["id"]
    assert shared[0].data["added_practitioner_ids"] == [B] and shared[0].data["added_office_ids"] == [OFFICE]


async def test_a_private_form_announces_nothing(clinic):
    await clinic.create_form(allow_others=False)
    assert [e.type for e in await clinic.flush()] == ["forms.form.created"]  # and no forms.shared


async def test_allow_others_with_nobody_selected_is_refused(clinic):
    """SPEC 10.1: "Allow Other Practitioners" with nobody selected is a mistake, refused by name."""
    body = {"title": "t", "fields": FIELDS, "sharing": {"allow_others": True}}
    r = await clinic.http.post("/v1/forms", json=body, headers=clinic.as_(A))
    assert r.status_code == 422 and "nobody is selected" in r.text
    assert (await clinic.http.get("/v1/forms", headers=clinic.as_(A))).json()["items"] == []
    form = await clinic.create_form(allow_others=False)
    r = await clinic.http.patch(f"/v1/forms/{form['id']}", json={"sharing": {"allow_others": True}},
                                headers=clinic.as_(A))
    assert r.status_code == 422 and "nobody is selected" in r.text


@pytest.mark.parametrize("fields", [
    [],
    [{"type": "text", "key": "a", "label": "A"}, {"type": "textarea", "key": "a", "label": "B"}],
    [{"type": "choice", "key": "c", "label": "C", "options": []}],
    [{"type": "rating", "key": "r", "label": "R"}],
    [{"type": "scale", "key": "s", "label": "S", "min": 5, "max": 5}],
    [{"type": "number", "key": "n", "label": "N", "min": 3, "max": 1}],
    [{"type": "text", "key": "1bad key", "label": "K"}],
])
async def test_malformed_forms_are_422(clinic, fields):
    resp = await clinic.http.post("/v1/forms", json={"title": "x", "fields": fields}, headers=clinic.as_(A))
    assert resp.status_code == 422, resp.text


async def test_recipients_must_be_on_the_sharing_list(clinic):
    body = {"title": "t", "fields": FIELDS,
            "sharing": {"allow_others": True, "practitioner_ids": [B, E], "office_ids": [OFFICE, "office-x"]}}
    resp = await clinic.http.post("/v1/forms", json=body, headers=clinic.as_(A))
    assert resp.status_code == 422
    assert resp.json()["invalid_ids"] == [E, "office-x"]
    # B did not connect back to A: A is not on B's list
    body = {"title": "t", "fields": FIELDS, "sharing": {"allow_others": True, "practitioner_ids": [A]}}
    resp = await clinic.http.post("/v1/forms", json=body, headers=clinic.as_(B))
    assert resp.json()["invalid_ids"] == [A]
    listed = await clinic.http.get("/v1/forms", headers=clinic.as_(A))
    assert listed.json()["items"] == []


async def test_list_and_read_follow_the_share(clinic):
    shared = await clinic.create_form(title="shared")
    private = await clinic.create_form(title="private", allow_others=False)
    own_b = await clinic.create_form(who=B, title="b's own", practitioner_ids=(), office_ids=(), allow_others=False)

    async def listing(who):
        resp = await clinic.http.get("/v1/forms", headers=clinic.as_(who))
        assert resp.status_code == 200
        return {f["title"]: f["can_edit"] for f in resp.json()["items"]}

    assert await listing(A) == {"shared": True, "private": True}
    assert await listing(B) == {"shared": False, "b's own": True}
    assert await listing(D) == {"shared": False}  # through the office
    assert await listing(E) == {}
    for who, form, status in [(B, shared, 200), (D, shared, 200), (E, shared, 404), (B, private, 404),
                              (A, own_b, 404), (A, {"id": "000000000000000000000000"}, 404)]:
        resp = await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(who))
        assert resp.status_code == status, (who, form.get("title"))
    resp = await clinic.http.get(f"/v1/forms/{shared['id']}", headers=clinic.as_(B))
    assert resp.json()["can_edit"] is False
    # a patient token is the wrong kind of account for practitioner endpoints
    assert (await clinic.http.get("/v1/forms", headers=clinic.as_("pat-a", "patient"))).status_code == 403


async def test_list_is_paginated_newest_first(clinic):
    ids = [(await clinic.create_form(title=f"f{i}"))["id"] for i in range(3)]
    first = (await clinic.http.get("/v1/forms?limit=2", headers=clinic.as_(A))).json()
    assert [f["id"] for f in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    second = (await clinic.http.get(f"/v1/forms?limit=2&cursor={first['next_cursor']}", headers=clinic.as_(A))).json()
    assert [f["id"] for f in second["items"]] == [ids[0]] and second["next_cursor"] is None


async def test_only_the_author_edits(clinic):
    form = await clinic.create_form()
    patch = {"title": "renamed"}
    assert (await clinic.http.patch(f"/v1/forms/{form['id']}", json=patch, headers=clinic.as_(B))).status_code == 403
    assert (await clinic.http.patch(f"/v1/forms/{form['id']}", json=patch, headers=clinic.as_(D))).status_code == 403
    assert (await clinic.http.patch(f"/v1/forms/{form['id']}", json=patch, headers=clinic.as_(E))).status_code == 404
    resp = await clinic.http.patch(f"/v1/forms/{form['id']}", json=patch, headers=clinic.as_(A))
    assert resp.status_code == 200 and resp.json()["title"] == "renamed"
    bad_fields = {"fields": [{"type": "choice", "key": "c", "label": "C"}]}
    assert (await clinic.http.patch(f"/v1/forms/{form['id']}", json=bad_fields,
                                    headers=clinic.as_(A))).status_code == 422


async def test_editing_fields_makes_a_new_version_and_sharing_changes_are_announced(clinic):
    form = await clinic.create_form(allow_others=False, practitioner_ids=(), office_ids=())
    resp = await clinic.http.patch(f"/v1/forms/{form['id']}", json={"fields": FIELDS}, headers=clinic.as_(A))
    assert resp.json()["version"] == 2 and resp.json()["fields"][0]["key"] == "q1"
    new_sharing = {"allow_others": True, "practitioner_ids": [B], "office_ids": [OFFICE]}
    resp = await clinic.http.patch(f"/v1/forms/{form['id']}", json={"sharing": new_sharing}, headers=clinic.as_(A))
    assert resp.status_code == 200 and resp.json()["version"] == 2
    assert resp.json()["sharing"]["practitioner_ids"] == [B]
    shared = await wait_for(lambda: [e for e in clinic.published if e.type == "forms.shared"])
    assert shared[-1].data["added_practitioner_ids"] == [B] and shared[-1].data["added_office_ids"] == [OFFICE]
    bad = {"sharing": {"allow_others": True, "practitioner_ids": [B, E]}}
    resp = await clinic.http.patch(f"/v1/forms/{form['id']}", json=bad, headers=clinic.as_(A))
    assert resp.status_code == 422 and resp.json()["invalid_ids"] == [E]
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(B))).status_code == 200


async def test_creating_and_editing_are_announced_for_analytics_with_ids_and_field_names(clinic):
    refused = await clinic.http.post("/v1/forms", json={"title": "x", "fields": []}, headers=clinic.as_(A))
    assert refused.status_code == 422
    form = await clinic.create_form(allow_others=False, practitioner_ids=(), office_ids=())
    path = f"/v1/forms/{form['id']}"
    assert (await clinic.http.patch(path, json={"title": "x"}, headers=clinic.as_(B))).status_code in (403, 404)
    assert (await clinic.http.patch(path, json={"title": form["title"]}, headers=clinic.as_(A))).status_code == 200
    assert (await clinic.http.patch(path, json={"sharing": {"allow_others": True, "practitioner_ids": [B, E]}},
                                    headers=clinic.as_(A))).status_code == 422
    resp = await clinic.http.patch(path, json={"fields": FIELDS}, headers=clinic.as_(A))
    assert resp.status_code == 200

    def lifecycle():
        return [e for e in clinic.published if e.type in ("forms.form.created", "forms.form.updated")]

    await wait_for(lambda: len(lifecycle()) >= 2, message="created and updated")
    created, updated = lifecycle()
    assert created.data == {"form_id": form["id"], "author_id": A, "version": 1}
    assert updated.data == {"form_id": form["id"], "author_id": A, "version": 2, "changed_fields": ["fields"]}
    # the refused create, the forbidden, the unchanged and the refused edit announced nothing
    await clinic.flush()
    assert len(lifecycle()) == 2
    assert "Question" not in updated.model_dump_json()


async def test_turning_allow_others_off_stops_others_at_once(clinic):
    form = await clinic.create_form(others_all=True)
    await clinic.assign_and_submit(form["id"], B)
    await clinic.assign_and_submit(form["id"], D)
    off = {"sharing": {"allow_others": False, "practitioner_ids": [B], "office_ids": [OFFICE],
                       "others_see_all_submissions": True}}
    assert (await clinic.http.patch(f"/v1/forms/{form['id']}", json=off, headers=clinic.as_(A))).status_code == 200
    assert (await clinic.assign(form["id"], B)).status_code == 404
    assert (await clinic.assign(form["id"], D)).status_code == 404
    assert (await clinic.http.get(f"/v1/forms/{form['id']}", headers=clinic.as_(B))).status_code == 404
    assert (await clinic.http.get("/v1/forms", headers=clinic.as_(B))).json()["items"] == []
    assert (await clinic.http.patch(f"/v1/forms/{form['id']}", json={"title": "x"},
                                    headers=clinic.as_(B))).status_code == 404
    # the practitioner who assigned a submission always sees it; the others' no longer
    assert await clinic.visible_patients(form["id"], B) == {"pat-b"}
    assert await clinic.visible_patients(form["id"], D) == {"pat-d"}


async def test_reads_carry_an_etag_and_a_stale_if_match_is_412_changing_nothing(clinic):
    form = await clinic.create_form()
    url = f"/v1/forms/{form['id']}"
    read = await clinic.http.get(url, headers=clinic.as_(A))
    etag = read.headers["etag"]
    assert etag.startswith('"') and (await clinic.http.get(url, headers=clinic.as_(A))).headers["etag"] == etag
    first = await clinic.http.patch(url, json={"title": "one"}, headers={**clinic.as_(A), "If-Match": etag})
    assert first.status_code == 200 and first.headers["etag"] != etag
    stale = await clinic.http.patch(url, json={"title": "two"}, headers={**clinic.as_(A), "If-Match": etag})
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"
    after = await clinic.http.get(url, headers=clinic.as_(A))
    assert after.json()["title"] == "one" and after.headers["etag"] == first.headers["etag"]
    # the current tag (or *) is accepted; a sharing-only change moves the tag too
    r = await clinic.http.patch(url, json={"title": "three"}, headers={**clinic.as_(A), "If-Match": after.headers["etag"]})
    assert r.status_code == 200
    assert (await clinic.http.patch(url, json={"title": "four"}, headers={**clinic.as_(A), "If-Match": "*"})).status_code == 200


async def test_parallel_edits_without_if_match_all_apply(clinic):
    """Without If-Match an edit applies to whatever version is current: a write that lost the race reads
    the form again and decides again (retry.optimistic), so every edit lands, each as its own version."""
    form = await clinic.create_form()
    url = f"/v1/forms/{form['id']}"
    titles = [f"title {i}" for i in range(4)]
    answers = await asyncio.gather(*(clinic.http.patch(url, json={"title": t}, headers=clinic.as_(A))
                                     for t in titles))
    assert [r.status_code for r in answers] == [200] * len(titles), [r.text for r in answers]
    final = (await clinic.http.get(url, headers=clinic.as_(A))).json()
    assert final["version"] == 1 + len(titles) and final["title"] in titles
    updated = [e for e in await clinic.flush() if e.type == "forms.form.updated"]
    assert sorted(e.data["version"] for e in updated) == list(range(2, 2 + len(titles)))
