"""Traffic weights by top-two Thompson sampling, with a minimum weight per arm.

Plain Thompson sampling sends each visitor to the arm that wins one draw of
the posteriors, so arm ``i`` gets ``a_i = P(i is best)``. Top-two Thompson
sampling (Russo, 2016), which GrowthBook's bandits use, plays that leader
only with probability ``beta``; otherwise it draws again until another arm
leads and plays that challenger. The challenger is ``i`` with probability
``a_i / (1 - a_j)`` when ``j`` led, so arm ``i`` gets

    w_i = beta * a_i + (1 - beta) * a_i * sum_{j != i} a_j / (1 - a_j)

(the weights add up to 1). The leader's share tends to ``beta``, the largest
of all, while the others keep enough traffic for the ranking to be sure:
the point is to find the best arm, not to starve the others on an early
fluke. ``a_i`` comes from ``statistics.chance_to_be_best`` (exact for two
arms, Monte Carlo above), smoothed as ``(a_i * draws + 1) / (draws + k)`` so
no arm is certain on finite draws. Last, every arm keeps at least
``floor``: ``w_i <- floor + (1 - k * floor) * w_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .statistics import Arm, chance_to_be_best

TOP_TWO_BETA = 0.5
MIN_WEIGHT = 0.01
DRAWS = 10_000


@dataclass(frozen=True, slots=True)
class Recommendation:
    weights: list[float]
    chance_to_be_best: list[float]
    standard_error: list[float]
    best: int
    """The arm most likely to be best."""


def top_two_weights(chances: Sequence[float], beta: float = TOP_TWO_BETA) -> list[float]:
    """The top-two Thompson sampling allocation for these chances to be best."""
    challenger = sum(a / (1 - a) for a in chances)
    return [beta * a + (1 - beta) * a * (challenger - a / (1 - a)) for a in chances]


def with_floor(weights: Sequence[float], floor: float = MIN_WEIGHT) -> list[float]:
    if floor * len(weights) >= 1:
        return [1 / len(weights)] * len(weights)
    return [floor + (1 - floor * len(weights)) * w for w in weights]


def recommend(
    arms: Sequence[Arm],
    *,
    seed: int,
    draws: int = DRAWS,
    beta: float = TOP_TWO_BETA,
    floor: float = MIN_WEIGHT,
) -> Recommendation:
    """Weights for the next period of traffic, from the arms' counts so far."""
    chances, errors = chance_to_be_best(arms, draws, seed)
    k = len(arms)
    smoothed = [(a * draws + 1) / (draws + k) for a in chances]
    weights = with_floor(top_two_weights(smoothed, beta), floor)
    best = max(range(k), key=chances.__getitem__)
    return Recommendation(weights, chances, errors, best)
