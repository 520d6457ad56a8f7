"""Checking a call that arrives as JSON (the CLI, a management API) against its task.

Python callers are checked by mypy against the task's ``ParamSpec``; a call
typed on a command line is not, and ``--args '["seven"]'`` for an ``int``
parameter would run and fail (or worse, succeed) in the worker. Here each
value must be a JSON form of its parameter's annotation: what msgspec (or,
for a pydantic model, pydantic) would accept when decoding it. Parameters
without an annotation, or whose annotation cannot be resolved, take anything.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import pydantic

from conveyor.errors import InvalidArgumentsError

if TYPE_CHECKING:
    from conveyor.jobs.task import Task


def validate_call_arguments(
    task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """Refuse ``args``/``kwargs`` (decoded JSON) that do not fit ``task``'s signature.

    Raises :class:`~conveyor.errors.InvalidArgumentsError` naming every
    argument that does not bind or whose value does not fit its annotation.
    """
    task.check_arguments(tuple(args), dict(kwargs))
    bound = task.signature.bind(*args, **kwargs)
    hints = _type_hints(task.fn)
    problems = [
        f"argument {name}: {problem}"
        for name, value, hint in _values(task.signature, bound, hints)
        if (problem := _misfit(value, hint)) is not None
    ]
    if problems:
        raise InvalidArgumentsError(f"task {task.name}: " + "; ".join(problems))


def _type_hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # a forward reference to a name imported only for type checking
        return {}


def _values(
    signature: inspect.Signature, bound: inspect.BoundArguments, hints: dict[str, Any]
) -> Iterator[tuple[str, Any, Any]]:
    """``(label, value, annotation)`` for each given value that has an annotation."""
    for name, value in bound.arguments.items():
        hint = hints.get(name)
        if hint is None:
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            yield from ((f"{name}[{i}]", item, hint) for i, item in enumerate(value))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            yield from ((key, item, hint) for key, item in value.items())
        else:
            yield name, value, hint


def _misfit(value: Any, hint: Any) -> str | None:
    """Why ``value`` is no JSON form of ``hint``, or None if it is."""
    try:
        msgspec.convert(value, hint)
        return None
    except msgspec.ValidationError as exc:
        problem = str(exc)
    except TypeError:  # a type msgspec does not know
        problem = None
    # msgspec takes a class it does not know (a pydantic model) by isinstance: ask pydantic.
    try:
        pydantic.TypeAdapter(hint).validate_json(json.dumps(value), strict=True)
        return None
    except pydantic.ValidationError as exc:
        return problem or exc.errors()[0]["msg"]
    except Exception:  # nor pydantic: nothing to check it with
        return problem
