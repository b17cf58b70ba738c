"""Properties over arbitrary memberships: the actor is never told, nobody is told twice, every named
recipient and every current member with the matching role is told, nobody else is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clinishare_notify.domain.recipients import Office, recipients
from clinishare_shared.events import ChartShareGranted, DocumentShared, OfficeRecipient

people = st.sampled_from(["a", "b", "c", "d", "e"])
office_ids = st.sampled_from(["o1", "o2", "o3"])
offices = st.dictionaries(office_ids, st.builds(
    Office, members=st.dictionaries(people, st.sampled_from(["practitioner", "staff"])), owner_id=people))


@given(actor=people, named=st.lists(people), targets=st.lists(office_ids), offices=offices)
def test_chart_share(actor: str, named: list[str], targets: list[str], offices: dict[str, Office]) -> None:
    data = ChartShareGranted(grant_id="g", owner_id=actor, rule="all", practitioner_ids=named, office_ids=targets)
    got = [r.account_id for r in recipients(data, offices)]
    assert len(got) == len(set(got))
    expected = set(named) | {m for o in targets if o in offices for m, role in offices[o].members.items()
                             if role == "practitioner"}
    assert set(got) == expected - {actor}


@given(actor=people, named=st.lists(people), patients=st.lists(st.sampled_from(["p1", "p2"])),
       targets=st.lists(st.tuples(office_ids, st.sampled_from(["practitioners", "staff"]))), offices=offices)
def test_document_share(actor: str, named: list[str], patients: list[str], targets: list[tuple[str, str]],
                        offices: dict[str, Office]) -> None:
    data = DocumentShared(document_id="d", owner_id=actor, practitioner_ids=named, patient_ids=patients,
                          offices=[OfficeRecipient(office_id=o, audience=a) for o, a in targets])
    got = recipients(data, offices)
    assert len({r.account_id for r in got}) == len(got)
    role = {"practitioners": "practitioner", "staff": "staff"}
    expected = set(named) | set(patients) | {m for o, a in targets if o in offices
                                             for m, r in offices[o].members.items() if r == role[a]}
    assert {r.account_id for r in got} == expected - {actor}
    assert {r.account_id for r in got if r.kind == "patient"} == set(patients)
