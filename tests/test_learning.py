"""DQN learns CartPole: a small fixed-seed budget must beat a random policy by a wide margin.

The setting (n-step 3, soft target updates every step, a 64x64 net, fast epsilon decay) was chosen for
a budget of 10k steps; this test runs the first 5k of it (the learning rate is constant, so the shorter run
is the longer one's start, step for step). Measured at 5k, the loaded agent's mean on this test's 20 episodes:
326, 218, 280 on seeds 0-2 (best agents from steps 4500, 2000, 3000). At 10k, best-agent 20-episode means:
352, 456, 394 on seeds 0-2 with this evaluation schedule; 268-488 on seeds 0-5 with 5-episode evaluations
every 1000 steps. A random policy averages about 22.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import deeprl
from deeprl.algos import dqn

# Every setting is pinned (defaults, then the chosen ones), so editing the CartPole preset cannot change it.
DEFAULTS = {
    field.name: getattr(dqn.Config(), field.name) for field in dataclasses.fields(dqn.Config) if field.name != "env"
}
SETTINGS = {
    "hidden_sizes": (64, 64),
    "lr": 2e-3,
    "n_step": 3,
    "batch_size": 64,
    "buffer_size": 10_000,
    "learning_starts": 500,
    "train_freq": 1,
    "target_update_interval": 1,
    "tau": 0.01,
    "epsilon_decay_steps": 3_000,
    "epsilon_end": 0.02,
    "eval_every": 500,
    "eval_episodes": 10,
    "final_eval_episodes": 20,
    "tensorboard": False,
    "device": "cpu",
}


class RandomAgent:
    def __init__(self, action_space: gym.spaces.Discrete, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = int(action_space.n)

    def act(self, obs, deterministic: bool = True):
        return self.rng.integers(self.n, size=len(obs))


@pytest.mark.learning
def test_dqn_learns_cartpole(tmp_path):
    settings = {**DEFAULTS, **SETTINGS, "seed": 0, "total_steps": 5_000}
    trained = deeprl.train("dqn", "CartPole-v1", run_dir=tmp_path / "run", **settings)
    agent = deeprl.load(trained.run_dir)
    learned = deeprl.evaluate(agent, "CartPole-v1", episodes=20, seed=123_456)
    random = deeprl.evaluate(RandomAgent(gym.spaces.Discrete(2), seed=0), "CartPole-v1", episodes=20, seed=123_456)
    assert random.mean < 40  # about 22
    assert learned.mean > 150, learned.returns
    assert learned.mean > 5 * random.mean
    assert trained.summary["best"]["mean_return"] > 150
