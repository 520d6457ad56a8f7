"""Reading an uploaded billing CSV: its encoding, its delimiter, its rows. No I/O but
the bytes given; a file that is not a billing CSV raises ``CorruptUploadError``.

Encoding: a byte-order mark decides (UTF-8, UTF-16); else strict UTF-8;
else charset-normalizer's best guess, cp1252 (Excel's) among equally good ones.
Delimiter: the one of ``, ; TAB |`` that splits the header line into the most
known billing columns (the header is known, which beats guessing from the
data as ``csv.Sniffer`` does).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import charset_normalizer

from examples.billing import rules

DELIMITERS = (",", ";", "\t", "|")
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MAGIC = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)"}
SAMPLE = 64 * 1024
PREFERRED = "cp1252"
"""Western Excel's export encoding: the pick among equally good guesses."""


class CorruptUploadError(Exception):
    """The upload cannot be read as a billing CSV; trying again will not change that."""


@dataclass(frozen=True, slots=True)
class ParsedUpload:
    encoding: str
    delimiter: str
    header: list[str]
    rows: list[tuple[int, list[str]]]
    """``(line number, cells)`` of every non-blank row after the header."""


def detect_encoding(data: bytes) -> str:
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            raise CorruptUploadError(f"the file is {what}, not CSV text")
    for bom, name in BOMS:
        if data.startswith(bom):
            return name
    if b"\x00" in data[:SAMPLE]:
        raise CorruptUploadError("the file is binary, not CSV text (it has NUL bytes)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8"
    matches = list(charset_normalizer.from_bytes(data[:SAMPLE]))
    if not matches:
        raise CorruptUploadError("the file is not text in any encoding we could recognise")
    best = matches[0]
    # A short sample often reads equally well in several code pages (cp1250, cp1252,
    # cp1257 agree on most accented letters); among those ties Excel's cp1252 wins.
    tied = [m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return PREFERRED if PREFERRED in tied else str(best.encoding)


def detect_delimiter(header_line: str) -> str:
    def known_columns(delimiter: str) -> int:
        cells = {cell.strip().strip('"') for cell in header_line.split(delimiter)}
        return len(cells & set(rules.COLUMNS))

    best = max(DELIMITERS, key=known_columns)
    if known_columns(best) == 0:
        raise CorruptUploadError("the first line is not a billing header (no known column)")
    return best


def parse(data: bytes, progress: Callable[[int, int], None]) -> ParsedUpload:
    """The header and rows of ``data``; ``progress(rows read, rows expected)`` as it goes."""
    if not data.strip():
        raise CorruptUploadError("the file is empty")
    encoding = detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CorruptUploadError(
            f"the file is not valid {encoding} (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    text = text.removeprefix("\ufeff")
    delimiter = detect_delimiter(text.split("\n", 1)[0])
    expected = max(1, text.count("\n"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [column for column in rules.COLUMNS if column not in header]
        if missing:
            raise CorruptUploadError(f"the header has no {', '.join(missing)} column(s)")
        rows = list(_rows(reader, expected, progress))
    except csv.Error as exc:
        raise CorruptUploadError(f"line {reader.line_num}: {exc}") from None
    return ParsedUpload(encoding, delimiter, header, rows)


def _rows(
    reader: Any, expected: int, progress: Callable[[int, int], None]
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of each non-blank row (a quoted cell may span lines)."""
    for count, cells in enumerate(reader, start=1):
        if cells:
            yield reader.line_num, cells
        if count % 1000 == 0:
            progress(count, expected)
