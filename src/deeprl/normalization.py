"""Running statistics for normalising observations and rewards, as SB3's VecNormalize does, kept as plain data.

Observation statistics belong to the agent: its policy file carries them, so a loaded agent normalises exactly as
the agent did at the step the file was saved. Reward scaling only shapes what the learner sees; its statistics
live in checkpoints alone.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.observations import EncodedSpace

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
    """(obs - mean) / std of the observations seen in training, clipped to ±`clip`.

    Every value of a Box observation is standardised (float32 out). An encoded Dict or Tuple (deeprl.observations)
    has only its Box entries' values standardised: `columns`, [start, stop) ranges of its float32 vector; one-hot
    and 0/1 columns are left as they are, since a shift and a scale of a category that is rarely or never seen would
    blow it up to the clip. Where pictures for the CNN ride beside the vector, an observation is a row of bytes
    (`vector_size` float32 values' bytes, then the pictures'): the standardised vector's bytes replace the vector's,
    the pictures' bytes pass untouched (the CNN scales them itself), and the row stays bytes."""

    def __init__(
        self,
        shape: tuple[int, ...],
        clip: float = 10.0,
        columns: list[tuple[int, int]] | None = None,
        vector_size: int | None = None,
    ) -> None:
        self.stats = RunningMeanStd(shape)
        self.clip = clip
        self._lay_out(columns, vector_size)

    def _lay_out(self, columns: list[tuple[int, int]] | None, vector_size: int | None) -> None:
        self.columns = None if columns is None else [(int(start), int(stop)) for start, stop in columns]
        self.index = None  # None: every value
        if self.columns is not None:
            self.index = np.array([column for start, stop in self.columns for column in range(start, stop)], np.int64)
        self.vector_size = vector_size  # None: the observations are the float vectors themselves
        self.dtype = np.dtype(np.float32 if vector_size is None else np.uint8)  # what the networks are given

    @classmethod
    def for_space(cls, space: gym.Space) -> ObservationNormalizer:
        """The normaliser of `space`'s observations: of every value of a Box, of the Box entries of an encoded
        Dict or Tuple (check_normalizable says where there is nothing to standardise)."""
        if not isinstance(space, EncodedSpace):
            return cls(space.shape)
        encoder = space.encoder
        columns = encoder.box_columns
        vector_size = encoder.size if encoder.pictures else None
        return cls((sum(stop - start for start, stop in columns),), columns=columns, vector_size=vector_size)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.index is None:
            return self._standardised(obs)
        vectors = self._vectors(obs).copy()
        vectors[:, self.index] = self._standardised(vectors[:, self.index])
        if self.vector_size is None:
            return vectors
        rows = obs.copy()
        rows[:, : self.vector_size * vectors.itemsize] = vectors.view(np.uint8)
        return rows

    def _standardised(self, values: np.ndarray) -> np.ndarray:
        scaled = (values - self.stats.mean) / np.sqrt(self.stats.var + VARIANCE_EPSILON)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def _vectors(self, obs: np.ndarray) -> np.ndarray:
        """A batch of observations' float32 vectors (a view where they are rows of bytes)."""
        if self.vector_size is None:
            return obs.astype(np.float32, copy=False)
        vector_bytes = np.ascontiguousarray(obs[:, : self.vector_size * np.dtype(np.float32).itemsize])
        return vector_bytes.view(np.float32)

    def update(self, obs: np.ndarray) -> None:
        self.stats.update(obs if self.index is None else self._vectors(obs)[:, self.index])

    def state_dict(self) -> dict[str, Any]:
        layout = {} if self.columns is None else {"columns": [list(pair) for pair in self.columns]}
        if self.vector_size is not None:
            layout["vector_size"] = self.vector_size
        return {**self.stats.state_dict(), "clip": self.clip, **layout}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The statistics and the columns they are of, as saved. Statistics saved without `columns` are of every
        value: so were those of Dict and Tuple observations before only Box entries were standardised (one-hot
        columns included), and their policies and runs go on as they were trained."""
        self.stats.load_state_dict(state)
        self.clip = float(state["clip"])
        self._lay_out(state.get("columns"), state.get("vector_size"))

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
