"""With the real broker: an event written by the API reaches a queue bound to identity.#."""

import httpx
import pytest

from clinishare_shared.bus.rabbit import RabbitBus
from clinishare_shared.testing import LiveServer, delete_broker_objects, wait_for
from clinishare_identity.app import create_app


@pytest.fixture
async def rabbit_names(amqp_url, unique):
    exchange, queue = f"test.{unique}", f"test.identity-observer.{unique}"
    yield exchange, queue
    await delete_broker_objects(amqp_url, queues=[queue], exchanges=[exchange])


async def test_account_registered_reaches_a_bound_queue(settings, mongo_client, amqp_url, rabbit_names):
    exchange, queue = rabbit_names
    settings = settings.model_copy(update={"amqp_url": amqp_url, "event_exchange": exchange})
    observer = RabbitBus(amqp_url, exchange=exchange)
    await observer.start()
    received = []

    async def handle(event):
        received.append(event)

    try:
        await observer.subscribe(queue, ["identity.#"], handle)
        async with LiveServer(create_app(settings, mongo_client=mongo_client)) as server, \
                httpx.AsyncClient(base_url=server.url) as client:
            r = await client.post("/v1/accounts", json={"email": "rabbit@clinic.example.org", "password": "warren deep 42",
                                                        "name": "Dr Rabbit", "kind": "practitioner"})
            assert r.status_code == 201
            assert (await client.get("/readyz")).json()["checks"] == {"database": True, "broker": True}
            await wait_for(lambda: received, message="identity.account.registered over RabbitMQ")
    finally:
        await observer.close()
    event = received[0]
    assert event.type == "identity.account.registered" and event.source == "identity"
    assert event.data["account_id"] == r.json()["id"]
