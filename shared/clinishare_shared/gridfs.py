"""GridFS-layout chunked file storage over plain collection calls.

The layout is the GridFS specification's (``<bucket>.files`` and ``<bucket>.chunks``; ``files_id``, ``n``,
``data``, ``chunkSize``, ``length``, ``uploadDate``, ``filename``, ``metadata``), so standard GridFS tools
can read what we write. It is written with ``insert_one`` / ``find_one`` / ``delete_many`` only, so the same
code runs on PyMongo's AsyncMongoClient and on the in-process engine (which has no GridFS of its own).

Memory stays bounded by one chunk: an upload hashes and writes each chunk as soon as it is full, and a
download reads one chunk at a time. The files document is written last, so a file is visible only once
all its chunks are; a failed or refused upload deletes the chunks it wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clinishare_shared.mongo import new_id

CHUNK_SIZE = 255 * 1024  # the GridFS default: a chunk plus its fields stays well under 16 MiB BSON


class GridError(Exception):
    pass


class TooLarge(GridError):
    """The stream went past ``max_size``; nothing of it is kept."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"file larger than {max_size} bytes")
        self.max_size = max_size


class FileNotFound(GridError):
    pass


class CorruptFile(GridError):
    """A chunk is missing or has the wrong size."""


@dataclass(frozen=True)
class FileInfo:
    id: str
    length: int
    sha256: str


class GridStore:
    def __init__(self, db: Any, bucket: str = "fs", *, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.files = db[f"{bucket}.files"]
        self.chunks = db[f"{bucket}.chunks"]
        self.chunk_size = chunk_size

    async def ensure_indexes(self) -> None:
        await self.chunks.create_index([("files_id", 1), ("n", 1)], unique=True, name="files_id_1_n_1")
        await self.files.create_index([("filename", 1), ("uploadDate", 1)], name="filename_1_uploadDate_1")

    async def upload(self, stream: AsyncIterator[bytes], *, filename: str, content_type: str | None = None,
                     max_size: int | None = None, metadata: Mapping[str, Any] | None = None,
                     file_id: str | None = None) -> FileInfo:
        """Store ``stream`` chunk by chunk. Raises TooLarge past ``max_size`` bytes; on any failure
        (including cancellation) the chunks already written are deleted."""
        fid = file_id or new_id()
        digest = hashlib.sha256()
        buf = bytearray()
        length = 0
        n = 0
        try:
            async for piece in stream:
                if not piece:
                    continue
                length += len(piece)
                if max_size is not None and length > max_size:
                    raise TooLarge(max_size)
                digest.update(piece)
                buf += piece
                while len(buf) >= self.chunk_size:
                    await self._write_chunk(fid, n, bytes(buf[: self.chunk_size]))
                    del buf[: self.chunk_size]
                    n += 1
            if buf:
                await self._write_chunk(fid, n, bytes(buf))
                buf.clear()
            meta = {**(metadata or {}), "sha256": digest.hexdigest()}
            if content_type:
                meta["contentType"] = content_type
            await self.files.insert_one({
                "_id": fid, "length": length, "chunkSize": self.chunk_size, "uploadDate": datetime.now(UTC),
                "filename": filename, "metadata": meta,
            })
        except BaseException:
            await self.chunks.delete_many({"files_id": fid})
            raise
        return FileInfo(id=fid, length=length, sha256=digest.hexdigest())

    async def _write_chunk(self, file_id: str, n: int, data: bytes) -> None:
        await self.chunks.insert_one({"files_id": file_id, "n": n, "data": data})

    async def info(self, file_id: str) -> dict[str, Any] | None:
        return await self.files.find_one({"_id": file_id})

    async def download(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes, one chunk at a time (a chunk is fetched only when the previous was consumed)."""
        info = await self.info(file_id)
        if info is None:
            raise FileNotFound(file_id)
        length, size = int(info["length"]), int(info["chunkSize"])
        count = -(-length // size)
        for n in range(count):
            chunk = await self.chunks.find_one({"files_id": file_id, "n": n}, {"data": 1})
            expected = size if n < count - 1 else length - size * (count - 1)
            data = bytes(chunk["data"]) if chunk is not None else b""
            if chunk is None or len(data) != expected:
                raise CorruptFile(f"file {file_id}: chunk {n} missing or of the wrong size")
            yield data

    async def delete(self, file_id: str) -> bool:
        """Delete the file. The files document goes first so a half-deleted file is never visible."""
        res = await self.files.delete_one({"_id": file_id})
        await self.chunks.delete_many({"files_id": file_id})
        return bool(res.deleted_count)
