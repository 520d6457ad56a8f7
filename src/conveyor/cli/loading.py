"""Finding the app and the store a command works on, and running a coroutine against it.

Commands given an ``APP`` (``worker``, ``enqueue``, ``schedules add``) import
it and may create its store, as the app itself would. Admin commands find
their store through ``--app`` or ``--url`` (``CONVEYOR_APP`` /
``CONVEYOR_URL``), else the embedded default, and never create one: they
open it with ``create=False`` and fail, naming the store they looked for and
where its URL came from, when it does not exist.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError, describe
from conveyor.errors import NotFoundError, TaskNotFoundError
from conveyor.jobs.task import Task

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def load_app(path: str) -> Conveyor:
    """Import ``module.path:attribute`` (from the current directory too) as a Conveyor."""
    target = load_object(path)
    if not isinstance(target, Conveyor):
        raise CliError(f"{path!r} is a {type(target).__name__}, not a conveyor.Conveyor")
    return target


def load_object(path: str) -> Any:
    """Import ``module.path:attribute`` (from the current directory too)."""
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


@dataclass(frozen=True)
class ExistingStore:
    """An app whose store an admin command reads: :func:`run` opens it only if it exists."""

    app: Conveyor
    source: str | None
    """How the store was chosen (``"--url"``, ``"CONVEYOR_URL"``, ``"--app x:app"``);
    None for the embedded default."""

    def describe(self) -> str:
        settings = self.app.settings
        if self.source:
            return f"{settings.masked_url}, from {self.source}"
        return f"the default {settings.masked_url}: no --url, --app, CONVEYOR_URL or CONVEYOR_APP"


def admin_app(app_path: str | None, url: str | None) -> ExistingStore:
    """The app an admin command works on, for :func:`run`; its store must already exist.

    ``--app``/``--url`` typed on the command win, then those typed on its
    group (``conveyor queues --url X pause Q``), then ``CONVEYOR_APP``, then
    ``CONVEYOR_URL``, then the embedded default ``Conveyor()``.
    """
    ctx = click.get_current_context()
    given = given_store(ctx) or given_store(ctx.parent)
    source: str | None
    if given is not None:
        app_path, url = given
        if app_path and url:
            raise click.UsageError("give --app or --url, not both", ctx)
        source = f"--app {app_path}" if app_path else "--url"
    elif app_path:
        source = f"CONVEYOR_APP={app_path}"
    else:
        source = "CONVEYOR_URL" if url else None
    # From the environment too: an app reads CONVEYOR_URL itself.
    app = load_app(app_path) if app_path else Conveyor(url)
    if urlsplit(app.settings.store_url).scheme == "memory":
        raise CliError(
            f"the store {ExistingStore(app, source).describe()} lives inside one process;"
            " an admin command cannot read it: pass --url or --app (CONVEYOR_URL /"
            " CONVEYOR_APP) of a SQLite or Redis store"
        )
    return ExistingStore(app, source)


async def open_existing(store: ExistingStore) -> None:
    """Connect to the store without creating it; refuse it, naming it, if it is missing."""
    try:
        await store.app.backend.open(create=False)
    except NotFoundError as exc:
        raise CliError(
            f"{describe(exc)} ({store.describe()}); admin commands never create one:"
            " run from your project's directory or pass --url or --app"
            " (CONVEYOR_URL / CONVEYOR_APP)"
        ) from None


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


def run(target: Conveyor | ExistingStore, action: Callable[[Conveyor], Awaitable[T]]) -> T:
    """Open the app (an admin command's only if its store exists), run one coroutine
    against it, close it."""
    app = target.app if isinstance(target, ExistingStore) else target

    async def opened() -> T:
        if isinstance(target, ExistingStore):
            await open_existing(target)
        async with app:
            return await action(app)

    return asyncio.run(opened())
