"""``conveyor ratelimit policies | usage | reset``, run for real against a SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import Cli, assert_one_error_line

APP_MODULE = """
import asyncio
import sys

from conveyor import Conveyor, RatePolicy

app = Conveyor({url!r}, rate_limits={{"login": "5/minute"}})
app.rate_limits.add(
    RatePolicy("api", {{"free": "20/hour", "pro": "100/hour"}}),
    RatePolicy("exports", {{"free": 1, "pro": 4}}, algorithm="concurrency", lease=300),
)


async def spend(count: int) -> None:
    async with app:
        for _ in range(count):
            await app.rate_limits.check("api", "exports", key="user:42", tier="pro")


if __name__ == "__main__":
    asyncio.run(spend(int(sys.argv[1])))
"""
APP = "limits_app:app"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    (tmp_path / "limits_app.py").write_text(APP_MODULE.format(url=url))
    cli = Cli(tmp_path, url)
    cli.env["COLUMNS"] = "160"
    return cli


def app_json(cli: Cli, *args: str) -> Any:
    return json.loads(cli(*args, "--app", APP, "--json").stdout)


def spend(cli: Cli, count: int) -> None:
    """Check ``count`` requests in another process (which never releases its slots)."""
    subprocess.run(
        [sys.executable, "limits_app.py", str(count)],
        cwd=cli.cwd,
        env=cli.env,
        check=True,
        timeout=30,
    )


def test_policies_are_listed_from_settings_and_code(cli: Cli) -> None:
    listed = app_json(cli, "ratelimit", "policies")
    assert [p["name"] for p in listed] == ["login", "api", "exports"]
    table = cli("ratelimit", "policies", "--app", APP).stdout
    assert "free: 20/hour, pro: 100/hour" in table and "tiers, lowest first: free, pro" in table
    assert "free: 1, pro: 4" in table


def test_usage_is_read_and_reset_across_processes(cli: Cli) -> None:
    spend(cli, 3)
    usage = app_json(cli, "ratelimit", "usage", "api", "user:42", "--tier", "pro")
    assert (usage["limit"], usage["remaining"], usage["window"]) == (100, 97, 3600.0)
    exports = app_json(cli, "ratelimit", "usage", "exports", "user:42", "--tier", "pro")
    assert exports["remaining"] == 1  # one slot of the 4 was never released: 3 held

    reset = cli("ratelimit", "reset", "api", "user:42", "--app", APP)
    assert reset.stdout.strip() == "rate limit api reset for user:42"
    usage = app_json(cli, "ratelimit", "usage", "api", "user:42", "--tier", "pro")
    assert usage["remaining"] == 100


def test_an_unknown_policy_or_tier_is_one_error_line(cli: Cli) -> None:
    missing = cli("ratelimit", "usage", "nope", "user:1", "--app", APP, code=1)
    assert_one_error_line(missing, "no rate-limit policy 'nope'", "login, api, exports")
    tier = cli("ratelimit", "usage", "api", "user:1", "--tier", "gold", "--app", APP, code=1)
    assert_one_error_line(tier, "no rate for tier 'gold'")
    assert_one_error_line(
        cli.admin("ratelimit", "reset", "api", "user:1", code=1), "declared: none"
    )
