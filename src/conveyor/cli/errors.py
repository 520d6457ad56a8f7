"""How the command line shows a failure: one ``error: ...`` line on stderr, exit code 1."""

from __future__ import annotations

from typing import IO, Any

import click

from conveyor.errors import ConfigError, OperationalError


class CliError(click.ClickException):
    """An expected failure: shown as one ``error: ...`` line on stderr, exit code 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def describe(exc: OperationalError) -> str:
    """An operational error as one line (a ConfigError lists its problems with ``;``)."""
    if isinstance(exc, ConfigError):
        return "invalid conveyor configuration: " + "; ".join(exc.problems)
    return " ".join(str(exc).split()) or type(exc).__name__


class ConveyorGroup(click.Group):
    """The root group: turns operational errors from any command into a ``CliError``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperationalError as exc:
            raise CliError(describe(exc)) from None
