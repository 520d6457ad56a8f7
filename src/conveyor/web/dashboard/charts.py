"""Charts drawn on the server as SVG: bars per minute, no chart library, no script.

The template draws what :func:`minute_bars` computes: one column per minute,
completed below and failed stacked on top, scaled to the busiest minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH = 600
HEIGHT = 120


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    bad_y: float
    bad_height: float
    label: str
    """For the bar's tooltip (an SVG <title>)."""


@dataclass(frozen=True, slots=True)
class MinuteChart:
    bars: list[Bar]
    peak: int
    total_ok: int
    total_bad: int
    width: int = WIDTH
    height: int = HEIGHT


def minute_bars(start: datetime, completed: list[int], failed: list[int]) -> MinuteChart:
    """Bars for per-minute counts (both lists start at ``start``, one value a minute)."""
    minutes = max(len(completed), len(failed), 1)
    peak = max([c + f for c, f in zip(completed, failed, strict=False)] or [0])
    scale = (HEIGHT - 2) / peak if peak else 0.0
    step = WIDTH / minutes
    bars = []
    for i in range(minutes):
        ok = completed[i] if i < len(completed) else 0
        bad = failed[i] if i < len(failed) else 0
        ok_h, bad_h = ok * scale, bad * scale
        minute = (start + timedelta(minutes=i)).strftime("%H:%M")
        bars.append(
            Bar(
                x=round(i * step + 0.5, 2),
                width=round(max(step - 1, 0.5), 2),
                ok_y=round(HEIGHT - ok_h, 2),
                ok_height=round(ok_h, 2),
                bad_y=round(HEIGHT - ok_h - bad_h, 2),
                bad_height=round(bad_h, 2),
                label=f"{minute} UTC: {ok} completed, {bad} failed",
            )
        )
    return MinuteChart(bars, peak, sum(completed), sum(failed))
