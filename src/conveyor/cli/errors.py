"""How the command line shows a failure: one line on stderr, never a traceback unless asked.

- A :class:`CliError` (a bad APP, bad JSON, a missing store) and every
  :class:`~conveyor.errors.ConveyorError` print ``error: <message>`` and exit with 1.
- Anything else is something conveyor did not foresee: it prints
  ``error: <Type>: <message>`` and a hint to rerun with ``conveyor --debug``
  (or ``CONVEYOR_DEBUG=1``), which shows the traceback instead.
- Usage errors (a missing argument, an option out of range) are click's: exit 2.

Messages are folded onto one line and pass through the secret masking of log lines.
"""

from __future__ import annotations

from typing import IO, Any

import click

from conveyor.errors import ConfigError, ConveyorError
from conveyor.observability.logging import mask_text

DEBUG_HINT = "hint: rerun with `conveyor --debug ...` (or CONVEYOR_DEBUG=1) to see the traceback"


class CliError(click.ClickException):
    """An expected failure: shown as one ``error: ...`` line on stderr, exit code 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class UnexpectedError(CliError):
    """A failure that is no ConveyorError: one line, then how to see its traceback."""

    def show(self, file: IO[Any] | None = None) -> None:
        super().show(file)
        click.echo(DEBUG_HINT, file=file, err=file is None)


def one_line(text: str) -> str:
    """``text`` with its whitespace (newlines too) folded and its secrets masked."""
    return mask_text(" ".join(text.split()))


def describe(exc: ConveyorError) -> str:
    """A conveyor error as one line (a ConfigError lists its problems with ``;``)."""
    if isinstance(exc, ConfigError):
        return one_line("invalid conveyor configuration: " + "; ".join(exc.problems))
    return one_line(str(exc)) or type(exc).__name__


def as_cli_error(exc: Exception) -> CliError:
    """The one-line form of any exception a command let out."""
    if isinstance(exc, ConveyorError):
        return CliError(describe(exc))
    message = one_line(str(exc))
    return UnexpectedError(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


# click's own control flow: usage errors, --help, Ctrl-C at a prompt, exit codes.
_CLICK_FLOW = (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)


class ConveyorGroup(click.Group):
    """The root group: every failure of a command becomes one line (see the module doc)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _CLICK_FLOW:
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            raise as_cli_error(exc) from None
