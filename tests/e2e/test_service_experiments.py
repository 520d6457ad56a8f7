"""A/B testing over HTTP: an experiment, 10,000 simulated events through the event bus
(a batch sent twice counts once), and results that match an independent computation
with scipy: frequentist figures to 1e-6, closed-form Bayesian ones to 1e-6, Monte Carlo
ones within four of their stated standard errors."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from scipy import integrate, stats

from tests.e2e.reference_service import json_of, reference_service, sign_up, wait_for
from tests.web_server import ServiceProcess

pytestmark = pytest.mark.slow

EVENTS = 10_000
RATES = {"control": 0.10, "blue": 0.12, "green": 0.095}
WEIGHTS = {"control": 1.0, "blue": 1.0, "green": 1.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with reference_service(tmp_path_factory.mktemp("experiments")) as running:
        yield running


def simulated_events(seed: int) -> list[dict[str, Any]]:
    """Users exposed to a variant by the split, converting at its rate: EVENTS in all."""
    rng = random.Random(seed)
    names = list(WEIGHTS)
    events: list[dict[str, Any]] = []
    user = 0
    while len(events) < EVENTS:
        user += 1
        variant = rng.choices(names, weights=list(WEIGHTS.values()))[0]
        events.append({"eventId": f"x{user}", "variant": variant, "kind": "exposure"})
        if rng.random() < RATES[variant] and len(events) < EVENTS:
            events.append({"eventId": f"c{user}", "variant": variant, "kind": "conversion"})
    return events


def counts(events: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """``variant -> (exposures, conversions)``."""
    return {
        name: (
            sum(1 for e in events if e["variant"] == name and e["kind"] == "exposure"),
            sum(1 for e in events if e["variant"] == name and e["kind"] == "conversion"),
        )
        for name in WEIGHTS
    }


# -- the independent computation (scipy) ------------------------------------------------


def posterior(exposures: int, conversions: int) -> Any:
    return stats.beta(1 + conversions, 1 + exposures - conversions)


def support(*dists: Any) -> tuple[float, float]:
    """Where the posteriors' mass is (quad over [0, 1] would step over a narrow peak)."""
    low = min(d.ppf(1e-12) for d in dists)
    high = max(d.isf(1e-12) for d in dists)
    return low, high


def chance_best(arms: list[Any], index: int) -> float:
    """``P(arm index has the largest rate) = int f_i(x) prod_{j != i} F_j(x) dx``."""
    others = [arm for j, arm in enumerate(arms) if j != index]

    def density(x: float) -> float:
        return float(arms[index].pdf(x) * math.prod(arm.cdf(x) for arm in others))

    value, _error = integrate.quad(density, *support(*arms), limit=400, epsabs=1e-12)
    return float(value)


def expected_loss(chosen: Any, other: Any) -> float:
    """``E[max(Y - X, 0)]``, X the chosen arm's rate, Y the other's: ``int f_X(x)
    E[(Y - x)+] dx`` with ``E[(Y - x)+] = E[Y 1{Y > x}] - x P(Y > x)``."""
    a, b = other.args

    def integrand(x: float) -> float:
        above = a / (a + b) * stats.beta.sf(x, a + 1, b) - x * other.sf(x)
        return float(chosen.pdf(x) * above)

    value, _error = integrate.quad(integrand, *support(chosen, other), limit=400, epsabs=1e-12)
    return float(value)


def close(actual: float | None, expected: float, tolerance: float = 1e-6) -> bool:
    return actual is not None and abs(actual - expected) <= tolerance


# -- the test ----------------------------------------------------------------------------


def test_ten_thousand_events_give_the_statistics_scipy_computes(server: ServiceProcess) -> None:
    events = simulated_events(seed=20_240_301)
    expected_counts = counts(events)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        headers = sign_up(client)
        body = {
            "name": "checkout button",
            "variants": [{"name": n, "weight": w} for n, w in WEIGHTS.items()],
        }
        experiment = json_of(client.post("/api/v1/experiments", headers=headers, json=body), 201)
        url = f"/api/v1/experiments/{experiment['experimentId']}"
        json_of(client.patch(url, headers=headers, json={"status": "running"}))
        batches = [events[i : i + 1000] for i in range(0, len(events), 1000)]
        for batch in [*batches, batches[3]]:  # one batch sent again, as after a timeout
            json_of(client.post(url + "/events", headers=headers, json={"events": batch}), 202)
        results = wait_for(
            lambda: json_of(client.get(url + "/results", headers=headers)),
            lambda r: sum(v["exposures"] + v["conversions"] for v in r["variants"]) >= EVENTS,
            timeout=60,
            every=0.25,
        )
        again = json_of(client.get(url + "/results", headers=headers))

    variants = {v["name"]: v for v in results["variants"]}
    assert {n: (v["exposures"], v["conversions"]) for n, v in variants.items()} == expected_counts
    assert again == results  # the same counts give the same figures, Monte Carlo included

    n = {name: expected_counts[name][0] for name in WEIGHTS}
    c = {name: expected_counts[name][1] for name in WEIGHTS}
    p = {name: c[name] / n[name] for name in WEIGHTS}
    z = stats.norm.ppf(0.975)
    arms = [posterior(n[name], c[name]) for name in WEIGHTS]
    for index, name in enumerate(WEIGHTS):
        got = variants[name]
        assert close(got["conversionRate"], p[name])
        best_error = got["chanceToBeBestError"]
        exact_best = chance_best(arms, index)
        assert best_error == pytest.approx(
            math.sqrt(exact_best * (1 - exact_best) / 10_000), abs=2e-3
        )
        assert abs(got["chanceToBeBest"] - exact_best) <= 4 * max(best_error, 1e-4), (
            name,
            exact_best,
        )
        if name == "control":
            continue
        pt, pc = p[name], p["control"]
        se_diff = math.sqrt(pt * (1 - pt) / n[name] + pc * (1 - pc) / n["control"])
        assert close(got["difference"]["low"], pt - pc - z * se_diff)
        assert close(got["difference"]["high"], pt - pc + z * se_diff)
        lift = pt / pc - 1
        se_lift = math.sqrt(
            pt * (1 - pt) / (n[name] * pc**2) + pt**2 * (1 - pc) / (n["control"] * pc**3)
        )
        assert close(got["relativeLift"]["value"], lift)
        assert close(got["relativeLift"]["low"], lift - z * se_lift)
        assert close(got["relativeLift"]["high"], lift + z * se_lift)
        # The pooled two-proportion z-test is the 2x2 chi-square test without continuity
        # correction: chi2 = z^2, the same p-value.
        table = [[c[name], n[name] - c[name]], [c["control"], n["control"] - c["control"]]]
        chi2, p_value, _dof, _expected = stats.chi2_contingency(table, correction=False)
        assert close(got["zScore"] ** 2, chi2)
        assert math.copysign(1, got["zScore"]) == math.copysign(1, pt - pc)
        assert close(got["pValue"], p_value)
        treatment, control = posterior(n[name], c[name]), arms[0]
        assert close(got["chanceToBeatControl"], chance_best([treatment, control], 0))
        assert close(got["expectedLoss"], expected_loss(treatment, control))
        assert close(got["expectedLossOfControl"], expected_loss(control, treatment))

    srm = results["sampleRatioMismatch"]
    total = sum(n.values())
    expected = [total * w / sum(WEIGHTS.values()) for w in WEIGHTS.values()]
    chisquare = stats.chisquare(list(n.values()), expected)
    assert close(srm["chiSquare"], float(chisquare.statistic))
    assert close(srm["pValue"], float(chisquare.pvalue))
    assert srm["alert"] is False
    recommendation = results["recommendation"]
    assert sum(recommendation["weights"].values()) == pytest.approx(1.0)
    assert recommendation["bestVariant"] == max(
        WEIGHTS, key=lambda v: variants[v]["chanceToBeBest"]
    )


def test_a_split_that_is_not_kept_raises_the_sample_ratio_alert(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        headers = sign_up(client)
        body = {"name": "srm", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
        experiment = json_of(client.post("/api/v1/experiments", headers=headers, json=body), 201)
        url = f"/api/v1/experiments/{experiment['experimentId']}"
        json_of(client.patch(url, headers=headers, json={"status": "running"}))
        events = [
            {"eventId": f"e{i}", "variant": "a" if i < 540 else "b", "kind": "exposure"}
            for i in range(1000)
        ]
        json_of(client.post(url + "/events", headers=headers, json={"events": events}), 202)
        results = wait_for(
            lambda: json_of(client.get(url + "/results", headers=headers)),
            lambda r: sum(v["exposures"] for v in r["variants"]) == 1000,
        )
    srm = results["sampleRatioMismatch"]
    reference = stats.chisquare([540, 460])
    assert close(srm["pValue"], float(reference.pvalue))
    assert srm["pValue"] < 0.05 and srm["alert"] is (srm["pValue"] < srm["threshold"])
    # Two arms: the chance to be best is the closed form, with no Monte Carlo error.
    assert [v["chanceToBeBestError"] for v in results["variants"]] == [0.0, 0.0]


def test_events_for_an_experiment_that_is_not_running_are_refused(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        headers = sign_up(client)
        body = {
            "name": "draft",
            "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}],
        }
        experiment = json_of(client.post("/api/v1/experiments", headers=headers, json=body), 201)
        url = f"/api/v1/experiments/{experiment['experimentId']}"
        refused = client.post(
            url + "/events",
            headers=headers,
            json={"events": [{"eventId": "e1", "variant": "a", "kind": "exposure"}]},
        )
        unknown = client.patch(url, headers=headers, json={"weights": {"zzz": 1}})
    assert [v["share"] for v in experiment["variants"]] == [0.25, 0.75]
    assert refused.status_code == 409
    assert refused.json()["title"] == "Experiment not running"
    assert unknown.status_code == 400
