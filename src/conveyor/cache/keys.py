"""Key templates, compiled once at decoration into a plain function of (args, kwargs).

``"user:{user_id}"`` on ``async def get_user(user_id: int, full: bool = False)``
becomes, once, a builder that reads ``args[0]`` (or ``kwargs["user_id"]``, or
the default) and joins it with the literal parts: no format parsing and no
``signature.bind`` per call. ``{user.id}`` reads an attribute of an argument.
Without a template the key is the function's qualified name and the
``repr`` of every argument, in order (so ``"a:b", "c"`` and ``"a", "b:c"``
differ).
"""

from __future__ import annotations

import inspect
import operator
import string
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.errors import ProgrammingError

KeyBuilder = Callable[[tuple[Any, ...], dict[str, Any]], str]
_MISSING = object()


def _argument_getter(fn_name: str, sig: inspect.Signature, field: str) -> Callable[..., Any]:
    name, _, attrs = field.partition(".")
    params = list(sig.parameters.values())
    found = next((p for p in params if p.name == name), None)
    if found is None or found.kind in (found.VAR_POSITIONAL, found.VAR_KEYWORD):
        raise ProgrammingError(
            f"cache key of {fn_name}: {{{field}}} names no plain parameter of the function"
        )
    index = params.index(found) if found.kind is not found.KEYWORD_ONLY else None
    default = found.default
    pick_attr = operator.attrgetter(attrs) if attrs else None

    def get(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if index is not None and index < len(args):
            value = args[index]
        else:
            value = kwargs.get(name, default)
            if value is inspect.Parameter.empty:
                raise ProgrammingError(f"{fn_name}() missing argument {name!r}")
        return pick_attr(value) if pick_attr is not None else value

    return get


def _parse(template: str, fn_name: str) -> list[tuple[str, str | None]]:
    try:
        return [(literal, field) for literal, field, _, _ in string.Formatter().parse(template)]
    except ValueError as exc:
        raise ProgrammingError(f"cache key template {template!r} of {fn_name}: {exc}") from None


def compile_key(fn: Callable[..., Any], template: str | None) -> KeyBuilder:
    """A function (args, kwargs) -> key for calls of ``fn``."""
    fn_name = getattr(fn, "__qualname__", repr(fn))
    sig = inspect.signature(fn)
    default_key = template is None
    if template is None:
        names = [
            p.name
            for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "cls")
        ]
        module = getattr(fn, "__module__", "")
        template = f"{module}.{fn_name}:" + ":".join(f"{{{n}}}" for n in names)
    parts = _parse(template, fn_name)
    literals: list[str] = []
    getters: list[Callable[..., Any]] = []
    for literal, field in parts:
        literals.append(literal)
        if field is not None:
            if field == "":
                raise ProgrammingError(f"cache key template {template!r}: empty {{}} field")
            getter = _argument_getter(fn_name, sig, field)
            getters.append(_repr_of(getter) if default_key else getter)
    return _builder(literals, getters)


def _repr_of(get: Callable[..., Any]) -> Callable[..., str]:
    """The default key shows each argument's ``repr``: ``f("a:b", "c")`` and
    ``f("a", "b:c")``, or ``None`` and ``"None"``, get different keys."""
    return lambda args, kwargs: repr(get(args, kwargs))


def _builder(literals: Sequence[str], getters: Sequence[Callable[..., Any]]) -> KeyBuilder:
    if not getters:
        constant = "".join(literals)
        return lambda args, kwargs: constant
    if len(getters) == 1:
        head = literals[0]
        tail = "".join(literals[1:])
        get = getters[0]
        return lambda args, kwargs: f"{head}{get(args, kwargs)}{tail}"
    pairs = list(zip(literals, getters, strict=False))
    rest = "".join(literals[len(getters) :])

    def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return "".join([f"{lit}{get(args, kwargs)}" for lit, get in pairs]) + rest

    return build
