"""Seed 001's shaped Acrobot reward (tip height - 1): the height formula, the wrapper on a real Acrobot,
how it lines up with Gymnasium's own termination, and the errors for other envs and other rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeprl.envs import TipHeightReward, make_env, spec_factory, tip_height
from deeprl.errors import DeeprlError
from tests.conftest import run_deeprl

PI = math.pi


@pytest.mark.parametrize(
    ("state", "height"),
    [
        # height = -cos(a) - cos(a + b), both links 1 long, angles from hanging straight down
        ((0.0, 0.0, 0.0, 0.0), -2.0),  # -cos 0 - cos 0 = -1 - 1: hanging down
        ((PI, 0.0, 0.0, 0.0), 2.0),  # -cos pi - cos pi = 1 + 1: straight up
        ((PI / 2, 0.0, 0.0, 0.0), 0.0),  # -cos(pi/2) - cos(pi/2) = 0: both links horizontal
        ((0.0, PI, 0.0, 0.0), 0.0),  # -cos 0 - cos pi = -1 + 1: folded back onto the pivot
        ((PI / 2, -PI / 2, 0.0, 0.0), -1.0),  # -cos(pi/2) - cos 0 = 0 - 1: first link level, second down
        ((PI / 3, 0.0, 0.0, 0.0), -1.0),  # -0.5 - 0.5
        ((2 * PI / 3, 0.0, 0.0, 0.0), 1.0),  # 0.5 + 0.5: on the goal line
        ((PI, -PI / 2, 0.0, 0.0), 1.0),  # -cos pi - cos(pi/2) = 1 + 0: first link up, second level
        ((-PI / 3, PI / 3, 0.0, 0.0), -1.5),  # -0.5 - cos 0
        ((0.0, 0.0, 5.0, -3.0), -2.0),  # velocities do not move the tip
        ((-PI, 0.0, 0.0, 0.0), 2.0),  # -pi is the same angle as pi
    ],
)
def test_tip_height_by_hand(state, height):
    assert tip_height(np.array(state)) == pytest.approx(height, abs=1e-12)


def hand_height(state: np.ndarray) -> float:
    return -math.cos(state[0]) - math.cos(state[0] + state[1])


def test_tip_height_reward_on_a_real_acrobot():
    env = make_env("Acrobot-v1", reward="tip_height")
    try:
        assert isinstance(env, TipHeightReward)
        env.reset(seed=0)
        env.action_space.seed(0)
        rewards = []
        for step in range(60):
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            state = env.unwrapped.state  # the state after the step
            assert reward == pytest.approx(hand_height(state) - 1.0, abs=1e-12)
            assert not (terminated or truncated)
            rewards.append(reward)
            if step < 3:  # reset starts within ±0.1 rad of hanging down: height ≈ -2, reward ≈ -3
                assert -3.0 <= reward < -2.95
        # Gymnasium's own reward would be -1 every step; this one varies with the swing
        assert len(set(rewards)) == len(rewards)
        assert all(-3.0 <= reward <= 0.0 for reward in rewards)  # below the goal line the reward is negative
    finally:
        env.close()


def test_acrobot_terminates_exactly_when_the_tip_passes_height_one():
    """Gymnasium's Acrobot terminates when -cos(a) - cos(a + b) > 1 after the step, so a terminating step
    earns height - 1 > 0 and every other step earns <= 0."""
    env = make_env("Acrobot-v1", reward="tip_height")
    try:
        a = math.acos(-0.525)  # -2 cos a = 1.05: straight arm just above the goal line
        env.reset(seed=0)
        env.unwrapped.state = np.array([a, 0.0, 1.0, 0.0])  # swinging up
        _, reward, terminated, truncated, _ = env.step(1)  # action 1: no torque
        assert hand_height(env.unwrapped.state) > 1.05  # measured 1.272
        assert terminated and not truncated
        assert reward == pytest.approx(hand_height(env.unwrapped.state) - 1.0) and reward > 0

        env.reset(seed=0)
        env.unwrapped.state = np.array([a, 0.0, 0.0, 0.0])  # at rest at height 1.05: falls in the step
        _, reward, terminated, _, _ = env.step(1)
        assert hand_height(env.unwrapped.state) < 1.0  # measured 0.935
        assert not terminated
        assert reward == pytest.approx(hand_height(env.unwrapped.state) - 1.0) and reward < 0

        # random states all over: terminated iff the height after the step is above 1
        rng = np.random.default_rng(0)
        outcomes = set()
        for _ in range(200):
            env.reset(seed=0)
            env.unwrapped.state = np.concatenate([rng.uniform(-PI, PI, 2), rng.uniform(-3.0, 3.0, 2)])
            _, reward, terminated, _, _ = env.step(int(rng.integers(3)))
            height = hand_height(env.unwrapped.state)
            assert terminated == (height > 1.0)
            assert reward == pytest.approx(height - 1.0, abs=1e-12)
            assert (reward > 0) == terminated
            outcomes.add(terminated)
        assert outcomes == {True, False}
    finally:
        env.close()


def test_tip_height_with_a_longer_time_limit_truncates_at_1000():
    env = make_env("Acrobot-v1", reward="tip_height", max_episode_steps=1000)
    try:
        assert env.spec.max_episode_steps == 1000
        env.reset(seed=0)
        total, steps, truncated = 0.0, 0, False
        while not truncated:
            # no torque: the arm only sways near the bottom, never reaching the goal line
            _, reward, terminated, truncated, _ = env.step(1)
            steps += 1
            total += reward
            assert not terminated
            assert -3.0 <= reward < -2.9
            assert steps <= 1000
        assert steps == 1000
        assert -3000.0 <= total < -2900.0
    finally:
        env.close()


def test_a_recorded_env_spec_rebuilds_the_shaped_reward():
    env = spec_factory({"env": "Acrobot-v1", "reward": "tip_height", "max_episode_steps": 1000})()
    try:
        assert isinstance(env, TipHeightReward)
        assert env.spec.max_episode_steps == 1000
        env.reset(seed=1)
        _, reward, _, _, _ = env.step(0)
        assert reward == pytest.approx(hand_height(env.unwrapped.state) - 1.0, abs=1e-12)
    finally:
        env.close()


def test_tip_height_is_for_acrobot_only():
    with pytest.raises(DeeprlError, match=r"tip_height.*Acrobot only, not CartPole-v1"):
        make_env("CartPole-v1", reward="tip_height")


def test_unknown_reward():
    with pytest.raises(DeeprlError, match=r"unknown reward 'height' \(choose from env, tip_height\)"):
        make_env("Acrobot-v1", reward="height")


def test_cli_refuses_tip_height_on_cartpole_before_making_a_run(tmp_path):
    result = run_deeprl(
        "train", "dqn", "CartPole-v1", "--steps", "100", "--run-dir", "run", "--set", "reward=tip_height", cwd=tmp_path
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deeprl: error: ")
    assert "Acrobot only" in lines[0] and "CartPole-v1" in lines[0]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither run/ nor runs/
