"""Document sharing rules as pure functions over plain data (SPEC sections 1 and 5). No I/O.

Who may be a recipient (share labels), checked for the whole call before anything changes:
  - a patient: must be in the uploader's care; a workspace document only with its own workspace patient;
  - a practitioner: must be on the uploader's sharing list;
  - an office: must be on the sharing list, with audience ``practitioners`` or ``staff``.
Removing a recipient is always allowed (you can always unshare), but the audience must still be known.

Who may read: the owner, and whoever one of the document's *live* recipient keys names, evaluated now:
a patient by id, a practitioner by id, and the CURRENT members of a recipient office whose role in that
office matches the audience (practitioners <-> role practitioner, staff <-> role staff). A key is live
while its share has not expired and its practitioner or office is still on the owner's sharing list
(``live_keys``). ``grounds`` is the one rule behind both the read check and "who can see this".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from clinishare_shared.domain.access import Ground, Reader
from clinishare_shared.domain.sharing import SharingList, in_force, through_of

AUDIENCES = ("practitioners", "staff")
ROLE_AUDIENCE = {"practitioner": "practitioners", "staff": "staff"}

OfficeKey = tuple[str, str]  # (office_id, audience)


@dataclass(frozen=True)
class ShareState:
    patient_ids: frozenset[str] = frozenset()
    practitioner_ids: frozenset[str] = frozenset()
    offices: frozenset[OfficeKey] = frozenset()

    @classmethod
    def of(cls, patient_ids: Iterable[str] = (), practitioner_ids: Iterable[str] = (),
           offices: Iterable[OfficeKey] = ()) -> "ShareState":
        return cls(frozenset(patient_ids), frozenset(practitioner_ids), frozenset(offices))

    def __or__(self, other: "ShareState") -> "ShareState":
        return ShareState(self.patient_ids | other.patient_ids, self.practitioner_ids | other.practitioner_ids,
                          self.offices | other.offices)

    def __sub__(self, other: "ShareState") -> "ShareState":
        return ShareState(self.patient_ids - other.patient_ids, self.practitioner_ids - other.practitioner_ids,
                          self.offices - other.offices)

    def __bool__(self) -> bool:
        return bool(self.patient_ids or self.practitioner_ids or self.offices)


@dataclass(frozen=True)
class Targets:
    """One side (add or remove) of a label call, as given (audiences not yet checked)."""

    labels: tuple[str, ...] = ()
    patient_ids: tuple[str, ...] = ()
    practitioner_ids: tuple[str, ...] = ()
    offices: tuple[OfficeKey, ...] = ()

    def shares(self) -> ShareState:
        return ShareState.of(self.patient_ids, self.practitioner_ids, self.offices)


@dataclass(frozen=True)
class DocFacts:
    id: str
    owner_id: str
    workspace_patient_id: str | None = None


@dataclass(frozen=True)
class SharerFacts:
    """What the uploader may share with, now: patients in their care, their sharing list."""

    patients_in_care: frozenset[str] = frozenset()
    practitioners: frozenset[str] = frozenset()
    offices: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Refusal:
    target: str
    reason: str
    document_id: str | None = field(default=None)


# ---- recipients: allowed or refused (None = allowed) ----------------------------------------------


def patient_refusal(doc: DocFacts, patient_id: str, sharer: SharerFacts) -> str | None:
    if doc.workspace_patient_id is not None and patient_id != doc.workspace_patient_id:
        return "a workspace document can be shared only with its own patient"
    if patient_id not in sharer.patients_in_care:
        return "patient is not in the uploader's care"
    return None


def practitioner_refusal(practitioner_id: str, sharer: SharerFacts) -> str | None:
    return None if practitioner_id in sharer.practitioners else "practitioner is not on the sharing list"


def audience_refusal(audience: str) -> str | None:
    return None if audience in AUDIENCES else "unknown audience (practitioners or staff)"


def office_refusal(office_id: str, audience: str, sharer: SharerFacts) -> str | None:
    if (bad := audience_refusal(audience)) is not None:
        return bad
    return None if office_id in sharer.offices else "office is not on the sharing list"


def validate_label_call(document_ids: Sequence[str], owned: Mapping[str, DocFacts], *, caller_id: str,
                        add: Targets, remove: Targets, sharer: SharerFacts) -> list[Refusal]:
    """Every reason the whole call must be refused; empty means every document may be changed.
    A document the caller does not own is reported exactly like one that does not exist."""
    out: list[Refusal] = []
    docs: list[DocFacts] = []
    for doc_id in dict.fromkeys(document_ids):
        doc = owned.get(doc_id)
        if doc is None or doc.owner_id != caller_id:
            out.append(Refusal(f"document:{doc_id}", "document not found", doc_id))
        else:
            docs.append(doc)
    for p in dict.fromkeys(add.patient_ids):
        per_doc = [(d, patient_refusal(d, p, sharer)) for d in docs]
        for d, reason in per_doc:
            if reason is not None:
                out.append(Refusal(f"patient:{p}", reason, d.id))
    for pr in dict.fromkeys(add.practitioner_ids):
        if (reason := practitioner_refusal(pr, sharer)) is not None:
            out.append(Refusal(f"practitioner:{pr}", reason))
    for office_id, audience in dict.fromkeys(add.offices):
        if (reason := office_refusal(office_id, audience, sharer)) is not None:
            out.append(Refusal(f"office:{office_id}", reason))
    for office_id, audience in dict.fromkeys(remove.offices):
        if (reason := audience_refusal(audience)) is not None:
            out.append(Refusal(f"office:{office_id}", reason))
    both = add.shares() - (add.shares() - remove.shares())
    for p in sorted(both.patient_ids):
        out.append(Refusal(f"patient:{p}", "both added and removed"))
    for pr in sorted(both.practitioner_ids):
        out.append(Refusal(f"practitioner:{pr}", "both added and removed"))
    for office_id, _ in sorted(both.offices):
        out.append(Refusal(f"office:{office_id}", "both added and removed"))
    for label in sorted(set(add.labels) & set(remove.labels)):
        out.append(Refusal(f"label:{label}", "both added and removed"))
    return out


# ---- applying a validated change ----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    labels: tuple[str, ...]
    shares: ShareState
    added: ShareState
    removed: ShareState

    def changed(self, old_labels: Sequence[str]) -> bool:
        return bool(self.added or self.removed) or tuple(old_labels) != self.labels


def apply_change(labels: Sequence[str], shares: ShareState, *, add: Targets, remove: Targets) -> Change:
    """The document's labels and recipients after the call, and which recipients it added and removed
    (only those: a recipient the document already had is not "added" again)."""
    drop = set(remove.labels)
    new_labels = [lbl for lbl in labels if lbl not in drop]
    new_labels += [lbl for lbl in dict.fromkeys(add.labels) if lbl not in new_labels]
    new = (shares - remove.shares()) | add.shares()
    return Change(labels=tuple(new_labels), shares=new, added=new - shares, removed=shares - new)


# ---- reading ------------------------------------------------------------------------------------


def share_keys(shares: ShareState) -> list[str]:
    """The index keys under which the document's recipients find it."""
    keys = [f"patient:{p}" for p in sorted(shares.patient_ids)]
    keys += [f"practitioner:{p}" for p in sorted(shares.practitioner_ids)]
    keys += [f"office:{o}:{a}" for o, a in sorted(shares.offices)]
    return keys


def reader_keys(account_id: str, kind: str, office_roles: Mapping[str, str]) -> list[str]:
    """The keys naming this reader now. ``office_roles``: office id -> the reader's role there now."""
    if kind == "patient":
        return [f"patient:{account_id}"]
    keys = [f"practitioner:{account_id}"] if kind == "practitioner" else []
    keys += [f"office:{o}:{ROLE_AUDIENCE[r]}" for o, r in sorted(office_roles.items()) if r in ROLE_AUDIENCE]
    return keys


def can_read(*, owner_id: str, keys: Iterable[str], account_id: str, kind: str,
             office_roles: Mapping[str, str]) -> bool:
    if account_id == owner_id and kind != "patient":
        return True
    return not set(keys).isdisjoint(reader_keys(account_id, kind, office_roles))


def delete_decision(*, owner_id: str, keys: Iterable[str], account_id: str, kind: str,
                    office_roles: Mapping[str, str]) -> Literal["allowed", "forbidden", "not_found"]:
    """Owner deletes; a recipient sees it but may not (403); anyone else gets 404."""
    if account_id == owner_id and kind != "patient":
        return "allowed"
    if can_read(owner_id=owner_id, keys=keys, account_id=account_id, kind=kind, office_roles=office_roles):
        return "forbidden"
    return "not_found"


# ---- lifecycle and "who can see this" (SPEC 10.1, 10.2) ---------------------------------------------

KEY_RULE = "share_label"


def live_keys(keys: Iterable[str], expiries: Mapping[str, datetime], sharer: SharingList,
              now: datetime) -> list[str]:
    """The recipient keys that give access now: not expired, and (for practitioners and offices) still on
    the owner's sharing list. A patient is not on a sharing list; their share only expires."""
    out = []
    for key in keys:
        if not in_force(expiries.get(key), now):
            continue
        kind, _, rest = key.partition(":")
        if kind == "practitioner" and rest not in sharer.practitioners:
            continue
        if kind == "office" and rest.partition(":")[0] not in sharer.offices:
            continue
        out.append(key)
    return out


def grounds(*, owner_id: str, keys: Iterable[str], expiries: Mapping[str, datetime], sharer: SharingList,
            account_id: str, kind: str, office_roles: Mapping[str, str], now: datetime) -> list[Ground]:
    """Every share through which a reader other than the owner reads the document now."""
    if account_id == owner_id and kind != "patient":
        return []
    mine = set(reader_keys(account_id, kind, office_roles))
    out = []
    for key in live_keys(keys, expiries, sharer, now):
        if key not in mine:
            continue
        what, _, rest = key.partition(":")
        common = {"grant_id": key, "rule": KEY_RULE, "expires_at": expiries.get(key)}
        if what == "patient":
            out.append(Ground(through="patient", **common))
        elif what == "practitioner":
            out.append(Ground(through=through_of(sharer, rest), **common))
        else:
            out.append(Ground(through="office_membership", office_id=rest.partition(":")[0], **common))
    return out


def who_can_read(*, owner_id: str, keys: Iterable[str], expiries: Mapping[str, datetime], sharer: SharingList,
                 rosters: Mapping[str, Mapping[str, str]], now: datetime) -> dict[Reader, list[Ground]]:
    """Every reader but the owner, with their grounds: named patients and practitioners, and the current
    members of recipient offices whose role matches the audience (``rosters``: office -> {account: role})."""
    keys = list(keys)
    candidates: set[Reader] = set()
    for key in keys:
        what, _, rest = key.partition(":")
        if what == "patient":
            candidates.add(Reader("patient", rest))
        elif what == "practitioner":
            candidates.add(Reader("practitioner", rest))
        else:
            for account_id, role in rosters.get(rest.partition(":")[0], {}).items():
                candidates.add(Reader("staff" if role == "staff" else "practitioner", account_id))
    out: dict[Reader, list[Ground]] = {}
    for reader in sorted(candidates, key=lambda r: (r.kind, r.id)):
        roles = {} if reader.kind == "patient" else {o: m[reader.id] for o, m in rosters.items() if reader.id in m}
        found = grounds(owner_id=owner_id, keys=keys, expiries=expiries, sharer=sharer, account_id=reader.id,
                        kind=reader.kind, office_roles=roles, now=now)
        if found:
            out[reader] = found
    return out


def next_expiries(old: Mapping[str, datetime], new_shares: ShareState, add: Targets,
                  expires_at: datetime | None) -> dict[str, datetime]:
    """Expiries after a label call: a recipient named in ``add`` takes the call's ``expires_at`` (none:
    it no longer expires); the others keep theirs; a removed recipient's expiry goes with it."""
    live = set(share_keys(new_shares))
    named = set(share_keys(add.shares()))
    out = {k: v for k, v in old.items() if k in live and k not in named}
    if expires_at is not None:
        out.update({k: expires_at for k in named})
    return out


def expired_shares(shares: ShareState, expiries: Mapping[str, datetime], now: datetime) -> ShareState:
    """The recipients whose share has expired by ``now``."""
    gone = {k for k, at in expiries.items() if not in_force(at, now)}
    return ShareState.of((p for p in shares.patient_ids if f"patient:{p}" in gone),
                         (p for p in shares.practitioner_ids if f"practitioner:{p}" in gone),
                         (o for o in shares.offices if f"office:{o[0]}:{o[1]}" in gone))
