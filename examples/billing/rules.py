"""The validation rules for invoice rows: plain functions, no I/O.

Every rule has a stable id; findings are stored and counted under it. A row
is valid when it has no finding. Rules that need a value skip a row whose
value is missing, so one blank cell gives one finding, not three.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

COLUMNS = (
    "invoice_number",
    "customer_id",
    "customer_name",
    "customer_email",
    "issued_on",
    "due_on",
    "amount",
    "currency",
    "status",
)
REQUIRED = tuple(column for column in COLUMNS if column != "customer_name")

CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF"})
"""The ISO 4217 codes we bill in; all have two minor units (cents)."""
MINOR_UNITS = 2
EARLIEST_ISSUE = date(2000, 1, 1)
LONGEST_TERMS = timedelta(days=365)

MISSING_FIELD = "missing_field"
MALFORMED_ROW = "malformed_row"
AMOUNT_NOT_A_NUMBER = "amount_not_a_number"
AMOUNT_NEGATIVE = "amount_negative"
AMOUNT_PRECISION = "amount_precision"
DUPLICATE_INVOICE = "duplicate_invoice"
BAD_DATE = "bad_date"
DUE_BEFORE_ISSUED = "due_before_issued"
DATE_OUT_OF_RANGE = "date_out_of_range"
BAD_EMAIL = "bad_email"
UNKNOWN_CURRENCY = "unknown_currency"

AMOUNT = re.compile(r"[+-]?\d+(?:\.(?P<decimals>\d+))?")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    column: str
    message: str


@dataclass(slots=True)
class CheckedRow:
    """One row as read (``values`` by column) and what is wrong with it."""

    line: int
    values: dict[str, str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.findings

    @property
    def amount(self) -> Decimal:
        """The exact amount; only meaningful for a valid row."""
        return Decimal(self.values["amount"].strip())

    @property
    def currency(self) -> str:
        return self.values["currency"].strip()


class RowChecker:
    """Checks the rows of one file in order, remembering invoice numbers seen."""

    def __init__(self, header: Sequence[str], today: date) -> None:
        self.header = list(header)
        self.today = today
        self._first_seen: dict[str, int] = {}

    def check(self, line: int, cells: Sequence[str]) -> CheckedRow:
        values = dict(zip(self.header, cells, strict=False))
        row = CheckedRow(line, values)
        if len(cells) != len(self.header):
            message = f"{len(cells)} cells where the header has {len(self.header)}"
            row.findings.append(Finding(MALFORMED_ROW, "", message))
            return row
        present = {c: v.strip() for c, v in values.items() if c in REQUIRED and v.strip()}
        row.findings.extend(
            Finding(MISSING_FIELD, column, f"{column} is empty")
            for column in REQUIRED
            if column not in present
        )
        checks = [
            self.check_unique(present.get("invoice_number"), line),
            check_amount(present.get("amount")),
            *check_dates(present.get("issued_on"), present.get("due_on"), self.today),
            check_email(present.get("customer_email")),
            check_currency(present.get("currency")),
        ]
        row.findings.extend(finding for finding in checks if finding is not None)
        return row

    def check_unique(self, invoice_number: str | None, line: int) -> Finding | None:
        if invoice_number is None:
            return None
        first = self._first_seen.setdefault(invoice_number, line)
        if first == line:
            return None
        message = f"invoice {invoice_number} is already on line {first}"
        return Finding(DUPLICATE_INVOICE, "invoice_number", message)


def check_amount(amount: str | None) -> Finding | None:
    if amount is None:
        return None
    match = AMOUNT.fullmatch(amount)
    if match is None:
        return Finding(AMOUNT_NOT_A_NUMBER, "amount", f"amount {amount!r} is not a number")
    if Decimal(amount) < 0:
        return Finding(AMOUNT_NEGATIVE, "amount", f"amount {amount} is negative")
    decimals = match["decimals"] or ""
    if len(decimals) > MINOR_UNITS:
        message = f"amount {amount} has {len(decimals)} decimals, at most {MINOR_UNITS} allowed"
        return Finding(AMOUNT_PRECISION, "amount", message)
    return None


def check_dates(issued_on: str | None, due_on: str | None, today: date) -> list[Finding]:
    issued, due = parse_date(issued_on), parse_date(due_on)
    bad = [
        Finding(BAD_DATE, column, f"{column} {raw!r} is not a date like 2024-03-15")
        for column, raw, parsed in (("issued_on", issued_on, issued), ("due_on", due_on, due))
        if raw is not None and parsed is None
    ]
    if bad or issued is None or due is None:
        return bad
    if not EARLIEST_ISSUE <= issued <= today:
        message = f"issued_on {issued} is not between {EARLIEST_ISSUE} and today"
        return [Finding(DATE_OUT_OF_RANGE, "issued_on", message)]
    if due - issued > LONGEST_TERMS:
        message = f"due_on {due} is {(due - issued).days} days after issued_on"
        return [Finding(DATE_OUT_OF_RANGE, "due_on", message)]
    if due < issued:
        return [Finding(DUE_BEFORE_ISSUED, "due_on", f"due_on {due} is before issued_on {issued}")]
    return []


def parse_date(value: str | None) -> date | None:
    """A strict ISO date (``2024-03-15``); ``None`` for anything else."""
    if value is None or not ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:  # 2024-02-30
        return None


def check_email(email: str | None) -> Finding | None:
    if email is None or EMAIL.fullmatch(email):
        return None
    return Finding(BAD_EMAIL, "customer_email", f"{email!r} is not an email address")


def check_currency(currency: str | None) -> Finding | None:
    if currency is None or currency in CURRENCIES:
        return None
    known = ", ".join(sorted(CURRENCIES))
    return Finding(UNKNOWN_CURRENCY, "currency", f"currency {currency!r} is not one of {known}")


def summary(rows: Sequence[CheckedRow]) -> dict[str, Any]:
    """Counts, findings per rule (most frequent first) and valid amounts per currency."""
    findings = Counter(finding.rule for row in rows for finding in row.findings)
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row.valid:
            totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.amount
    valid = sum(row.valid for row in rows)
    return {
        "rows": len(rows),
        "valid": valid,
        "invalid": len(rows) - valid,
        "findings": dict(findings.most_common()),
        "totals": {currency: str(total) for currency, total in sorted(totals.items())},
    }
