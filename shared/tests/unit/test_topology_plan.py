"""The topology's plan is built from the services' own handler maps: it must follow them (no broker)."""

from clinishare_shared import topology


def test_every_consuming_service_binds_what_its_handlers_take() -> None:
    types = topology.consumed_types()
    assert set(types) == {"charts", "documents", "forms", "notify", "audit"}
    assert "identity.account.registered" in types["notify"] and "charts.share.granted" in types["notify"]
    assert "charts.share.revoked" in types["notify"] and "charts.share.granted" not in types["charts"]
    assert all(t.startswith("identity.") for t in types["charts"])


def test_one_policy_per_queue_with_the_limit_and_its_dead_letter_route() -> None:
    policy = topology.queue_policy("notify", "clinishare.events", 5)
    assert policy.name == "clinishare-queue.notify" and policy.pattern == "^notify$"
    assert policy.definition == {"delivery-limit": 5, "dead-letter-exchange": "clinishare.events.dlx",
                                 "dead-letter-routing-key": "notify"}
