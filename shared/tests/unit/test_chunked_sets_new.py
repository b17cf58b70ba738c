"""``ChunkedSets.add(..., new=True)``: a key the caller expects to be new (a grant's notice lookup) gets its
first document by one insert instead of a find-and-modify; a key that exists after all (a redelivery,
several recipients of one grant at once) gets its values appended as before. On every engine."""

from __future__ import annotations

import asyncio
from typing import Any

from clinishare_shared.lookups import ChunkedSets


class Calls:
    """The write calls a collection receives, by method name."""

    def __init__(self, coll: Any) -> None:
        self.coll, self.names = coll, []
        for name in ("insert_one", "find_one_and_update", "update_one"):
            real = getattr(coll, name)

            async def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                self.names.append(_name)
                return await _real(*args, **kwargs)

            setattr(coll, name, counting)


async def test_a_new_key_is_one_insert_and_reads_back_as_appended_values(db: Any) -> None:
    sets = ChunkedSets(db["lookups"], "ids", chunk=8)
    calls = Calls(sets.coll)
    await sets.add("grant:g1", "n1", "n2", "n1", new=True)
    assert calls.names == ["insert_one"]  # no find-and-modify, nothing read back
    assert await sets.members(["grant:g1"]) == {"grant:g1": ["n1", "n2"]}  # each once, as $addToSet keeps them
    doc = await sets.coll.find_one({"_id": "grant:g1"})
    assert doc["n"] == 3 and doc["ids"] == ["n1", "n2"]  # n counts what was added, as an append's $inc does


async def test_a_key_that_exists_after_all_gets_its_values_appended(db: Any) -> None:
    sets = ChunkedSets(db["lookups"], "ids", chunk=8)
    await sets.add("grant:g1", "n1")
    calls = Calls(sets.coll)
    await sets.add("grant:g1", "n2", "n1", new=True)
    assert calls.names == ["insert_one", "find_one_and_update"]  # the insert failed on the key: appended
    assert sorted((await sets.members(["grant:g1"]))["grant:g1"]) == ["n1", "n2"]
    assert (await sets.coll.find_one({"_id": "grant:g1"}))["n"] == 3


async def test_many_writers_of_one_new_key_at_once_lose_nothing(db: Any) -> None:
    """The recipients of one grant are told at once: one insert wins, every other one appends."""
    sets = [ChunkedSets(db["lookups"], "ids", chunk=64) for _ in range(3)]  # replicas too
    await asyncio.gather(*(sets[i % 3].add("grant:g1", f"n{i}", new=True) for i in range(12)))
    assert sorted((await sets[0].members(["grant:g1"]))["grant:g1"]) == sorted(f"n{i}" for i in range(12))
    assert (await sets[0].coll.find_one({"_id": "grant:g1"}))["n"] == 12


async def test_values_that_fill_a_document_take_the_append_path_and_roll_over(db: Any) -> None:
    sets = ChunkedSets(db["lookups"], "ids", chunk=3)
    calls = Calls(sets.coll)
    await sets.add("grant:g1", *[f"n{i}" for i in range(5)], new=True)
    assert "insert_one" not in calls.names  # as many as a document holds: the usual appends, announced
    assert sorted((await sets.members(["grant:g1"]))["grant:g1"]) == [f"n{i}" for i in range(5)]
    assert (await sets.coll.find_one({"_id": "grant:g1"}))["more"] == 1


async def test_a_key_this_process_already_appends_to_is_not_tried_as_new(db: Any) -> None:
    sets = ChunkedSets(db["lookups"], "ids", chunk=2)
    await sets.add("k", "a", "b")  # fills the first document: this process appends to k#1 from now on
    await sets.add("k", "c")
    calls = Calls(sets.coll)
    await sets.add("k", "d", new=True)
    assert "insert_one" not in calls.names and calls.names[0] == "find_one_and_update"
    assert sorted((await sets.members(["k"]))["k"]) == ["a", "b", "c", "d"]
