"""multipart/form-data parsed incrementally from the request's byte stream.

Starlette's ``request.form()`` spools a file part to a temporary file before the handler runs; here the
parts come one at a time and a file part's bytes are handed on as they arrive, so an upload goes straight
into GridFS with memory bounded by a network read plus one GridFS chunk, and a too-large upload is
refused while it streams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header


class MultipartError(Exception):
    pass


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None


def boundary_of(content_type: str | None) -> bytes:
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise MultipartError("the body must be multipart/form-data")
    return boundary


class StreamingForm:
    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body.__aiter__()
        self._events: deque[tuple[str, Any]] = deque()
        self._headers: dict[str, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._finished = False  # the closing boundary was seen
        self._in_part = False
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._on_part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": lambda d, s, e: self._events.append(("data", bytes(d[s:e]))),
            "on_part_end": lambda: self._events.append(("part_end", None)),
            "on_end": self._on_end,
        })

    # ---- parser callbacks (synchronous; they only queue events) ------------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        # raw bytes: browsers and httpx send a UTF-8 file name as it is
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._events.append(("part", Part(name=name,
                                          filename=filename.decode("utf-8", "replace") if filename is not None else None,
                                          content_type=self._headers.get("content-type", b"").decode("latin-1") or None)))

    def _on_end(self) -> None:
        self._finished = True
        self._events.append(("end", None))

    # ---- pulling ------------------------------------------------------------------------------------

    async def _next_event(self) -> tuple[str, Any]:
        while not self._events:
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                raise MultipartError("the body ended before its closing boundary") from None
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise MultipartError("malformed multipart body") from exc
        return self._events.popleft()

    async def next_part(self) -> Part | None:
        """The next part's headers (skipping what is left of the current part), or None at the end."""
        while True:
            if self._finished and not self._events:
                return None
            kind, value = await self._next_event()
            if kind == "part":
                self._in_part = True
                return value
            if kind == "end":
                return None
            self._in_part = kind != "part_end"

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's bytes as they arrive."""
        while self._in_part:
            kind, value = await self._next_event()
            if kind == "data":
                yield value
            elif kind == "part_end":
                self._in_part = False
            else:
                raise MultipartError("malformed multipart body")

    async def read_field(self, *, limit: int) -> str:
        """A small text field, whole."""
        buf = bytearray()
        async for piece in self.data():
            buf += piece
            if len(buf) > limit:
                raise MultipartError("a form field is too long")
        return buf.decode("utf-8", "replace")
