"""Token verification, done locally by every service from identity's JWKS.

Identity signs access tokens with Ed25519 (EdDSA). Other services fetch its JWKS over HTTP and cache it,
refetching when a token names a key id they have not seen (key rotation); in the all-in-one process the
keys are handed over in-process instead.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt import PyJWK
from jwt.utils import base64url_decode

from clinishare_shared.problems import Problem

Kind = Literal["practitioner", "staff", "patient"]
ALGORITHMS = ["EdDSA"]
LEEWAY_SECONDS = 30  # clock skew allowed between identity and the verifying service (exp, iat, nbf)


@dataclass(frozen=True)
class Principal:
    id: str
    kind: Kind


class KeyProvider(Protocol):
    async def key(self, kid: str) -> Any: ...


class _ParsedKeys:
    """Keys parsed once (``PyJWK``) and kept by ``kid``. A refreshed JWKS re-parses only the keys whose
    ``kid`` is new; ``generation`` moves whenever the key set changes (so tokens verified with a key that
    is gone are verified again)."""

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}
        self.generation = 0

    def _replace(self, jwks: Any) -> None:
        """Take a complete, valid key set (raises on a bad one, leaving the cache as it was)."""
        keys = {}
        for k in jwks.get("keys", []):
            kid = k["kid"]
            keys[kid] = self._keys[kid] if kid in self._keys else PyJWK(k).key
        if keys.keys() != self._keys.keys():
            self.generation += 1
        self._keys = keys


class StaticKeyProvider(_ParsedKeys):
    """Keys handed over in-process (the all-in-one process, tests). ``source`` is a JWKS dict or a callable
    returning one; it is read again only when a token names a ``kid`` not seen yet (key rotation)."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self._source = source

    async def key(self, kid: str) -> Any:
        if kid not in self._keys:
            self._replace(self._source() if callable(self._source) else self._source)
        return self._keys.get(kid)


class JwksKeyProvider(_ParsedKeys):
    """Identity's JWKS over HTTP, cached for ``cache_seconds``; a token naming an unknown ``kid`` (key
    rotation) triggers a refetch, at most one per ``min_refetch_seconds``."""

    def __init__(self, url: str, *, cache_seconds: int = 300, min_refetch_seconds: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__()
        self.url = url
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.transport = transport
        self._fetched_at = 0.0
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=5, transport=self.transport) as client:
            resp = await client.get(self.url)
            resp.raise_for_status()
            self._replace(resp.json())  # only a complete, valid key set replaces the cache
        self._fetched_at = time.monotonic()

    async def key(self, kid: str) -> Any:
        age = time.monotonic() - self._fetched_at
        if kid not in self._keys or age > self.cache_seconds:
            async with self._lock:
                now = time.monotonic()
                age = now - self._fetched_at
                stale = age > self.cache_seconds
                unknown_and_may_refetch = kid not in self._keys and age > self.min_refetch_seconds
                # after a failed fetch, wait min_refetch_seconds before the next try: while identity is
                # down every request would otherwise pay for a connection attempt
                backing_off = now - self._failed_at < self.min_refetch_seconds
                if (stale or unknown_and_may_refetch or not self._keys) and not (backing_off and self._keys):
                    try:
                        await self._fetch()
                    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, jwt.PyJWTError):
                        # identity unreachable or answering garbage: keep verifying with the keys we have
                        self._failed_at = time.monotonic()
                        if not self._keys:
                            raise Problem(503, "token keys unavailable") from None
        return self._keys.get(kid)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header alone (a few dozen bytes), without decoding the payload and signature as well:
    the key it names is looked up first, then the token is verified (and parsed) once."""
    segment = token.split(".", 1)[0]
    header = json.loads(base64url_decode(segment))
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header


class TokenVerifier:
    """Verifies access tokens. A verified token is remembered (bounded, until its expiry, at most
    ``cache_seconds``) so a client sending the same token on every request pays for the signature check
    once; the memory is dropped whenever the key set changes."""

    def __init__(self, keys: KeyProvider, *, issuer: str, audience: str, cache_size: int = 4096,
                 cache_seconds: float = 60.0, leeway_seconds: float = LEEWAY_SECONDS) -> None:
        self.keys = keys
        self.leeway_seconds = leeway_seconds
        self.issuer = issuer
        self.audience = audience
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._generation: Any = None

    async def verify(self, token: str) -> Principal:
        now = time.time()
        generation = getattr(self.keys, "generation", None)
        if generation != self._generation:
            self._verified.clear()
            self._generation = generation
        hit = self._verified.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        unauthorized = Problem(401, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
        try:
            header = _unverified_header(token)
        except (ValueError, TypeError, binascii.Error):
            raise unauthorized from None
        kid = header.get("kid")
        if header.get("alg") not in ALGORITHMS or not isinstance(kid, str) or not kid:
            raise unauthorized
        key = await self.keys.key(kid)
        if key is None:
            raise unauthorized
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway_seconds, options={"require": ["sub", "kind", "iss", "aud", "iat", "exp", "jti"]})
        except jwt.PyJWTError:
            raise unauthorized from None
        if claims["kind"] not in ("practitioner", "staff", "patient") or not isinstance(claims["sub"], str) \
                or not claims["sub"]:
            raise unauthorized
        principal = Principal(id=str(claims["sub"]), kind=claims["kind"])
        generation = getattr(self.keys, "generation", None)
        if generation != self._generation:  # the key set changed while we verified: forget the rest
            self._verified.clear()
            self._generation = generation
        if len(self._verified) >= self.cache_size:
            self._verified.pop(next(iter(self._verified)))  # the oldest
        self._verified[token] = (principal, min(float(claims["exp"]), now + self.cache_seconds))
        return principal


# declares bearer auth in the OpenAPI document of every route that needs a principal; the check itself
# stays ours (auto_error=False), so a missing token is our 401 problem, not FastAPI's 403
BEARER_AUTH = HTTPBearer(scheme_name="bearerAuth", bearerFormat="JWT", auto_error=False,
                         description="an access token from POST /v1/auth/token")


async def get_principal(request: Request,
                        _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_AUTH)]) -> Principal:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(token.strip())


def require_kind(*kinds: Kind) -> Any:
    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.kind not in kinds:
            raise Problem(403, f"this action needs a {' or '.join(kinds)} account")
        return principal

    return Depends(dependency)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
CurrentPractitioner = Annotated[Principal, require_kind("practitioner")]
CurrentPatient = Annotated[Principal, require_kind("patient")]


class TokenSigner:
    """Issues access tokens with an Ed25519 private key. Identity holds the real keys; tests make their own."""

    def __init__(self, private_key: Any, *, kid: str, issuer: str, audience: str, ttl_seconds: int = 900) -> None:
        self.private_key = private_key
        self.kid = kid
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    @classmethod
    def generate(cls, *, issuer: str = "clinishare-identity", audience: str = "clinishare",
                 ttl_seconds: int = 900) -> "TokenSigner":
        import uuid

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate(), kid=uuid.uuid4().hex, issuer=issuer, audience=audience,
                   ttl_seconds=ttl_seconds)

    def issue(self, sub: str, kind: str, *, ttl_seconds: int | None = None, now: float | None = None) -> str:
        import uuid

        iat = int(now if now is not None else time.time())
        claims = {"sub": sub, "kind": kind, "iss": self.issuer, "aud": self.audience, "iat": iat,
                  "exp": iat + (ttl_seconds if ttl_seconds is not None else self.ttl_seconds),
                  "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def public_jwk(self) -> dict[str, Any]:
        import json

        from jwt.algorithms import OKPAlgorithm

        jwk = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}
