"""What the commands print: rich tables for people, ``--json`` for scripts.

User data (task names, errors, log lines) always goes into a table as plain
:class:`~rich.text.Text`, never as rich markup, so ``[red]`` in a job's error
is printed as written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])

NARROW = 100
"""Below this many columns, tables leave out their least useful columns."""


def json_option(fn: F) -> F:
    """``--json``: print JSON, and nothing else, on stdout."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (and nothing else) on stdout."
    )(fn)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def console() -> Console:
    return Console(highlight=False)


def cell(value: Any) -> Text:
    """A table cell that shows user data literally (no rich markup)."""
    return Text("" if value is None else str(value))


def short_time(value: datetime | None) -> str:
    """A full UTC time, ``2025-03-01 09:30:00Z``."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table_time(value: datetime | None) -> str:
    """A UTC time for a table column headed "(UTC)": ``03-01 09:30:00``."""
    return "" if value is None else value.astimezone(UTC).strftime("%m-%d %H:%M:%S")


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
