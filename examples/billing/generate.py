"""Generate monthly invoice exports, with the mistakes real exports have.

Each good file holds one month of invoices. A seeded share of its rows
carries exactly one defect (a blank field, an amount like ``12,50``, a
copied invoice number, a due date before the issue date, a name with an
unquoted comma, ...), so the validator's findings can be checked exactly:
:class:`GeneratedFile` records what was injected, and ``manifest.json``
next to the files says the same.

One more file is an export that someone gzip-compressed and saved with a
``.csv`` name: it is not text at all, and validating it must fail.

    python -m examples.billing.generate --files 5 --rows 10000 --out /tmp/billing
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from . import rules

DEFAULT_SEED = 1729
DEFAULT_FILES = 5
DEFAULT_ROWS = 10_000
DEFAULT_INVALID_SHARE = 0.06

CUSTOMERS = 400
PAYMENT_TERMS_DAYS = (14, 30, 30, 30, 45, 60)
STATUSES = ("open", "open", "paid", "paid", "paid", "overdue", "void")
CURRENCY_BY_COUNTRY = {"de": "EUR", "fr": "EUR", "nl": "EUR", "us": "USD", "uk": "GBP", "ch": "CHF"}
FIRST_NAMES = (
    "anna", "ben", "carla", "david", "elena", "farid", "greta", "hugo", "ines", "jonas",
    "karin", "luca", "maya", "nils", "olga", "paul", "rosa", "samir", "tara", "viktor",
)  # fmt: skip
LAST_NAMES = (
    "bauer", "costa", "dubois", "eriksen", "fischer", "garcia", "hansen", "ivanova", "jansen",
    "keller", "lopez", "meyer", "novak", "okafor", "petit", "quinn", "rossi", "schmidt",
)  # fmt: skip
COMPANY_WORDS = ("acme", "northwind", "globex", "initech", "umbrella", "stark", "wayne", "hooli")

# What broken values look like in the wild, per defect.
NOT_A_NUMBER = ("N/A", "12,50", "1.234,56", "EUR 120.00", "TBD", "n/a", "--")
BAD_EMAILS = ("{local}@", "{local}.{domain}", "{local} @{domain}", "@{domain}", "{local}@@{domain}")
BAD_DATES = ("15/03/2024", "2024-02-30", "2024-13-01", "yesterday", "03-15-2024", "2024/03/15")
UNKNOWN_CURRENCIES = ("EURO", "US$", "€", "XXX", "eur", "DM")


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    currency: str


@dataclass
class GeneratedFile:
    """One generated file and what validating it must report."""

    path: Path
    rows: int = 0
    invalid: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)
    """Sum of the valid rows' amounts per currency, as exact decimal strings."""
    corrupt: bool = False

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["valid"] = self.rows - self.invalid
        return data


def generate(
    out: Path,
    *,
    files: int = DEFAULT_FILES,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    invalid_share: float = DEFAULT_INVALID_SHARE,
    today: date | None = None,
) -> list[GeneratedFile]:
    """Write ``files`` monthly exports plus one corrupt file into ``out``.

    The months are the ``files`` months before the current one, so every
    good invoice lies in the past. The same seed gives the same rows,
    defects and totals whatever the date (only the dates move).
    """
    out.mkdir(parents=True, exist_ok=True)
    today = today or date.today()
    customers = make_customers(random.Random(f"{seed}:customers"))
    generated = []
    for index in range(files):
        month = add_months(today.replace(day=1), index - files)
        rng = random.Random(f"{seed}:file:{index}")
        path = out / f"invoices_{month:%Y-%m}.csv"
        generated.append(write_month(path, month, rows, rng, customers, invalid_share))
    this_month = today.replace(day=1)
    generated.append(write_corrupt(out / f"invoices_{this_month:%Y-%m}.csv", this_month, customers))
    manifest = {"seed": seed, "files": [g.to_json() for g in generated]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return generated


def make_customers(rng: random.Random) -> list[Customer]:
    customers = []
    for number in range(1, CUSTOMERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        country = rng.choice(list(CURRENCY_BY_COUNTRY))
        domain = f"{rng.choice(COMPANY_WORDS)}-{last}.{'co.uk' if country == 'uk' else country}"
        customers.append(
            Customer(
                id=f"CUST-{number:05d}",
                name=f"{first.title()} {last.title()}",
                email=f"{first}.{last}@{domain}",
                currency=CURRENCY_BY_COUNTRY[country],
            )
        )
    return customers


def write_month(
    path: Path,
    month: date,
    rows: int,
    rng: random.Random,
    customers: list[Customer],
    invalid_share: float,
) -> GeneratedFile:
    result = GeneratedFile(path, rows=rows)
    findings: Counter[str] = Counter()
    totals: dict[str, Decimal] = {}
    issued_numbers: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=rules.COLUMNS)
        writer.writeheader()
        for seq in range(1, rows + 1):
            row = good_row(rng, month, seq, rng.choice(customers))
            defect = None
            if rng.random() < invalid_share:
                defect = rng.choice(list(DEFECTS))
                if defect == rules.DUPLICATE_INVOICE and not issued_numbers:
                    defect = rules.MISSING_FIELD  # nothing to copy yet on the first row
                DEFECTS[defect](row, rng, issued_numbers)
                findings[defect] += 1
            else:
                currency = row["currency"]
                totals[currency] = totals.get(currency, Decimal(0)) + Decimal(row["amount"])
            if defect == rules.MALFORMED_ROW:  # written by hand, as a naive exporter would
                f.write(",".join(row[column] for column in rules.COLUMNS) + "\r\n")
                continue  # its cells cannot be trusted, so neither can its invoice number
            if row["invoice_number"].strip():
                issued_numbers.append(row["invoice_number"])
            writer.writerow(row)
    result.invalid = sum(findings.values())
    result.findings = dict(findings.most_common())
    result.totals = {cur: str(total) for cur, total in sorted(totals.items())}
    return result


def good_row(rng: random.Random, month: date, seq: int, customer: Customer) -> dict[str, str]:
    issued = month.replace(day=rng.randint(1, days_in_month(month)))
    due = issued + timedelta(days=rng.choice(PAYMENT_TERMS_DAYS))
    amount = Decimal(str(round(max(1.0, rng.lognormvariate(5.5, 1.1)), 2))).quantize(
        Decimal("0.01")
    )
    return {
        "invoice_number": f"INV-{month:%Y%m}-{seq:05d}",
        "customer_id": customer.id,
        "customer_name": customer.name,
        "customer_email": customer.email,
        "issued_on": issued.isoformat(),
        "due_on": due.isoformat(),
        "amount": str(amount),
        "currency": customer.currency,
        "status": rng.choice(STATUSES),
    }


# -- defects: each turns a good row into one with exactly one finding ----------

Row = dict[str, str]


def blank_a_field(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    row[rng.choice(rules.REQUIRED)] = rng.choice(("", " ", "  "))


def unquoted_comma(row: Row, _rng: random.Random, _numbers: list[str]) -> None:
    first, last = row["customer_name"].split(" ", 1)
    row["customer_name"] = f"{last}, {first}"  # one cell too many once written unquoted


def amount_not_a_number(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    row["amount"] = rng.choice(NOT_A_NUMBER)


def negative_amount(row: Row, _rng: random.Random, _numbers: list[str]) -> None:
    row["amount"] = f"-{row['amount']}"


def too_many_decimals(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    row["amount"] = f"{row['amount']}{rng.randint(1, 9)}"


def copy_invoice_number(row: Row, rng: random.Random, numbers: list[str]) -> None:
    row["invoice_number"] = rng.choice(numbers)


def unparseable_date(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    row[rng.choice(("issued_on", "due_on"))] = rng.choice(BAD_DATES)


def due_before_issued(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    issued = date.fromisoformat(row["issued_on"])
    row["due_on"] = (issued - timedelta(days=rng.randint(1, 30))).isoformat()


def date_out_of_range(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    issued = date.fromisoformat(row["issued_on"])
    kind = rng.choice(("epoch", "far_future_issue", "far_future_due"))
    if kind == "epoch":  # a NULL timestamp rendered as a date
        row["issued_on"], row["due_on"] = "1970-01-01", "1970-01-31"
    elif kind == "far_future_issue":  # a typo in the year
        typo = date(issued.year + 70, issued.month, min(issued.day, 28))
        row["issued_on"], row["due_on"] = typo.isoformat(), (typo + timedelta(30)).isoformat()
    else:  # the "never" placeholder
        row["due_on"] = "2099-12-31"


def malformed_email(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    local, domain = row["customer_email"].split("@")
    row["customer_email"] = rng.choice(BAD_EMAILS).format(local=local, domain=domain)


def unknown_currency(row: Row, rng: random.Random, _numbers: list[str]) -> None:
    row["currency"] = rng.choice(UNKNOWN_CURRENCIES)


DEFECTS: dict[str, Callable[[Row, random.Random, list[str]], None]] = {
    rules.MISSING_FIELD: blank_a_field,
    rules.MALFORMED_ROW: unquoted_comma,
    rules.AMOUNT_NOT_A_NUMBER: amount_not_a_number,
    rules.AMOUNT_NEGATIVE: negative_amount,
    rules.AMOUNT_PRECISION: too_many_decimals,
    rules.DUPLICATE_INVOICE: copy_invoice_number,
    rules.BAD_DATE: unparseable_date,
    rules.DUE_BEFORE_ISSUED: due_before_issued,
    rules.DATE_OUT_OF_RANGE: date_out_of_range,
    rules.BAD_EMAIL: malformed_email,
    rules.UNKNOWN_CURRENCY: unknown_currency,
}


def write_corrupt(path: Path, month: date, customers: list[Customer]) -> GeneratedFile:
    """A real export, gzip-compressed and saved as ``.csv``: not text at all."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=rules.COLUMNS)
    writer.writeheader()
    rng = random.Random("corrupt")
    for seq in range(1, 201):
        writer.writerow(good_row(rng, month, seq, rng.choice(customers)))
    path.write_bytes(gzip.compress(text.getvalue().encode(), mtime=0))
    return GeneratedFile(path, corrupt=True)


# -- calendar helpers ------------------------------------------------------------


def add_months(first_of_month: date, months: int) -> date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def days_in_month(first_of_month: date) -> int:
    return (add_months(first_of_month, 1) - first_of_month).days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the files")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    for generated in generate(args.out, files=args.files, rows=args.rows, seed=args.seed):
        what = "corrupt" if generated.corrupt else f"{generated.rows} rows, {generated.invalid} bad"
        print(f"{generated.path}: {what}")


if __name__ == "__main__":
    main()
