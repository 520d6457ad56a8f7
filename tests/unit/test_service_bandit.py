"""The reference service's top-two Thompson sampling: in a seeded simulation the traffic
weights converge to the best arm, and the allocation formula is what the module says."""

from __future__ import annotations

import random

import pytest
from examples.service.experiments.bandit import MIN_WEIGHT, TOP_TWO_BETA, recommend, top_two_weights
from examples.service.experiments.statistics import Arm

TRUE_RATES = (0.05, 0.07, 0.04, 0.055)
BEST = 1
ROUND = 1_000
ROUNDS = 40


def simulate(seed: int) -> list[list[float]]:
    """Each round: ROUND users split by the last recommendation; the weights after each."""
    rng = random.Random(seed)
    k = len(TRUE_RATES)
    exposures, conversions = [0] * k, [0] * k
    weights = [1 / k] * k
    history = []
    for _ in range(ROUNDS):
        for arm in rng.choices(range(k), weights=weights, k=ROUND):
            exposures[arm] += 1
            conversions[arm] += rng.random() < TRUE_RATES[arm]
        arms = [Arm(str(i), exposures[i], conversions[i]) for i in range(k)]
        weights = recommend(arms, seed=rng.randrange(2**32), draws=4_000).weights
        history.append(weights)
    return history


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thompson_sampling_converges_to_the_best_arm_in_a_seeded_simulation(seed: int) -> None:
    history = simulate(seed)
    last = history[-1]
    assert max(range(len(last)), key=last.__getitem__) == BEST
    # The leader's share tends to TOP_TWO_BETA; the others keep at least the floor.
    assert last[BEST] == pytest.approx(TOP_TWO_BETA, abs=0.08)
    assert min(last) >= MIN_WEIGHT
    assert sum(last) == pytest.approx(1.0)
    # It stays converged: the best arm led each of the last ten rounds.
    assert all(max(range(len(w)), key=w.__getitem__) == BEST for w in history[-10:])


def test_the_top_two_allocation_sums_to_one_and_gives_the_leader_beta_when_it_is_certain() -> None:
    chances = [0.6, 0.3, 0.1]
    weights = top_two_weights(chances, beta=0.5)
    # w_i = beta a_i + (1 - beta) a_i sum_{j != i} a_j / (1 - a_j), by hand for arm 0:
    assert weights[0] == pytest.approx(0.5 * 0.6 + 0.5 * 0.6 * (0.3 / 0.7 + 0.1 / 0.9))
    assert sum(weights) == pytest.approx(1.0)
    nearly_certain = top_two_weights([1 - 2e-6, 1e-6, 1e-6], beta=0.5)
    assert nearly_certain[0] == pytest.approx(0.5, abs=1e-4)
    assert nearly_certain[1] == pytest.approx(0.25, abs=1e-4)
