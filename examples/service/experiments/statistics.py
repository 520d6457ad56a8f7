"""A/B statistics for conversion rates, frequentist and Bayesian, with the standard library.

Notation: arm ``i`` has ``n_i`` exposures and ``c_i`` conversions; arm 0 is
the control. ``Phi`` is the standard normal CDF, ``z_q`` its quantile
(``statistics.NormalDist``), ``B`` the beta function (through ``math.lgamma``).

Frequentist (per treatment ``t`` against the control ``c``):

- rate: ``p_i = c_i / n_i``.
- absolute difference ``d = p_t - p_c`` with the unpooled (Wald) interval
  ``d +- z_{1-a/2} * sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c)``.
- relative lift ``L = p_t / p_c - 1`` with the delta-method interval
  ``L +- z_{1-a/2} * sqrt(p_t(1-p_t)/(n_t p_c^2) + p_t^2 p_c(1-p_c)/(n_c p_c^4))``.
- two-proportion z-test (pooled): ``p = (c_t + c_c) / (n_t + n_c)``,
  ``z = d / sqrt(p(1-p)(1/n_t + 1/n_c))``, two-sided ``P = erfc(|z| / sqrt 2)``.

Bayesian (Beta-Bernoulli, prior ``Beta(1, 1)``): the posterior of arm ``i``
is ``Beta(a_i, b_i)`` with ``a_i = 1 + c_i``, ``b_i = 1 + n_i - c_i`` (integers).

- chance to beat control, closed form for integer ``a_t`` (Evan Miller):
  ``P(p_t > p_c) = sum_{k=0}^{a_t-1} B(a_c+k, b_c+b_t) / ((b_t+k) B(1+k, b_t) B(a_c, b_c))``,
  summed over whichever arm has the smaller ``a`` (``P(X > Y) = 1 - P(Y > X)``).
- expected loss of choosing ``t`` (what is given up if ``c`` is in fact better),
  closed form (Chris Stucchio), with ``h(a1,b1,a2,b2) = P(Beta(a1,b1) > Beta(a2,b2))``:
  ``E[max(p_c - p_t, 0)] = a_c/(a_c+b_c) h(a_c+1,b_c,a_t,b_t)``
  ``- a_t/(a_t+b_t) h(a_c,b_c,a_t+1,b_t)``,
  and the loss of keeping the control the same with the arms swapped.
- chance to be best among ``k > 2`` arms has no closed form: Monte Carlo over
  ``draws`` joint posterior draws, seeded, with standard error
  ``sqrt(P (1 - P) / draws)`` reported beside each value. For two arms it is
  the closed form above.

Sample-ratio mismatch: Pearson's chi-square of the exposures against the
configured split, ``X2 = sum (n_i - N w_i)^2 / (N w_i)``, ``k - 1`` degrees of
freedom, ``P = Q((k-1)/2, X2/2)`` (the regularized upper incomplete gamma,
series below ``a + 1``, Lentz's continued fraction above); alert below
``P = 0.001``.

Peeking: these are fixed-horizon tests. Checking a plain z-test every day
and stopping at the first ``P < 0.05`` inflates false positives (29 % over
30 daily looks in published A/A simulations); decide the sample size first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

SRM_ALERT_P = 0.001
NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    exposures: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.exposures if self.exposures else 0.0

    @property
    def alpha(self) -> int:
        return 1 + self.conversions

    @property
    def beta(self) -> int:
        return 1 + self.exposures - self.conversions


# -- frequentist ----------------------------------------------------------------------


def z_quantile(confidence: float) -> float:
    """``z_{1-a/2}`` of a two-sided interval at ``confidence`` (0.95 -> 1.959963...)."""
    return NORMAL.inv_cdf(0.5 + confidence / 2)


def difference_interval(
    treatment: Arm, control: Arm, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(d, low, high)``: the absolute difference of rates and its Wald interval."""
    pt, pc = treatment.rate, control.rate
    d = pt - pc
    if not treatment.exposures or not control.exposures:
        return d, math.nan, math.nan
    se = math.sqrt(pt * (1 - pt) / treatment.exposures + pc * (1 - pc) / control.exposures)
    half = z_quantile(confidence) * se
    return d, d - half, d + half


def lift_interval(
    treatment: Arm, control: Arm, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(L, low, high)``: relative lift and its delta-method interval (NaN if ``p_c = 0``)."""
    pt, pc = treatment.rate, control.rate
    if pc == 0 or not treatment.exposures or not control.exposures:
        return math.nan, math.nan, math.nan
    lift = pt / pc - 1
    variance = pt * (1 - pt) / (treatment.exposures * pc**2) + pt**2 * pc * (1 - pc) / (
        control.exposures * pc**4
    )
    half = z_quantile(confidence) * math.sqrt(variance)
    return lift, lift - half, lift + half


def z_test(treatment: Arm, control: Arm) -> tuple[float, float]:
    """``(z, two-sided p-value)`` of the pooled two-proportion z-test."""
    n = treatment.exposures + control.exposures
    if not treatment.exposures or not control.exposures:
        return 0.0, 1.0
    pooled = (treatment.conversions + control.conversions) / n
    variance = pooled * (1 - pooled) * (1 / treatment.exposures + 1 / control.exposures)
    if variance == 0:
        return 0.0, 1.0
    z = (treatment.rate - control.rate) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


# -- Bayesian -------------------------------------------------------------------------


def log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def prob_greater(a1: int, b1: int, a2: int, b2: int) -> float:
    """``P(X1 > X2)`` for ``X1 ~ Beta(a1, b1)``, ``X2 ~ Beta(a2, b2)``, integer ``a1, a2``:
    the closed-form sum, taken over the smaller of ``a1`` and ``a2`` terms."""
    if a1 > a2:
        return 1.0 - prob_greater(a2, b2, a1, b1)
    base = log_beta(a2, b2)
    terms = (
        math.exp(log_beta(a2 + k, b2 + b1) - math.log(b1 + k) - log_beta(1 + k, b1) - base)
        for k in range(a1)
    )
    return min(1.0, max(0.0, math.fsum(terms)))


def chance_to_beat(treatment: Arm, control: Arm) -> float:
    """``P(p_t > p_c)`` under the posteriors."""
    return prob_greater(treatment.alpha, treatment.beta, control.alpha, control.beta)


def expected_loss(chosen: Arm, other: Arm) -> float:
    """``E[max(p_other - p_chosen, 0)]``: the rate given up, on average, by choosing
    ``chosen`` when ``other`` may be better."""
    ao, bo, ac, bc = other.alpha, other.beta, chosen.alpha, chosen.beta
    loss = ao / (ao + bo) * prob_greater(ao + 1, bo, ac, bc) - ac / (ac + bc) * prob_greater(
        ao, bo, ac + 1, bc
    )
    return max(0.0, loss)


def chance_to_be_best(
    arms: Sequence[Arm], draws: int, seed: int
) -> tuple[list[float], list[float]]:
    """``(P(arm i is best), standard error)`` per arm: exact for two arms, else Monte Carlo
    over ``draws`` seeded joint draws of the posteriors."""
    if len(arms) == 2:
        first = chance_to_beat(arms[0], arms[1])
        return [first, 1.0 - first], [0.0, 0.0]
    rng = random.Random(seed)
    wins = [0] * len(arms)
    for _ in range(draws):
        sample = [rng.betavariate(arm.alpha, arm.beta) for arm in arms]
        wins[max(range(len(arms)), key=sample.__getitem__)] += 1
    chances = [w / draws for w in wins]
    return chances, [math.sqrt(p * (1 - p) / draws) for p in chances]


# -- sample-ratio mismatch ------------------------------------------------------------


def srm_test(exposures: Sequence[int], weights: Sequence[float]) -> tuple[float, float]:
    """``(chi-square, p-value)`` of the exposures against the split ``weights``."""
    total, weight_sum = sum(exposures), sum(weights)
    if total == 0 or len(exposures) < 2:
        return 0.0, 1.0
    expected = [total * w / weight_sum for w in weights]
    chi2 = math.fsum((n - e) ** 2 / e for n, e in zip(exposures, expected, strict=True) if e > 0)
    return chi2, upper_gamma_regularized((len(exposures) - 1) / 2, chi2 / 2)


def upper_gamma_regularized(a: float, x: float) -> float:
    """``Q(a, x) = Gamma(a, x) / Gamma(a)``, to about 1e-15 relative."""
    if x <= 0:
        return 1.0
    if x < a + 1:
        return 1.0 - _lower_series(a, x)
    return _upper_fraction(a, x)


def _lower_series(a: float, x: float) -> float:
    """``P(a, x)`` by its power series ``e^-x x^a / Gamma(a+1) sum x^k / ((a+1)...(a+k))``."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(10_000):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * 1e-17:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    """``Q(a, x)`` by its continued fraction, evaluated with the modified Lentz method."""
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-16:
            break
    return h * math.exp(-x + a * math.log(x) - math.lgamma(a))
