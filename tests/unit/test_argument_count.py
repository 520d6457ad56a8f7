"""A call is checked against its task's signature when it is enqueued: the cheap count
of positional arguments accepts exactly what ``inspect.Signature.bind`` accepts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from conveyor import Conveyor, InvalidArgumentsError

app = Conveyor("memory://", configure_logging=False)


def none() -> None: ...
def two(a: int, b: int) -> None: ...
def defaults(a: int, b: int = 1, c: int = 2) -> None: ...
def only(a: int, /, b: int = 1) -> None: ...
def star(a: int, *rest: int) -> None: ...
def keyword(a: int, *, flag: bool = False) -> None: ...
def required_keyword(a: int, *, flag: bool) -> None: ...
def loose(a: int, **extra: int) -> None: ...


SIGNATURES = [none, two, defaults, only, star, keyword, required_keyword, loose]
CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4), {}),
    ((1,), {"b": 2}),
    ((1,), {"flag": True}),
    ((), {"a": 1}),
]


@pytest.mark.parametrize("fn", SIGNATURES, ids=lambda fn: fn.__name__)
def test_a_call_is_refused_exactly_when_its_signature_would_refuse_it(
    fn: Callable[..., None],
) -> None:
    task = app.task(name=f"count.{fn.__name__}")(fn)
    for args, kwargs in CALLS:
        try:
            inspect.signature(fn).bind(*args, **kwargs)
            fits = True
        except TypeError:
            fits = False
        if fits:
            task.check_arguments(args, kwargs)
        else:
            with pytest.raises(InvalidArgumentsError, match=f"task count.{fn.__name__}: "):
                task.check_arguments(args, kwargs)
