"""The only module that talks to MongoDB.

``forms``: one document per form with its current ``title``/``fields``/``version`` and every past
version in ``versions`` (an assignment keeps the version the patient was given). ``assignments``: one
document per assignment; its submission is stored inside it, so "at most one submission" is a single
guarded update (``status: pending`` → ``submitted``) that also carries the ``forms.submitted`` event.
Every write carries the events ``service`` built for it, in the same single-document write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from clinishare_forms.domain.stored import AccessDoc, AssignmentDoc, FormDoc, SubmissionDoc, VersionDoc
from clinishare_shared.events import Envelope
from clinishare_shared.outbox import Kick, NO_OUTBOX, no_kick, push_events, with_events
from clinishare_shared.pagination import PageQuery

FORMS, ASSIGNMENTS, ACCESSES = "forms", "assignments", "submission_accesses"
OUTBOX_COLLECTIONS = [FORMS, ASSIGNMENTS, ACCESSES]
_FORM_READ = {**NO_OUTBOX, "versions": 0}


class FormStore:
    def __init__(self, db: Any, *, kick: Kick = no_kick) -> None:
        self._kick = kick  # wakes the outbox relay after a write that staged events
        self.db = db
        self.forms = db[FORMS]
        self.assignments = db[ASSIGNMENTS]
        self.accesses = db[ACCESSES]

    async def ensure_indexes(self) -> None:
        await self.forms.create_index([("author_id", 1), ("_id", -1)])
        await self.forms.create_index("sharing.practitioner_ids")
        await self.forms.create_index("sharing.office_ids")
        await self.assignments.create_index([("patient_id", 1), ("status", 1), ("_id", -1)])
        await self.assignments.create_index([("form_id", 1), ("status", 1), ("practitioner_id", 1), ("_id", -1)])

    # ---- forms -------------------------------------------------------------------------------------

    async def insert_form(self, doc: FormDoc, *events: Envelope) -> None:
        await self.forms.insert_one(with_events(doc, *events))
        self._kick(FORMS, doc["_id"])

    async def form(self, form_id: str) -> FormDoc | None:
        return cast(FormDoc | None, await self.forms.find_one({"_id": form_id}, _FORM_READ))

    async def form_versions(self, form_id: str) -> list[VersionDoc]:
        doc = await self.forms.find_one({"_id": form_id}, {"versions": 1})
        return list(doc["versions"]) if doc else []

    async def form_version(self, form_id: str, version: int) -> VersionDoc | None:
        return next((v for v in await self.form_versions(form_id) if v["version"] == version), None)

    async def visible_forms(self, viewer_id: str, viewer_offices: Iterable[str], params: PageQuery) -> list[FormDoc]:
        """The viewer's own forms and those shared with them now (see ``domain.access.can_administer``)."""
        shared = {"sharing.allow_others": True, "author_id": {"$ne": viewer_id},
                  "$or": [{"sharing.practitioner_ids": viewer_id}, {"sharing.office_ids": {"$in": list(viewer_offices)}}]}
        query = {"$or": [{"author_id": viewer_id}, shared], **params.id_filter()}
        return await self.forms.find(query, _FORM_READ).sort("_id", -1).limit(params.limit + 1).to_list()

    async def update_form(self, form_id: str, *, revision: int, changes: dict[str, Any],
                          new_version: VersionDoc | None, events: list[Envelope]) -> FormDoc | None:
        """Apply ``changes`` if nobody changed the form since ``revision`` was read; None on a race."""
        update: dict[str, Any] = {"$set": changes, "$inc": {"revision": 1}}
        if new_version is not None:
            update["$push"] = {"versions": new_version}
        if events:
            update = push_events(update, *events)
        res = await self.forms.update_one({"_id": form_id, "revision": revision}, update)
        if res.matched_count and events:
            self._kick(FORMS, form_id)
        return await self.form(form_id) if res.matched_count else None

    # ---- assignments and submissions ---------------------------------------------------------------

    async def insert_assignment(self, doc: AssignmentDoc, *events: Envelope) -> None:
        await self.assignments.insert_one(with_events(doc, *events))
        self._kick(ASSIGNMENTS, doc["_id"])

    async def assignment(self, assignment_id: str) -> AssignmentDoc | None:
        return cast(AssignmentDoc | None, await self.assignments.find_one({"_id": assignment_id}, NO_OUTBOX))

    async def pending_for_patient(self, patient_id: str, params: PageQuery) -> list[AssignmentDoc]:
        query = {"patient_id": patient_id, "status": "pending", **params.id_filter()}
        return await self.assignments.find(query, NO_OUTBOX).sort("_id", -1).limit(params.limit + 1).to_list()

    async def submit(self, assignment_id: str, submission: SubmissionDoc, *events: Envelope) -> bool:
        """Record the one submission of a pending assignment; False if it was already submitted."""
        res = await self.assignments.update_one(
            {"_id": assignment_id, "status": "pending"},
            push_events({"$set": {"status": "submitted", "submission": submission}}, *events),
        )
        if res.matched_count == 1:
            self._kick(ASSIGNMENTS, assignment_id)
        return res.matched_count == 1

    async def has_assigned(self, form_id: str, practitioner_id: str) -> bool:
        return await self.assignments.find_one({"form_id": form_id, "practitioner_id": practitioner_id}, {"_id": 1}) is not None

    def _submitted(self, form_id: str, only_assigned_by: str | None) -> dict[str, Any]:
        query: dict[str, Any] = {"form_id": form_id, "status": "submitted"}
        if only_assigned_by is not None:
            query["practitioner_id"] = only_assigned_by
        return query

    async def submissions(self, form_id: str, *, only_assigned_by: str | None,
                          params: PageQuery) -> list[AssignmentDoc]:
        """Submitted assignments, newest assignment first; all of them, or only those one practitioner made."""
        query = {**self._submitted(form_id, only_assigned_by), **params.id_filter()}
        return await self.assignments.find(query, NO_OUTBOX).sort("_id", -1).limit(params.limit + 1).to_list()

    async def iter_submissions(self, form_id: str, *, only_assigned_by: str | None) -> AsyncIterator[AssignmentDoc]:
        async for doc in self.assignments.find(self._submitted(form_id, only_assigned_by), NO_OUTBOX).sort("_id", 1):
            yield doc

    # ---- the access log ----------------------------------------------------------------------------

    async def insert_access(self, entry: AccessDoc, *events: Envelope) -> None:
        """One read of a submission by someone other than the practitioner who assigned it: the log entry
        and its event in one insert (recorded even while the broker is down)."""
        await self.accesses.insert_one(with_events(entry, *events))
        self._kick(ACCESSES, entry["_id"])
