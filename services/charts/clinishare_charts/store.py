"""The only module that talks to MongoDB: charts, notes, chart grants, the access log, expiry claims, and
the lookup documents that keep the hot reads ``_id``-keyed.

Charts, grants, notes and access-log entries carry their events (built by ``service``) in an ``_outbox``
written in the same single-document write as the change itself. Grants are never deleted: revoking sets ``revoked_at`` (pushing its
event in that update); an expiry is claimed by a unique insert into ``chart_expiries`` that carries the
event (so of several replicas sweeping at once exactly one claims a grant, on every engine), and the grant
then gets ``expired_at``.

Lookups. FerretDB's SQLite handler serves only a bare ``_id`` equality from an index (every other filter,
``$in`` on ``_id`` included, reads the whole collection), so the hot reads (Charts Shared With You, reading
a chart) go through small documents keyed by ``_id`` that list *candidates*, and load each candidate by
``_id``:
- ``chart_reach``: ``r:p:<practitioner>`` / ``r:o:<office>`` -> ``grants``: one entry per grant naming that
  recipient (grant id, owner, rule, the chart or patient it is about);
- ``chart_index``: ``a:<author>`` -> ``ids`` of every chart the author wrote; ``ap:<author>:<patient>`` -> of
  that patient's; ``n:<chart>`` -> ``ids`` of the chart's notes.
Each lookup is a ``ChunkedSets`` set, spread over documents of bounded size (``<key>``, ``<key>#1``, ...),
so a write rewrites one small document whatever the set's size. A lookup is only a candidate list: what it names is loaded and the access rule re-checked on what was
loaded (a revoked grant, a left office, a chart not covered are refused as before). Without transactions
the write order keeps it a superset: an entry is added BEFORE the document it names is written and
removed AFTER the grant is revoked or expired, so a crash between the two writes leaves an entry that the
read filters out, never a missing one. ``ensure_lookups`` builds them once for data written before they
existed.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from clinishare_charts.domain.access import RULES, ChartRef, GrantRef, covers
from clinishare_charts.domain.stored import AccessDoc, ChartDoc, ExpiryDoc, GrantDoc, NoteDoc
from clinishare_shared.events import Envelope
from clinishare_shared.lookups import ChunkedSets
from clinishare_shared.mongo import find_by_id, find_by_ids, insert_new
from clinishare_shared.outbox import (NO_OUTBOX, FreshClaims, Kick, insert_fresh, insert_once, no_kick,
                                      push_events, strip_outbox, with_events)
from clinishare_shared.pagination import PageQuery

CHARTS, NOTES, GRANTS, ACCESSES, EXPIRIES = "charts", "chart_notes", "chart_grants", "chart_accesses", "chart_expiries"
REACH, INDEX = "chart_reach", "chart_index"
# in chart_index: the lookups hold everything written before they existed (v2: with the expiry minutes, so a
# database built by v1 builds them again once; entries are sets, so what was there stays as it was)
LOOKUPS_BUILT = "built:v2"
# the expiry sweep (``ChartStore.due_grants``): how far back before its last complete sweep it reads the
# minutes' lookups again (a grant listed that late after it expired, by a replica whose clock is behind, is
# still found), and how often it reads the collection instead (the first sweep, then this often)
EXPIRY_GRACE = timedelta(minutes=2)
EXPIRY_FULL_EVERY = timedelta(minutes=10)


def reach_key(kind: str, recipient_id: str) -> str:
    """The lookup of the grants naming a practitioner (``p``) or an office (``o``)."""
    return f"r:{kind}:{recipient_id}"


def entry_text(g: str, o: str, r: str, t: str | None) -> str:
    """A lookup entry as stored: one string ``grant|owner|rule|about``. A string, not a sub-document:
    FerretDB decodes an array of sub-documents about seven times slower (3,000 entries: 146 ms to read
    against 21 ms, measured on FerretDB v1.24.2 under load), and a busy recipient's lookup is read on every
    listing and rewritten on every share."""
    return f"{g}|{o}|{r}|{t or ''}"


def reach_entry(grant: GrantDoc) -> str:
    """What a recipient's lookup says of a grant: facts that never change once it is written (its id, owner,
    rule and the chart or patient it is about), always spelled the same so ``$pullAll`` finds it by value."""
    about = grant.get("chart_id") if grant["rule"] == "chart" else grant.get("patient_id")
    return entry_text(grant["_id"], grant["owner_id"], grant["rule"], about if grant["rule"] != "all" else None)


def parse_entry(raw: Any) -> dict[str, Any]:
    """An entry as ``{"g", "o", "r", "t"}`` (entries written as sub-documents by earlier code pass as they are)."""
    if isinstance(raw, dict):
        return raw
    g, o, r, t = (str(raw).split("|") + ["", "", "", ""])[:4]
    return {"g": g, "o": o, "r": r, "t": t or None}


def reach_keys(grant: GrantDoc) -> list[str]:
    return [reach_key("p", p) for p in grant["practitioner_ids"]] + [reach_key("o", o) for o in grant["office_ids"]]


def naming(grants: Iterable[GrantDoc], viewer_id: str, office_ids: Iterable[str]) -> list[GrantDoc]:
    """Of grants as loaded, those not revoked nor marked expired that name the viewer or one of
    ``office_ids`` (what a lookup said of them is not trusted)."""
    offices = set(office_ids)
    return [g for g in grants if g.get("revoked_at") is None and g.get("expired_at") is None
            and (viewer_id in g["practitioner_ids"] or offices.intersection(g["office_ids"]))]


def entry_about(entry: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What an entry says its grant is about: (owner, rule, the chart or patient; None for ``all``)."""
    rule = entry.get("r")
    return entry.get("o"), rule, None if rule == "all" else entry.get("t")


def chart_abouts(chart: ChartDoc) -> tuple[tuple[Any, Any, Any], ...]:
    """What a grant that may cover this chart is about (``entry_about``): the chart, its patient, or all of
    its author's charts."""
    author = chart["author_id"]
    return (author, "chart", chart["_id"]), (author, "patient", chart["patient_id"]), (author, "all", None)


def entry_may_cover(entry: dict[str, Any], chart: ChartDoc) -> bool:
    """Whether the grant an entry names can be about this chart (``covers`` decides on the loaded grant)."""
    return entry_about(entry) in chart_abouts(chart)


def expiry_key(at: datetime) -> str:
    """The lookup of the grants that expire within this minute (UTC)."""
    at = at.astimezone(UTC) if at.tzinfo else at
    return f"x:{at:%Y-%m-%dT%H:%M}"


def expiry_keys(since: datetime, until: datetime) -> list[str]:
    """The lookups of every minute from ``since``'s to ``until``'s, both included."""
    minute = since.replace(second=0, microsecond=0)
    keys = []
    while minute <= until:
        keys.append(expiry_key(minute))
        minute += timedelta(minutes=1)
    return keys


@dataclass
class ExpirySweep:
    """What one expiry sweep found: the due grants (at most the batch), whether that is all of them, and
    where it looked (the collection, or the lookups of these minutes)."""

    now: datetime
    grants: list[GrantDoc]
    complete: bool
    full: bool
    keys: list[str] = field(default_factory=list)


def author_key(author_id: str) -> str:
    return f"a:{author_id}"


def patient_key(author_id: str, patient_id: str) -> str:
    return f"ap:{author_id}:{patient_id}"


def notes_key(chart_id: str) -> str:
    return f"n:{chart_id}"


def search_filter(q: str | None) -> dict[str, Any]:
    """Case-insensitive substring of the title or the patient's name; the input is a literal, not a regex."""
    if not q or not q.strip():
        return {}
    pattern = {"$regex": re.escape(q.strip()), "$options": "i"}
    return {"$or": [{"title": pattern}, {"patient_name": pattern}]}


def coverage(grants: Iterable[GrantRef]) -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    """What the given grants cover, as ``covers`` reads them (revoked ones left out): the owners whose every
    chart is covered, owner -> patients, owner -> chart ids (an owner covered entirely appears only once)."""
    chart_ids: dict[str, set[str]] = defaultdict(set)
    patients: dict[str, set[str]] = defaultdict(set)
    everything: set[str] = set()
    for g in grants:
        if g.revoked:
            continue
        if g.rule == "all":
            everything.add(g.owner_id)
        elif g.rule == "patient" and g.patient_id:
            patients[g.owner_id].add(g.patient_id)
        elif g.rule == "chart" and g.chart_id:
            chart_ids[g.owner_id].add(g.chart_id)
    return (everything, {o: p for o, p in patients.items() if o not in everything},
            {o: c for o, c in chart_ids.items() if o not in everything})


def grants_filter(grants: Iterable[GrantRef]) -> dict[str, Any] | None:
    """The charts the given (active) grants cover, as one query clause; None if they cover nothing.
    Mirrors ``access.covers``: a grant covers only charts its owner wrote."""
    everything, patients, chart_ids = coverage(grants)
    clauses: list[dict[str, Any]] = []
    if everything:
        clauses.append({"author_id": {"$in": sorted(everything)}})
    clauses += [{"author_id": owner, "patient_id": {"$in": sorted(pids)}} for owner, pids in sorted(patients.items())]
    clauses += [{"author_id": owner, "_id": {"$in": sorted(cids)}} for owner, cids in sorted(chart_ids.items())]
    return {"$or": clauses} if clauses else None


def index_sources(grants: Iterable[GrantRef]) -> tuple[list[str], set[str]]:
    """Where the charts the given (active) grants cover are listed (``coverage``): the ``chart_index``
    lookups to read (an author's, or an author's for one patient) and the chart ids ``chart`` grants name.
    A candidate is kept only if ``covers`` says so once the chart is loaded."""
    everything, patients, chart_ids = coverage(grants)
    keys = [author_key(a) for a in sorted(everything)]
    keys += [patient_key(a, p) for a, pids in sorted(patients.items()) for p in sorted(pids)]
    return keys, {c for cids in chart_ids.values() for c in cids}


def _and(*parts: dict[str, Any]) -> dict[str, Any]:
    parts = tuple(p for p in parts if p)
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": list(parts)}


REACH_CHUNK, INDEX_CHUNK = 64, 512
# Charts Shared With You: of the grants that may cover one chart on the page, at most this many are loaded
# and checked per round (the first that reaches the viewer decides; a chart shared a thousand times costs a
# few reads, not a thousand)
VERIFY_EACH = 4
# Verify: of grants as loaded (still ``naming`` the viewer), those that reach the viewer now (the caller's
# rule, with its sharing lists)
Verify = Callable[[list[GrantDoc]], Awaitable[list[GrantRef]]]


def provisional_ref(entry: dict[str, Any]) -> GrantRef | None:
    """What an entry says a grant covers (never trusted for access: ``shared_page`` checks the loaded grant)."""
    rule, about = entry.get("r"), entry.get("t")
    if rule not in RULES or not entry.get("g") or not entry.get("o"):
        return None
    return GrantRef(owner_id=entry["o"], rule=rule, id=entry["g"], chart_id=about if rule == "chart" else None,
                    patient_id=about if rule == "patient" else None)


class ChartStore:
    def __init__(self, db: Any, *, kick: Kick = no_kick, claims: FreshClaims | None = None) -> None:
        self.db = db
        self.charts = db[CHARTS]
        self.notes = db[NOTES]
        self.grants = db[GRANTS]
        self.accesses = db[ACCESSES]
        self.expiries = db[EXPIRIES]
        self.reach = db[REACH]
        self.index = db[INDEX]
        self.reach_sets = ChunkedSets(self.reach, "grants", chunk=REACH_CHUNK)
        self.index_sets = ChunkedSets(self.index, "ids", chunk=INDEX_CHUNK)
        self._kick = kick  # wakes the outbox relay after a write that staged events
        self._claims = claims  # the relay's leases on new documents (outbox.insert_fresh), where one runs
        self._expiry_since: datetime | None = None  # every grant due by then was expired (due_grants)
        self._expiry_full_at: datetime | None = None  # the last sweep that read the collection

    outbox_collections = (CHARTS, GRANTS, NOTES, ACCESSES, EXPIRIES)

    async def ensure_indexes(self) -> None:
        await self.charts.create_index([("author_id", ASCENDING), ("_id", DESCENDING)], name="author_newest")
        await self.charts.create_index([("author_id", ASCENDING), ("patient_id", ASCENDING), ("_id", DESCENDING)],
                                       name="author_patient_newest")
        await self.notes.create_index([("chart_id", ASCENDING), ("_id", ASCENDING)], name="chart_notes")
        await self.grants.create_index([("practitioner_ids", ASCENDING), ("revoked_at", ASCENDING)],
                                       name="to_practitioner")
        await self.grants.create_index([("office_ids", ASCENDING), ("revoked_at", ASCENDING)], name="to_office")
        await self.grants.create_index([("owner_id", ASCENDING), ("revoked_at", ASCENDING), ("_id", DESCENDING)],
                                       name="owner_newest")
        await self.grants.create_index([("expires_at", ASCENDING)], name="expiry")
        await self.accesses.create_index([("chart_id", ASCENDING), ("_id", DESCENDING)], name="chart_newest")

    # ---- lookups (see the module's docstring) --------------------------------------------------------

    async def _ids(self, key: str) -> list[str]:
        return (await self.index_sets.members([key])).get(key, [])

    async def ensure_lookups(self) -> None:
        """Build the lookups from what was written before they existed, once per database (a marker says
        it was done; replicas racing here add the same entries, which changes nothing)."""
        if await self.index.find_one({"_id": LOOKUPS_BUILT}, {"_id": 1}) is None:
            await self.build_lookups()
            await insert_new(self.index, {"_id": LOOKUPS_BUILT})

    async def build_lookups(self) -> int:
        """Add every active grant (and its expiry minute, if it expires), chart and note to its lookups
        (idempotent: entries are sets). How many lookup keys were written."""
        reach: dict[str, list[dict[str, Any]]] = defaultdict(list)
        ids: dict[str, list[str]] = defaultdict(list)
        async for grant in self.grants.find({"revoked_at": None, "expired_at": None}, NO_OUTBOX):
            for key in reach_keys(grant):
                reach[key].append(reach_entry(grant))
            if grant.get("expires_at") is not None:
                ids[expiry_key(grant["expires_at"])].append(grant["_id"])
        async for chart in self.charts.find({}, {"author_id": 1, "patient_id": 1}):
            ids[author_key(chart["author_id"])].append(chart["_id"])
            ids[patient_key(chart["author_id"], chart["patient_id"])].append(chart["_id"])
        async for note in self.notes.find({}, {"chart_id": 1}):
            ids[notes_key(note["chart_id"])].append(note["_id"])
        for key, entries in reach.items():
            await self.reach_sets.add(key, *entries)
        for key, values in ids.items():
            await self.index_sets.add(key, *values)
        return len(reach) + len(ids)

    async def _load_page(self, candidates: Iterable[str], keep: Callable[[ChartDoc], bool],
                         page: PageQuery) -> list[ChartDoc]:
        """Newest first, a page (plus one, for the cursor) of the candidate charts that exist and ``keep``
        accepts, loaded by ``_id`` as many as the page still needs at a time."""
        async def each(charts: list[ChartDoc]) -> list[ChartDoc]:
            return [c for c in charts if keep(c)]

        return await self._load_page_checked(candidates, each, page)

    async def _load_page_checked(self, candidates: Iterable[str],
                                 keep: Callable[[list[ChartDoc]], Awaitable[list[ChartDoc]]],
                                 page: PageQuery) -> list[ChartDoc]:
        """``_load_page`` with a check that needs reads of its own: ``keep`` takes a loaded batch at once."""
        ids = sorted({c for c in candidates if not page.cursor or c < page.cursor}, reverse=True)
        want, out, pos = page.limit + 1, [], 0
        while len(out) < want and pos < len(ids):
            batch = ids[pos:pos + want - len(out)]
            pos += len(batch)
            out += await keep(cast(list[ChartDoc], await find_by_ids(self.charts, batch, NO_OUTBOX)))
        return cast(list[ChartDoc], out)

    # ---- charts ------------------------------------------------------------------------------------

    async def insert_chart(self, chart: ChartDoc, *events: Envelope) -> None:
        """Listed in its author's lookups first, then written (a crash between leaves an id that lists nothing)."""
        await insert_fresh(self.charts, chart, *events, kick=self._kick, claims=self._claims, before=[
            self.index_sets.add(key, chart["_id"])
            for key in (author_key(chart["author_id"]), patient_key(chart["author_id"], chart["patient_id"]))])

    async def chart(self, chart_id: str) -> ChartDoc | None:
        return cast(ChartDoc | None, await self.charts.find_one({"_id": chart_id}, NO_OUTBOX))

    async def update_chart(self, chart_id: str, changes: dict[str, Any], *events: Envelope,
                           unchanged_since: datetime | None = None) -> ChartDoc | None:
        """Set ``changes`` and stage ``events`` in one write. None when the chart is gone, or
        (``unchanged_since``) was updated after that time."""
        query: dict[str, Any] = {"_id": chart_id}
        if unchanged_since is not None:
            query["updated_at"] = unchanged_since
        # no projection: FerretDB 1.24 refuses findAndModify's "fields"; the outbox is stripped here instead
        updated = strip_outbox(await self.charts.find_one_and_update(
            query, push_events({"$set": changes}, *events), return_document=ReturnDocument.AFTER))
        if updated is not None:
            self._kick(CHARTS, chart_id)
        return cast(ChartDoc | None, updated)

    async def has_charts_for(self, author_id: str, patient_id: str) -> bool:
        for chart_id in reversed(await self._ids(patient_key(author_id, patient_id))):
            chart = await self.charts.find_one({"_id": chart_id}, {"author_id": 1, "patient_id": 1})
            if chart is not None and chart["author_id"] == author_id and chart["patient_id"] == patient_id:
                return True
        return False

    async def own_charts(self, author_id: str, *, q: str | None, page: PageQuery) -> list[ChartDoc]:
        """Your Charts. A search reads the author's charts with a query (a substring match has no index on
        any engine); without one, the page is loaded from the author's lookup by ``_id``."""
        if search_filter(q):
            query = _and({"author_id": author_id}, search_filter(q), page.id_filter())
            return await self.charts.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()
        return await self._load_page(await self._ids(author_key(author_id)), lambda d: d["author_id"] == author_id,
                                     page)

    async def shared_charts(self, viewer_id: str, grants: list[GrantRef], *, q: str | None,
                            page: PageQuery) -> list[ChartDoc]:
        """Charts covered by ``grants`` (active grants that reach the viewer, checked by the caller), newest
        first; a chart covered twice is still one. Without a search: the candidates from the lookups of
        ``index_sources``, loaded by ``_id`` and kept only if a grant ``covers`` the loaded chart. With one:
        one $or query over charts (a substring match has no index on any engine)."""
        # the viewer's own charts are "Your Charts", even when a grant of theirs reaches them via an office
        grants = [g for g in grants if g.owner_id != viewer_id and not g.revoked]
        if search_filter(q):
            covered = grants_filter(grants)
            if covered is None:
                return []
            query = _and(covered, search_filter(q), page.id_filter())
            return await self.charts.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()
        keys, candidates = index_sources(grants)
        for ids in (await self.index_sets.members(keys)).values():
            candidates.update(ids)

        def keep(chart: ChartDoc) -> bool:
            ref = ChartRef.from_doc(chart)
            return chart["author_id"] != viewer_id and any(covers(g, ref) for g in grants)

        return await self._load_page(candidates, keep, page)

    async def shared_page(self, viewer_id: str, office_ids: list[str], verify: Verify,
                          page: PageQuery) -> list[ChartDoc]:
        """Charts Shared With You without a search, loading only the grants the page needs. The candidates
        come from what the entries of the viewer's and ``office_ids``' lookups say their grants cover (a
        lookup is a superset of what it names); a loaded chart is kept when a grant, loaded by ``_id``, still
        ``naming`` the viewer or one of ``office_ids``, accepted by ``verify`` (those that reach the viewer
        now) and as loaded, ``covers`` it. Of the entries that may cover a chart, ``VERIFY_EACH`` per chart are
        loaded at a time, all the batch's charts together, until one is accepted or none is left. The same
        charts as ``shared_charts`` with every grant reaching the viewer checked first, which read all of
        them for every page."""
        entries = await self.reach_entries(viewer_id, office_ids)
        # your own charts are "Your Charts"; an entry that names no grant, owner or rule is left out
        named = [(e, r) for e in entries if e.get("o") != viewer_id and (r := provisional_ref(e)) is not None]
        keys, candidates = index_sources(r for _, r in named)
        for ids in (await self.index_sets.members(keys)).values():
            candidates.update(ids)
        checked: dict[str, GrantRef | None] = {}  # grant id -> as loaded if it reaches the viewer now, else None
        about: dict[tuple[Any, Any, Any], list[str]] = defaultdict(list)  # what entries say their grants cover
        for entry, _ in named:
            about[entry_about(entry)].append(entry["g"])

        def may_cover(chart: ChartDoc) -> list[str]:
            """The grants whose entries may cover the chart (``entry_may_cover``, looked up, not tried on each)."""
            return list(dict.fromkeys(g for a in chart_abouts(chart) for g in about.get(a, [])))

        async def keep(charts: list[ChartDoc]) -> list[ChartDoc]:
            open_ = {c["_id"]: (ChartRef.from_doc(c), may_cover(c)) for c in charts if c["author_id"] != viewer_id}
            kept: set[str] = set()
            while open_:
                load: list[str] = []
                for chart_id, (ref, grant_ids) in list(open_.items()):
                    if any((g := checked.get(i)) is not None and covers(g, ref) for i in grant_ids):
                        kept.add(chart_id)
                        del open_[chart_id]
                        continue
                    unknown = [i for i in grant_ids if i not in checked]
                    if not unknown:
                        del open_[chart_id]
                    load += unknown[:VERIFY_EACH]
                if load:
                    load = list(dict.fromkeys(load))
                    loaded = naming(await find_by_ids(self.grants, load, NO_OUTBOX), viewer_id, office_ids)
                    accepted = {g.id: g for g in await verify(loaded)}
                    checked.update({i: accepted.get(i) for i in load})
            return [c for c in charts if c["_id"] in kept]

        return await self._load_page_checked(candidates, keep, page)

    # ---- notes -------------------------------------------------------------------------------------

    async def insert_note(self, note: NoteDoc, *events: Envelope) -> None:
        """Listed in its chart's lookup first, then written."""
        await insert_fresh(self.notes, note, *events, kick=self._kick, claims=self._claims,
                           before=[self.index_sets.add(notes_key(note["chart_id"]), note["_id"])])

    async def notes_of(self, chart_id: str) -> list[NoteDoc]:
        """Oldest first: the chart's lookup, each note loaded by ``_id``."""
        notes = await find_by_ids(self.notes, sorted(await self._ids(notes_key(chart_id))), NO_OUTBOX)
        return [n for n in notes if n["chart_id"] == chart_id]

    # ---- grants ------------------------------------------------------------------------------------

    async def reach_entries(self, viewer_id: str, office_ids: list[str]) -> list[dict[str, Any]]:
        """The entries of the lookups of the viewer and of ``office_ids``: candidates, not yet checked."""
        keys = [reach_key("p", viewer_id)] + [reach_key("o", o) for o in office_ids]
        return [parse_entry(e) for entries in (await self.reach_sets.members(keys)).values() for e in entries]

    async def _reaching(self, entries: Iterable[dict[str, Any]], viewer_id: str,
                        office_ids: list[str]) -> list[GrantDoc]:
        """The grants the entries name, loaded by ``_id``, oldest first (``naming``)."""
        docs = await find_by_ids(self.grants, sorted({e["g"] for e in entries}), NO_OUTBOX)
        return naming(docs, viewer_id, office_ids)

    async def grants_reaching(self, viewer_id: str, office_ids: list[str]) -> list[GrantDoc]:
        """Active grants naming the viewer directly or one of ``office_ids`` (the offices the viewer is a
        practitioner member of now)."""
        return await self._reaching(await self.reach_entries(viewer_id, office_ids), viewer_id, office_ids)

    async def grants_reaching_chart(self, chart: ChartDoc, viewer_id: str, office_ids: list[str]) -> list[GrantDoc]:
        """Of ``grants_reaching``, those that may cover this chart (``covers`` decides)."""
        entries = [e for e in await self.reach_entries(viewer_id, office_ids) if entry_may_cover(e, chart)]
        return [g for g in await self._reaching(entries, viewer_id, office_ids) if g["owner_id"] == chart["author_id"]]

    async def grants_covering(self, chart: ChartDoc) -> list[GrantDoc]:
        """The author's unrevoked, unexpired-by-sweep grants that may cover this chart (``covers`` decides)."""
        about = [{"rule": "all"}, {"rule": "patient", "patient_id": chart["patient_id"]},
                 {"rule": "chart", "chart_id": chart["_id"]}]
        query = {"owner_id": chart["author_id"], "revoked_at": None, "expired_at": None, "$or": about}
        return await self.grants.find(query, NO_OUTBOX).sort("_id", ASCENDING).to_list()

    async def insert_grant(self, grant: GrantDoc, *events: Envelope) -> None:
        """Listed in every recipient's lookup (and, if it expires, in its expiry minute's) first, then written."""
        entry = reach_entry(grant)
        before = [self.reach_sets.add(key, entry) for key in reach_keys(grant)]
        if grant.get("expires_at") is not None:
            before.append(self.index_sets.add(expiry_key(grant["expires_at"]), grant["_id"]))
        await insert_fresh(self.grants, grant, *events, kick=self._kick, claims=self._claims, before=before)

    async def grant(self, grant_id: str, *, owner_id: str) -> GrantDoc | None:
        return cast(GrantDoc | None, await find_by_id(self.grants, grant_id, NO_OUTBOX, where={"owner_id": owner_id}))

    async def own_grants(self, owner_id: str, *, include_revoked: bool, page: PageQuery) -> list[GrantDoc]:
        query: dict[str, Any] = {"owner_id": owner_id, **page.id_filter()}
        if not include_revoked:
            query["revoked_at"] = None
            query["expired_at"] = None
        return await self.grants.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()

    async def revoke_grant(self, grant: GrantDoc, at: datetime, *events: Envelope) -> bool:
        """Revoke an active grant, staging ``events`` in the same write. False if it was already revoked
        or expired (then nothing is staged)."""
        res = await self.grants.update_one(
            {"_id": grant["_id"], "owner_id": grant["owner_id"], "revoked_at": None, "expired_at": None},
            push_events({"$set": {"revoked_at": at}}, *events),
        )
        if res.modified_count:
            self._kick(GRANTS, grant["_id"])
        # revoked now, or before (this also clears what a crash after an earlier revocation left listed)
        await self.unlist_grant(grant)
        return bool(res.modified_count)

    async def unlist_grant(self, grant: GrantDoc) -> None:
        """Take a grant that is revoked or expired for good out of its recipients' lookups (only after it
        was marked so: until then the lookups must still list it)."""
        entry = reach_entry(grant)
        earlier = parse_entry(entry)  # as written before entries were strings
        await asyncio.gather(*(self.reach_sets.remove(key, entry, earlier) for key in reach_keys(grant)))

    async def due_grants(self, now: datetime, *, batch: int) -> ExpirySweep:
        """Grants past their ``expires_at`` and not yet marked expired (nor revoked), at most ``batch``.

        Read from the lookups of the minutes since this store's last complete sweep (``expiries_swept``),
        less ``EXPIRY_GRACE``: a few documents by ``_id`` whatever the size of the collection. The first
        sweep, and one every ``EXPIRY_FULL_EVERY``, query the collection instead (MongoDB's ``expiry``
        index serves it; FerretDB scans it), so a grant missing from the lookups (listed later than the
        grace) is still announced, later."""
        full = self._expiry_since is None or self._expiry_full_at is None \
            or now - self._expiry_full_at >= EXPIRY_FULL_EVERY
        if full:
            grants = await self.grants.find({"revoked_at": None, "expired_at": None, "expires_at": {"$lte": now}},
                                            NO_OUTBOX).limit(batch).to_list()
            return ExpirySweep(now, grants, complete=len(grants) < batch, full=True)
        assert self._expiry_since is not None
        keys = expiry_keys(min(self._expiry_since, now) - EXPIRY_GRACE, now)
        ids = sorted({i for listed in (await self.index_sets.members(keys)).values() for i in listed})
        due = [g for g in await find_by_ids(self.grants, ids, NO_OUTBOX)
               if g.get("revoked_at") is None and g.get("expired_at") is None
               and g.get("expires_at") is not None and g["expires_at"] <= now]
        return ExpirySweep(now, due[:batch], complete=len(due) <= batch, full=False, keys=keys)

    async def expiries_swept(self, sweep: ExpirySweep) -> None:
        """``sweep`` found every grant due then and each was expired (or found revoked or expired): the next
        sweeps read from its time on. The minutes they will not read again are done, so their lookups go."""
        self._expiry_since = max(self._expiry_since or sweep.now, sweep.now)
        if sweep.full:
            self._expiry_full_at = max(self._expiry_full_at or sweep.now, sweep.now)
            return
        done = expiry_key(sweep.now - EXPIRY_GRACE)
        await self.index_sets.drop([k for k in sweep.keys if k < done])

    async def expire_grant(self, grant: GrantDoc, claim: ExpiryDoc, *events: Envelope) -> bool:
        """Claim the announcement of a grant's expiry by a unique insert into ``chart_expiries`` carrying
        ``events`` (of several replicas only the winner's insert succeeds, on every engine), then mark the
        grant ``expired_at`` so it is no longer due. True if this call made the claim.

        ``expired_at`` is the winning claim's time, whoever writes it (a loser reads the claim: the winner may
        have stopped before its write), so the write needs no condition: a filter of ``_id`` alone, which
        FerretDB serves from its index (with any other field it scans the collection)."""
        claimed = await insert_once(self.expiries, claim, *events)
        if claimed:
            self._kick(EXPIRIES, claim["_id"])
        else:
            claim = cast(ExpiryDoc, await self.expiries.find_one({"_id": claim["_id"]}, NO_OUTBOX) or claim)
        await self.grants.update_one({"_id": claim["_id"]}, {"$set": {"expired_at": claim["at"]}})
        await self.unlist_grant(grant)
        return claimed

    # ---- the access log ----------------------------------------------------------------------------

    async def insert_access(self, entry: AccessDoc, *events: Envelope) -> None:
        # not insert_fresh: with nothing to write before it, the relay's lease would cost a read of a chart
        # one more round trip, and nobody waits for the access-log event
        await self.accesses.insert_one(with_events(entry, *events))
        self._kick(ACCESSES, entry["_id"])

    async def accesses_of(self, chart_id: str, page: PageQuery) -> list[AccessDoc]:
        query = {"chart_id": chart_id, **page.id_filter()}
        return await self.accesses.find(query, NO_OUTBOX).sort("_id", DESCENDING).limit(page.limit + 1).to_list()
