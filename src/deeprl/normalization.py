"""Running statistics for normalising observations and rewards, as SB3's VecNormalize does, kept as plain data.

Observation statistics belong to the agent: its policy file carries them, so a loaded agent normalises exactly as
the agent did at the step the file was saved. Reward scaling only shapes what the learner sees; its statistics
live in checkpoints alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VARIANCE_EPSILON = 1e-8  # keeps the division finite while a feature has not varied yet
INITIAL_COUNT = 1e-4  # a prior of almost no weight: the first batch sets the statistics


class RunningMeanStd:
    """Mean and variance of every sample seen so far, merged a batch at a time (Chan et al.), in float64."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = INITIAL_COUNT

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of samples (first axis) into the statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * batch_count / total
        squares = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = squares / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        """Plain lists and floats: they survive JSON (a policy file's meta) and weights-only loading exactly."""
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.var = np.asarray(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class ObservationNormalizer:
    """(obs - mean) / std of the observations seen in training, clipped to ±`clip`; float32 for the network."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0) -> None:
        self.stats = RunningMeanStd(shape)
        self.clip = clip

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        scaled = (obs - self.stats.mean) / np.sqrt(self.stats.var + VARIANCE_EPSILON)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def update(self, obs: np.ndarray) -> None:
        self.stats.update(obs)

    def state_dict(self) -> dict[str, Any]:
        return {**self.stats.state_dict(), "clip": self.clip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)
        self.clip = float(state["clip"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ObservationNormalizer:
        normalizer = cls(np.shape(state["mean"]))
        normalizer.load_state_dict(state)
        return normalizer


class RewardScaler:
    """Rewards divided by the running std of the env copies' discounted returns, clipped to ±`clip`; divided only,
    never shifted, since a shift would change whether living longer pays."""

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0) -> None:
        self.stats = RunningMeanStd()
        self.gamma = gamma
        self.clip = clip
        self.returns = np.zeros(n_envs, dtype=np.float64)  # each copy's discounted return so far this episode

    def __call__(self, rewards: np.ndarray, episode_ended: np.ndarray) -> np.ndarray:
        """Scaled rewards of one step of every copy; the statistics take in this step's returns first."""
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        scaled = np.clip(rewards / np.sqrt(self.stats.var + VARIANCE_EPSILON), -self.clip, self.clip)
        self.returns[episode_ended] = 0.0
        return scaled.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.state_dict(), "returns": self.returns.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state["stats"])
        self.returns = np.asarray(state["returns"], dtype=np.float64)
