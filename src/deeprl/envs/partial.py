"""Partially observed classic-control tasks, where a policy needs memory: the registered ids CartPoleNoVel-v1
(CartPole's cart position and pole angle, without their velocities) and PendulumNoVel-v1 (Pendulum's cos and sin of
the angle, without the angular velocity), as sb3-contrib and the RL Zoo define them. Everything else (dynamics,
rewards, time limits, reward thresholds) is the full-observation task's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control import CartPoleEnv, PendulumEnv


class KeptEntries(gym.ObservationWrapper):
    """Observations reduced to the entries at `kept` of a Box observation vector."""

    def __init__(self, env: gym.Env, kept: Sequence[int]) -> None:
        super().__init__(env)
        self.kept = np.asarray(kept)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low[self.kept], space.high[self.kept], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.kept]


def cartpole_without_velocities(**kwargs: Any) -> gym.Env:
    """CartPole seeing (cart position, pole angle) only: indices 0 and 2 of its state."""
    return KeptEntries(CartPoleEnv(**kwargs), (0, 2))


def pendulum_without_velocity(**kwargs: Any) -> gym.Env:
    """Pendulum seeing (cos angle, sin angle) only: indices 0 and 1 of its observation."""
    return KeptEntries(PendulumEnv(**kwargs), (0, 1))


def register_partial_envs() -> None:
    """Register the ids (once: importing deeprl.envs does it)."""
    for env_id, entry_point, full_id in (
        ("CartPoleNoVel-v1", cartpole_without_velocities, "CartPole-v1"),
        ("PendulumNoVel-v1", pendulum_without_velocity, "Pendulum-v1"),
    ):
        if env_id not in gym.registry:
            full = gym.spec(full_id)
            gym.register(
                id=env_id,
                entry_point=f"{__name__}:{entry_point.__name__}",
                max_episode_steps=full.max_episode_steps,
                reward_threshold=full.reward_threshold,
            )


register_partial_envs()
