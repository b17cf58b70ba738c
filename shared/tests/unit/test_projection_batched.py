"""Several sharing lists at once (a listing that reaches the grants of many sharers) answer exactly what
one-by-one look-ups answer, with reads by ``_id`` only (the lookups, then the documents they name): no
query that FerretDB would answer with a scan, whatever the number of accounts."""

from __future__ import annotations

from typing import Any

from clinishare_shared.events import ConnectionCreated, ConnectionDeleted, OfficeCreated, OfficeMember, make_event
from clinishare_shared.mongo import scans_id_sets
from clinishare_shared.projection import IdentityProjection


async def _apply(proj: IdentityProjection, data: Any) -> None:
    await proj.handlers[data.event_type](make_event(data, source="identity", subject="s"))


class CountingDb:
    def __init__(self, db: Any) -> None:
        self._db, self.finds = db, []

    def __getitem__(self, name: str) -> Any:
        outer, coll = self, self._db[name]

        class Counting:
            def find(self, *args: Any, **kwargs: Any) -> Any:
                outer.finds.append(args[0] if args else kwargs.get("filter"))
                return coll.find(*args, **kwargs)

            def __getattr__(self, attr: str) -> Any:
                return getattr(coll, attr)

        return Counting()


async def test_sharing_lists_equal_one_by_one_and_read_only_by_id(db: Any) -> None:
    proj = IdentityProjection(db)
    await proj.ensure_indexes()
    await _apply(proj, OfficeCreated(office_id="o1", owner_id="a", name="North", version=1,
                                     members=[OfficeMember(account_id="a", role="practitioner"),
                                              OfficeMember(account_id="b", role="staff"),
                                              OfficeMember(account_id="c", role="practitioner")]))
    await _apply(proj, ConnectionCreated(connection_id="k1", owner_id="a", target_kind="practitioner", target_id="d"))
    await _apply(proj, ConnectionCreated(connection_id="k2", owner_id="c", target_kind="office", target_id="o9"))
    await _apply(proj, ConnectionCreated(connection_id="k3", owner_id="a", target_kind="practitioner", target_id="e"))
    await _apply(proj, ConnectionDeleted(connection_id="k3", owner_id="a", target_kind="practitioner", target_id="e",
                                         deleted_by="a"))
    accounts = ["a", "b", "c", "nobody"]
    one_by_one = {x: await proj.sharing_list(x) for x in accounts}
    counting = IdentityProjection(CountingDb(db))
    together = await counting.sharing_lists(accounts + ["a"])
    assert together == one_by_one
    # every read by _id (find_by_ids): bare look-ups on FerretDB, else sets of ids the index serves
    if await scans_id_sets(db["idp_links"]):
        assert counting.db.finds == []
    else:
        assert counting.db.finds and all(set(f) == {"_id"} and set(f["_id"]) == {"$in"} for f in counting.db.finds)
        # two rounds: one read of every lookup (offices and connections alike), then the documents they name
        assert len(counting.db.finds) == 3  # the lookups, the offices, the connections
        assert sorted(counting.db.finds[0]["_id"]["$in"]) == sorted(
            f"{kind}:{x}" for kind in ("offices", "connections") for x in ("a", "b", "c", "nobody"))
    assert "d" in together["a"].practitioners and "e" not in together["a"].practitioners  # deleted: gone
    assert together["nobody"].practitioners == {} and together["nobody"].offices == {}
    assert await counting.sharing_lists([]) == {}
