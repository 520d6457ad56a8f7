"""What the products' requests share: strict bodies, and ids that fit a SQL integer.

A body is JSON, so a number is a number and a date is a string: ``false`` is
no price, ``"5"`` no quantity, and ``0`` no day (pydantic's lax mode would read
them as 0, 5 and 1970-01-01). ``5.0`` is the integer 5, as JSON Schema says.
Dates and times come as RFC 3339 text (``2026-03-02``, ``2026-03-02T12:00:00Z``)
and nothing else.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Body(BaseModel):
    """A request body: every field strict (see the module's docstring)."""

    model_config = ConfigDict(strict=True)


def _integral(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # strict: an int, else refused


def _date_text(value: object) -> object:
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value
    raise ValueError("a date is a string YYYY-MM-DD")


def _date_time_text(value: object) -> object:
    if isinstance(value, str) and _DATE.fullmatch(value[:10]) and value[10:11] in ("T", "t", " "):
        return value
    raise ValueError("a date and time is a string like 2026-03-02T12:00:00Z")


Integer = Annotated[int, BeforeValidator(_integral)]
# Strict pydantic would take no string for a date at all (the body arrives as parsed JSON,
# validated as Python values); these take exactly the text, then parse it.
IsoDate = Annotated[date, Strict(False), BeforeValidator(_date_text)]
IsoDateTime = Annotated[datetime, Strict(False), BeforeValidator(_date_time_text)]

RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""A row's id in a path: a larger number would overflow the SQL integer (a 500), not 404."""
