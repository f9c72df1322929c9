"""deeprl's env making: limits it sets, wrappers it adds, options it passes on, errors it reports, the seeding
of vector envs and of everything random, and the JSON description of spaces."""

from __future__ import annotations

import json
import random
import re
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch

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
from deeprl.observations import EncodedObservations
from tests.custom_envs import Corridor


def wrappers(env: gym.Env) -> list[type]:
    """The classes from the outermost wrapper down to the base env."""
    chain = [type(env)]
    while isinstance(env, gym.Wrapper):
        env = env.env
        chain.append(type(env))
    return chain


def time_limits(env: gym.Env) -> list[int]:
    limits = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            limits.append(env._max_episode_steps)
        env = env.env
    return limits


def test_reward_threshold_is_read_through_deeprls_wrappers_as_a_float():
    """The spec's threshold (an int here) reaches the run as a float through the time limit deeprl puts on; an env
    registered without one, or made from a class (no spec), has none."""
    gym.register("ThresholdCorridor-v0", entry_point="tests.custom_envs:Corridor", reward_threshold=-5)
    try:
        env = make_env("ThresholdCorridor-v0", max_episode_steps=7)
        assert time_limits(env) == [7]
        threshold = reward_threshold(env)
        assert threshold == -5.0 and type(threshold) is float
    finally:
        del gym.registry["ThresholdCorridor-v0"]
    assert reward_threshold(make_env("Pendulum-v1")) is None
    assert reward_threshold(make_env("tests.custom_envs:Corridor")) is None


@pytest.mark.parametrize(("limit", "expected"), [(None, [500]), (3, [3]), (1000, [1000])])
def test_max_episode_steps_replaces_the_registered_limit(limit, expected):
    env = make_env("CartPole-v1", max_episode_steps=limit)
    assert time_limits(env) == expected  # one limit, never the env's own one around a new one
    if limit == 3:  # CartPole cannot fall in 3 steps: the episode ends by truncation
        env.reset(seed=0)
        assert [env.step(step % 2)[3] for step in range(3)] == [False, False, True]


def test_custom_env_is_checked_and_limited_only_on_request():
    plain = make_env("tests.custom_envs:Corridor")
    assert wrappers(plain) == [ObservationCheck, Corridor]  # user code: its observations are checked
    limited = make_env("tests.custom_envs:Corridor", max_episode_steps=7)
    assert wrappers(limited) == [ObservationCheck, gym.wrappers.TimeLimit, Corridor]
    assert time_limits(limited) == [7]
    limited.reset(seed=0)
    results = [limited.step(0) for _ in range(7)]  # standing still never terminates: only the limit ends it
    assert [truncated for *_, truncated, _ in results] == [False] * 6 + [True]


@pytest.mark.parametrize(
    ("env_id", "where"), [("tests.custom_envs:WrongShape", "reset()"), ("tests.custom_envs:EscapesBounds", "step()")]
)
def test_custom_env_observations_outside_their_space_are_refused(env_id, where):
    env = make_env(env_id)
    with pytest.raises(DeeprlError, match=rf"env '{env_id}' {re.escape(where)} returned an observation outside"):
        env.reset(seed=0)
        for _ in range(5):
            env.step(1)


def test_render_mode_and_env_kwargs_reach_the_constructor():
    env = make_env("tests.custom_envs:Corridor", env_kwargs={"length": 3}, render_mode="rgb_array")
    assert (env.unwrapped.length, env.unwrapped.render_mode) == (3, "rgb_array")
    assert env.observation_space == gym.spaces.Box(0.0, 3.0, shape=(1,), dtype=np.float32)
    assert make_env("tests.custom_envs:Corridor").unwrapped.render_mode is None
    registered = make_env("FrozenLake-v1", env_kwargs={"is_slippery": False}, render_mode="rgb_array")
    assert registered.unwrapped.render_mode == "rgb_array"
    assert registered.spec.kwargs["is_slippery"] is False


def test_env_kwargs_the_constructor_does_not_take_are_refused():
    with pytest.raises(DeeprlError, match=r"environment 'CartPole-v1' does not accept env_kwargs \{'wind': 3\}"):
        make_env("CartPole-v1", env_kwargs={"wind": 3})
    with pytest.raises(DeeprlError, match=r"creating env 'tests\.custom_envs:Corridor' failed: TypeError"):
        make_env("tests.custom_envs:Corridor", env_kwargs={"wind": 3})


class Dial(gym.Env):
    """Observations are integers from -2 to 2 (a Discrete space that does not start at 0)."""

    observation_space = gym.spaces.Discrete(5, start=-2)
    action_space = gym.spaces.Discrete(2)
    metadata: ClassVar[dict] = {"render_modes": []}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = -2
        return self.position, {}

    def step(self, action):
        self.position = min(self.position + int(action), 2)
        return self.position, 0.0, self.position == 2, False, {}


def test_discrete_observations_become_one_hot_vectors():
    env = make_env("FrozenLake-v1", env_kwargs={"is_slippery": False})
    assert isinstance(env, EncodedObservations)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, shape=(16,), dtype=np.float32)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.eye(16, dtype=np.float32)[0])
    obs, *_ = env.step(2)  # right: from square 0 to square 1
    assert obs.dtype == np.float32
    np.testing.assert_array_equal(obs, np.eye(16, dtype=np.float32)[1])

    dial = make_env("tests.test_envs:Dial")
    assert wrappers(dial) == [EncodedObservations, ObservationCheck, Dial]
    assert dial.observation_space.shape == (5,)
    obs, _ = dial.reset(seed=0)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0, 0])  # -2, the space's start, is the first entry
    obs, *_ = dial.step(1)
    np.testing.assert_array_equal(obs, [0, 1, 0, 0, 0])
    assert not isinstance(make_env("CartPole-v1"), EncodedObservations)  # vectors stay as they are


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        (
            "tests.custom_envs:Broken",
            "creating env 'tests.custom_envs:Broken' failed: RuntimeError: the warehouse is on fire",
        ),
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


def test_env_factory_makes_fresh_copies_with_its_options():
    make = env_factory("tests.custom_envs:Corridor", max_episode_steps=3)
    first, second = make(), make()
    assert first.unwrapped is not second.unwrapped
    first.reset(seed=0)
    first.step(1)
    assert (first.unwrapped.position, second.unwrapped.position) == (1, 0)
    assert time_limits(first) == time_limits(second) == [3]
    assert make(render_mode="rgb_array").unwrapped.render_mode == "rgb_array"


def play(vec_env: gym.vector.VectorEnv, steps: int) -> list[np.ndarray]:
    """Observations along `steps` steps of actions drawn from the vector env's own (seeded) action space."""
    observations = []
    for _ in range(steps):
        obs, *_ = vec_env.step(vec_env.action_space.sample())
        observations.append(obs)
    return observations


def test_make_vec_env_seeds_the_copies_and_their_actions():
    first, again, other = (make_vec_env("CartPole-v1", 3, seed=seed) for seed in (5, 5, 6))
    try:
        assert first.num_envs == 3
        np.testing.assert_array_equal(play(first, 40), play(again, 40))  # resets (with autoreset) and actions
        assert not np.array_equal(play(first, 5), play(other, 5))
    finally:
        for vec_env in (first, again, other):
            vec_env.close()


def test_make_vec_env_passes_options_to_every_copy():
    vec_env = make_vec_env("tests.custom_envs:Corridor", 2, seed=1, max_episode_steps=4, env_kwargs={"length": 9})
    try:
        assert [env.unwrapped.length for env in vec_env.envs] == [9, 9]
        assert [time_limits(env) for env in vec_env.envs] == [[4], [4]]
    finally:
        vec_env.close()


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
    assert restored.dtype == space.dtype


def test_unsupported_space():
    with pytest.raises(DeeprlError, match="unsupported space"):
        space_to_dict(gym.spaces.Sequence(gym.spaces.Discrete(3)))
    with pytest.raises(DeeprlError, match="unsupported space type 'Graph'"):
        space_from_dict({"type": "Graph"})


def draws(generator: np.random.Generator) -> tuple:
    return generator.random(3).tolist(), random.random(), np.random.rand(2).tolist(), torch.rand(2).tolist()


def test_seed_everything_seeds_python_numpy_and_torch():
    first = draws(seed_everything(123))
    assert first == draws(seed_everything(123))
    assert first[0] == np.random.default_rng(123).random(3).tolist()  # the returned generator is default_rng(seed)
    other = draws(seed_everything(124))
    assert all(mine != theirs for mine, theirs in zip(first, other))  # each source follows the seed
