"""Keys are parsed once and kept by kid; a verified token is checked once while it is valid; an unknown
kid refreshes the keys (key rotation); a key that left the key set stops working at once."""

from __future__ import annotations

from typing import Any

import pytest

from clinishare_shared import auth
from clinishare_shared.auth import StaticKeyProvider, TokenSigner, TokenVerifier
from clinishare_shared.problems import Problem


class CountingSource:
    def __init__(self, *signers: TokenSigner) -> None:
        self.signers = list(signers)
        self.reads = 0

    def __call__(self) -> dict[str, Any]:
        self.reads += 1
        return {"keys": [s.public_jwk() for s in self.signers]}


class CountingKeys:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lookups = 0

    @property
    def generation(self) -> int:
        return self.inner.generation

    async def key(self, kid: str) -> Any:
        self.lookups += 1
        return await self.inner.key(kid)


def _verifier(keys: Any, signer: TokenSigner) -> TokenVerifier:
    return TokenVerifier(keys, issuer=signer.issuer, audience=signer.audience)


async def _rejected(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Problem) as info:
        await verifier.verify(token)
    assert info.value.status == 401


async def test_static_keys_parsed_once_and_refreshed_on_unknown_kid(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = TokenSigner.generate(), TokenSigner.generate()
    source = CountingSource(old)
    parsed: list[str] = []
    real = auth.PyJWK

    def counting_pyjwk(jwk: dict[str, Any]) -> Any:
        parsed.append(jwk["kid"])
        return real(jwk)

    monkeypatch.setattr(auth, "PyJWK", counting_pyjwk)
    keys = StaticKeyProvider(source)
    first = await keys.key(old.kid)
    for _ in range(5):
        assert await keys.key(old.kid) is first
    assert source.reads == 1 and parsed == [old.kid]
    # rotation: a token names a kid not seen yet: the source is read again, only the new key is parsed
    source.signers = [new, old]
    assert await keys.key(new.kid) is not None
    assert source.reads == 2 and parsed == [old.kid, new.kid]
    assert await keys.key(old.kid) is first
    # a kid nobody has: read again, nothing parsed, no key
    assert await keys.key("unknown") is None
    assert parsed == [old.kid, new.kid]


async def test_verified_token_checked_once_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = TokenSigner.generate()
    keys = CountingKeys(StaticKeyProvider(CountingSource(signer)))
    verifier = _verifier(keys, signer)
    token = signer.issue("a", "practitioner", ttl_seconds=30)
    for _ in range(5):
        assert (await verifier.verify(token)).id == "a"
    assert keys.lookups == 1
    other = signer.issue("b", "staff")
    assert (await verifier.verify(other)).kind == "staff"
    assert keys.lookups == 2
    # past the token's expiry the memory is not used: the token is checked again (and PyJWT's own clock
    # refuses an expired token, see test_auth.py)
    later = auth.time.time() + 31
    monkeypatch.setattr(auth.time, "time", lambda: later)
    await verifier.verify(token)
    assert keys.lookups == 3


async def test_verified_token_remembered_at_most_cache_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = TokenSigner.generate()
    keys = CountingKeys(StaticKeyProvider(CountingSource(signer)))
    verifier = _verifier(keys, signer)
    token = signer.issue("a", "practitioner", ttl_seconds=3600)
    await verifier.verify(token)
    later = auth.time.time() + verifier.cache_seconds + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    await verifier.verify(token)
    assert keys.lookups == 2  # verified again (and still valid)


async def test_tampered_or_foreign_tokens_never_remembered() -> None:
    signer = TokenSigner.generate()
    keys = CountingKeys(StaticKeyProvider(CountingSource(signer)))
    verifier = _verifier(keys, signer)
    good = signer.issue("a", "practitioner")
    head, payload, sig = good.split(".")
    forged = f"{head}.{payload}.{'A' * len(sig)}"
    for _ in range(3):
        await _rejected(verifier, forged)
    assert keys.lookups == 3
    for bad in ("", "x", "!!!.e30.x", "e30.e30.", "W10.e30.x"):  # garbage, and a header that is not an object
        await _rejected(verifier, bad)


async def test_key_removed_from_the_key_set_stops_remembered_tokens() -> None:
    old, new = TokenSigner.generate(), TokenSigner.generate()
    source = CountingSource(old)
    keys = StaticKeyProvider(source)
    verifier = _verifier(keys, old)
    old_token = old.issue("a", "practitioner")
    await verifier.verify(old_token)
    # the old key is retired and a new one published; the first new-kid token refreshes the key set
    source.signers = [new]
    assert (await verifier.verify(new.issue("b", "practitioner"))).id == "b"
    await _rejected(verifier, old_token)
