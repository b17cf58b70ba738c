"""The forms use cases, as functions with keyword-only arguments: they load, check the pure rules in
``domain.access`` (always on the *live* rule: the form's sharing limited to the author's sharing list now,
read from the identity projection at call time), build the new documents and their events, and call the
store. Routes only parse, call these and serialise; the store only talks to MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from clinishare_forms import events
from clinishare_forms.domain.access import (
    SharingRule, added_recipients, can_administer, may_see_submission, who_can_administer,
)
from clinishare_forms.domain.fields import FormField, validate_answers
from clinishare_forms.domain.schemas import SharingOptions
from clinishare_forms.domain.stored import (
    AccessDoc, AssignmentDoc, FieldDoc, FormDoc, SharingDoc, SubmissionDoc, VersionDoc,
)
from clinishare_forms.store import FormStore
from clinishare_shared.directory import Directory, patient_in_care, refused_recipients
from clinishare_shared.domain.access import Ground, Reader
from clinishare_shared.etag import check_if_match, entity_tag, precondition_failed
from clinishare_shared.events import Envelope
from clinishare_shared.mongo import new_id, now_ms
from clinishare_shared.pagination import PageQuery
from clinishare_shared.problems import Problem, not_found
from clinishare_shared.retry import TryAgain, optimistic
from clinishare_shared.projection import IdentityProjection

FIELDS = TypeAdapter(list[FormField])


@dataclass(frozen=True)
class Caller:
    """A practitioner, the offices they are a practitioner member of now (the projection), and their token
    (forwarded when identity breaks a tie)."""

    id: str
    offices: frozenset[str]
    authorization: str


# ---- the live rule -----------------------------------------------------------------------------------


async def live_rule(*, form: FormDoc, projection: IdentityProjection) -> SharingRule:
    """The form's sharing as it stands now: only recipients still on the author's sharing list."""
    return SharingRule.of(form["sharing"]).limited_to(await projection.sharing_list(form["author_id"]))


async def may_administer(*, form: FormDoc, projection: IdentityProjection, viewer_id: str,
                         viewer_offices: Iterable[str]) -> bool:
    if form["author_id"] == viewer_id:
        return True
    return can_administer(await live_rule(form=form, projection=projection), form["author_id"], viewer_id,
                          viewer_offices)


async def administered_form(*, store: FormStore, projection: IdentityProjection, form_id: str,
                            caller: Caller) -> FormDoc:
    """A form the caller authored or that is shared with them now; anything else is 404."""
    form = await store.form(form_id)
    if form is None or not await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                                viewer_offices=caller.offices):
        raise not_found("form")
    return form


async def own_form(*, store: FormStore, form_id: str, author_id: str) -> FormDoc:
    form = await store.form(form_id)
    if form is None or form["author_id"] != author_id:
        raise not_found("form")
    return form


async def visible_forms(*, store: FormStore, projection: IdentityProjection, caller: Caller,
                        params: PageQuery) -> tuple[list[FormDoc], str | None]:
    """A page of the caller's forms and those shared with them now. The query finds forms naming the
    caller; the live rule drops those whose author no longer has the caller (or their office) on their
    sharing list."""
    docs, cursor = params.page(await store.visible_forms(caller.id, caller.offices, params))
    return [d for d in docs if await may_administer(form=d, projection=projection, viewer_id=caller.id,
                                                    viewer_offices=caller.offices)], cursor


async def administrators(*, form: FormDoc, projection: IdentityProjection) -> dict[Reader, list[Ground]]:
    """Who can use the form now (practitioners it is shared with), and through what."""
    rule = await live_rule(form=form, projection=projection)
    return who_can_administer(rule, form_id=form["_id"], author_id=form["author_id"],
                              rosters=await projection.office_rosters(rule.office_ids),
                              via=await projection.sharing_list(form["author_id"]))


# ---- writing forms -----------------------------------------------------------------------------------


def form_etag(form: FormDoc) -> str:
    """Changes with every write of the form (its revision counts them)."""
    return entity_tag(form["_id"], form.get("revision", 0))


async def check_recipients(*, sharing: SharingOptions, caller: Caller, projection: IdentityProjection,
                           directory: Directory) -> None:
    bad = await refused_recipients(projection, directory, account_id=caller.id, authorization=caller.authorization,
                                   practitioner_ids=sharing.practitioner_ids, office_ids=sharing.office_ids)
    if bad:
        raise Problem(422, "recipients must be on your sharing list", invalid_ids=bad)


def _sharing(options: SharingOptions) -> SharingDoc:
    return SharingDoc(**options.model_dump())


async def create_form(*, store: FormStore, projection: IdentityProjection, directory: Directory, caller: Caller,
                      title: str, fields: list[FormField], sharing: SharingOptions) -> FormDoc:
    await check_recipients(sharing=sharing, caller=caller, projection=projection, directory=directory)
    at = now_ms()
    stored_fields: list[FieldDoc] = [f.model_dump() for f in fields]
    form: FormDoc = {
        "_id": new_id(), "author_id": caller.id, "title": title, "fields": stored_fields,
        "sharing": _sharing(sharing), "version": 1, "revision": 0,
        "versions": [{"version": 1, "title": title, "fields": stored_fields, "created_at": at}],
        "created_at": at, "updated_at": at,
    }
    added_p, added_o = added_recipients(None, SharingRule.of(form["sharing"]))
    staged = [events.form_created(form)]
    if added_p or added_o:
        staged.append(events.form_shared(form, added_practitioner_ids=added_p, added_office_ids=added_o))
    await store.insert_form(form, *staged)
    return form


async def update_form(*, store: FormStore, projection: IdentityProjection, directory: Directory, caller: Caller,
                      form_id: str, title: str | None, fields: list[FormField] | None,
                      sharing: SharingOptions | None, if_match: str | None) -> FormDoc:
    """Its author edits it (403 for someone it is shared with, 404 for anyone else). New questions make a
    new version (assignments keep the version they were given); new sharing is checked like a new form's.
    The write is conditional on the revision read: with ``If-Match`` a change in between is 412; without,
    the edit applies to the current version (a lost race reads and decides again, ``retry.optimistic``)."""

    async def attempt() -> FormDoc:
        form = await store.form(form_id)
        if form is None:
            raise not_found("form")
        if form["author_id"] != caller.id:
            if await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                    viewer_offices=caller.offices):
                raise Problem(403, "only the form's author can edit it")
            raise not_found("form")
        check_if_match(if_match, form_etag(form))
        change = await _form_change(form, caller=caller, projection=projection, directory=directory, title=title,
                                    fields=fields, sharing=sharing)
        if change is None:
            return form
        changes, new_version, staged = change
        updated = await store.update_form(form_id, revision=form.get("revision", 0), changes=changes,
                                          new_version=new_version, events=staged)
        if updated is None:
            if if_match is not None:
                raise precondition_failed()
            raise TryAgain
        return updated

    return await optimistic(attempt, exhausted=Problem(409, "the form was changed meanwhile; reload it and try again"))


async def _form_change(form: FormDoc, *, caller: Caller, projection: IdentityProjection, directory: Directory,
                       title: str | None, fields: list[FormField] | None, sharing: SharingOptions | None,
                       ) -> tuple[dict[str, Any], VersionDoc | None, list[Envelope]] | None:
    """What the edit changes in ``form`` (the ``$set``), its new version if the questions change, and the
    events that announce it; None when it changes nothing."""
    at = now_ms()
    changes: dict[str, Any] = {}
    new_version: VersionDoc | None = None
    staged: list[Envelope] = []
    new_title = title if title is not None else form["title"]
    new_fields = [f.model_dump() for f in fields] if fields is not None else form["fields"]
    if new_title != form["title"] or new_fields != form["fields"]:
        version = form["version"] + 1
        new_version = {"version": version, "title": new_title, "fields": new_fields, "created_at": at}
        changes.update(title=new_title, fields=new_fields, version=version)
    if sharing is not None and sharing.model_dump() != form["sharing"]:
        await check_recipients(sharing=sharing, caller=caller, projection=projection, directory=directory)
        new_sharing = _sharing(sharing)
        added_p, added_o = added_recipients(SharingRule.of(form["sharing"]), SharingRule.of(new_sharing))
        changes["sharing"] = new_sharing
        staged.append(events.form_shared({**form, "sharing": new_sharing}, added_practitioner_ids=added_p,
                                         added_office_ids=added_o))
    if not changes:
        return None
    staged.insert(0, events.form_updated(form, changes))
    changes["updated_at"] = at
    return changes, new_version, staged


# ---- assignments and submissions ---------------------------------------------------------------------


async def assign(*, store: FormStore, projection: IdentityProjection, directory: Directory, form: FormDoc,
                 caller: Caller, patient_id: str) -> AssignmentDoc:
    """Assign a form the caller may administer to a patient in their care (the projection first; identity
    breaks the tie)."""
    if not await patient_in_care(projection, directory, patient_id=patient_id, practitioner_id=caller.id,
                                 authorization=caller.authorization):
        raise Problem(422, "the patient is not in your care", invalid_ids=[patient_id])
    assignment: AssignmentDoc = {
        "_id": new_id(), "form_id": form["_id"], "form_version": form["version"], "author_id": form["author_id"],
        "practitioner_id": caller.id, "patient_id": patient_id, "status": "pending",
        "created_at": now_ms(), "submission": None,
    }
    await store.insert_assignment(assignment, events.form_assigned(assignment))
    return assignment


async def submit(*, store: FormStore, projection: IdentityProjection, assignment_id: str, patient_id: str,
                 answers: dict[str, Any]) -> AssignmentDoc:
    """The patient's one submission, checked against the version they were given; the event says whether
    the author may see it (so notify tells only those who may)."""
    assignment = await store.assignment(assignment_id)
    if assignment is None or assignment["patient_id"] != patient_id:
        raise not_found("assignment")
    if assignment["status"] != "pending":
        raise Problem(409, "this form has already been submitted")
    version = await store.form_version(assignment["form_id"], assignment["form_version"])
    form = await store.form(assignment["form_id"])
    if version is None or form is None:
        raise not_found("assignment")
    checked, errors = validate_answers(FIELDS.validate_python(version["fields"]), answers)
    if errors:
        raise Problem(422, "some answers are invalid", errors=errors)

    author_id = form["author_id"]
    author_may_see = may_see_submission(
        await live_rule(form=form, projection=projection), author_id=author_id,
        assigned_by=assignment["practitioner_id"],
        viewer_id=author_id, viewer_offices=await projection.office_ids_of(author_id, role="practitioner"),
    )
    submission: SubmissionDoc = {"id": new_id(), "submitted_at": now_ms(), "answers": checked}
    event = events.form_submitted(assignment, submission["id"], author_may_see=author_may_see)
    if not await store.submit(assignment_id, submission, event):
        raise Problem(409, "this form has already been submitted")
    return {**assignment, "submission": submission, "status": "submitted"}


async def pending_forms(*, store: FormStore, patient_id: str,
                        params: PageQuery) -> tuple[list[tuple[AssignmentDoc, VersionDoc]], str | None]:
    """The patient's pending assignments, each with the version they were given."""
    docs, cursor = params.page(await store.pending_for_patient(patient_id, params))
    versions: dict[tuple[str, int], VersionDoc | None] = {}
    items = []
    for a in docs:
        key = (a["form_id"], a["form_version"])
        if key not in versions:
            versions[key] = await store.form_version(*key)
        if (v := versions[key]) is not None:
            items.append((a, v))
    return items, cursor


class Scope:
    """Which submissions of a form the caller sees: all of them, or only those of assignments they made."""

    def __init__(self, form: FormDoc, caller: Caller, rule: SharingRule) -> None:
        self.form = form
        self.caller = caller
        self.rule = rule  # the live rule: recipients still on the author's sharing list
        self.sees_others = may_see_submission(self.rule, author_id=form["author_id"], assigned_by=None,
                                              viewer_id=caller.id, viewer_offices=caller.offices)
        self.only_assigned_by = None if self.sees_others else caller.id

    def allows(self, assignment: AssignmentDoc) -> bool:
        return may_see_submission(self.rule, author_id=self.form["author_id"],
                                  assigned_by=assignment["practitioner_id"], viewer_id=self.caller.id,
                                  viewer_offices=self.caller.offices)


async def submission_scope(*, store: FormStore, projection: IdentityProjection, form_id: str,
                           caller: Caller) -> Scope:
    form = await store.form(form_id)
    # Whoever assigned the form always sees those submissions, even after the author withdrew the share.
    if form is None or not (await may_administer(form=form, projection=projection, viewer_id=caller.id,
                                                 viewer_offices=caller.offices)
                            or await store.has_assigned(form_id, caller.id)):
        raise not_found("form")
    return Scope(form, caller, await live_rule(form=form, projection=projection))


async def _shown(store: FormStore, scope: Scope, assignment: AssignmentDoc) -> None:
    """A submission read by someone other than the practitioner who asked for it (its owner here) is
    accounted for: an access-log entry and its ``forms.submission.accessed`` event, in one insert."""
    if assignment["practitioner_id"] == scope.caller.id:
        return
    submission = assignment["submission"]
    assert submission is not None
    through_share = scope.caller.id != scope.form["author_id"]
    entry: AccessDoc = {"_id": new_id(), "submission_id": submission["id"], "form_id": assignment["form_id"],
                        "assignment_id": assignment["_id"], "patient_id": assignment["patient_id"],
                        "owner_id": assignment["practitioner_id"], "accessor_id": scope.caller.id,
                        "grant_ids": [scope.form["_id"]] if through_share else [], "at": now_ms()}
    await store.insert_access(entry, events.submission_accessed(entry))


async def submissions(*, store: FormStore, scope: Scope, params: PageQuery) -> tuple[list[AssignmentDoc], str | None]:
    """A page of the submissions the scope shows, each read by another recorded."""
    docs, cursor = params.page(await store.submissions(scope.form["_id"], only_assigned_by=scope.only_assigned_by,
                                                       params=params))
    shown = [d for d in docs if scope.allows(d)]
    for doc in shown:
        await _shown(store, scope, doc)
    return shown, cursor


async def export_submissions(*, store: FormStore, scope: Scope) -> AsyncIterator[AssignmentDoc]:
    """Every submission the scope shows, oldest first, each read by another recorded as it goes out."""
    async for doc in store.iter_submissions(scope.form["_id"], only_assigned_by=scope.only_assigned_by):
        if scope.allows(doc):
            await _shown(store, scope, doc)
            yield doc
