"""The hash chain of a patient's disclosures, as pure functions (no I/O).

Each entry's ``hash`` is SHA-256 over the canonical JSON of its recorded fields and the previous entry's
hash (``prev_hash``; the first entry's is ``GENESIS``). Changing any recorded field, removing an entry or
reordering entries breaks every hash from there on; ``verify`` finds the first entry that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinishare_audit.domain.stored import DisclosureDoc, EntryFields

GENESIS = "0" * 64
# what the hash covers: every recorded field of an entry (not its storage id, nor the hash itself)
HASHED = ("chain", "seq", "event_id", "at", "action", "item_type", "item_id", "patient_id", "rule", "grant_id",
          "discloser_id", "practitioner_ids", "office_ids", "patient_ids", "accessor_id", "accessor_kind",
          "grant_ids", "consent_attested_by", "consent_attested_at", "expires_at", "prev_hash")


def _canon(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # MongoDB keeps milliseconds
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


def entry_hash(entry: Mapping[str, Any]) -> str:
    body = {k: _canon(entry.get(k)) for k in HASHED}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(entry: EntryFields, *, entry_id: str, seq: int, prev_hash: str) -> DisclosureDoc:
    """The entry at position ``seq`` after an entry whose hash is ``prev_hash``, with its own hash."""
    sealed = DisclosureDoc(**entry, _id=entry_id, seq=seq, prev_hash=prev_hash, hash="")
    sealed["hash"] = entry_hash(sealed)
    return sealed


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    first_bad: str | None = None  # the id of the first entry that does not fit


def verify(entries: Iterable[DisclosureDoc]) -> Verdict:
    """Walk one chain in ``seq`` order: positions must be 1, 2, 3 ..., each ``prev_hash`` the previous
    entry's hash, each ``hash`` the hash of the entry's recorded fields."""
    prev, count = GENESIS, 0
    for count, entry in enumerate(entries, start=1):
        if entry.get("seq") != count or entry.get("prev_hash") != prev or entry.get("hash") != entry_hash(entry):
            return Verdict(ok=False, entries=count, first_bad=str(entry.get("_id")))
        prev = entry["hash"]
    return Verdict(ok=True, entries=count)
