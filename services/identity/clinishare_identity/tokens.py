"""Identity's token signing keys: Ed25519.

The key that signs comes from ``IDENTITY_SIGNING_KEY_FILE`` (a mounted secret), else
``IDENTITY_SIGNING_KEY_PEM``, else the database (generated once; replicas starting together race to insert
it under one fixed ``_id`` and all load the winner's key). Either way the *public* keys are recorded in the
database, one document per ``kid``, so every replica publishes the same JWKS.

Rotation (``python -m clinishare_identity rotate-key`` for a database key; for a mounted secret, replacing
the secret): every replica reloads its keys every ``key_refresh_seconds``. The first one to see a new
signing key marks the others retired, to be published until every token they signed has expired
(``token_ttl_seconds`` + the verifiers' 30 s leeway + one refresh period, for replicas still signing with
the old key until their next refresh).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clinishare_shared.auth import LEEWAY_SECONDS, TokenSigner
from clinishare_identity.domain.stored import Jwk, Jwks
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.store import SigningKeyStore

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


def retention(settings: IdentitySettings) -> timedelta:
    """How long a retired key stays published: past the expiry of every token it can have signed."""
    return timedelta(seconds=settings.token_ttl_seconds + LEEWAY_SECONDS + settings.key_refresh_seconds)


async def _database_key(db: Any) -> Ed25519PrivateKey:
    keys = SigningKeyStore(db)
    pem = await keys.current_pem()
    if pem is None:
        candidate = Ed25519PrivateKey.generate()
        if await keys.insert_current(_pem(candidate), at=datetime.now(UTC)):
            log.info("signing_key_generated", kid=_kid(candidate))
        pem = await keys.current_pem()  # ours, or the key of the replica that won the race
        assert pem is not None
    return _load(pem)


def configured_key(settings: IdentitySettings) -> Ed25519PrivateKey | None:
    """The key from the mounted secret or the setting, if one is configured (read anew every time)."""
    if settings.signing_key_file is not None:
        return _load(settings.signing_key_file.read_text())
    if settings.signing_key_pem:
        return _load(settings.signing_key_pem)
    return None


async def load_signer(db: Any, settings: IdentitySettings) -> TokenSigner:
    return signer_for(configured_key(settings) or await _database_key(db), settings)


@dataclass
class KeyRing:
    signer: TokenSigner
    jwks: Jwks


async def load_keys(db: Any, settings: IdentitySettings, *, now: datetime | None = None) -> KeyRing:
    """The signing key, and the JWKS to publish: it, and every retired key whose tokens may still be valid.
    Records the signing key's public half and retires the others (idempotent; any replica may run it)."""
    now = now or datetime.now(UTC)
    signer = await load_signer(db, settings)
    keys = SigningKeyStore(db)
    current_id = await keys.publish(signer.kid, Jwk(**signer.public_jwk()), at=now)
    retired = await keys.retire_all_but(current_id, at=now, expires_at=now + retention(settings))
    if retired:
        log.info("signing_key_rotated", kid=signer.kid, retired=retired)
    published: list[Jwk] = []
    for doc in await keys.published():
        expires = doc.get("expires_at")
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if doc["_id"] == current_id or expires is None or expires > now:
            published.append(doc["jwk"])
    published.sort(key=lambda k: k["kid"] != signer.kid)  # the signing key first
    return KeyRing(signer=signer, jwks=Jwks(keys=published))


async def rotate_key(db: Any, settings: IdentitySettings) -> str:
    """Replace the database signing key with a new one; returns the new ``kid``. Running replicas switch at
    their next refresh, and keep publishing the previous key until its tokens have expired."""
    if configured_key(settings) is not None:
        raise RuntimeError("the signing key comes from IDENTITY_SIGNING_KEY_FILE / IDENTITY_SIGNING_KEY_PEM: "
                           "replace that secret instead; identity keeps publishing the previous key")
    await _database_key(db)  # make sure there is one to replace
    fresh = Ed25519PrivateKey.generate()
    await SigningKeyStore(db).replace_current(_pem(fresh), at=datetime.now(UTC))
    ring = await load_keys(db, settings)  # records the new public key and retires the old at once
    return ring.signer.kid
