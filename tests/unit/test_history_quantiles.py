"""Percentiles from fixed buckets, as the metrics history computes them."""

from __future__ import annotations

import pytest

from conveyor import BadInputError
from conveyor.observability.history import quantile
from conveyor.observability.metrics import WAIT_BUCKETS


def test_a_quantile_is_interpolated_inside_its_bucket_from_the_edge_below() -> None:
    # 4 in (0.005, 0.01]: the edge below the bucket is 0.005 even with nothing under it.
    assert quantile({0.01: 4}, 0.5, WAIT_BUCKETS) == pytest.approx(0.005 + 0.005 * 2 / 4)


def test_a_quantile_in_the_open_bucket_is_the_highest_edge() -> None:
    assert quantile({float("inf"): 3}, 0.5, WAIT_BUCKETS) == WAIT_BUCKETS[-1]


def test_no_counts_have_no_quantile_and_a_quantile_is_in_0_1() -> None:
    assert quantile({}, 0.5, WAIT_BUCKETS) is None
    with pytest.raises(BadInputError):
        quantile({1.0: 1}, 1.5, WAIT_BUCKETS)
