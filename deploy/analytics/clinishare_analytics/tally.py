"""Daily counts per event type and per office, from envelopes: pure, no I/O.

Each event is counted once, by its ``id`` (delivery is at least once, so the same event can sit in the
stream twice). Offices: an event about an office (``identity.office.*``, an office PIN rotation) counts for
that office; any other event counts for every office its actor (who shared, wrote, uploaded, assigned,
read...) was a member of when it happened, known from the ``identity.office.*`` membership snapshots seen
earlier in the stream; ``(none)`` when the actor is in no known office. Unknown event types and unknown
fields are counted and ignored like any other: a newer catalogue never stops this reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from clinishare_shared.events import Envelope

SHARE_TYPES = ("charts.share.granted", "documents.shared", "forms.shared")
NO_OFFICE = "(none)"
# who acted, by the first field present (the reader of a chart, the assigner of a form, the sharer...)
ACTOR_FIELDS = ("accessor_id", "practitioner_id", "owner_id", "author_id", "registered_by", "changed_by",
                "rotated_by", "deleted_by", "account_id")


@dataclass
class Tally:
    by_type: dict[str, int] = field(default_factory=dict)  # "day|type" -> n
    by_office: dict[str, int] = field(default_factory=dict)  # "day|office|type" -> n
    seen: dict[str, list[str]] = field(default_factory=dict)  # day -> ids counted (for deduplication)
    offices: dict[str, dict[str, Any]] = field(default_factory=dict)  # office -> {version, members}
    next_offset: int | None = None
    _seen_ids: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._seen_ids = {i for ids in self.seen.values() for i in ids}

    # ---- counting ----------------------------------------------------------------------------------

    def apply(self, event: Envelope, *, offset: int | None = None) -> bool:
        """Count ``event``; False (and nothing changes but the offset) if its id was counted already."""
        if offset is not None:
            self.next_offset = offset + 1
        if event.id in self._seen_ids:
            return False
        day = event.time.date().isoformat()
        self._follow_membership(event)
        self.by_type[f"{day}|{event.type}"] = self.by_type.get(f"{day}|{event.type}", 0) + 1
        for office in self.offices_of(event):
            key = f"{day}|{office}|{event.type}"
            self.by_office[key] = self.by_office.get(key, 0) + 1
        self.seen.setdefault(day, []).append(event.id)
        self._seen_ids.add(event.id)
        return True

    def _follow_membership(self, event: Envelope) -> None:
        data = event.data
        if not event.type.startswith("identity.office.") or "members" not in data:
            return
        office, version = data.get("office_id"), data.get("version", 0)
        known = self.offices.get(office)
        if office and (known is None or version > known["version"]):
            members = sorted(m["account_id"] for m in data["members"] if isinstance(m, dict) and "account_id" in m)
            self.offices[office] = {"version": version, "members": members}

    def offices_of(self, event: Envelope) -> list[str]:
        data = event.data
        if event.type.startswith("identity.office.") and isinstance(data.get("office_id"), str):
            return [data["office_id"]]
        if data.get("owner_kind") == "office" and isinstance(data.get("owner_id"), str):
            return [data["owner_id"]]
        actor = next((data[f] for f in ACTOR_FIELDS if isinstance(data.get(f), str)), None)
        found = sorted(o for o, rec in self.offices.items() if actor in rec["members"])
        return found or [NO_OFFICE]

    def forget_ids_before(self, keep_days: int) -> None:
        """Drop the ids of days older than ``keep_days`` before the newest day (past the stream's retention
        they can no longer come back)."""
        if not self.seen:
            return
        cutoff = (date.fromisoformat(max(self.seen)) - timedelta(days=keep_days)).isoformat()
        for day in [d for d in self.seen if d < cutoff]:
            self._seen_ids.difference_update(self.seen.pop(day))

    # ---- reading the counts ------------------------------------------------------------------------

    def type_rows(self) -> list[tuple[str, str, int]]:
        return sorted((*k.split("|", 1), n) for k, n in self.by_type.items())  # type: ignore[misc]

    def office_rows(self) -> list[tuple[str, str, str, int]]:
        return sorted((*k.split("|", 2), n) for k, n in self.by_office.items())  # type: ignore[misc]

    def shares_per_day(self) -> dict[str, dict[str, int]]:
        """day -> share event type -> count."""
        out: dict[str, dict[str, int]] = {}
        for day, event_type, n in self.type_rows():
            if event_type in SHARE_TYPES:
                out.setdefault(day, {})[event_type] = n
        return out

    # ---- persistence (as JSON) ---------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"next_offset": self.next_offset, "by_type": self.by_type, "by_office": self.by_office,
                "seen": self.seen, "offices": self.offices}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tally":
        return cls(by_type=dict(data.get("by_type", {})), by_office=dict(data.get("by_office", {})),
                   seen={d: list(ids) for d, ids in data.get("seen", {}).items()},
                   offices=dict(data.get("offices", {})), next_offset=data.get("next_offset"))
