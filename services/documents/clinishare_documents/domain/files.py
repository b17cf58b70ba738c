"""What is stored of an uploaded file's own description: its name and its declared type, made safe."""

from __future__ import annotations

import re

_CTYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
# control characters, and the bidirectional formatting characters that can make "invoice\u202egpj.exe"
# display as "invoiceexe.jpg" (Trojan Source style)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_content_type(value: str | None) -> str:
    """``type/subtype`` as declared by the client (parameters dropped), or application/octet-stream."""
    base = (value or "").split(";", 1)[0].strip().lower()
    return base if _CTYPE.match(base) else "application/octet-stream"


def clean_filename(value: str | None) -> str:
    """The file's own name: no directories, no control or bidi characters, at most 255 characters."""
    name = re.split(r"[\\/]", value or "")[-1]
    name = _UNSAFE.sub("", name).strip().strip(".") or "document"
    return name[:255]
