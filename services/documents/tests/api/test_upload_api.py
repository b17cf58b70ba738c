"""Upload, download and delete over HTTP."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

from clinishare_shared.directory import StaticDirectory
from clinishare_shared.gridfs import CHUNK_SIZE

ME, COLLEAGUE, OUTSIDER = "dr-me", "dr-colleague", "dr-outsider"


async def test_upload_to_all_documents(api: Any, sha256: Any) -> None:
    content = b"%PDF-1.7 pretend " * 100
    doc = await api.upload_ok(ME, content, filename="scan.pdf", content_type="application/pdf")
    assert set(doc) >= {"id", "filename", "content_type", "size", "sha256", "patient_id", "labels", "shares",
                        "created_at"}
    assert doc["filename"] == "scan.pdf" and doc["content_type"] == "application/pdf"
    assert doc["size"] == len(content) and doc["sha256"] == sha256(content)
    assert doc["patient_id"] is None and doc["labels"] == []
    assert doc["shares"] == {"patient_ids": [], "practitioner_ids": [], "offices": []}

    got = await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(ME))
    assert got.status_code == 200 and got.json() == doc
    mine = await api.client.get("/v1/documents", headers=api.auth(ME))
    assert [d["id"] for d in mine.json()["items"]] == [doc["id"]]
    assert await api.flush() == []  # an upload shares nothing
    # ... but analytics hear of it (SPEC 10.5): ids and size, never the file's name or type
    uploaded = await api.flush(types=None)
    assert [e.type for e in uploaded] == ["documents.document.uploaded"]
    assert uploaded[0].data == {"document_id": doc["id"], "owner_id": ME, "workspace_patient_id": None,
                                "size": len(content)}
    assert "scan.pdf" not in uploaded[0].model_dump_json() and "pdf" not in uploaded[0].model_dump_json()


async def test_upload_to_a_workspace(api: Any) -> None:
    patient = await api.patient(ME)
    doc = await api.upload_ok(ME, b"lab results", patient_id=patient)
    assert doc["patient_id"] == patient
    await api.upload_ok(ME, b"other")
    listed = await api.client.get("/v1/documents", params={"patient_id": patient}, headers=api.auth(ME))
    assert [d["id"] for d in listed.json()["items"]] == [doc["id"]]


async def test_workspace_patient_must_be_in_my_care(api: Any) -> None:
    patient = await api.patient(COLLEAGUE)
    resp = await api.upload(ME, b"data", patient_id=patient)
    assert resp.status_code == 422 and resp.json()["invalid_ids"] == [patient]
    # the field after the file: stored first, refused at the end, nothing kept
    resp = await api.client.post("/v1/documents", headers=api.auth(ME), files=[
        ("file", ("a.txt", b"data", "text/plain")), ("patient_id", (None, patient))])
    assert resp.status_code == 422
    assert await api.stored_counts() == {"documents": 0, "fs.files": 0, "fs.chunks": 0}


async def test_over_the_limit_is_413_and_nothing_is_stored(start_documents: Any) -> None:
    api = await start_documents(max_upload_bytes=1000)
    assert (await api.upload(ME, b"x" * 1000)).status_code == 201  # at the limit is fine
    await api.db["documents"].delete_many({})
    await api.db["fs.files"].delete_many({})
    await api.db["fs.chunks"].delete_many({})
    # refused while streaming (Content-Length is within the multipart allowance)
    resp = await api.upload(ME, b"x" * 1001)
    assert resp.status_code == 413 and resp.headers["content-type"] == "application/problem+json"
    # refused from Content-Length, before reading the body
    assert (await api.upload(ME, b"x" * 100_000)).status_code == 413

    # no Content-Length at all (chunked): refused while streaming
    async def chunked() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        for _ in range(10):
            yield b"y" * 500
        yield b"\r\n--b--\r\n"

    resp = await api.client.post("/v1/documents", content=chunked(),
                                 headers={**api.auth(ME), "content-type": "multipart/form-data; boundary=b"})
    assert resp.status_code == 413
    assert await api.stored_counts() == {"documents": 0, "fs.files": 0, "fs.chunks": 0}


async def test_empty_or_missing_file_is_422(api: Any) -> None:
    assert (await api.upload(ME, b"")).status_code == 422
    no_file = await api.client.post("/v1/documents", headers=api.auth(ME), files={"other": ("a", b"x")})
    assert no_file.status_code == 422
    not_multipart = await api.client.post("/v1/documents", headers=api.auth(ME), json={"file": "x"})
    assert not_multipart.status_code == 422
    truncated = await api.client.post("/v1/documents", content=b'--b\r\nContent-Disposition: form-data; '
                                      b'name="file"; filename="a"\r\n\r\npartial', headers={
                                          **api.auth(ME), "content-type": "multipart/form-data; boundary=b"})
    assert truncated.status_code == 422
    assert await api.stored_counts() == {"documents": 0, "fs.files": 0, "fs.chunks": 0}


async def test_upload_needs_a_practitioner_token(api: Any) -> None:
    assert (await api.client.post("/v1/documents", files={"file": ("a", b"x")})).status_code == 401
    staff = await api.client.post("/v1/documents", headers=api.auth("s", "staff"), files={"file": ("a", b"x")})
    assert staff.status_code == 403


async def test_download_for_owner_and_recipients_404_for_outsiders(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    content = bytes(range(256)) * 50
    doc = await api.upload_ok(ME, content, filename="résumé scan.png", content_type="image/png")
    assert (await api.label(ME, [doc["id"]], add={"practitioner_ids": [COLLEAGUE]})).status_code == 200
    for who in (ME, COLLEAGUE):
        resp = await api.client.get(f"/v1/documents/{doc['id']}/content", headers=api.auth(who))
        assert resp.status_code == 200
        assert resp.content == content
        assert resp.headers["content-type"] == "image/png"
        assert resp.headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20scan.png" in resp.headers["content-disposition"]
    for path in (f"/v1/documents/{doc['id']}/content", f"/v1/documents/{doc['id']}"):
        assert (await api.client.get(path, headers=api.auth(OUTSIDER))).status_code == 404
        assert (await api.client.get(path, headers=api.auth("some-patient", "patient"))).status_code == 404
    assert (await api.client.get("/v1/documents/nope/content", headers=api.auth(ME))).status_code == 404


async def test_delete_owner_only_then_gone_for_everyone(api: Any) -> None:
    await api.connect(ME, "practitioner", COLLEAGUE)
    doc = await api.upload_ok(ME, b"to be deleted")
    await api.label(ME, [doc["id"]], add={"practitioner_ids": [COLLEAGUE], "labels": ["x"]})
    await api.flush()
    path = f"/v1/documents/{doc['id']}"
    assert (await api.client.delete(path, headers=api.auth(COLLEAGUE))).status_code == 403
    assert (await api.client.delete(path, headers=api.auth(OUTSIDER))).status_code == 404
    assert (await api.client.delete(path, headers=api.auth(ME))).status_code == 204
    for who in (ME, COLLEAGUE):
        assert (await api.client.get(path, headers=api.auth(who))).status_code == 404
        assert (await api.client.get(f"{path}/content", headers=api.auth(who))).status_code == 404
    assert (await api.client.delete(path, headers=api.auth(ME))).status_code == 404
    assert await api.shared_ids(COLLEAGUE) == []
    counts = await api.stored_counts()
    assert counts["fs.files"] == 0 and counts["fs.chunks"] == 0
    unshared = [e for e in await api.flush() if e.type == "documents.unshared"]
    assert len(unshared) == 1 and unshared[0].data["practitioner_ids"] == [COLLEAGUE]
    lifecycle = await api.flush(types=("documents.document.uploaded", "documents.document.deleted"))
    assert [e.type for e in lifecycle] == ["documents.document.uploaded", "documents.document.deleted"]
    assert lifecycle[1].data == {"document_id": doc["id"], "owner_id": ME, "workspace_patient_id": None,
                                 "deleted_by": ME}
    assert lifecycle[1].subject == doc["id"]
    tombstone = await api.db["documents"].find_one({"_id": doc["id"]})
    assert tombstone["deleted_at"] is not None and "filename" not in tombstone


async def test_several_mib_are_streamed_in_and_out(api: Any) -> None:
    size, piece = 6 * 1024 * 1024 + 123, 64 * 1024
    expected = hashlib.sha256()

    def block(i: int) -> bytes:
        return hashlib.sha256(str(i).encode()).digest() * (piece // 32)

    async def body() -> AsyncIterator[bytes]:  # generated on the fly: the client holds no copy of the file
        yield b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n' \
              b'Content-Type: application/octet-stream\r\n\r\n'
        sent, i = 0, 0
        while sent < size:
            data = block(i)[: size - sent]
            expected.update(data)
            sent, i = sent + len(data), i + 1
            yield data
        yield b"\r\n--bnd--\r\n"

    tracemalloc.start()
    try:
        resp = await api.client.post("/v1/documents", content=body(), headers={
            **api.auth(ME), "content-type": "multipart/form-data; boundary=bnd"})
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["size"] == size and doc["sha256"] == expected.hexdigest()
    # The in-process engine keeps the stored chunks in memory (that is `current`); what the upload needed
    # on top of them at its peak stays a small fraction of the file: it was never held whole.
    assert peak - current < size // 4, f"peak {peak} current {current}"

    file_id = (await api.db["documents"].find_one({"_id": doc["id"]}))["file_id"]
    chunks = await api.db["fs.chunks"].find({"files_id": file_id}, {"data": 1, "n": 1}).sort("n", 1).to_list()
    assert len(chunks) == -(-size // CHUNK_SIZE)
    assert all(len(c["data"]) <= CHUNK_SIZE for c in chunks)

    got, received = hashlib.sha256(), 0
    async with api.client.stream("GET", f"/v1/documents/{doc['id']}/content", headers=api.auth(ME)) as stream:
        assert stream.status_code == 200 and stream.headers["content-length"] == str(size)
        async for part in stream.aiter_raw():
            got.update(part)
            received += len(part)
    assert received == size and got.hexdigest() == expected.hexdigest()


async def test_a_workspace_patient_id_is_validated_as_an_id(start_documents: Any) -> None:
    # a directory that would find anything: only the id check stands between "../me" and the workspace
    api = await start_documents(directory=StaticDirectory(patients={"../me": {"id": "../me", "name": "x"}}))
    for bad in ("../me", "a/b", "x" * 129):
        resp = await api.upload(ME, b"data", patient_id=bad)
        assert resp.status_code == 422, bad
        assert resp.headers["content-type"] == "application/problem+json"
    assert await api.stored_counts() == {"documents": 0, "fs.files": 0, "fs.chunks": 0}
    listed = await api.client.get("/v1/documents", params={"patient_id": "../me"}, headers=api.auth(ME))
    assert listed.status_code == 422


async def test_a_bad_document_id_in_a_path_is_404(api: Any) -> None:
    for path in ("/v1/documents/a.b", "/v1/documents/a.b/content", "/v1/documents/" + "x" * 129):
        resp = await api.client.get(path, headers=api.auth(ME))
        assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json", path
    assert (await api.client.delete("/v1/documents/a.b", headers=api.auth(ME))).status_code == 404


async def test_bidi_control_characters_are_removed_from_stored_file_names(api: Any) -> None:
    # "invoice<RLO>gpj.exe" displays as "invoiceexe.jpg": the override must not be stored or served
    doc = await api.upload_ok(ME, b"MZ", filename="invoice\u202egpj.exe", content_type="application/octet-stream")
    assert doc["filename"] == "invoicegpj.exe"
    for mark in ("\u200e", "\u200f", "\u061c", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067",
                 "\u2068", "\u2069"):
        stored = await api.upload_ok(ME, b"x", filename=f"a{mark}b.txt", content_type="text/plain")
        assert stored["filename"] == "ab.txt", repr(mark)
    listed = (await api.client.get(f"/v1/documents/{doc['id']}", headers=api.auth(ME))).json()
    assert listed["filename"] == "invoicegpj.exe"
