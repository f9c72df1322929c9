"""Making environments: registered ids, custom entry points, episode limits, vector envs, spaces, seeding."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from deeprl.envs import (
    ObservationCheck,
    env_factory,
    make_env,
    make_vec_env,
    reward_threshold,
    seed_everything,
    space_from_dict,
    space_to_dict,
)
from deeprl.errors import DeeprlError
from tests.custom_envs import Corridor


def test_registered_env():
    env = make_env("CartPole-v1")
    try:
        assert env.spec.id == "CartPole-v1"
        assert env.spec.max_episode_steps == 500
        obs, _ = env.reset(seed=0)
        assert obs.shape == (4,)
        assert env.action_space == gym.spaces.Discrete(2)
        assert reward_threshold(env) == 475.0
    finally:
        env.close()


def test_max_episode_steps_override_lets_episodes_run_longer():
    env = make_env("Acrobot-v1", max_episode_steps=1000)
    try:
        assert env.spec.max_episode_steps == 1000
        env.reset(seed=0)
        env.action_space.seed(0)
        length, done = 0, False
        truncated = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            length += 1
            done = terminated or truncated
        assert length > 500  # Acrobot's own limit is 500
        assert length <= 1000
        assert truncated == (length == 1000)
    finally:
        env.close()


def test_default_limit_is_kept_without_override():
    env = make_env("Acrobot-v1")
    try:
        assert env.spec.max_episode_steps == 500
    finally:
        env.close()


def test_custom_env_entry_point():
    env = make_env("tests.custom_envs:Corridor")
    assert isinstance(env, ObservationCheck)  # user code: its observations are checked against its space
    assert isinstance(env.env, Corridor)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0])
    for step in range(1, 6):
        obs, reward, terminated, truncated, _ = env.step(1)
        assert (reward, truncated) == (-1.0, False)
        assert terminated == (step == 5)
    np.testing.assert_array_equal(obs, [5.0])


def test_custom_env_gets_time_limit():
    env = make_env("tests.custom_envs:Corridor", max_episode_steps=7)
    assert isinstance(env.env, gym.wrappers.TimeLimit)
    assert isinstance(env.unwrapped, Corridor)
    env.reset(seed=0)
    results = [env.step(0) for _ in range(7)]  # standing still never terminates
    assert [truncated for *_, truncated, _ in results] == [False] * 6 + [True]
    assert not any(terminated for _, _, terminated, _, _ in results)


def test_custom_env_render_mode_is_passed():
    env = make_env("tests.custom_envs:Corridor", render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render_mode == "rgb_array"
    assert env.render().shape == (8, 48, 3)


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("tests.custom_envs:Broken",
         "creating env 'tests.custom_envs:Broken' failed: RuntimeError: the warehouse is on fire"),
        ("tests.custom_envs:Missing", "'tests.custom_envs' has no class or function 'Missing'"),
        ("tests.custom_envs:not_an_env", "'tests.custom_envs:not_an_env' returned object, not a gymnasium.Env"),
        ("no_such_package_xyz.envs:Env", "cannot import 'no_such_package_xyz.envs'"),
        ("CartPol-v1", "unknown environment 'CartPol-v1'; did you mean 'CartPole-v1'?"),
        ("Zzzzzzzzzzzz-v9", "unknown environment 'Zzzzzzzzzzzz-v9'; `deeprl list --envs`"),
    ],
)
def test_bad_env_ids(env_id, message):
    with pytest.raises(DeeprlError) as caught:
        make_env(env_id)
    assert message in str(caught.value)


def test_env_factory_makes_fresh_copies():
    make = env_factory("tests.custom_envs:Corridor", max_episode_steps=3)
    first, second = make(), make()
    assert first is not second
    assert first.unwrapped is not second.unwrapped
    first.reset(seed=0)
    assert [first.step(0)[3] for _ in range(3)] == [False, False, True]
    assert make(render_mode="rgb_array").render_mode == "rgb_array"


def test_make_vec_env():
    vec_env = make_vec_env("CartPole-v1", 3, seed=0)
    try:
        assert vec_env.num_envs == 3
        obs, _ = vec_env.reset(seed=0)
        assert obs.shape == (3, 4)
        obs, rewards, terminated, truncated, _ = vec_env.step(np.array([0, 1, 0]))
        assert obs.shape == (3, 4)
        np.testing.assert_array_equal(rewards, [1.0, 1.0, 1.0])
        assert terminated.shape == truncated.shape == (3,)
    finally:
        vec_env.close()


def test_make_vec_env_with_custom_env_and_limit():
    vec_env = make_vec_env("tests.custom_envs:Corridor", 2, seed=1, max_episode_steps=4)
    try:
        vec_env.reset(seed=1)
        for _ in range(3):
            _, _, _, truncated, _ = vec_env.step(np.array([0, 0]))
            assert not truncated.any()
        _, _, _, truncated, _ = vec_env.step(np.array([0, 0]))
        np.testing.assert_array_equal(truncated, [True, True])
    finally:
        vec_env.close()


def test_custom_env_passes_gymnasium_check_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(Corridor(), skip_render_check=True)  # rendering is tested above


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Discrete(4),
        gym.spaces.Discrete(3, start=-1),
        gym.spaces.Box(-1.0, 2.0, shape=(2, 3), dtype=np.float32),
        gym.spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 1.0]), dtype=np.float64),
        gym.spaces.Box(0, 255, shape=(4, 4, 3), dtype=np.uint8),
    ],
)
def test_space_round_trip_through_json(space):
    data = json.loads(json.dumps(space_to_dict(space)))
    restored = space_from_dict(data)
    assert restored == space
    assert type(restored) is type(space)


def test_cartpole_space_round_trip():
    env = make_env("CartPole-v1")
    try:
        for space in (env.observation_space, env.action_space):
            assert space_from_dict(json.loads(json.dumps(space_to_dict(space)))) == space
    finally:
        env.close()


def test_unsupported_space():
    with pytest.raises(DeeprlError, match="unsupported space"):
        space_to_dict(gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(DeeprlError, match="unsupported space type 'Tuple'"):
        space_from_dict({"type": "Tuple"})


def test_seed_everything_is_reproducible():
    first = seed_everything(123)
    draws_first = (first.random(3), np.random.rand(2), torch.rand(2))
    second = seed_everything(123)
    draws_second = (second.random(3), np.random.rand(2), torch.rand(2))
    np.testing.assert_array_equal(draws_first[0], draws_second[0])
    np.testing.assert_array_equal(draws_first[1], draws_second[1])
    assert torch.equal(draws_first[2], draws_second[2])
    other = seed_everything(124)
    assert not np.array_equal(other.random(3), draws_first[0])
