"""docs/asyncapi.json is what analytics read: it must be the document the models generate today."""

import json
from pathlib import Path

from clinishare_shared.asyncapi import asyncapi_document

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


def test_published_asyncapi_matches_the_models() -> None:
    assert json.loads(PUBLISHED.read_text()) == json.loads(json.dumps(asyncapi_document())), \
        "docs/asyncapi.json is stale: run `make asyncapi`"
