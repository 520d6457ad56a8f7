"""Sign-up, plans (tiers), API keys and usage: ``/api/v1/accounts``, ``/keys``, ``/usage``."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field
from sqlalchemy import func, select

from conveyor import NotFoundError, rate_limit
from examples.service.backbone import TIERS, database
from examples.service.database import now_utc
from examples.service.inputs import Body, RowId

from .keys import Authenticated, forget_identities, new_key
from .models import Account, ApiKey, KeyUsage
from .usage import WINDOW, cached_counts, counted_windows

router = APIRouter(tags=["accounts"])
Tier = Literal["free", "pro", "enterprise"]
assert TIERS == ("free", "pro", "enterprise")


class SignUp(Body):
    name: str = Field(min_length=1, max_length=100)
    tier: Tier = "free"
    """Any plan may be chosen in this example; a real service takes payment at checkout."""


class NewKey(Body):
    name: str = Field(default="default", min_length=1, max_length=100)


class Checkout(Body):
    tier: Tier


def key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "keyId": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "createdAt": key.created_at.isoformat(),
        "revoked": key.revoked_at is not None,
    }


@router.post("/accounts", status_code=201, dependencies=[Depends(rate_limit("signup"))])
async def sign_up(body: SignUp) -> dict[str, Any]:
    """A new account and its first API key. The key is in this answer only: keep it."""
    key, digest, prefix = new_key()
    async with database.writing() as session:
        account = Account(name=body.name, tier=body.tier)
        session.add(account)
        await session.flush()
        session.add(ApiKey(account_id=account.id, name="default", digest=digest, prefix=prefix))
    return {"accountId": account.id, "name": account.name, "tier": account.tier, "apiKey": key}


@router.get("/account")
async def my_account(caller: Authenticated) -> dict[str, Any]:
    async with database.reading() as session:
        account = await session.get(Account, caller.account_id)
    assert account is not None
    return {"accountId": account.id, "name": account.name, "tier": account.tier}


@router.post("/subscription/checkout")
async def checkout(body: Checkout, caller: Authenticated) -> dict[str, Any]:
    """Change the account's plan (the upgrade a 429 points to). Rate limits follow within
    a minute: that is how long the service layer caches a caller's tier."""
    async with database.writing() as session:
        account = await session.get(Account, caller.account_id)
        assert account is not None
        account.tier = body.tier
        digests = list(
            await session.scalars(select(ApiKey.digest).where(ApiKey.account_id == account.id))
        )
    await forget_identities(digests)
    return {"accountId": caller.account_id, "tier": body.tier}


@router.get("/keys")
async def list_keys(caller: Authenticated) -> list[dict[str, Any]]:
    async with database.reading() as session:
        keys = await session.scalars(
            select(ApiKey).where(ApiKey.account_id == caller.account_id).order_by(ApiKey.id)
        )
        return [key_view(key) for key in keys]


@router.post("/keys", status_code=201)
async def create_key(body: NewKey, caller: Authenticated) -> dict[str, Any]:
    """Another key for the account; the key is in this answer only."""
    key, digest, prefix = new_key()
    async with database.writing() as session:
        row = ApiKey(account_id=caller.account_id, name=body.name, digest=digest, prefix=prefix)
        session.add(row)
        await session.flush()
        return {**key_view(row), "apiKey": key}


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: RowId, caller: Authenticated) -> Response:
    async with database.writing() as session:
        key = await session.get(ApiKey, key_id)
        if key is None or key.account_id != caller.account_id:
            raise NotFoundError(f"no key {key_id}")
        key.revoked_at = key.revoked_at or now_utc()
        digest = key.digest
    await forget_identities([digest])
    return Response(status_code=204)


@router.get("/usage")
async def usage(caller: Authenticated) -> dict[str, Any]:
    """Requests per key of the account: ``flushed`` (in the database) and ``pending``
    (counted in the cache since the last flush).

    The cache is read first, the database after, in a transaction of its own: a flush
    writes a window before it deletes its counter, so a window the cache read missed is
    in the database by then, and a window found in both is counted once, as flushed.
    (Read the other way round, a flush between the reads lost its window from both.)
    """
    async with database.reading() as session:
        keys = list(
            await session.scalars(
                select(ApiKey).where(ApiKey.account_id == caller.account_id).order_by(ApiKey.id)
            )
        )
    ids = [key.id for key in keys]
    now = time.time()
    cached = await cached_counts(ids, now)
    async with database.reading() as session:
        sums = await session.execute(
            select(KeyUsage.key_id, func.sum(KeyUsage.requests))
            .where(KeyUsage.key_id.in_(ids))
            .group_by(KeyUsage.key_id)
        )
        flushed = {key_id: int(total) for key_id, total in sums}
        written = set(
            (
                await session.execute(
                    select(KeyUsage.key_id, KeyUsage.window_start).where(
                        KeyUsage.key_id.in_(ids),
                        KeyUsage.window_start >= min(counted_windows(now)),
                    )
                )
            ).tuples()
        )
    pending = dict.fromkeys(ids, 0)
    for pair, count in cached.items():
        if pair not in written:
            pending[pair[0]] += count
    return {
        "windowSeconds": WINDOW,
        "keys": [
            {
                **key_view(key),
                "flushed": int(flushed.get(key.id, 0)),
                "pending": pending[key.id],
            }
            for key in keys
        ],
    }
