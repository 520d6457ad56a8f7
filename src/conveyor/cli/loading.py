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
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from click.core import ParameterSource

from conveyor.app import Conveyor
from conveyor.cli.errors import CliError
from conveyor.config import Settings
from conveyor.errors import TaskNotFoundError
from conveyor.jobs.task import Task
from conveyor.stores.sqlite.database import path_from_url

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
    """The app an admin command works on; its store must already exist.

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
    require_existing_store(app.settings, source)
    return app


def require_existing_store(settings: Settings, source: str | None) -> None:
    """Refuse a store that does not exist yet, naming it and where its URL came from.

    ``source`` says how the store was chosen (``"--url"``, ``"CONVEYOR_URL"``,
    ``"--app x:app"``); None means the embedded default. A Redis store exists
    when its server answers, so only SQLite files and ``memory://`` are checked here.
    (Opening a store without creating it belongs to the stores; until they can,
    the CLI checks before it opens.)
    """
    url = settings.store_url
    named = f"{settings.masked_url}, from {source}" if source else _default_named(url)
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        raise CliError(
            f"the store {named} lives inside one process; an admin command cannot read it:"
            " pass --url or --app (CONVEYOR_URL / CONVEYOR_APP) of a SQLite or Redis store"
        )
    if scheme == "sqlite":
        path = Path(path_from_url(url)).absolute()
        if not path.is_file():
            raise CliError(
                f"no conveyor store at {path} ({named}); admin commands never create one:"
                " run from your project's directory or pass --url or --app"
                " (CONVEYOR_URL / CONVEYOR_APP)"
            )


def _default_named(url: str) -> str:
    return f"the default {url}: no --url, --app, CONVEYOR_URL or CONVEYOR_APP given"


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
