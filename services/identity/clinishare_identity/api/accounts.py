"""Accounts, log-in, the caller's own account and practitioner Share PIN, and the JWKS."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request

from clinishare_shared.auth import CurrentPractitioner
from clinishare_shared.mongo import new_id
from clinishare_shared.problems import Problem
from clinishare_shared.throttle import Throttled
from clinishare_identity.api.deps import CurrentAccount, PasswordsDep, SignerDep, StoreDep
from clinishare_identity.domain.models import (
    AccountCreate, AccountPublic, Me, MyOffice, PinPublic, TokenRequest, TokenResponse, normalise_email,
)
from clinishare_identity.domain.password_rules import password_refusal
from clinishare_identity.domain.pins import format_pin
from clinishare_identity.store import DuplicateKeyError
from clinishare_identity.service import fresh_pin

router = APIRouter(tags=["accounts"])
log = structlog.get_logger("clinishare.identity.accounts")


def account_public(doc: dict[str, Any]) -> AccountPublic:
    return AccountPublic(id=doc["_id"], email=doc["email"], name=doc["name"], kind=doc["kind"],
                         created_at=doc["created_at"])


def check_password(password: str, email: str) -> None:
    refused = password_refusal(password, email)
    if refused is not None:
        raise Problem(422, refused.detail, rule=refused.rule)


@router.post("/v1/accounts", status_code=201, response_model=AccountPublic,
             summary="Register a practitioner or staff account")
async def create_account(body: AccountCreate, store: StoreDep, passwords: PasswordsDep) -> AccountPublic:
    check_password(body.password, body.email)
    email_norm = normalise_email(body.email)
    if await store.account_by_email(email_norm) is not None:
        raise Problem(409, "an account with this e-mail already exists")
    doc: dict[str, Any] = {
        "_id": new_id(), "email": body.email, "email_norm": email_norm, "name": body.name, "kind": body.kind,
        "password_hash": await passwords.hash(body.password), "created_at": store.now(),
    }
    if body.kind == "practitioner":
        doc["share_pin"] = await fresh_pin(store=store)
    try:
        await store.insert_account(doc)
    except DuplicateKeyError:
        raise Problem(409, "an account with this e-mail already exists") from None
    log.info("account_registered", account_id=doc["_id"], kind=doc["kind"])
    return account_public(doc)


@router.post("/v1/auth/token", response_model=TokenResponse, tags=["auth"], summary="Log in",
             responses={401: {"description": "wrong e-mail or password"},
                        429: {"description": "too many failed log-ins for this e-mail (Retry-After)"}})
async def issue_token(body: TokenRequest, store: StoreDep, passwords: PasswordsDep, signer: SignerDep) -> TokenResponse:
    email_norm = normalise_email(body.email)
    try:
        # keyed by the e-mail as typed, before looking it up: an unknown address is throttled the same way
        attempt = await store.login_throttle.begin(email_norm)
    except Throttled as exc:
        log.warning("login_throttled")
        raise exc.problem("too many failed log-ins for this e-mail; try again later") from None
    account = await store.account_by_email(email_norm)
    if not await passwords.verify(account["password_hash"] if account else None, body.password):
        log.info("login_failed", account_id=account["_id"] if account else None)
        raise Problem(401, "wrong e-mail or password", headers={"WWW-Authenticate": "Bearer"})
    assert account is not None
    await attempt.succeeded()
    return TokenResponse(access_token=signer.issue(account["_id"], account["kind"]), expires_in=signer.ttl_seconds)


@router.get("/v1/me", response_model=Me, summary="My account and my offices")
async def me(account: CurrentAccount, store: StoreDep) -> Me:
    offices = []
    for office in await store.offices_of(account["_id"]):
        role = next(m["role"] for m in office["members"] if m["account_id"] == account["_id"])
        offices.append(MyOffice(id=office["_id"], name=office["name"], role=role,
                                is_owner=office["owner_id"] == account["_id"]))
    return Me(**account_public(account).model_dump(), offices=offices)


@router.get("/v1/me/share-pin", response_model=PinPublic, summary="My practitioner Share PIN")
async def my_pin(principal: CurrentPractitioner, account: CurrentAccount) -> PinPublic:
    return PinPublic(pin=format_pin(account["share_pin"]))


@router.post("/v1/me/share-pin/rotate", response_model=PinPublic, summary="Replace my Share PIN")
async def rotate_my_pin(principal: CurrentPractitioner, account: CurrentAccount, store: StoreDep) -> PinPublic:
    for _ in range(3):
        pin = await fresh_pin(store=store)
        try:
            # one $set: the old PIN stops matching in the same write that makes the new one match
            await store.set_account_pin(principal.id, pin)
        except DuplicateKeyError:
            continue
        log.info("share_pin_rotated", holder_kind="practitioner", holder_id=principal.id)
        return PinPublic(pin=format_pin(pin))
    raise Problem(503, "could not rotate the PIN; try again")


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify access tokens")
async def jwks(request: Request) -> dict[str, Any]:
    return request.app.state.jwks()
