"""Epsilon schedules against hand-computed values; action noise (Ornstein-Uhlenbeck, Gaussian) against the theory
of its process, and its annealed scale."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deeprl.exploration import (
    EpsilonSchedule,
    GaussianNoise,
    OrnsteinUhlenbeckNoise,
    annealed,
    annealed_sigma,
    make_noise,
)


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


# ------------------------------------------------------------------------------------------------ action noise


def test_ou_reverts_to_zero_geometrically_without_noise():
    noise = OrnsteinUhlenbeckNoise(n_envs=2, action_dim=3, sigma=0.0, theta=0.15, dt=1e-2)
    start = np.array([[1.0, -2.0, 0.5], [4.0, 0.0, -8.0]])
    noise.x[:] = start
    for _ in range(100):
        sample = noise.sample()
    np.testing.assert_allclose(sample, (1 - 0.15 * 1e-2) ** 100 * start, rtol=1e-6)
    assert sample.dtype == np.float32 and sample.shape == (2, 3)


def test_ou_first_sample_is_scaled_standard_normal():
    noise = OrnsteinUhlenbeckNoise(n_envs=3, action_dim=2, sigma=0.2, dt=1e-2, seed=7)
    shocks = np.random.default_rng(7).standard_normal((3, 2))
    np.testing.assert_allclose(noise.sample(), 0.2 * 0.1 * shocks, rtol=1e-6)  # from x = 0: σ√dt·N(0, 1)


@pytest.mark.parametrize(("theta", "dt"), [(0.15, 0.1), (50.0, 1e-2)])
def test_ou_stationary_variance_and_autocorrelation_match_the_discrete_process(theta, dt):
    # x' = a·x + σ√dt·ε with a = 1 − θdt: Var = σ²dt / (1 − a²), lag-1 correlation a. With θdt = 0.5 the
    # continuous-time σ²/(2θ) would be 25% off, so the discrete formula is what is checked.
    sigma, decay = 0.3, 1 - theta * dt
    noise = OrnsteinUhlenbeckNoise(n_envs=20_000, action_dim=2, sigma=sigma, theta=theta, dt=dt, seed=0)
    for _ in range(int(10 / (1 - decay**2))):  # burn-in: the start's share of the variance is e^-10
        noise.sample()
    before, after = noise.sample().astype(np.float64), noise.sample().astype(np.float64)
    expected_variance = sigma**2 * dt / (1 - decay**2)
    assert after.var() == pytest.approx(expected_variance, rel=0.03)
    assert abs(after.mean()) < 4 * math.sqrt(expected_variance / after.size)
    assert np.mean(before * after) / after.var() == pytest.approx(decay, abs=0.02)


def test_noise_is_independent_across_envs():
    ou, gaussian = OrnsteinUhlenbeckNoise(4, 1, sigma=1.0, seed=1), GaussianNoise(4, 1, sigma=1.0, seed=1)
    ou_levels = np.stack([ou.sample()[:, 0] for _ in range(5001)]).astype(np.float64)  # (steps, envs)
    assert len(set(ou_levels[0].tolist())) == 4
    # OU levels are correlated in time, their shocks x' − (1 − θdt)·x are not: those must be independent across envs
    ou_shocks = ou_levels[1:] - (1 - ou.theta * ou.dt) * ou_levels[:-1]
    gaussian_samples = np.stack([gaussian.sample()[:, 0] for _ in range(5000)])
    for samples in (ou_shocks, gaussian_samples):
        correlations = np.corrcoef(samples.T)[np.triu_indices(4, k=1)]
        assert np.abs(correlations).max() < 0.06  # 4 standard errors (1/√5000) of a zero correlation


def test_ou_reset_zeroes_only_the_given_envs():
    noise = OrnsteinUhlenbeckNoise(n_envs=4, action_dim=2, sigma=1.0, seed=3)
    noise.sample()
    before = noise.x.copy()
    noise.reset(np.array([1, 3]))
    np.testing.assert_array_equal(noise.x[[1, 3]], 0.0)
    np.testing.assert_array_equal(noise.x[[0, 2]], before[[0, 2]])
    assert np.all(before[[0, 2]] != 0.0)
    noise.reset(np.array([True, False, False, False]))  # a done mask
    np.testing.assert_array_equal(noise.x[0], 0.0)
    np.testing.assert_array_equal(noise.x[2], before[2])
    noise.reset()
    np.testing.assert_array_equal(noise.x, 0.0)


@pytest.mark.parametrize("kind", ["ou", "gaussian"])
def test_restored_noise_draws_the_same_future(kind):
    original = make_noise(kind, n_envs=3, action_dim=2, sigma=0.4, theta=0.15, dt=1e-2, seed=11)
    for _ in range(10):
        original.sample()
    original.sigma = 0.25  # annealed: the scale travels with the state
    state = json.loads(json.dumps(original.state_dict()))  # plain data, as checkpoints keep it
    expected = [original.sample() for _ in range(5)]
    restored = make_noise(kind, n_envs=3, action_dim=2, sigma=0.4, theta=0.15, dt=1e-2, seed=99)
    restored.load_state_dict(state)
    assert restored.sigma == 0.25
    for sample in expected:
        np.testing.assert_array_equal(restored.sample(), sample)


def test_gaussian_noise_std_and_no_memory():
    noise = GaussianNoise(n_envs=1000, action_dim=3, sigma=0.5, seed=2)
    samples = np.concatenate([noise.sample() for _ in range(20)])
    assert samples.dtype == np.float32 and samples.shape == (20_000, 3)
    assert samples.std() == pytest.approx(0.5, rel=0.02)
    assert abs(samples.mean()) < 0.02  # 4 standard errors of the mean
    noise.reset(np.array([0]))  # a no-op, callable like OU's


def test_make_noise_builds_the_named_process_with_its_settings():
    """Each kind draws what its process draws with every setting passed on (theta and dt matter to OU alone)."""
    made = make_noise("ou", 2, 3, 0.2, theta=0.3, dt=0.05, seed=4)
    direct = OrnsteinUhlenbeckNoise(n_envs=2, action_dim=3, sigma=0.2, theta=0.3, dt=0.05, seed=4)
    for _ in range(5):
        np.testing.assert_array_equal(made.sample(), direct.sample())
    made = make_noise("gaussian", 2, 3, 0.2, theta=0.3, dt=0.05, seed=4)
    direct = GaussianNoise(n_envs=2, action_dim=3, sigma=0.2, seed=4)
    for _ in range(5):
        np.testing.assert_array_equal(made.sample(), direct.sample())
    assert made.sample().shape == (2, 3)
    assert make_noise("none", 2, 1, 0.2, theta=0.3, dt=0.05) is None
    with pytest.raises(ValueError, match="unknown action noise"):
        make_noise("pink", 2, 1, 0.2, theta=0.3, dt=0.05)


def test_annealed_sigma():
    assert annealed_sigma(0.3, 0.1, step=0, steps=1000) == pytest.approx(0.3)
    assert annealed_sigma(0.3, 0.1, step=500, steps=1000) == pytest.approx(0.2)
    assert annealed_sigma(0.3, 0.1, step=1000, steps=1000) == pytest.approx(0.1)
    assert annealed_sigma(0.3, 0.1, step=5000, steps=1000) == pytest.approx(0.1)  # flat after the end
    assert annealed_sigma(0.3, None, step=5000, steps=1000) == 0.3  # no end: constant


def test_annealed_moves_linearly_then_holds_at_the_end():
    """The one linear schedule (learning rates, clip range, epsilon, noise): a run continued beyond the budget its
    schedule was set for stays at the end value instead of going past it."""
    assert annealed(4e-4, 0.0, 0.0) == 4e-4
    assert annealed(4e-4, 0.0, 0.5) == 2e-4
    assert annealed(1.0, 0.1, 0.25) == pytest.approx(0.775)
    assert annealed(1.0, 0.1, 1.0) == pytest.approx(0.1)
    assert annealed(1.0, 0.1, 1.5) == pytest.approx(0.1)  # beyond the budget: held, not 1.0 - 1.5 * 0.9
    assert annealed(1.0, None, 0.5) == 1.0  # no end: constant
