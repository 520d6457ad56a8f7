"""API keys: making them, finding who holds one, and the request's identity.

A key is 32 random bytes (``cvk_`` + URL-safe base64). Keys that random need
no slow hash: SHA-256 of the key is stored and looked up (a slow, salted hash
protects low-entropy passwords, which these are not). A lookup is cached per
digest for a minute; revoking a key or changing an account's plan evicts it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader
from sqlalchemy import select

from conveyor import Caller
from examples.service.backbone import backbone, database
from examples.service.database import acting_as
from examples.service.problems import MissingApiKey, UnknownApiKey

from .models import Account, ApiKey
from .usage import count_request

KEY_PREFIX = "cvk_"
IDENTITY_TTL = 60.0

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Your API key (POST /api/v1/accounts)."
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who holds a key: the key, its account and the account's tier."""

    key_id: int
    account_id: int
    tier: str

    @property
    def actor(self) -> str:
        return f"account:{self.account_id}"


def new_key() -> tuple[str, str, str]:
    """``(key, digest, prefix)`` for a fresh key; only the digest and prefix are kept."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, digest_of(key), key[:12]


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@backbone.cache.cached(ttl=IDENTITY_TTL, key="identity:{digest}")
async def identity_by_digest(digest: str) -> Identity | None:
    """The holder of the key with this digest (None: unknown or revoked)."""
    async with database.reading() as session:
        row = (
            await session.execute(
                select(ApiKey.id, ApiKey.account_id, Account.tier)
                .join(Account, Account.id == ApiKey.account_id)
                .where(ApiKey.digest == digest, ApiKey.revoked_at.is_(None))
            )
        ).first()
    return None if row is None else Identity(row[0], row[1], row[2])


async def forget_identities(digests: list[str]) -> None:
    """Evict cached lookups (a key revoked, a plan changed) in every process."""
    if digests:
        await backbone.cache.delete(*(f"identity:{digest}" for digest in digests))


async def tier_of(caller: Caller) -> str | None:
    """The rate limits' tier function: the plan of the key's account (None: unknown key,
    which then counts by address, so made-up keys get no quota of their own)."""
    if not caller.api_key:
        return None
    identity = await identity_by_digest(digest_of(caller.api_key))
    return None if identity is None else identity.tier


async def authenticated(
    api_key: Annotated[str | None, Security(api_key_header)],
) -> Identity:
    """The FastAPI dependency of every product route: the caller's identity (401 without
    a valid key). Counts the request against the key's usage and makes the account the
    actor of the audit fields written while the request runs."""
    if not api_key:
        raise MissingApiKey("Send your API key in the X-API-Key header.")
    identity = await identity_by_digest(digest_of(api_key))
    if identity is None:
        raise UnknownApiKey("This API key is not known, or it was revoked.")
    await count_request(identity.key_id)
    acting_as.set(identity.actor)
    return identity


Authenticated = Annotated[Identity, Depends(authenticated)]
"""A route parameter of this type requires a valid API key."""
