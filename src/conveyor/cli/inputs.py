"""Reading the JSON that commands take as options (``--args``, ``--kwargs``)."""

from __future__ import annotations

import json
from typing import Any

from conveyor.cli.errors import CliError


def parse_json(raw: str, expected: type, option: str) -> Any:
    """Decode an option's JSON value and check that it is a list or an object."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, expected):
        kind = "list" if expected is list else "object"
        raise CliError(f"{option} must be a JSON {kind}, got {raw!r}")
    return value
