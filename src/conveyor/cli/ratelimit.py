"""``conveyor ratelimit policies | usage | reset``: rate limits from the command line.

    conveyor ratelimit policies [--app APP | --url URL] [--json]
    conveyor ratelimit usage POLICY KEY [--tier TIER] [--app APP | --url URL] [--json]
    conveyor ratelimit reset POLICY KEY [--app APP | --url URL]

Policies declared in code are known through ``--app``; with ``--url`` only
those of the settings (``CONVEYOR_RATE_LIMITS``). KEY is the rate key as the
application builds it (``user:42``, ``ip:203.0.113.9``; see ``rate_key``).
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from conveyor.cli.loading import admin_app, run, store_options
from conveyor.cli.output import cell, console, json_option, print_json
from conveyor.ratelimit.quota import RateQuota


@click.group("ratelimit")
def ratelimit() -> None:
    """List rate-limit policies; read and reset a key's usage."""


@ratelimit.command("policies")
@store_options
@json_option
def list_policies(as_json: bool, app_path: str | None, url: str | None) -> None:
    """List the declared policies: algorithm and rate per tier."""
    app = admin_app(app_path, url).app  # policies are declared, not stored: nothing to open
    described = app.rate_limits.describe()
    if as_json:
        print_json(described)
        return
    tiers = ", ".join(app.rate_limits.tiers)
    table = Table("policy", "algorithm", "rates", caption=tiers and f"tiers, lowest first: {tiers}")
    for policy in described:
        rates = policy["rates"]
        assert isinstance(rates, dict)
        shown = ", ".join(
            f"{tier}: {rate}" if tier != "*" else str(rate) for tier, rate in rates.items()
        )
        table.add_row(cell(policy["name"]), cell(policy["algorithm"]), cell(shown))
    console().print(table)


def describe(quota: RateQuota) -> dict[str, Any]:
    return {
        "policy": quota.policy,
        "tier": quota.tier,
        "algorithm": quota.algorithm.value,
        "limit": quota.limit,
        "window": quota.window,
        "remaining": quota.remaining,
        "reset": round(quota.reset, 3),
        "retry_after": round(quota.retry_after, 3),
    }


@ratelimit.command("usage")
@click.argument("policy")
@click.argument("key")
@click.option("--tier", help="The tier whose rate to read against (default: the first).")
@store_options
@json_option
def show_usage(
    policy: str, key: str, tier: str | None, as_json: bool, app_path: str | None, url: str | None
) -> None:
    """Show KEY's usage under POLICY (changes nothing)."""
    store = admin_app(app_path, url)
    store.app.rate_limits.policy(policy).rate(tier)  # an unknown policy or tier: before any store
    quota = run(store, lambda app: app.rate_limits.usage(policy, key, tier))
    shown = describe(quota)
    if as_json:
        print_json(shown)
        return
    for name, value in shown.items():
        click.echo(f"{name}: {'-' if value is None else value}")


@ratelimit.command("reset")
@click.argument("policy")
@click.argument("key")
@store_options
def reset_usage(policy: str, key: str, app_path: str | None, url: str | None) -> None:
    """Forget KEY's usage under POLICY (every tier)."""
    store = admin_app(app_path, url)
    store.app.rate_limits.policy(policy)  # an unknown policy: said before any store is opened
    run(store, lambda app: app.rate_limits.reset(policy, key))
    click.echo(f"rate limit {policy} reset for {key}")
