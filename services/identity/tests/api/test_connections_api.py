import asyncio


async def test_connect_to_a_practitioner_by_pin(api, assert_problem):
    me, colleague = await api.register(), await api.register(name="Dr Colleague")
    pin = await api.pin(colleague)
    r = await api.client.post("/v1/connections", json={"pin": pin.lower().replace("-", " ")}, headers=me.auth)
    assert r.status_code == 201
    conn = r.json()
    assert {k: conn[k] for k in ("target_kind", "target_id", "target_name", "owner_id", "direction")} == {
        "target_kind": "practitioner", "target_id": colleague.id, "target_name": "Dr Colleague", "owner_id": me.id,
        "direction": "outgoing"}
    assert_problem(await api.client.post("/v1/connections", json={"pin": pin}, headers=me.auth), 409)


async def test_own_pins_are_refused(api, assert_problem):
    me = await api.register()
    office = await api.office(me)
    for pin in (await api.pin(me), office["share_pin"]):
        assert_problem(await api.client.post("/v1/connections", json={"pin": pin}, headers=me.auth), 422)
    assert (await api.client.get("/v1/connections", headers=me.auth)).json() == {"items": [], "next_cursor": None}


async def test_only_practitioners_connect(api, assert_problem):
    staff, doc = await api.register("staff"), await api.register()
    r = await api.client.post("/v1/connections", json={"pin": await api.pin(doc)}, headers=staff.auth)
    assert_problem(r, 403)


async def test_malformed_pin_is_422(api, assert_problem):
    me = await api.register()
    for pin in ("123", "ABCD-EFGH-!!", "x" * 64):
        assert_problem(await api.client.post("/v1/connections", json={"pin": pin}, headers=me.auth), 422)
    assert_problem(await api.client.post("/v1/connections", json={}, headers=me.auth), 422)


async def test_wrong_pins_are_404_then_throttled_even_for_the_right_pin(api, assert_problem):
    me, colleague, other = await api.register(), await api.register(), await api.register()
    good = await api.pin(colleague)
    for _ in range(10):
        assert_problem(await api.client.post("/v1/connections", json={"pin": "0000-0000-00"}, headers=me.auth), 404)
    r = await api.client.post("/v1/connections", json={"pin": good}, headers=me.auth)
    assert_problem(r, 429)
    assert 1 <= int(r.headers["retry-after"]) <= 900
    assert (await api.client.get("/v1/connections", headers=me.auth)).json()["items"] == []
    # the throttle is per account: someone else still connects
    await api.connect(other, good)


async def test_fifty_parallel_wrong_pins_get_at_most_ten_answers(api):
    me, colleague = await api.register(), await api.register()
    guesses = await asyncio.gather(*(api.client.post("/v1/connections", json={"pin": "0000-0000-00"},
                                                     headers=me.auth) for _ in range(50)))
    statuses = [r.status_code for r in guesses]
    assert set(statuses) <= {404, 429} and statuses.count(404) <= 10
    # the burst and what follows it together get exactly ten answers; then even the right PIN is refused
    answered = statuses.count(404)
    while (await api.client.post("/v1/connections", json={"pin": "0000-0000-00"},
                                 headers=me.auth)).status_code == 404:
        answered += 1
    assert answered == 10
    good = await api.client.post("/v1/connections", json={"pin": await api.pin(colleague)}, headers=me.auth)
    assert good.status_code == 429


async def test_successful_lookups_do_not_count_towards_the_throttle(api):
    me = await api.register()
    others = [await api.register() for _ in range(11)]
    for other in others:
        await api.connect(me, await api.pin(other))


async def test_rotated_pin_stops_working_at_once_and_the_new_one_works(api, assert_problem):
    me, colleague = await api.register(), await api.register()
    old = await api.pin(colleague)
    new = (await api.client.post("/v1/me/share-pin/rotate", headers=colleague.auth)).json()["pin"]
    assert_problem(await api.client.post("/v1/connections", json={"pin": old}, headers=me.auth), 404)
    assert (await api.connect(me, new))["target_id"] == colleague.id


async def test_listing_shows_both_directions_including_connections_to_my_office(api):
    me, colleague, visitor = await api.register(), await api.register(), await api.register()
    office = await api.office(me)
    mine = await api.connect(me, await api.pin(colleague))
    to_me = await api.connect(visitor, await api.pin(me))
    to_office = await api.connect(visitor, office["share_pin"])
    r = await api.client.get("/v1/connections", headers=me.auth)
    assert r.status_code == 200
    items = {c["id"]: c for c in r.json()["items"]}
    assert list(items) == [to_office["id"], to_me["id"], mine["id"]]  # newest first
    assert items[mine["id"]]["direction"] == "outgoing"
    assert items[to_me["id"]]["direction"] == "incoming" and items[to_me["id"]]["owner_id"] == visitor.id
    assert items[to_office["id"]]["direction"] == "incoming" and items[to_office["id"]]["target_kind"] == "office"
    # the colleague sees the incoming one, and nothing of the visitor's
    theirs = (await api.client.get("/v1/connections", headers=colleague.auth)).json()["items"]
    assert [(c["id"], c["direction"]) for c in theirs] == [(mine["id"], "incoming")]


async def test_connections_are_paginated(api):
    me = await api.register()
    for _ in range(3):
        await api.connect(me, await api.pin(await api.register()))
    first = (await api.client.get("/v1/connections", params={"limit": 2}, headers=me.auth)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (await api.client.get("/v1/connections", params={"limit": 2, "cursor": first["next_cursor"]},
                                   headers=me.auth)).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None


async def test_either_side_deletes_a_stranger_gets_404(api, assert_problem):
    me, colleague, stranger, office_owner = [await api.register() for _ in range(4)]
    office = await api.office(office_owner)
    by_owner = await api.connect(me, await api.pin(colleague))
    assert_problem(await api.client.delete(f"/v1/connections/{by_owner['id']}", headers=stranger.auth), 404)
    assert (await api.client.delete(f"/v1/connections/{by_owner['id']}", headers=me.auth)).status_code == 204
    assert_problem(await api.client.delete(f"/v1/connections/{by_owner['id']}", headers=me.auth), 404)

    by_target = await api.connect(me, await api.pin(colleague))  # allowed again once the first is gone
    assert (await api.client.delete(f"/v1/connections/{by_target['id']}", headers=colleague.auth)).status_code == 204

    to_office = await api.connect(me, office["share_pin"])
    assert (await api.client.delete(f"/v1/connections/{to_office['id']}", headers=office_owner.auth)).status_code == 204
    assert (await api.client.get("/v1/connections", headers=me.auth)).json()["items"] == []
