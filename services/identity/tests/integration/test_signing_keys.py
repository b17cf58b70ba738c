import asyncio

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo.errors import DuplicateKeyError

from clinishare_identity.settings import IdentitySettings
from clinishare_identity.tokens import load_signer


class _RacingReplicas:
    """The signing-key collection as ``replicas`` replicas starting together see it: no insert happens
    before every replica has looked for the key. Counts the inserts that lost the race."""

    def __init__(self, coll, replicas):
        self._c, self.replicas, self.finds, self.inserts, self.lost = coll, replicas, 0, 0, 0
        self.all_looked = asyncio.Event()

    async def find_one(self, *args, **kwargs):
        found = await self._c.find_one(*args, **kwargs)
        self.finds += 1
        if self.finds >= self.replicas:
            self.all_looked.set()
        return found

    async def insert_one(self, doc):
        await self.all_looked.wait()
        self.inserts += 1
        try:
            return await self._c.insert_one(doc)
        except DuplicateKeyError:
            self.lost += 1
            raise

    def __getattr__(self, name):
        return getattr(self._c, name)


async def test_replicas_starting_together_agree_on_one_stored_key(mongo_client, db_name):
    # all five replicas read "no key yet" before any of them inserts: four inserts collide, and those
    # replicas load the winner's key
    keys = _RacingReplicas(mongo_client[db_name]["signing_keys"], replicas=5)
    settings = IdentitySettings(mongodb_database=db_name)
    signers = await asyncio.wait_for(asyncio.gather(*(load_signer({"signing_keys": keys}, settings)
                                                      for _ in range(5))), timeout=10)
    assert keys.inserts == 5 and keys.lost == 4  # the duplicate path really ran
    assert len({s.kid for s in signers}) == 1
    assert await mongo_client[db_name]["signing_keys"].count_documents({}) == 1
    later = await load_signer(mongo_client[db_name], settings)  # a restart keeps the key
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
