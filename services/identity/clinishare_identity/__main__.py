"""``python -m clinishare_identity``: the identity service as its own process (settings from the environment).

``python -m clinishare_identity rotate-key``: replace the database signing key (running replicas switch at
their next key refresh and keep publishing the previous key until its tokens have expired).
"""

from __future__ import annotations

from typing import Any

from clinishare_shared.serve import CommandRefused
from clinishare_shared.serve import main as serve_main

from clinishare_identity.app import create_app
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.tokens import rotate_key


async def _rotate(db: Any, settings: IdentitySettings) -> dict[str, Any]:
    try:
        return {"event": "signing_key_rotated", "kid": await rotate_key(db, settings)}
    except RuntimeError as exc:  # the key comes from a mounted secret: replace that instead
        raise CommandRefused(str(exc)) from None


def main(argv: list[str] | None = None) -> None:
    serve_main(IdentitySettings, create_app, {"rotate-key": _rotate}, argv)


if __name__ == "__main__":
    main()
