"""Epsilon schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest

from deeprl.exploration import EpsilonSchedule


def test_linear():
    schedule = EpsilonSchedule("linear", start=1.0, end=0.1, decay_steps=100)
    assert schedule.value(0) == pytest.approx(1.0)
    assert schedule.value(25) == pytest.approx(0.775)
    assert schedule.value(50) == pytest.approx(0.55)
    assert schedule.value(100) == pytest.approx(0.1)
    assert schedule.value(250) == pytest.approx(0.1)  # flat after the end
    assert schedule.value(50, episodes=40) == pytest.approx(0.55)  # episodes do not matter


def test_exponential():
    schedule = EpsilonSchedule("exponential", start=1.0, end=0.05, decay_steps=1000)
    assert schedule.value(0) == pytest.approx(1.0)
    assert schedule.value(1000) == pytest.approx(0.05 + 0.95 / math.e)
    assert schedule.value(2000) == pytest.approx(0.05 + 0.95 / math.e**2)
    assert schedule.value(100_000) == pytest.approx(0.05)


def test_episodic():
    schedule = EpsilonSchedule("episodic", start=0.9, end=0.01, decay_factor=0.8)
    assert schedule.value(12345, episodes=0) == pytest.approx(0.9)
    assert schedule.value(0, episodes=1) == pytest.approx(0.72)
    assert schedule.value(0, episodes=10) == pytest.approx(max(0.01, 0.9 * 0.8**10))
    assert schedule.value(0, episodes=10) == pytest.approx(0.0966367641)
    assert schedule.value(0, episodes=30) == pytest.approx(0.01)  # 0.9 * 0.8**30 < end: clamped


def test_constant():
    schedule = EpsilonSchedule("constant", start=0.3, end=0.0, decay_steps=10)
    assert [schedule.value(step, episodes) for step, episodes in [(0, 0), (10, 3), (10**6, 500)]] == [0.3] * 3


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown epsilon schedule"):
        EpsilonSchedule("cosine", start=1.0, end=0.1)
