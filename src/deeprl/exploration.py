"""Exploration: epsilon schedules (how much to act at random as training goes on) and the action noise of
continuous-control algorithms (Ornstein-Uhlenbeck, Gaussian) with its annealed scale."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON_SCHEDULES = ("linear", "exponential", "episodic", "constant")


def annealed(start: float, end: float | None, progress: float) -> float:
    """A setting moved linearly from `start` to `end` as `progress` goes from 0 to 1, then held at `end` (constant
    `start` without an end): every linear schedule (epsilon, action noise, learning rates, PPO's clip range)."""
    return start if end is None else start + (end - start) * min(progress, 1.0)


@dataclass(frozen=True)
class EpsilonSchedule:
    """Probability of a random action at a given env step / finished-episode count.

    - linear: from `start` to `end` over `decay_steps` steps, then flat;
    - exponential: `end + (start - end) * exp(-step / decay_steps)` (per-step decay);
    - episodic: `max(end, start * decay_factor ** episodes)` (multiplied after each episode);
    - constant: always `start`.
    """

    kind: str
    start: float
    end: float
    decay_steps: int = 1
    decay_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in EPSILON_SCHEDULES:
            raise ValueError(f"unknown epsilon schedule {self.kind!r}")

    def value(self, step: int, episodes: int = 0) -> float:
        if self.kind == "linear":
            return annealed(self.start, self.end, step / self.decay_steps)
        if self.kind == "exponential":
            return self.end + (self.start - self.end) * math.exp(-step / self.decay_steps)
        if self.kind == "episodic":
            return max(self.end, self.start * self.decay_factor**episodes)
        return self.start


# ------------------------------------------------------------------------------- action noise (continuous control)

NOISE_KINDS = ("ou", "gaussian", "none")


class ActionNoise:
    """What the action noises share: a (n_envs, action_dim) shape, a scale `sigma` the caller may change
    (annealing) and a Generator of their own, so that `state_dict`/`load_state_dict` (plain lists and numbers:
    weights-only checkpoints and JSON keep them exactly) make a restored noise draw the very samples the original
    would have."""

    def __init__(self, n_envs: int, action_dim: int, sigma: float, seed: int | None = None) -> None:
        if n_envs < 1 or action_dim < 1:
            raise ValueError(f"n_envs and action_dim must be at least 1, not {n_envs} and {action_dim}")
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative, not {sigma}")
        self.shape = (n_envs, action_dim)
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)

    def sample(self) -> np.ndarray:
        """Noise of shape (n_envs, action_dim), float32."""
        raise NotImplementedError

    def reset(self, env_indices: np.ndarray | None = None) -> None:
        """Called at each episode start of the given envs (an index array or a bool mask; all when None)."""

    def state_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sigma = float(state["sigma"])
        self.rng.bit_generator.state = state["generator"]


class GaussianNoise(ActionNoise):
    """Independent N(0, sigma²) noise per env and action dimension (TD3); nothing to reset."""

    def sample(self) -> np.ndarray:
        return (self.sigma * self.rng.standard_normal(self.shape)).astype(np.float32)


class OrnsteinUhlenbeckNoise(ActionNoise):
    """Temporally correlated noise, one process per env (DDPG): x ← x + θ(0 − x)dt + σ√dt·N(0, 1).

    The state starts at 0 and is reset per env at that env's episode start (not at every rollout: SB3 #1618), so
    a new episode does not inherit the last one's drift. Its stationary variance is σ²dt / (1 − (1 − θdt)²),
    about σ²/(2θ)."""

    def __init__(
        self,
        n_envs: int,
        action_dim: int,
        sigma: float,
        theta: float = 0.15,
        dt: float = 1e-2,
        seed: int | None = None,
    ) -> None:
        super().__init__(n_envs, action_dim, sigma, seed)
        if not 0 < theta * dt <= 1:  # beyond 1 the discrete process overshoots 0 instead of reverting to it
            raise ValueError(f"theta * dt must lie in (0, 1], not {theta} * {dt}")
        self.theta = float(theta)
        self.dt = float(dt)
        self.x = np.zeros(self.shape)  # float64, so a restored state continues bit for bit

    def sample(self) -> np.ndarray:
        shocks = self.rng.standard_normal(self.shape)
        self.x += self.theta * (0.0 - self.x) * self.dt + self.sigma * math.sqrt(self.dt) * shocks
        return self.x.astype(np.float32)

    def reset(self, env_indices: np.ndarray | None = None) -> None:
        if env_indices is None:
            self.x[:] = 0.0
        else:
            self.x[env_indices] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "x": self.x.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        x = np.asarray(state["x"], dtype=np.float64)
        if x.shape != self.shape:
            raise ValueError(f"noise state of shape {x.shape} does not fit this noise's {self.shape}")
        super().load_state_dict(state)
        self.x = x


def make_noise(
    kind: str,
    n_envs: int,
    action_dim: int,
    sigma: float,
    theta: float = 0.15,
    dt: float = 1e-2,
    seed: int | None = None,
) -> OrnsteinUhlenbeckNoise | GaussianNoise | None:
    """The action noise a config names ("ou", "gaussian" or "none": None); theta and dt only matter for OU."""
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(n_envs, action_dim, sigma, theta, dt, seed)
    if kind == "gaussian":
        return GaussianNoise(n_envs, action_dim, sigma, seed)
    if kind == "none":
        return None
    raise ValueError(f"unknown action noise {kind!r}; one of {', '.join(NOISE_KINDS)}")


def annealed_sigma(start: float, end: float | None, step: int, steps: int) -> float:
    """The noise scale at env step `step`: linear from `start` to `end` over `steps` steps, then flat at `end`;
    constant `start` when `end` is None."""
    if end is None:
        return start
    if steps <= 0:
        return end
    return annealed(start, end, step / steps)
