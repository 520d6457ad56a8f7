"""An experiment's results, computed from its variants' counts and cached until the next
counted events (the handler invalidates the tag) or for a minute at most."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from conveyor import NotFoundError
from examples.service.backbone import backbone, database

from . import bandit
from .models import Variant
from .statistics import (
    SRM_ALERT_P,
    Arm,
    chance_to_beat,
    difference_interval,
    expected_loss,
    lift_interval,
    srm_test,
    z_test,
)

CONFIDENCE = 0.95


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined figure (a lift over a zero control rate) is null."""
    return None if math.isnan(value) else value


def seed_of(experiment_id: str, arms: Sequence[Arm]) -> int:
    """The Monte Carlo seed: the same counts always give the same figures."""
    counts = ",".join(f"{a.exposures}/{a.conversions}" for a in arms)
    digest = hashlib.sha256(f"{experiment_id}|{counts}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def compute(experiment_id: str, arms: Sequence[Arm], weights: Sequence[float]) -> dict[str, Any]:
    """Every figure of the results page (pure; see statistics.py for the formulas)."""
    control = arms[0]
    recommendation = bandit.recommend(arms, seed=seed_of(experiment_id, arms))
    chi2, srm_p = srm_test([a.exposures for a in arms], weights)
    variants = []
    for index, arm in enumerate(arms):
        row: dict[str, Any] = {
            "name": arm.name,
            "control": index == 0,
            "exposures": arm.exposures,
            "conversions": arm.conversions,
            "conversionRate": arm.rate,
            "chanceToBeBest": recommendation.chance_to_be_best[index],
            "chanceToBeBestError": recommendation.standard_error[index],
        }
        if index:
            d, d_low, d_high = difference_interval(arm, control, CONFIDENCE)
            lift, low, high = lift_interval(arm, control, CONFIDENCE)
            z, p_value = z_test(arm, control)
            row |= {
                "difference": {"value": d, "low": _number(d_low), "high": _number(d_high)},
                "relativeLift": {
                    "value": _number(lift),
                    "low": _number(low),
                    "high": _number(high),
                    "confidence": CONFIDENCE,
                },
                "zScore": z,
                "pValue": p_value,
                "chanceToBeatControl": chance_to_beat(arm, control),
                "expectedLoss": expected_loss(arm, control),
                "expectedLossOfControl": expected_loss(control, arm),
            }
        variants.append(row)
    return {
        "experimentId": experiment_id,
        "variants": variants,
        "sampleRatioMismatch": {
            "chiSquare": chi2,
            "pValue": srm_p,
            "alert": srm_p < SRM_ALERT_P,
            "threshold": SRM_ALERT_P,
            "expectedWeights": list(weights),
        },
        "recommendation": {
            "method": "top-two Thompson sampling",
            "weights": {arm.name: w for arm, w in zip(arms, recommendation.weights, strict=True)},
            "bestVariant": arms[recommendation.best].name,
            "topTwoBeta": bandit.TOP_TWO_BETA,
            "minWeight": bandit.MIN_WEIGHT,
            "monteCarloDraws": bandit.DRAWS if len(arms) > 2 else 0,
        },
        "note": (
            "Fixed-horizon tests: decide the sample size first; stopping at the first"
            " p < 0.05 while peeking inflates false positives."
        ),
    }


@backbone.cache.cached(ttl=60, key="results:{experiment_id}", tags=["experiment:{experiment_id}"])
async def experiment_results(experiment_id: str) -> dict[str, Any]:
    async with database.reading() as session:
        variants = list(
            await session.scalars(
                select(Variant)
                .where(Variant.experiment_id == experiment_id)
                .order_by(Variant.position)
            )
        )
    if not variants:
        raise NotFoundError(f"no experiment {experiment_id}")
    arms = [Arm(v.name, v.exposures, v.conversions) for v in variants]
    # The Monte Carlo draws take a few hundred ms for many arms: off the event loop.
    return await asyncio.to_thread(compute, experiment_id, arms, [v.weight for v in variants])
