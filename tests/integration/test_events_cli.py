"""``conveyor events ...`` run for real in subprocesses against a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import Cli

APP_MODULE = """
import msgspec

from conveyor import Conveyor

app = Conveyor({url!r})


class OrderPlaced(msgspec.Struct):
    order_id: int


@app.events.subscribe(OrderPlaced, group="mailer", retries=1, backoff=0)
async def mail(event: OrderPlaced) -> None:
    raise RuntimeError(f"smtp down for order [b]{{event.order_id}}[/b]")


@app.events.subscribe(OrderPlaced, group="audit")
async def audit(event: OrderPlaced) -> None:
    pass


if __name__ == "__main__":
    import asyncio

    async def publish() -> None:
        async with app:
            await app.events.publish_many([OrderPlaced(1), OrderPlaced(2)])

    asyncio.run(publish())
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    (tmp_path / "cli_app.py").write_text(APP_MODULE.format(url=url))
    return Cli(tmp_path, url)


def test_dead_letters_are_listed_shown_replayed_and_purged(cli: Cli) -> None:
    cli.run_script("cli_app.py")
    assert "2 failed" in cli.work()

    groups = {g["group"]: g for g in cli.json("events", "groups")}
    assert groups["mailer"]["types"] == ["OrderPlaced"]
    assert groups["mailer"]["dead_letters"] == 2
    assert groups["audit"]["dead_letters"] == 0
    assert groups["audit"]["backlog"] == 0

    letters = cli.json("events", "dlq", "list", "--group", "mailer")
    assert sorted(letter["events"][0]["data"]["order_id"] for letter in letters) == [1, 2]
    assert {letter["attempts"] for letter in letters} == {2}
    letter_id = letters[0]["id"]
    shown = cli.admin("events", "dlq", "show", letter_id).stdout
    assert "smtp down for order [b]" in shown  # the error, printed literally
    assert "Traceback" in shown
    (event,) = cli.json("events", "dlq", "show", letter_id)["events"]
    assert event["meta"]["type"] == "OrderPlaced"

    assert "replayed" in cli.admin("events", "dlq", "replay", letter_id).stdout
    assert len(cli.json("events", "dlq", "list")) == 1
    assert "replayed 1 dead letters" in cli.admin("events", "dlq", "replay", "--all").stdout
    assert cli.json("events", "dlq", "list") == []
    assert "2 failed" in cli.work()
    assert "purged 2 dead letters" in cli.admin("events", "dlq", "purge", "--yes").stdout
    assert cli.json("events", "dlq", "list") == []


def test_a_missing_dead_letter_is_one_error_line(cli: Cli) -> None:
    proc = cli.admin("events", "dlq", "show", "nope@mailer", code=1)
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    cli.admin("events", "dlq", "replay", code=2)  # neither ID nor --all: a usage error
