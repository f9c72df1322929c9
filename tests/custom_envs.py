"""Environments for tests of custom `package.module:ClassName` entry points."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right (action 1) from cell 0 to cell `length`; action 0 stays put. Reward -1 per step."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, length: int = 5, render_mode: str | None = None) -> None:
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, float(length), shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action):
        self.position += int(action)
        terminated = self.position >= self.length
        return self._obs(), -1.0, terminated, False, {}

    def render(self):
        frame = np.zeros((8, 8 * (self.length + 1), 3), dtype=np.uint8)
        frame[:, 8 * self.position : 8 * self.position + 8] = 255
        return frame


class Broken(gym.Env):
    """An env whose constructor fails, as user code sometimes does."""

    def __init__(self) -> None:
        raise RuntimeError("the warehouse is on fire")


def not_an_env() -> object:
    return object()


class WrongShape(Corridor):
    """Declares a (1,) observation but returns (2,)."""

    def _obs(self) -> np.ndarray:
        return np.array([self.position, 0.0], dtype=np.float32)


class EscapesBounds(Corridor):
    """Its observations leave the declared [0, length] range after a few steps."""

    def _obs(self) -> np.ndarray:
        return np.array([self.position * 10.0], dtype=np.float32)


class IgnoresSeed(Corridor):
    """Same seed, different first observation: Gymnasium's checker rejects it."""

    def __init__(self, length: int = 5, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.resets = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position + 0.001 * self.resets], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.resets += 1
        return super().reset(seed=seed, options=options)


class AsymmetricDial(gym.Env):
    """A Box action space with different, asymmetric bounds per dimension (low [-1, 0], high [3, 10]): each step
    the reward is minus the squared distance of the action from (2, 8), relative to the bounds' widths, on a random
    observation; episodes last 20 steps. Every action any instance receives is kept in `received`, so a test can
    check what reached the env."""

    received: ClassVar[list[np.ndarray]] = []
    target: ClassVar[np.ndarray] = np.array([2.0, 8.0], dtype=np.float32)

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(np.array([-1.0, 0.0], dtype=np.float32),
                                           np.array([3.0, 10.0], dtype=np.float32), dtype=np.float32)
        self.steps = 0

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        AsymmetricDial.received.append(action.copy())
        widths = self.action_space.high - self.action_space.low
        reward = -float((((action - self.target) / widths) ** 2).sum())
        self.steps += 1
        return self._obs(), reward, False, self.steps >= 20, {}


class UnboundedActions(gym.Env):
    """A Box action space without bounds (-inf, inf): nothing to scale a [-1, 1] actor to."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), -float(np.square(action).sum()), False, False, {}
