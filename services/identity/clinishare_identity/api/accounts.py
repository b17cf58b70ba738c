"""Accounts, log-in, the caller's own account and practitioner Share PIN, and the JWKS."""

from __future__ import annotations

from fastapi import APIRouter, Request

from clinishare_shared.auth import CurrentPractitioner
from clinishare_identity import service
from clinishare_identity.api.deps import CurrentAccount, PasswordsDep, SignerDep, StoreDep
from clinishare_identity.domain.stored import Jwks
from clinishare_identity.domain.models import AccountCreate, AccountRead, MeRead, PinRead, TokenRequest, TokenResponse

router = APIRouter(tags=["accounts"])


@router.post("/v1/accounts", status_code=201, response_model=AccountRead,
             summary="Register a practitioner or staff account")
async def create_account(body: AccountCreate, store: StoreDep, passwords: PasswordsDep) -> AccountRead:
    account = await service.register_account(store=store, passwords=passwords, email=body.email, name=body.name,
                                             kind=body.kind, password=body.password)
    return AccountRead.from_doc(account)


@router.post("/v1/auth/token", response_model=TokenResponse, tags=["auth"], summary="Log in",
             responses={401: {"description": "wrong e-mail or password"},
                        429: {"description": "too many failed log-ins for this e-mail (Retry-After)"}})
async def issue_token(body: TokenRequest, store: StoreDep, passwords: PasswordsDep, signer: SignerDep) -> TokenResponse:
    token = await service.log_in(store=store, passwords=passwords, signer=signer, email=body.email,
                                 password=body.password)
    return TokenResponse(access_token=token, expires_in=signer.ttl_seconds)


@router.get("/v1/me", response_model=MeRead, summary="My account and my offices")
async def me(account: CurrentAccount, store: StoreDep) -> MeRead:
    return MeRead.from_docs(account, await store.offices_of(account["_id"]))


@router.get("/v1/me/share-pin", response_model=PinRead, summary="My practitioner Share PIN")
async def my_pin(principal: CurrentPractitioner, account: CurrentAccount) -> PinRead:
    return PinRead.of(account["share_pin"])


@router.post("/v1/me/share-pin/rotate", response_model=PinRead, summary="Replace my Share PIN")
async def rotate_my_pin(principal: CurrentPractitioner, account: CurrentAccount, store: StoreDep) -> PinRead:
    return PinRead.of(await service.rotate_account_pin(store=store, account_id=principal.id))


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify access tokens")
async def jwks(request: Request) -> Jwks:
    return request.app.state.jwks()  # type: ignore[no-any-return]
