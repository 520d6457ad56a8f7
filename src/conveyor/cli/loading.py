"""Finding the app and the store a command works on, and running a coroutine against it.

Commands given an ``APP`` (``worker``, ``enqueue``, ``schedules add``) import
it and may create its store, as the app itself would. Admin commands find
their store through ``--app`` or ``--url`` (``CONVEYOR_APP`` /
``CONVEYOR_URL``), else the embedded default, and never create one: they
fail, naming the store they looked for, when it does not exist.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError
from conveyor.errors import TaskNotFoundError
from conveyor.jobs.task import Task

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def load_app(path: str) -> Conveyor:
    """Import ``module.path:attribute`` (from the current directory too) as a Conveyor."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise CliError(f"APP must look like 'module.path:attribute', got {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing APP module is a bad path; a failed import inside it is a bug to show.
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise
        raise CliError(f"cannot import module {module_name!r} (from APP {path!r})") from None
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, Conveyor):
        raise CliError(f"{path!r} is a {type(target).__name__}, not a conveyor.Conveyor")
    return target


def store_options(fn: F) -> F:
    """``--app`` / ``--url``: which store an admin command works on."""
    fn = click.option(
        "--url",
        envvar="CONVEYOR_URL",
        metavar="URL",
        show_envvar=True,
        help="Store URL, e.g. sqlite:////abs/path.db.",
    )(fn)
    return click.option(
        "--app",
        "app_path",
        envvar="CONVEYOR_APP",
        show_envvar=True,
        metavar="APP",
        help="module.path:attribute of a Conveyor whose store to use.",
    )(fn)


def given_store(ctx: click.Context | None) -> tuple[str | None, str | None] | None:
    """``(app_path, url)`` if ``--app`` or ``--url`` was typed on ``ctx``'s command line."""
    if ctx is None:
        return None
    typed = {
        name: ctx.params.get(name)
        for name in ("app_path", "url")
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    return (typed.get("app_path"), typed.get("url")) if typed else None


def admin_app(app_path: str | None, url: str | None) -> Conveyor:
    """The app an admin command works on.

    ``--app``/``--url`` typed on the command win, then those typed on its
    group (``conveyor queues --url X pause Q``), then ``CONVEYOR_APP``, then
    ``CONVEYOR_URL``, then the embedded default ``Conveyor()``.
    """
    ctx = click.get_current_context()
    given = given_store(ctx) or given_store(ctx.parent)
    if given is not None:
        app_path, url = given
        if app_path and url:
            raise click.UsageError("give --app or --url, not both", ctx)
    # From the environment too: an app reads CONVEYOR_URL itself.
    return load_app(app_path) if app_path else Conveyor(url)


def find_task(app: Conveyor, name: str) -> Task[Any, Any]:
    """The task registered as ``name``, or as ``something.name`` if only one is."""
    if name in app.tasks:
        return app.tasks[name]
    matches = [task for full, task in app.tasks.items() if full.endswith("." + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(sorted(t.name for t in matches))
        raise TaskNotFoundError(f"task name {name!r} is ambiguous; it could be {names}")
    known = ", ".join(sorted(app.tasks)) or "none"
    raise TaskNotFoundError(f"no task named {name!r}; known tasks: {known}")


def run(app: Conveyor, action: Callable[[Conveyor], Awaitable[T]]) -> T:
    """Open ``app``, run one coroutine against it, close it."""

    async def opened() -> T:
        async with app:
            return await action(app)

    return asyncio.run(opened())
