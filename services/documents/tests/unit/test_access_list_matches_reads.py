"""Who can see this agrees with the read check: for generated set-ups (recipient keys of every kind with
and without expiry, office rosters with practitioners and staff, the owner's connections), the access list
is exactly the set of principals whose read succeeds, with the grounds that read finds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinishare_documents.domain.stored import Document, Expiry
from clinishare_documents.service import read_grounds, readers
from clinishare_shared.events import ConnectionCreated, OfficeCreated, OfficeMember, make_event
from clinishare_shared.mongo import InProcessMongoClient
from clinishare_shared.projection import IdentityProjection

OWNER = "a"
KIND = {"b": "practitioner", "c": "practitioner", "s": "staff"}  # an account's kind never changes
ROLE = {"practitioner": "practitioner", "staff": "staff"}
PATIENTS = ["p1", "p2"]
OFFICES = ["o1", "o2"]
NOW = datetime.now(UTC)
# only practitioners have PINs and can be named (the sharing list holds practitioners and offices)
KEYS = (["practitioner:b", "practitioner:c"] + [f"patient:{p}" for p in PATIENTS]
        + [f"office:{o}:{a}" for o in OFFICES for a in ("practitioners", "staff")])

setup_st = st.fixed_dictionaries({
    "rosters": st.fixed_dictionaries({o: st.lists(st.sampled_from(["a", "b", "c", "s"]), unique=True)
                                      for o in OFFICES}),
    "connections": st.lists(st.sampled_from(["b", "c", "o1", "o2"]), unique=True),
    "keys": st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["none", "expired", "later"])),
})


async def _check(setup: dict[str, Any]) -> None:
    db = InProcessMongoClient()["agreement"]
    projection = IdentityProjection(db)

    async def feed(data: Any) -> None:
        await projection.handlers[data.event_type](make_event(data, source="identity", subject="s"))

    for office, roster in setup["rosters"].items():
        members = [OfficeMember(account_id=p, role=ROLE[KIND.get(p, "practitioner")]) for p in roster]
        await feed(OfficeCreated(office_id=office, owner_id="z", name=office, version=1, members=members))
    for i, target in enumerate(setup["connections"]):
        await feed(ConnectionCreated(connection_id=f"c{i}", owner_id=OWNER,
                                     target_kind="office" if target.startswith("o") else "practitioner",
                                     target_id=target))
    when = {"expired": NOW - timedelta(seconds=1), "later": NOW + timedelta(days=1)}
    doc = Document(id="d1", owner_id=OWNER, content_type="text/plain", size=1, sha256="x", file_id="f",
                   created_at=NOW, updated_at=NOW, share_keys=sorted(setup["keys"]),
                   expiries=[Expiry(key=k, expires_at=when[v]) for k, v in setup["keys"].items() if v in when])

    listed = await readers(projection=projection, doc=doc, now=NOW)
    reads = {}
    for kind, account in [*((k, a) for a, k in KIND.items()), *(("patient", p) for p in PATIENTS)]:
        found = await read_grounds(projection=projection, doc=doc, account_id=account, kind=kind, now=NOW)
        if found:
            reads[(kind, account)] = found
    assert {(r.kind, r.id) for r in listed} == set(reads)
    for reader, found in listed.items():
        assert sorted(map(repr, found)) == sorted(map(repr, reads[(reader.kind, reader.id)]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setup_st)
def test_access_list_is_exactly_who_can_read(setup: dict[str, Any]) -> None:
    asyncio.run(_check(setup))
