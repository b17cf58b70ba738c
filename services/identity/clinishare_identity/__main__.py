"""``python -m clinishare_identity``: the identity service as its own process (settings from the environment).

``python -m clinishare_identity rotate-key``: replace the database signing key (running replicas switch at
their next key refresh and keep publishing the previous key until its tokens have expired).
"""

from __future__ import annotations

import asyncio
import json
import sys

from clinishare_shared.logging import configure_logging
from clinishare_shared.mongo import open_client
from clinishare_shared.serve import load_settings, run_service

from clinishare_identity.app import create_app
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.tokens import rotate_key


async def _rotate(settings: IdentitySettings) -> str:
    client = open_client(settings.mongodb_url)
    try:
        return await rotate_key(client[settings.database], settings)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        run_service(IdentitySettings, create_app)
        return
    if args != ["rotate-key"]:
        print("usage: python -m clinishare_identity [rotate-key]", file=sys.stderr)
        raise SystemExit(2)
    settings = load_settings(IdentitySettings, service="identity")
    configure_logging(service="identity", level=settings.log_level, json=settings.log_json)
    if not settings.mongodb_url:
        print(json.dumps({"event": "rotate_key_refused", "detail": "MONGODB_URL is not set"}))
        raise SystemExit(2)
    try:
        kid = asyncio.run(_rotate(settings))
    except RuntimeError as exc:
        print(json.dumps({"event": "rotate_key_refused", "detail": str(exc)}))
        raise SystemExit(2) from None
    print(json.dumps({"event": "signing_key_rotated", "kid": kid}))


if __name__ == "__main__":
    main()
