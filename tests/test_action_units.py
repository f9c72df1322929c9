"""Every continuous-action algorithm works in [-1, 1] units and scales to the env's Box only where an action leaves for
the env, so the units the env gives its actions in do not matter: the same seed on Pendulum-v1 and on Pendulum with
its torque in other units (a narrow Box [-0.5, 0.5], an offset Box [3, 7]; tests.custom_envs) learns the same, to the
bit. Bit-equal, not merely close: the actions reach Pendulum as the same float32 torques (the scalings by powers of
two and the offset's float64 Box lose nothing), so every later difference could only come from the algorithm."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl.agent import read_policy_file, save_policy
from deeprl.algos import ppo
from deeprl.config import preset_settings
from deeprl.nets import ActorCritic
from deeprl.policies import PolicyAgent, policy_network, scale_action

PENDULUM_IN_OTHER_UNITS = ("tests.custom_envs:NarrowPendulum", "tests.custom_envs:OffsetPendulum")
QUIET = {
    "progress": False,
    "tensorboard": False,
    "stop_on_solve": False,
    "solve_threshold": -200.0,
    "eval_episodes": 1,
    "final_eval_episodes": 1,
}
OFF_POLICY = {"steps": 400, "learning_starts": 100, "hidden_sizes": (32, 32), "batch_size": 64, "eval_every": 250}
# a few seconds each: updates within the first episodes, so that what the algorithm learnt steers later actions
BUDGETS: dict[str, dict[str, Any]] = {
    "sac": OFF_POLICY,
    "td3": OFF_POLICY,
    "ddpg": OFF_POLICY,
    "ppo": {"steps": 800, "n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "eval_every": 400},
    "a2c": {"steps": 800, "n_envs": 2, "n_steps": 16, "eval_every": 400},
    "reinforce": {"steps": 800, "eval_every": 400},
    "actor-critic": {"steps": 400, "eval_every": 200},
}


def learning_record(run_dir: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """metrics.csv without its wall-clock column, and eval.json's best and final evaluations."""
    with open(run_dir / "metrics.csv") as metrics:
        rows = [{key: value for key, value in row.items() if key != "time_s"} for row in csv.DictReader(metrics)]
    evaluations = json.loads((run_dir / "eval.json").read_text())
    return rows, {name: evaluations[name] for name in ("best", "final")}


@pytest.mark.learning
@pytest.mark.parametrize("algo", list(BUDGETS))
def test_the_units_of_the_action_change_nothing(algo, tmp_path):
    # Pendulum-v1's preset applies to the custom envs too, so that every run has the same settings
    settings = {**preset_settings(algo, "Pendulum-v1", "default"), **QUIET, **BUDGETS[algo]}
    records = {}
    for env in ("Pendulum-v1", *PENDULUM_IN_OTHER_UNITS):
        deeprl.train(algo, env, seed=0, run_dir=tmp_path / env.replace(":", "_"), **settings)
        records[env] = learning_record(tmp_path / env.replace(":", "_"))
    rows, evaluations = records["Pendulum-v1"]
    # episodes after updates (on-policy algorithms write update rows; off-policy ones put losses on episode rows)
    assert sum(row["kind"] == "train" for row in rows) >= 2
    assert any(row.get("policy_loss") or row.get("critic_loss") for row in rows)
    for env in PENDULUM_IN_OTHER_UNITS:
        assert records[env][0] == rows, f"{algo} on {env} learnt differently from Pendulum-v1"
        assert records[env][1] == evaluations


# ------------------------------------------------------------------------------- the on-policy agent's env edge

BOUNDED_AND_NOT = gym.spaces.Box(
    np.array([3.0, -np.inf, 0.0], dtype=np.float32), np.array([7.0, np.inf, np.inf], dtype=np.float32)
)


def gaussian_agent(action_space: gym.spaces.Box, action_units: str = "unit") -> PolicyAgent:
    obs_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    network = policy_network(obs_space, action_space, ppo.Config(env="x"), "separate")
    return PolicyAgent(ActorCritic(**network), obs_space, action_space, network, action_units=action_units)


def test_gaussian_samples_are_clipped_to_unit_range_then_scaled_and_unbounded_dimensions_pass_clipped_to_bounds():
    agent = gaussian_agent(BOUNDED_AND_NOT)
    raw = np.array([[-1.5, -10.0, -2.0], [0.5, 10.0, 3.0], [2.0, 0.25, 0.5]], dtype=np.float32)
    # bounded [3, 7]: clip to [-1, 1], then 5 + 2u; (-inf, inf): as sampled; [0, inf): clipped to its bound
    expected = np.array([[3.0, -10.0, 0.0], [6.0, 10.0, 3.0], [7.0, 0.25, 0.5]], dtype=np.float32)
    assert np.array_equal(agent.to_env(raw), expected)


def test_a_unit_box_takes_the_clipped_sample_bit_for_bit():
    """On a Box of [-1, 1] (LunarLanderContinuous, MountainCarContinuous) acting is what it was before unit actions:
    the sample clipped, not passed through (u + 1) - 1, which rounds 0.1234567 to 0.12345672 in float32."""
    box = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    raw = np.array([[0.1234567, -3.0], [2.0, -0.7654321]], dtype=np.float32)
    assert not np.array_equal(scale_action(np.clip(raw, -1, 1), box.low, box.high), np.clip(raw, -1, 1))
    assert np.array_equal(gaussian_agent(box).to_env(raw), np.clip(raw, -1, 1))


def test_a_policy_file_from_before_unit_actions_acts_in_the_env_units_it_learnt_in(tmp_path):
    """A Gaussian policy file without `action_units` was trained on env units: its samples are clipped to the Box,
    never scaled; a new file says "unit" and scales."""
    space = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)
    agent = gaussian_agent(space)
    with torch.no_grad():
        agent.policy.policy_head.bias.fill_(0.75)
        agent.policy.policy_head.weight.zero_()
    new_file, old_file = tmp_path / "new.pt", tmp_path / "old.pt"
    save_policy(new_file, "ppo", agent, {"env": "Pendulum-v1"})
    blob = torch.load(new_file, weights_only=True)
    meta = json.loads(blob["meta_json"])
    assert meta["action_units"] == "unit"
    del meta["action_units"]
    torch.save({**blob, "meta_json": json.dumps(meta)}, old_file)
    assert "action_units" not in read_policy_file(old_file)[1]
    obs = np.zeros(2, dtype=np.float32)
    assert deeprl.load(new_file).act(obs) == pytest.approx([1.5])  # the mean 0.75 of [-1, 1], on [-2, 2]
    assert deeprl.load(old_file).act(obs) == pytest.approx([0.75])  # the mean 0.75 in the env's units
    old = gaussian_agent(space, action_units="env")
    assert np.array_equal(old.to_env(np.array([[-3.0], [1.5]], dtype=np.float32)), [[-2.0], [1.5]])
