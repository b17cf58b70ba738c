"""GridStore: GridFS layout, chunk-by-chunk writes and reads, the size limit, deletion."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clinishare_shared.gridfs import CHUNK_SIZE, CorruptFile, FileNotFound, GridStore, TooLarge


async def pieces(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
async def store(mongo_client: Any, db_name: str) -> GridStore:
    grid = GridStore(mongo_client[db_name], bucket="docs", chunk_size=1024)
    await grid.ensure_indexes()
    return grid


async def read_all(grid: GridStore, file_id: str) -> bytes:
    return b"".join([c async for c in grid.download(file_id)])


async def test_upload_writes_gridfs_layout_and_reads_back(store: GridStore) -> None:
    data = os.urandom(1024 * 3 + 100)
    info = await store.upload(pieces(data), filename="a.pdf", content_type="application/pdf",
                              metadata={"owner": "x"})
    assert info.length == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()

    files = await store.files.find({}).to_list()
    assert len(files) == 1
    f = files[0]
    assert f["_id"] == info.id and f["length"] == len(data) and f["chunkSize"] == 1024
    assert f["filename"] == "a.pdf" and f["uploadDate"] is not None
    assert f["metadata"] == {"owner": "x", "sha256": info.sha256, "contentType": "application/pdf"}

    chunks = await store.chunks.find({"files_id": info.id}).sort("n", 1).to_list()
    assert [c["n"] for c in chunks] == [0, 1, 2, 3]
    assert [len(c["data"]) for c in chunks] == [1024, 1024, 1024, 100]
    assert b"".join(c["data"] for c in chunks) == data
    assert await read_all(store, info.id) == data


async def test_download_yields_one_chunk_at_a_time(store: GridStore) -> None:
    data = os.urandom(1024 * 2 + 1)
    info = await store.upload(pieces(data, 50_000), filename="b")  # pieces bigger than a chunk
    got = [c async for c in store.download(info.id)]
    assert [len(c) for c in got] == [1024, 1024, 1]


async def test_exact_multiple_of_chunk_size_and_empty_file(store: GridStore) -> None:
    data = os.urandom(2048)
    info = await store.upload(pieces(data), filename="c")
    assert await store.chunks.count_documents({"files_id": info.id}) == 2
    assert await read_all(store, info.id) == data

    empty = await store.upload(pieces(b""), filename="empty")
    assert empty.length == 0 and empty.sha256 == hashlib.sha256(b"").hexdigest()
    assert await read_all(store, empty.id) == b""


async def test_too_large_raises_and_keeps_nothing(store: GridStore) -> None:
    data = os.urandom(5000)
    with pytest.raises(TooLarge):
        await store.upload(pieces(data, 1000), filename="big", max_size=4096)
    assert await store.files.count_documents({}) == 0
    assert await store.chunks.count_documents({}) == 0
    # at the limit exactly is fine
    info = await store.upload(pieces(data[:4096]), filename="ok", max_size=4096)
    assert info.length == 4096


async def test_failing_stream_deletes_partial_chunks(store: GridStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(3000)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.upload(broken(), filename="x")
    assert await store.chunks.count_documents({}) == 0
    assert await store.files.count_documents({}) == 0


async def test_cancelled_upload_deletes_partial_chunks(store: GridStore) -> None:
    gate = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield os.urandom(3000)
        await gate.wait()
        yield b"never"

    task = asyncio.create_task(store.upload(stalled(), filename="x"))
    while await store.chunks.count_documents({}) < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.chunks.count_documents({}) == 0


async def test_delete_and_missing(store: GridStore) -> None:
    info = await store.upload(pieces(os.urandom(3000)), filename="d")
    assert await store.delete(info.id) is True
    assert await store.files.count_documents({}) == 0
    assert await store.chunks.count_documents({}) == 0
    assert await store.delete(info.id) is False
    with pytest.raises(FileNotFound):
        await read_all(store, info.id)


async def test_missing_chunk_is_reported(store: GridStore) -> None:
    info = await store.upload(pieces(os.urandom(3000)), filename="e")
    await store.chunks.delete_many({"files_id": info.id, "n": 1})
    with pytest.raises(CorruptFile):
        await read_all(store, info.id)


async def test_chunk_index_is_unique(store: GridStore) -> None:
    from pymongo.errors import DuplicateKeyError

    await store.chunks.insert_one({"files_id": "f", "n": 0, "data": b"a"})
    with pytest.raises(DuplicateKeyError):
        await store.chunks.insert_one({"files_id": "f", "n": 0, "data": b"b"})


def test_default_chunk_size_is_255_kib() -> None:
    assert CHUNK_SIZE == 255 * 1024
