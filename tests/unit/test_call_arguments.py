"""A call given as JSON is checked against the task's annotations before it is enqueued."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
import pydantic
import pytest

from conveyor import Conveyor, InvalidArgumentsError
from conveyor.jobs.arguments import validate_call_arguments

if TYPE_CHECKING:
    from decimal import Decimal

app = Conveyor("memory://", configure_logging=False)


@dataclasses.dataclass
class Window:
    days: int


class Person(msgspec.Struct):
    name: str


class Account(pydantic.BaseModel):
    id: int


@app.task
def export(  # type: ignore[no-untyped-def]  # `anything` has no annotation on purpose
    user_id: int,
    fmt: str = "csv",
    *extra: float,
    since: datetime | None = None,
    window: Window | None = None,
    owner: Person | None = None,
    account: Account | None = None,
    tags: list[str] | None = None,
    anything=None,
    **flags: bool,
) -> None: ...


@app.task
def hidden(amount: Decimal) -> None: ...  # only imported for type checking: not resolvable


FITTING: list[tuple[list[Any], dict[str, Any]]] = [
    ([7], {}),
    ([7, "xlsx", 1, 2.5], {}),
    ([7], {"since": "2025-03-01T09:30:00Z", "window": {"days": 3}, "owner": {"name": "ada"}}),
    ([7], {"account": {"id": 1}, "tags": ["a"], "anything": {"x": [1]}, "dry_run": True}),
    ([7], {"since": None, "fmt": "pdf"}),
]


@pytest.mark.parametrize(("args", "kwargs"), FITTING)
def test_values_in_the_json_form_of_their_annotation_fit(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    validate_call_arguments(export, args, kwargs)


MISFITS: list[tuple[list[Any], dict[str, Any], str]] = [
    (["seven"], {}, "argument user_id: Expected `int`, got `str`"),
    ([True], {}, "argument user_id: Expected `int`, got `bool`"),
    ([7, "csv", 1, "x"], {}, "argument extra[1]: Expected `float`, got `str`"),
    ([7], {"window": {"days": "3"}}, "argument window: Expected `int`, got `str` - at `$.days`"),
    ([7], {"account": {"id": "one"}}, "argument account:"),
    ([7], {"since": "yesterday"}, "argument since:"),
    ([7], {"verbose": "yes"}, "argument verbose: Expected `bool`, got `str`"),
    ([], {}, "missing a required argument: 'user_id'"),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), MISFITS)
def test_a_value_that_does_not_fit_is_refused_naming_its_argument(
    args: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentsError) as e:
        validate_call_arguments(export, args, kwargs)
    assert str(e.value).startswith(f"task {export.name}: ")
    assert message in str(e.value)


def test_every_misfit_is_listed_at_once() -> None:
    with pytest.raises(InvalidArgumentsError) as e:
        validate_call_arguments(export, ["seven"], {"fmt": 3})
    assert "argument user_id:" in str(e.value) and "argument fmt:" in str(e.value)


def test_an_annotation_that_cannot_be_resolved_takes_anything() -> None:
    validate_call_arguments(hidden, ["not a decimal"], {})
