import asyncio

import pytest

from clinishare_shared.bus import InMemoryBus, PublishFailed, topic_matches
from clinishare_shared.events import Envelope


@pytest.mark.parametrize("pattern,key,expected", [
    ("identity.*", "identity.office", True),
    ("identity.*", "identity.office.created", False),
    ("identity.#", "identity.office.created", True),
    ("identity.#", "identity", True),
    ("#", "anything.at.all", True),
    ("#", "", True),
    ("*", "one", True),
    ("*", "one.two", False),
    ("*.*.created", "identity.office.created", True),
    ("*.*.created", "identity.created", False),
    ("#.created", "identity.office.created", True),
    ("#.created", "created", True),
    ("#.created", "identity.office.deleted", False),
    ("identity.#.created", "identity.created", True),
    ("identity.#.created", "identity.a.b.created", True),
    ("#.#", "a", True),
    ("a.#.b.#.c", "a.x.b.y.z.c", True),
    ("a.#.b.#.c", "a.x.c", False),
    ("identity.office.created", "identity.office.created", True),
    ("identity.office.created", "identity.office.create", False),
    ("identity.office", "identity.office.created", False),
    ("forms.shared", "forms", False),
])
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


async def test_unroutable_raises(make_envelope) -> None:
    bus = InMemoryBus()
    with pytest.raises(PublishFailed) as info:
        await bus.publish(make_envelope())
    assert info.value.unroutable
    bus.available = False
    with pytest.raises(PublishFailed) as info:
        await bus.publish(make_envelope())
    assert not info.value.unroutable
    assert not await bus.ping()


async def test_stream_stand_in_makes_every_event_routable(make_envelope) -> None:
    """What services get from make_bus: like the broker's stream bound to "#", nothing is unroutable."""
    bus = InMemoryBus(stream=True)
    event = make_envelope()
    await bus.publish(event)
    assert list(bus.published) == [event]
    bus.available = False
    with pytest.raises(PublishFailed):
        await bus.publish(make_envelope())


async def test_delivery_fanout_retries_and_dead_letters(make_envelope) -> None:
    bus = InMemoryBus(delivery_limit=3)
    attempts: dict[str, int] = {}
    got: list[Envelope] = []

    async def flaky(ev: Envelope) -> None:
        attempts[ev.id] = attempts.get(ev.id, 0) + 1
        if ev.subject == "poison" or attempts[ev.id] < 2:
            raise RuntimeError("fails")
        got.append(ev)

    async def other(ev: Envelope) -> None:
        got.append(ev)

    await bus.subscribe("q1", ["identity.#"], flaky)
    await bus.subscribe("q2", ["identity.connection.*"], other)
    ok, poison = make_envelope(subject="ok"), make_envelope(subject="poison")
    await bus.publish(ok)
    await bus.publish(poison)
    await bus.drain()
    assert attempts[ok.id] == 2 and attempts[poison.id] == 3
    assert [e.id for e in bus.dead_letters["q1"]] == [poison.id]
    assert "q2" not in bus.dead_letters
    assert sorted(e.id for e in got) == sorted([ok.id, ok.id, poison.id])
    assert list(bus.published) == [ok, poison]
    await bus.close()


async def test_drain_times_out_on_stuck_handler(make_envelope) -> None:
    bus = InMemoryBus()
    gate = asyncio.Event()

    async def stuck(ev: Envelope) -> None:
        await gate.wait()

    await bus.subscribe("q", ["#"], stuck)
    await bus.publish(make_envelope())
    with pytest.raises(asyncio.TimeoutError):
        await bus.drain(timeout=0.05)
    gate.set()
    await bus.drain()
    await bus.close()


async def test_handlers_receive_independent_copies(make_envelope) -> None:
    bus = InMemoryBus()
    seen: list[Envelope] = []

    async def h(ev: Envelope) -> None:
        ev.data["mutated"] = True
        seen.append(ev)

    await bus.subscribe("a", ["#"], h)
    await bus.subscribe("b", ["#"], h)
    ev = make_envelope()
    await bus.publish(ev)
    await bus.drain()
    assert len(seen) == 2 and seen[0] is not seen[1] and "mutated" not in ev.data
    await bus.close()


async def test_failed_and_dead_lettered_deliveries_are_counted(make_envelope) -> None:
    from prometheus_client import REGISTRY

    from clinishare_shared.bus.memory import InMemoryBus

    bus = InMemoryBus(delivery_limit=3)
    queue = "counted-failures"

    async def broken(event) -> None:
        raise RuntimeError("handler broke")

    event = make_envelope()
    labels = {"queue": queue, "type": event.type}
    failed = REGISTRY.get_sample_value("clinishare_events_failed_total", labels) or 0
    dead = REGISTRY.get_sample_value("clinishare_events_dead_lettered_total", labels) or 0
    await bus.subscribe(queue, [event.type], broken)
    await bus.publish(event)
    await bus.drain()
    assert REGISTRY.get_sample_value("clinishare_events_failed_total", labels) == failed + 3
    assert REGISTRY.get_sample_value("clinishare_events_dead_lettered_total", labels) == dead + 1
    assert (REGISTRY.get_sample_value("clinishare_events_consumed_total", labels) or 0) == 0
    await bus.close()


async def test_published_keeps_the_newest_events_only(make_envelope, monkeypatch: pytest.MonkeyPatch) -> None:
    """``make run`` publishes on this bus for as long as it runs: what it keeps for a look is bounded."""
    from clinishare_shared.bus import memory

    monkeypatch.setattr(memory, "PUBLISHED_KEPT", 3)
    bus = InMemoryBus(stream=True)
    events = [make_envelope() for _ in range(5)]
    for event in events:
        await bus.publish(event)
    assert list(bus.published) == events[-3:]


async def test_routing_answers_are_remembered(make_envelope) -> None:
    """Each publish asks every binding of every queue; the same pattern and type are worked out once."""
    bus = InMemoryBus()

    async def handler(event: Envelope) -> None:
        return None

    event = make_envelope()
    await bus.subscribe("remembered.q", ["nothing.here.#", "*." + event.type.split(".", 1)[1], "#.never"], handler)
    await bus.publish(event)
    before = topic_matches.cache_info()
    for _ in range(10):
        await bus.publish(event)
    after = topic_matches.cache_info()
    assert after.misses == before.misses and after.hits > before.hits
    assert topic_matches("charts.*.granted", "charts.share.granted") is True
