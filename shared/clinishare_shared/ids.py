"""The one id type every service uses (SPEC 10.3: ids are validated one way everywhere).

Ids we mint are ObjectId hex strings (``mongo.new_id``); event ids are UUIDs; a notification's id is
``<event id>:<recipient id>``. So an id is 1 to 128 letters, digits, ``_``, ``-`` or ``:``: nothing that
could change the meaning of a URL it is put into (``/``, ``.``, ``%``, ``?``, ``#``). A bad id in a path
answers 404 (``problems`` turns a path validation error into "not found"), in a body or query 422.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path
from pydantic import StringConstraints

ID_PATTERN = r"^[A-Za-z0-9_:-]{1,128}$"
_ID = re.compile(ID_PATTERN)

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None
