import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel, ValidationError

from clinishare_shared.ids import Id, PathId, is_id
from clinishare_shared.mongo import new_id
from clinishare_shared.problems import install_problem_handlers

GOOD = [new_id(), "dr-a", "patient_1", "6b09e0c2-6a4e-4b9e-9a51-0f0e0e0e0e0e:65f000000000000000000000"]
BAD = ["", "../me", "a/b", "a.b", "%2e%2e", "x?y", "x#y", "a b", "é", "x" * 129]


class Body(BaseModel):
    patient_id: Id


@pytest.mark.parametrize("value", GOOD)
def test_ids_we_mint_and_use_are_ids(value: str) -> None:
    assert is_id(value) and Body(patient_id=value).patient_id == value


@pytest.mark.parametrize("value", BAD)
def test_anything_that_could_change_a_url_is_not_an_id(value: str) -> None:
    assert not is_id(value)
    with pytest.raises(ValidationError):
        Body(patient_id=value)


@pytest.fixture
def client() -> AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: PathId) -> dict[str, str]:
        return {"id": thing_id}

    @app.post("/things")
    async def post_thing(body: Body) -> dict[str, str]:
        return {"id": body.patient_id}

    return AsyncClient(transport=ASGITransport(app=app), base_url="http://t")


async def test_bad_id_in_a_path_is_404_in_a_body_422(client: AsyncClient) -> None:
    assert (await client.get("/things/dr-a")).json() == {"id": "dr-a"}
    for bad in ("a.b", "x" * 129, "%C3%A9"):
        r = await client.get(f"/things/{bad}")
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), bad
    r = await client.post("/things", json={"patient_id": "../me"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "patient_id"]


async def test_the_directory_never_puts_a_bad_id_into_identitys_url() -> None:
    import httpx

    from clinishare_shared.directory import IdentityDirectory

    asked: list[str] = []

    def identity(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)  # "/v1/patients/../me" would arrive as "/v1/me": the caller's own account
        return httpx.Response(200, json={"id": "someone", "name": "Dr Someone"})

    directory = IdentityDirectory("http://identity", transport=httpx.MockTransport(identity))
    assert await directory.patient("../me", authorization="Bearer t") is None
    assert asked == []
    assert await directory.patient("p1", authorization="Bearer t") is not None
    assert asked == ["/v1/patients/p1"]
    await directory.aclose()
