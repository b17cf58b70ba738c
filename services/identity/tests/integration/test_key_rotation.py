"""Signing-key rotation while tokens of both keys are in use: the previous key stays in the JWKS until its
tokens have expired, other services refetch the JWKS when a token names a kid they have not seen, and a
replaced key file (a mounted secret) rotates the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clinishare_shared.auth import JwksKeyProvider, TokenVerifier
from clinishare_shared.problems import Problem
from clinishare_shared.testing import wait_for
from clinishare_identity.__main__ import main as identity_main
from clinishare_identity.settings import IdentitySettings
from clinishare_identity.tokens import load_keys, retention, rotate_key


@pytest.fixture
def settings(settings: IdentitySettings) -> IdentitySettings:
    return settings.model_copy(update={"key_refresh_seconds": 0.1})


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


async def test_rotating_while_tokens_of_both_keys_are_in_use(api: Any, settings: IdentitySettings,
                                                               mongo_client: Any, db_name: str) -> None:
    alice = await api.register()
    old_token = alice.token
    base = str(api.client.base_url).rstrip("/")
    fetches = {"n": 0}
    # another service: identity's JWKS over HTTP, cached; an unknown kid makes it refetch (rate-limited)
    # (no minimum gap for the rotation itself, which may come within milliseconds of the first fetch)
    keys = JwksKeyProvider(f"{base}/.well-known/jwks.json", min_refetch_seconds=0.0)
    original_fetch = keys._fetch

    async def counted_fetch() -> None:
        fetches["n"] += 1
        await original_fetch()

    keys._fetch = counted_fetch  # type: ignore[method-assign]
    charts = TokenVerifier(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    assert (await charts.verify(old_token)).id == alice.id
    assert fetches["n"] == 1

    new_kid = await rotate_key(mongo_client[db_name], settings)
    assert new_kid != kid_of(old_token)
    await wait_for(lambda: api.app.state.signer.kid == new_kid, message="identity signs with the new key")
    new_token = await api.login(alice.email)
    assert kid_of(new_token) == new_kid

    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == [new_kid, kid_of(old_token)], "the signing key first, then the old"
    # both tokens work everywhere: at identity, and at a service that had cached only the old key
    for token in (old_token, new_token):
        assert (await api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await charts.verify(token)).id == alice.id
    assert fetches["n"] == 2, "the new kid made the service refetch once"
    # a forged kid cannot make it hammer identity: at most one refetch per min_refetch_seconds (a longer
    # window now, so that a slow machine cannot spread five tries over several windows)
    keys.min_refetch_seconds = 60
    forged = jwt.encode({"sub": alice.id}, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "nope"})
    for _ in range(5):
        with pytest.raises(Problem):
            await charts.verify(forged)
    assert fetches["n"] <= 3

    # once every token the old key signed has expired (ttl + 30 s leeway + one refresh), it is unpublished
    later = datetime.now(UTC) + retention(settings) + timedelta(seconds=1)
    ring = await load_keys(mongo_client[db_name], settings, now=later)
    assert [k["kid"] for k in ring.jwks["keys"]] == [new_kid]
    almost = datetime.now(UTC) + retention(settings) - timedelta(seconds=5)
    ring = await load_keys(mongo_client[db_name], settings, now=almost)
    assert {k["kid"] for k in ring.jwks["keys"]} == {new_kid, kid_of(old_token)}


async def test_a_replaced_key_file_rotates_and_rotate_key_refuses_it(tmp_path: Path, mongo_client: Any,
                                                                     db_name: str) -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    key_file = tmp_path / "signing-key.pem"
    key_file.write_text(pem(first))
    settings = IdentitySettings(mongodb_database=db_name, signing_key_file=key_file, token_ttl_seconds=60)
    db = mongo_client[db_name]
    ring = await load_keys(db, settings)
    first_kid = ring.signer.kid
    key_file.write_text(pem(second))  # the secret was replaced
    ring = await load_keys(db, settings)
    assert ring.signer.kid != first_kid
    assert [k["kid"] for k in ring.jwks["keys"]] == [ring.signer.kid, first_kid]
    # a private key from a secret never lands in the database: only public halves are recorded
    assert await db["signing_keys"].find_one({"pem": {"$exists": True}}) is None
    with pytest.raises(RuntimeError, match="IDENTITY_SIGNING_KEY_FILE"):
        await rotate_key(db, settings)


def test_rotate_key_command_needs_a_database(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from clinishare_shared import serve

    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.delenv("IDENTITY_MONGODB_URL", raising=False)
    # the command configures process-wide logging to this test's captured stdout: not here
    monkeypatch.setattr(serve, "configure_logging", lambda **kwargs: None)
    with pytest.raises(SystemExit) as exit_:
        identity_main(["rotate-key"])
    assert exit_.value.code == 2 and "MONGODB_URL" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        identity_main(["rotate-keys"])
