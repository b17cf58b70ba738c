"""What charts publishes (ids only, never titles, bodies, notes or names) and what it consumes.

Published: ``charts.share.granted``, ``charts.share.revoked``, ``charts.share.expired`` (by the sweeper),
``charts.note.added``, and for analytics ``charts.chart.created`` / ``charts.chart.updated`` (ids and the
names of the changed fields, never their values); they ride in the outbox of the chart, grant or note they
announce. ``charts.chart.accessed`` rides in the access-log entry that records a read by someone other than
the author. Consumed: ``identity.*``, into the local identity projection
(office membership now, connections, care teams), which is what access and the sharing list are checked
against.
"""

from __future__ import annotations

from typing import Any

from clinishare_charts.domain.stored import AccessDoc, ChartDoc, GrantDoc, NoteDoc
from clinishare_shared.bus.base import Handler
from clinishare_shared.events import (
    ChartAccessed, ChartCreated, ChartNoteAdded, ChartShareExpired, ChartShareGranted, ChartShareRevoked, ChartUpdated,
    Envelope, make_event,
)
from clinishare_shared.projection import IdentityProjection

SOURCE = "charts"


def _grant_fields(grant: GrantDoc) -> dict[str, Any]:
    return {"grant_id": grant["_id"], "owner_id": grant["owner_id"], "rule": grant["rule"],
            "chart_id": grant.get("chart_id"), "patient_id": grant.get("patient_id"),
            "practitioner_ids": list(grant["practitioner_ids"]), "office_ids": list(grant["office_ids"])}


def chart_created(chart: ChartDoc) -> Envelope:
    return make_event(ChartCreated(chart_id=chart["_id"], author_id=chart["author_id"],
                                   patient_id=chart["patient_id"]), source=SOURCE, subject=chart["_id"])


def chart_updated(chart: ChartDoc, changes: dict[str, Any]) -> Envelope:
    return make_event(ChartUpdated(chart_id=chart["_id"], author_id=chart["author_id"],
                                   patient_id=chart["patient_id"],
                                   changed_fields=sorted(k for k, v in changes.items() if v != chart.get(k))),
                      source=SOURCE, subject=chart["_id"])


def share_granted(grant: GrantDoc) -> Envelope:
    return make_event(ChartShareGranted(**_grant_fields(grant), expires_at=grant.get("expires_at")), source=SOURCE,
                      subject=grant["_id"])


def share_revoked(grant: GrantDoc) -> Envelope:
    return make_event(ChartShareRevoked(**_grant_fields(grant)), source=SOURCE, subject=grant["_id"])


def share_expired(grant: GrantDoc) -> Envelope:
    return make_event(ChartShareExpired(**_grant_fields(grant), expires_at=grant.get("expires_at")), source=SOURCE,
                      subject=grant["_id"])


def chart_accessed(access: AccessDoc) -> Envelope:
    data = ChartAccessed(chart_id=access["chart_id"], patient_id=access["patient_id"], owner_id=access["author_id"],
                         accessor_id=access["accessor_id"], accessor_kind=access["accessor_kind"],
                         grant_ids=access["grant_ids"])
    return make_event(data, source=SOURCE, subject=access["chart_id"])


def note_added(note: NoteDoc, *, chart_author_id: str) -> Envelope:
    data = ChartNoteAdded(note_id=note["_id"], chart_id=note["chart_id"], chart_author_id=chart_author_id,
                          author_id=note["author_id"])
    return make_event(data, source=SOURCE, subject=note["chart_id"])


def consumed(projection: IdentityProjection) -> dict[str, Handler]:
    """Consumed event type -> handler. Charts reacts to nothing but identity facts."""
    return dict(projection.handlers)
