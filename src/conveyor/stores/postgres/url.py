"""PostgreSQL store URLs: which schemes are ours, and what conveyor reads from the query.

``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) in libpq's URL
form. ``postgresql+asyncpg://`` and ``postgresql+psycopg://`` (SQLAlchemy's spelling)
are accepted too, so one URL can serve an application's engine and conveyor; conveyor
itself always talks through asyncpg. Query parameters are libpq's (``sslmode=...``,
``application_name=...``) except two that conveyor takes out:

- ``schema``: the PostgreSQL schema that holds conveyor's tables (default ``conveyor``),
  so they never mix with the application's own;
- ``pool_size``: connections this process keeps for the store (default 10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conveyor.errors import ConfigError
from conveyor.masking import mask_url

SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg")
DEFAULT_SCHEMA = "conveyor"
DEFAULT_POOL_SIZE = 10
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
"""Lower case, so it needs no quoting anywhere; at most 40 characters, so the
notification channels named after it stay within PostgreSQL's 63."""


@dataclass(frozen=True)
class PostgresUrl:
    """A parsed store URL: what to hand the driver, and conveyor's own settings."""

    dsn: str
    """The URL as libpq/asyncpg take it (``postgresql://``, conveyor's parameters removed)."""
    schema: str
    pool_size: int


def url_problems(url: str) -> list[str]:
    try:
        parse_url(url)
    except ConfigError as exc:
        return exc.problems
    return []


def parse_url(url: str) -> PostgresUrl:
    """Split a store URL; ``ConfigError`` names what is wrong with it."""
    parts = urlsplit(url)
    problems: list[str] = []
    if parts.scheme not in SCHEMES:
        problems.append(f"not a PostgreSQL URL: {mask_url(url)!r}")
    if not parts.hostname and "host=" not in parts.query:
        problems.append(
            "PostgreSQL URLs look like postgresql://user:password@host:5432/dbname,"
            f" got {mask_url(url)!r}"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = dict(pair for pair in query if pair[0] in ("schema", "pool_size"))
    rest = [pair for pair in query if pair[0] not in ("schema", "pool_size")]
    schema = ours.get("schema", DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(schema):
        problems.append(
            f"schema must be 1..40 lower-case letters, digits or '_' (not first), got {schema!r}"
        )
    pool_size = DEFAULT_POOL_SIZE
    raw_size = ours.get("pool_size")
    if raw_size is not None:
        if raw_size.isdigit() and 1 <= int(raw_size) <= 1000:
            pool_size = int(raw_size)
        else:
            problems.append(f"pool_size must be an integer 1..1000, got {raw_size!r}")
    if problems:
        raise ConfigError(problems)
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return PostgresUrl(dsn=dsn, schema=schema, pool_size=pool_size)
