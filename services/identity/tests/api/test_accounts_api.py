import asyncio
from typing import Any

import jwt
import pytest

from clinishare_shared.auth import TokenSigner


AUTHENTICATED = [
    ("GET", "/v1/me"), ("GET", "/v1/me/share-pin"), ("POST", "/v1/me/share-pin/rotate"),
    ("POST", "/v1/offices"), ("GET", "/v1/offices/65f000000000000000000000"),
    ("POST", "/v1/offices/65f000000000000000000000/members"),
    ("DELETE", "/v1/offices/65f000000000000000000000/members/65f000000000000000000001"),
    ("POST", "/v1/offices/65f000000000000000000000/share-pin/rotate"),
    ("POST", "/v1/connections"), ("GET", "/v1/connections"), ("DELETE", "/v1/connections/65f000000000000000000000"),
    ("GET", "/v1/sharing-list"), ("POST", "/v1/patients"), ("GET", "/v1/patients"),
    ("GET", "/v1/patients/65f000000000000000000000"),
    ("POST", "/v1/patients/65f000000000000000000000/care-team"),
    ("POST", "/v1/patients/65f000000000000000000000/portal-invite"),
]


async def test_every_authenticated_endpoint_answers_401_without_or_with_a_bad_token(api, assert_problem):
    foreign = TokenSigner.generate().issue("65f000000000000000000009", "practitioner")
    for method, path in AUTHENTICATED:
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": f"Bearer {foreign}"}):
            r = await api.client.request(method, path, headers=headers, json={})
            assert_problem(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"


async def test_register_login_and_me(api):
    r = await api.client.post("/v1/accounts", json={"email": "Grace@Clinic.example.org", "password": "s3cret-pass-99",
                                                    "name": "Dr Grace", "kind": "practitioner"})
    assert r.status_code == 201
    account = r.json()
    assert set(account) == {"id", "email", "name", "kind", "created_at"}
    assert account["kind"] == "practitioner" and account["name"] == "Dr Grace"

    r = await api.client.post("/v1/auth/token", json={"email": "grace@clinic.EXAMPLE.org", "password": "s3cret-pass-99"})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == account["id"] and claims["kind"] == "practitioner"
    assert {"iss", "aud", "iat", "exp", "jti"} <= set(claims)

    r = await api.client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200
    assert r.json() == {**account, "offices": []}


async def test_tokens_verify_against_the_published_jwks(api):
    user = await api.register()
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(user.token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and "d" not in key
    claims = jwt.decode(user.token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="clinishare")
    assert claims["sub"] == user.id


async def test_wrong_password_or_unknown_email_is_401(api, assert_problem):
    user = await api.register()
    for body in ({"email": user.email, "password": "wrong-password"},
                 {"email": "nobody@clinic.example.org", "password": "whatever1"}):
        assert_problem(await api.client.post("/v1/auth/token", json=body), 401)


async def test_duplicate_email_is_409_case_insensitively(api, assert_problem):
    user = await api.register()
    r = await api.client.post("/v1/accounts", json={"email": user.email.upper(), "password": "another pass 42",
                                                    "name": "Copy", "kind": "staff"})
    assert_problem(r, 409)
    # the original account still logs in with its own password
    await api.login(user.email)


@pytest.mark.parametrize("body", [
    {"email": "x@clinic.example.org", "password": "short", "name": "X", "kind": "practitioner"},
    {"email": "x@clinic.example.org", "password": "long enough", "name": "X", "kind": "patient"},
    {"email": "not-an-email", "password": "long enough", "name": "X", "kind": "staff"},
    {"email": "x@clinic.example.org", "password": "long enough", "name": "", "kind": "staff"},
])
async def test_bad_account_input_is_422_and_creates_nothing(api, assert_problem, body):
    problem = assert_problem(await api.client.post("/v1/accounts", json=body), 422)
    assert "long enough" not in str(problem)  # the input is not echoed back
    assert_problem(await api.client.post("/v1/auth/token", json={"email": body["email"], "password": body["password"]}),
                   401)


@pytest.mark.parametrize(("password", "rule"), [
    ("password", "min_length"), ("nine char", "min_length"), ("qwertyuiop", "common"), ("1q2w3e4r5t", "common"),
    ("dr.grace.h is me", "contains_email"), ("DR.GRACE.H-2025!", "contains_email"),
])
async def test_a_password_breaking_a_rule_is_422_naming_the_rule_and_creates_nothing(api, assert_problem, password,
                                                                                     rule):
    email = "dr.grace.h@clinic.example.org"
    problem = assert_problem(await api.client.post("/v1/accounts", json={
        "email": email, "password": password, "name": "Grace", "kind": "practitioner"}), 422)
    assert problem["rule"] == rule and problem["detail"]
    assert password not in problem.values()  # not echoed back
    r = await api.client.post("/v1/accounts", json={"email": email, "password": "a fine long one", "name": "Grace",
                                                    "kind": "practitioner"})
    assert r.status_code == 201  # the refused attempt left nothing behind


async def test_practitioner_pin_is_shown_grouped_and_rotation_replaces_it(api, observed):
    doc = await api.register()
    pin = await api.pin(doc)
    assert len(pin) == 12 and pin[4] == pin[9] == "-"
    assert await api.pin(doc) == pin  # stable until rotated
    r = await api.client.post("/v1/me/share-pin/rotate", headers=doc.auth)
    assert r.status_code == 200
    new = r.json()["pin"]
    assert new != pin and await api.pin(doc) == new
    [rotated] = await observed.wait("identity.share_pin.rotated")  # for analytics; never the PIN
    assert rotated.data == {"owner_kind": "practitioner", "owner_id": doc.id, "rotated_by": doc.id}
    raw = rotated.model_dump_json()
    for p in (pin, new):
        assert p.replace("-", "") not in raw and p not in raw


async def test_staff_and_patients_have_no_practitioner_pin(api, assert_problem, observed):
    staff = await api.register("staff")
    assert_problem(await api.client.get("/v1/me/share-pin", headers=staff.auth), 403)
    assert_problem(await api.client.post("/v1/me/share-pin/rotate", headers=staff.auth), 403)
    assert observed.of("identity.share_pin.rotated") == []  # a refused rotation announces nothing
    doc = await api.register()
    patient = await api.patient(doc)
    token = (await api.client.post(f"/v1/patients/{patient['id']}/portal-invite", headers=doc.auth)).json()["invite_token"]
    r = await api.client.post("/v1/portal/activate", json={"invite_token": token, "password": "patient pass 42"})
    assert r.status_code == 201
    patient_token = await api.login(patient["email"], "patient pass 42")
    r = await api.client.get("/v1/me/share-pin", headers={"Authorization": f"Bearer {patient_token}"})
    assert_problem(r, 403)


async def test_health_and_readiness(api):
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    r = await api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": True, "broker": True}


async def _guess(api, email: str, password: str = "wrong password 1") -> Any:
    return await api.client.post("/v1/auth/token", json={"email": email, "password": password})


async def test_thirty_parallel_wrong_log_ins_let_at_most_five_through_then_even_the_right_password_is_429(
        api, assert_problem):
    user = await api.register()
    answers = await asyncio.gather(*[_guess(api, user.email) for _ in range(30)])
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(401) <= 5 and statuses.count(401) + statuses.count(429) == 30, statuses
    throttled = next(r for r in answers if r.status_code == 429)
    assert 1 <= int(throttled.headers["retry-after"]) <= 900
    # a burst may be refused beyond need (never below it): the failures answered so far still count
    for _ in range(5 - statuses.count(401)):
        assert (await _guess(api, user.email)).status_code == 401
    body = assert_problem(await _guess(api, user.email.upper(), "correct horse battery"), 429)
    assert body["detail"] == "too many failed log-ins for this e-mail; try again later"
    # other e-mails are not affected
    other = await api.register()
    await api.login(other.email)


async def test_an_unknown_e_mail_is_throttled_with_the_same_answer(api, assert_problem):
    user = await api.register()
    answers = {}
    for email in (user.email, "nobody-here@clinic.example.org"):
        for _ in range(5):
            assert_problem(await _guess(api, email), 401)
        r = await _guess(api, email)
        answers[email] = (assert_problem(r, 429), r.headers["retry-after"])
    known, unknown = answers.values()
    assert {k: v for k, v in known[0].items() if k != "retry_after"} == \
        {k: v for k, v in unknown[0].items() if k != "retry_after"}


async def test_successful_log_ins_do_not_count(api):
    user = await api.register()
    for _ in range(4):
        assert (await _guess(api, user.email)).status_code == 401
    for _ in range(5):
        await api.login(user.email)
    assert (await _guess(api, user.email)).status_code == 401  # the fifth failure is still answered
    assert (await _guess(api, user.email)).status_code == 429


async def test_sign_up_with_an_idempotency_key_is_replayed_not_refused_as_a_duplicate(api):
    body = {"email": "retry@clinic.example.org", "password": "a fine long one", "name": "Dr Retry",
            "kind": "practitioner"}
    first = await api.client.post("/v1/accounts", json=body, headers={"Idempotency-Key": "signup-1"})
    again = await api.client.post("/v1/accounts", json=body, headers={"Idempotency-Key": "signup-1"})
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    other = await api.client.post("/v1/accounts", json={**body, "password": "another long one"},
                                  headers={"Idempotency-Key": "signup-1"})
    assert other.status_code == 422
    assert (await api.client.post("/v1/accounts", json=body)).status_code == 409  # no key: a new request
