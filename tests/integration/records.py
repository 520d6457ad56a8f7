"""Reading the files that worker processes append to while a test reads them."""

from __future__ import annotations

from pathlib import Path


def written_lines(path: Path) -> list[str]:
    """The whole lines of ``path`` ([] before it exists).

    Another process may be appending as this reads: what follows the last newline is a
    line still being written (a line that crosses a page boundary can be seen in two
    parts), so it is left out until its newline is there too.
    """
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


def written_numbers(path: Path) -> list[int]:
    """The whole lines of ``path``, each a number."""
    return [int(line) for line in written_lines(path)]
