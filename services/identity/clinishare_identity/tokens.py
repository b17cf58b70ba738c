"""Identity's token signing key: Ed25519, from settings, or generated once and kept in MongoDB.

Replicas starting together race to insert the key under one fixed ``_id``; whichever insert lands first
is the key every replica loads, so all of them sign with, and publish, the same key.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo.errors import DuplicateKeyError

from clinishare_shared.auth import TokenSigner
from clinishare_identity.settings import IdentitySettings

SIGNING_KEYS = "signing_keys"
CURRENT = "current"
log = structlog.get_logger("clinishare.identity.tokens")


def _kid(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _pem(private_key: Ed25519PrivateKey) -> str:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()


def _load(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


def signer_for(private_key: Ed25519PrivateKey, settings: IdentitySettings) -> TokenSigner:
    return TokenSigner(private_key, kid=_kid(private_key), issuer=settings.jwt_issuer,
                       audience=settings.jwt_audience, ttl_seconds=settings.token_ttl_seconds)


async def load_signer(db: Any, settings: IdentitySettings) -> TokenSigner:
    if settings.signing_key_pem:
        return signer_for(_load(settings.signing_key_pem), settings)
    coll = db[SIGNING_KEYS]
    stored = await coll.find_one({"_id": CURRENT})
    if stored is None:
        candidate = Ed25519PrivateKey.generate()
        try:
            await coll.insert_one({"_id": CURRENT, "pem": _pem(candidate), "created_at": datetime.now(UTC)})
            log.info("signing_key_generated", kid=_kid(candidate))
        except DuplicateKeyError:
            pass  # another replica won the race; use its key
        stored = await coll.find_one({"_id": CURRENT})
    return signer_for(_load(stored["pem"]), settings)
