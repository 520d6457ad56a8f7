"""Specifications: business filters composed with AND (``&``), OR (``|``) and NOT (``~``).

    big_open = where("status").eq("created") & where("total_cents").ge(10_000)
    spec = big_open | ~where("customer").contains("test")
    select(Order).where(spec.to_sql(Order))            # a SQLAlchemy filter
    spec.is_satisfied_by(order)                         # the same rule in Python

One rule, two readings: ``to_sql`` compiles to a SQLAlchemy boolean clause
(so the database filters and pages), ``is_satisfied_by`` evaluates a loaded
row with SQL's three-valued logic (a comparison with NULL is unknown, NOT of
unknown is unknown, a row passes only when the whole is true), so both
always agree. A field that the model does not have is a ``BadInputError``.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from sqlalchemy import and_, false, not_, or_, true
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from conveyor import BadInputError

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains"]
Truth = bool | None
"""True, False, or None for SQL's unknown."""

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


class Spec(ABC):
    """A filter over the rows of one model."""

    def __and__(self, other: Spec) -> Spec:
        return AllOf((self, other))

    def __or__(self, other: Spec) -> Spec:
        return AnyOf((self, other))

    def __invert__(self) -> Spec:
        return Not(self)

    @abstractmethod
    def to_sql(self, model: type[Any]) -> ColumnElement[bool]:
        """This filter as a SQLAlchemy clause over ``model``'s columns."""

    @abstractmethod
    def truth(self, row: Any) -> Truth:
        """This filter on one row: True, False, or None (unknown, as SQL would say)."""

    def is_satisfied_by(self, row: Any) -> bool:
        return self.truth(row) is True


def where(field: str) -> Field:
    """The start of a comparison: ``where("status").eq("created")``."""
    return Field(field)


class Field:
    """A column, by name; its methods make the comparisons."""

    def __init__(self, name: str) -> None:
        self.name = name

    def eq(self, value: Any) -> Spec:
        return Compare(self.name, "eq", value)

    def ne(self, value: Any) -> Spec:
        return Compare(self.name, "ne", value)

    def lt(self, value: Any) -> Spec:
        return Compare(self.name, "lt", value)

    def le(self, value: Any) -> Spec:
        return Compare(self.name, "le", value)

    def gt(self, value: Any) -> Spec:
        return Compare(self.name, "gt", value)

    def ge(self, value: Any) -> Spec:
        return Compare(self.name, "ge", value)

    def in_(self, values: Sequence[Any]) -> Spec:
        return Compare(self.name, "in", tuple(values))

    def contains(self, text: str) -> Spec:
        """Case-insensitive substring (ASCII letters), ``%`` and ``_`` taken literally."""
        return Compare(self.name, "contains", text)


class Compare(Spec):
    """``field <op> value``."""

    def __init__(self, field: str, op: Op, value: Any) -> None:
        if op not in (*_COMPARE, "in", "contains"):
            raise BadInputError(f"unknown comparison {op!r}")
        if value is None:
            raise BadInputError(f"{field}: compare with a value, not null")
        self.field, self.op, self.value = field, op, value

    def __repr__(self) -> str:
        return f"where({self.field!r}).{self.op}({self.value!r})"

    def to_sql(self, model: type[Any]) -> ColumnElement[bool]:
        column = _column(model, self.field)
        if self.op == "in":
            return cast(ColumnElement[bool], column.in_(self.value)) if self.value else false()
        if self.op == "contains":
            return cast(ColumnElement[bool], column.icontains(self.value, autoescape=True))
        return cast(ColumnElement[bool], _COMPARE[self.op](column, self.value))

    def truth(self, row: Any) -> Truth:
        actual = getattr(row, self.field)
        if actual is None:
            return None
        if self.op == "in":
            return actual in self.value
        if self.op == "contains":
            return _ascii_lower(str(self.value)) in _ascii_lower(str(actual))
        return _COMPARE[self.op](actual, self.value)


class AllOf(Spec):
    """AND: false if any part is false, else unknown if any is unknown."""

    def __init__(self, parts: Sequence[Spec]) -> None:
        self.parts = tuple(parts)

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.parts)) + ")"

    def to_sql(self, model: type[Any]) -> ColumnElement[bool]:
        return and_(true(), *(part.to_sql(model) for part in self.parts))

    def truth(self, row: Any) -> Truth:
        values = [part.truth(row) for part in self.parts]
        if False in values:
            return False
        return None if None in values else True


class AnyOf(Spec):
    """OR: true if any part is true, else unknown if any is unknown."""

    def __init__(self, parts: Sequence[Spec]) -> None:
        self.parts = tuple(parts)

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.parts)) + ")"

    def to_sql(self, model: type[Any]) -> ColumnElement[bool]:
        return or_(false(), *(part.to_sql(model) for part in self.parts))

    def truth(self, row: Any) -> Truth:
        values = [part.truth(row) for part in self.parts]
        if True in values:
            return True
        return None if None in values else False


class Not(Spec):
    """NOT: unknown stays unknown."""

    def __init__(self, part: Spec) -> None:
        self.part = part

    def __repr__(self) -> str:
        return f"~{self.part!r}"

    def to_sql(self, model: type[Any]) -> ColumnElement[bool]:
        return not_(self.part.to_sql(model))

    def truth(self, row: Any) -> Truth:
        value = self.part.truth(row)
        return None if value is None else not value


def all_of(specs: Sequence[Spec]) -> Spec | None:
    """AND of ``specs`` (None for none: no filter)."""
    if not specs:
        return None
    return specs[0] if len(specs) == 1 else AllOf(specs)


def _column(model: type[Any], name: str) -> Any:
    column = getattr(model, name, None)
    if not isinstance(column, InstrumentedAttribute) or name.startswith("_"):
        raise BadInputError(f"{model.__name__} has no field {name!r} to filter on")
    return column


def _ascii_lower(text: str) -> str:
    """SQLite's lower() folds ASCII letters only; so does this."""
    return text.translate(_ASCII_FOLD)


_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
