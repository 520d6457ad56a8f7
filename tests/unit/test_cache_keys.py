"""Cache keys built from a function's arguments."""

from __future__ import annotations

import pytest

from conveyor import ProgrammingError
from conveyor.cache.keys import compile_key


async def join(a: str | None, b: str = "x") -> str:
    return f"{a}{b}"


def test_the_default_key_tells_apart_arguments_that_print_alike() -> None:
    key = compile_key(join, None)
    assert key(("a:b", "c"), {}) != key(("a", "b:c"), {})
    assert key((None,), {}) != key(("None",), {})
    assert key(("a",), {}) == key((), {"a": "a", "b": "x"})


def test_a_template_uses_the_values_as_written() -> None:
    key = compile_key(join, "j:{a}:{b}")
    assert key(("a", "b"), {}) == "j:a:b"


def test_a_call_missing_an_argument_the_key_names_is_a_programming_error() -> None:
    key = compile_key(join, "j:{a}:{b}")
    with pytest.raises(ProgrammingError, match="join\\(\\) missing argument 'a'"):
        key((), {"b": "y"})
