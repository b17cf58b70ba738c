import asyncio

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clinishare_identity.settings import IdentitySettings
from clinishare_identity.tokens import load_signer


async def test_replicas_starting_together_agree_on_one_stored_key(mongo_client, db_name):
    db = mongo_client[db_name]
    settings = IdentitySettings(mongodb_database=db_name)
    signers = await asyncio.gather(*(load_signer(db, settings) for _ in range(5)))
    assert len({s.kid for s in signers}) == 1
    later = await load_signer(db, settings)  # a restart keeps the key
    assert later.kid == signers[0].kid
    token = signers[0].issue("65f000000000000000000000", "practitioner")
    claims = jwt.decode(token, later.private_key.public_key(), algorithms=["EdDSA"], audience="clinishare")
    assert claims["sub"] == "65f000000000000000000000"


async def test_a_key_given_in_settings_is_used_and_nothing_is_stored(mongo_client, db_name):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    db = mongo_client[db_name]
    signer = await load_signer(db, IdentitySettings(mongodb_database=db_name, signing_key_pem=pem, token_ttl_seconds=60))
    assert signer.ttl_seconds == 60
    jwt.decode(signer.issue("x", "staff"), key.public_key(), algorithms=["EdDSA"], audience="clinishare")
    assert await db["signing_keys"].find_one({}) is None


async def test_the_app_exposes_its_signer_jwks_and_verifier(api):
    user = await api.register()
    state = api.app.state
    assert state.jwks() == state.signer.jwks()
    principal = await state.verifier.verify(user.token)
    assert principal.id == user.id and principal.kind == "practitioner"
