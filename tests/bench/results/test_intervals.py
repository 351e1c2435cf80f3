"""The distribution-free interval of a median: the widest-inward pair of order statistics that still
covers the median with 95%, or (min, max) with its real coverage below 6 values."""

from __future__ import annotations

import math

import pytest

from bench.results.intervals import Interval, median_interval


def test_ten_values_give_the_2nd_and_9th_at_97_9_percent():
    values = [1.9, 1.0, 1.4, 1.8, 1.1, 1.3, 1.6, 1.2, 1.5, 1.7]  # shuffled: the interval sorts them
    interval = median_interval(values)
    assert interval == Interval(1.1, 1.8, "order statistics 2 and 9 of 10 per-cycle ratios (97.9% coverage)")


def test_below_six_values_the_interval_is_min_and_max_with_the_coverage_it_has():
    interval = median_interval([3.0, 1.0, 2.0, 5.0, 4.0], unit="nights")
    assert interval == Interval(1.0, 5.0, "order statistics 1 and 5 of 5 nights (93.8% coverage)")
    six = median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert six is not None and (six.low, six.high) == (1.0, 6.0) and "(96.9% coverage)" in six.method


def test_a_lower_confidence_moves_inward_and_non_finite_values_are_left_out():
    interval = median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], confidence=0.8)
    assert interval is not None and (interval.low, interval.high) == (3.0, 8.0)  # k=3: 89.1%, k=4: 65.6%
    assert median_interval([1.0, math.nan, math.inf]) is None  # one finite value has no interval
    assert median_interval([]) is None


def test_an_interval_contains_its_ends_and_has_a_width():
    interval = Interval(0.5, 1.5, "method")
    assert interval.contains(0.5) and interval.contains(1.5) and not interval.contains(1.51)
    assert interval.width() == pytest.approx(1.0)
