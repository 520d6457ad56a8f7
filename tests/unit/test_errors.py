"""One error tree: every exception conveyor exports or defines sits under ConveyorError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import click
import pytest

import conveyor
from conveyor import errors

TASK_SIGNALS = (conveyor.NonRetryableError, conveyor.Retry, conveyor.QueueBackoff)
"""Raised by task code to steer its job: neither an operational error nor a bug."""


def _exported_exceptions() -> list[type[BaseException]]:
    found = []
    for name in conveyor.__all__:
        value = getattr(conveyor, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            found.append(value)
    return found


def _conveyor_modules() -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(conveyor.__path__, "conveyor.")
        if not info.name.endswith("__main__")
    ]
    return [importlib.import_module(name) for name in names]


def test_the_exported_exceptions_are_found() -> None:
    exported = {error.__name__ for error in _exported_exceptions()}
    assert {"ConveyorError", "JobCancelledError", "QueueBackoff", "StoreRefusedError"} <= exported


def test_errors_form_one_tree() -> None:
    exported = _exported_exceptions()
    outside = [
        error.__name__ for error in exported if not issubclass(error, conveyor.ConveyorError)
    ]
    assert outside == [], "exported exceptions outside ConveyorError"
    for error in exported:
        if error is conveyor.ConveyorError:
            continue
        branches = [
            issubclass(error, conveyor.OperationalError),
            issubclass(error, conveyor.ProgrammingError),
            issubclass(error, TASK_SIGNALS),
        ]
        assert branches.count(True) == 1, f"{error.__name__} is on {branches.count(True)} branches"
    assert not issubclass(conveyor.ProgrammingError, conveyor.OperationalError)


def test_every_exported_exception_is_drawn_in_the_tree() -> None:
    drawing = errors.__doc__ or ""
    missing = [
        e.__name__
        for e in _exported_exceptions()
        if not re.search(rf"^[ │├└─]*{e.__name__}\b", drawing, re.MULTILINE)
    ]
    assert missing == []


def test_every_exception_class_conveyor_defines_lives_in_errors() -> None:
    elsewhere = [
        f"{module.__name__}.{name}"
        for module in _conveyor_modules()
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
        and module is not errors
        # The CLI's way to print one line and exit 1; click catches it, no caller sees it.
        and not issubclass(value, click.ClickException)
    ]
    assert elsewhere == []


def test_every_class_in_errors_is_under_conveyor_error() -> None:
    defined = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and value.__module__ == errors.__name__
    ]
    assert defined
    assert [e.__name__ for e in defined if not issubclass(e, conveyor.ConveyorError)] == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (conveyor.JobWaitTimeoutError("j1", "waiting", 1.0), TimeoutError),
        (conveyor.JobTimeoutError(2.0), TimeoutError),
        (conveyor.CacheTimeoutError("k", 3.0), conveyor.CacheError),
        (conveyor.CacheUnavailableError("down"), conveyor.CacheError),
        (conveyor.CacheUnavailableError("down"), conveyor.UnavailableError),
        (conveyor.StoreUnavailableError("down"), conveyor.UnavailableError),
    ],
)
def test_an_error_is_caught_by_each_family_it_belongs_to(
    error: conveyor.ConveyorError, kind: type[BaseException]
) -> None:
    with pytest.raises(kind):
        raise error


def test_a_timeout_reads_as_its_message_not_as_an_os_error() -> None:
    error = conveyor.JobWaitTimeoutError("j1", "waiting", 1.5)
    assert str(error) == "job j1 still waiting after 1.5s"
    assert error.errno is None  # a TimeoutError is an OSError; no errno is made up
    assert (error.job_id, error.state, error.timeout) == ("j1", "waiting", 1.5)
