"""Statistics over seeds, as rliable recommends reporting them: the mean with a 95% bootstrap confidence
interval, and the interquartile mean (robust to the one seed that collapses)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


def interquartile_mean(values: Sequence[float]) -> float:
    """The mean of the middle half: a quarter of the values (rounded down) dropped from each end."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if ordered.size == 0:
        return math.nan
    cut = ordered.size // 4
    return float(ordered[cut : ordered.size - cut].mean())


def bootstrap_ci(
    values: np.ndarray | Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile-bootstrap interval of the mean over axis 0 (seeds); columns are independent points
    (a curve's steps) resampled with the same seed draws. One value gives a zero-width interval."""
    data = np.asarray(values, dtype=np.float64)
    if data.shape[0] == 0:
        nan = np.full(data.shape[1:], math.nan)
        return nan, nan
    draws = np.random.default_rng(seed).integers(0, data.shape[0], size=(resamples, data.shape[0]))
    means = data[draws].mean(axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    return np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)


def mean_ci_iqm(values: Sequence[float]) -> dict[str, float]:
    """{mean, ci_low, ci_high, iqm} of one number per seed (NaN everywhere when there are none)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "iqm": math.nan}
    low, high = bootstrap_ci(data)
    return {"mean": float(data.mean()), "ci_low": float(low), "ci_high": float(high), "iqm": interquartile_mean(data)}
