"""DDPG and TD3: target policy smoothing and the critic's target by hand, exploration in the env's bounds (Pendulum's
±2 and an asymmetric Box), the OU noise restarting with each episode of a real run, exact resume after SIGKILL, and
learning Pendulum on a small budget."""

from __future__ import annotations

import copy
import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl.algos import ddpg, td3
from deeprl.algos.ddpg import DDPG, target_actions
from deeprl.errors import DeeprlError
from deeprl.policies import scale_action
from tests.conftest import kill_and_resume
from tests.continuous_control import (
    CPU,
    PENDULUM,
    RESUME_ARGS,
    assert_learns_pendulum,
    set_constant_output,
    tiny_batch,
)
from tests.custom_envs import AsymmetricDial

QUICK = {"tensorboard": False, "progress": False, "eval_episodes": 2, "final_eval_episodes": 2, "device": "cpu"}


# ------------------------------------------------------------------------------------- TD3's target smoothing


def test_target_actions_without_noise_are_the_targets_actions():
    actions = torch.tensor([[0.3, -1.0], [1.0, 0.25]])
    assert torch.equal(target_actions(actions, 0.0, 0.5, [torch.Generator()]), actions)


def test_target_noise_is_drawn_per_sample_from_the_torch_generator():
    clean = torch.full((1000, 1), 0.2)  # the same action for every sample
    noisy = target_actions(clean, 0.1, 0.5, [torch.Generator().manual_seed(7)])
    assert len(torch.unique(noisy)) == 1000  # each sample its own noise
    noise = noisy - clean
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)  # 3 standard errors of 0.1 / sqrt(1000)
    assert noise.std().item() == pytest.approx(0.1, rel=0.07)  # unclipped: 0.5 is 5 standard deviations
    assert torch.equal(target_actions(clean, 0.1, 0.5, [torch.Generator().manual_seed(7)]), noisy)  # it decides all
    # two seeds' batches one after another: each draws from its own generator what it would draw alone
    halves = target_actions(torch.cat([clean, clean]), 0.1, 0.5, [torch.Generator().manual_seed(s) for s in (7, 8)])
    assert torch.equal(halves[:1000], noisy)
    assert torch.equal(halves[1000:], target_actions(clean, 0.1, 0.5, [torch.Generator().manual_seed(8)]))


def test_target_noise_is_clipped_and_the_actions_stay_in_unit_range():
    torch.manual_seed(0)
    clean = torch.rand(2000, 2) * 2 - 1
    noisy = target_actions(clean, 100.0, 0.3, [torch.Generator()])  # almost every draw is far beyond the clip
    assert noisy.min() >= -1 and noisy.max() <= 1
    inside = (noisy > -1) & (noisy < 1)  # where the sum did not meet the [-1, 1] edge
    shift = (noisy - clean)[inside].abs()
    assert inside.float().mean() > 0.6
    assert shift.max() <= 0.3 + 1e-6
    assert (shift > 0.3 - 1e-6).float().mean() > 0.99  # clipped to exactly ±0.3, not merely small
    edge = ~inside
    assert torch.equal(noisy[edge].abs(), torch.ones_like(noisy[edge]))  # only where clean ± 0.3 leaves [-1, 1]
    assert (clean[edge].abs() > 0.7 - 1e-6).all()


# ------------------------------------------------------------------------------------ the critic's target by hand


@pytest.mark.parametrize("twin", [False, True], ids=["ddpg", "td3"])
def test_critic_target_update_and_delayed_soft_target_update_by_hand(twin):
    config = ddpg.Config(
        env="Pendulum-v1",
        hidden_sizes=(8, 8),
        twin_critics=twin,
        policy_delay=2,
        target_policy_noise=0.2 if twin else 0.0,
        lr=1e-3,
        tau=0.1,
    )
    learner = DDPG(config, PENDULUM.observation_space, PENDULUM.action_space, CPU)
    # target critics 5 and 3 (TD3 takes the smaller); the online critics say 0 and 1 everywhere
    for critic, value in zip(learner.critics_target, (5.0, 3.0)):
        set_constant_output(critic, value)
    for critic, value in zip(learner.critics, (0.0, 1.0)):
        set_constant_output(critic, value)
    # y = R + discount * Q': twin 1 + 0.9 * 3 = 3.7 and 2 + 0 = 2; single 1 + 0.9 * 5 = 5.5 and 2
    # loss per critic = mean((q - y)^2): twin (3.7² + 2²) / 2 + (2.7² + 1²) / 2 = 8.845 + 4.145; single (5.5² + 2²) / 2
    expected_loss = 12.99 if twin else (5.5**2 + 4) / 2
    actor_before = copy.deepcopy(learner.actor.state_dict())
    targets_before = copy.deepcopy(learner.critics_target.state_dict())

    first = learner.learn(tiny_batch(), step=1)
    assert first["critic_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert first["q_mean"] == pytest.approx(0.0)
    assert "actor_loss" not in first  # policy_delay 2: the actor and the targets wait for the second step
    # Adam's first step moves each bias by lr against its gradient's sign: every q is below its target, so up
    for critic, value in zip(learner.critics, (0.0, 1.0)):
        assert critic.q_layers[-1].bias.item() == pytest.approx(value + 1e-3, rel=1e-4)
    assert all(torch.equal(learner.actor.state_dict()[key], actor_before[key]) for key in actor_before)
    assert all(torch.equal(learner.critics_target.state_dict()[key], targets_before[key]) for key in targets_before)

    second = learner.learn(tiny_batch(), step=2)
    assert math.isfinite(second["actor_loss"])
    assert any(not torch.equal(learner.actor.state_dict()[key], actor_before[key]) for key in actor_before)
    # Polyak averaging after the actor's step: target = 0.9 * target + 0.1 * online
    online = learner.critics.state_dict()
    for key, before in targets_before.items():
        np.testing.assert_allclose(
            learner.critics_target.state_dict()[key].numpy(),
            (0.9 * before + 0.1 * online[key]).numpy(),
            rtol=1e-6,
            atol=1e-7,
        )


def test_annealed_learning_rates_keep_the_actors_ratio_to_the_critics():
    config = ddpg.Config(env="Pendulum-v1", hidden_sizes=(8,), lr=1e-3, actor_lr=4e-4)
    learner = DDPG(config, PENDULUM.observation_space, PENDULUM.action_space, CPU)
    learner.set_lr(5e-4)  # half the critic's initial rate: the actor's halves too, 4e-4 -> 2e-4
    assert [group["lr"] for group in learner.critic_optimizer.param_groups] == [5e-4]
    assert [group["lr"] for group in learner.actor_optimizer.param_groups] == [pytest.approx(2e-4, rel=1e-15)]


# ------------------------------------------------------------------------------------------------- exploration


def observation(env: gym.Env, rng: np.random.Generator) -> np.ndarray:
    """A batch of one observation inside the env's (finite) observation bounds."""
    space = env.observation_space
    return rng.uniform(space.low, space.high)[None].astype(np.float32)


def learner_for(env: gym.Env, **settings) -> DDPG:
    config = ddpg.Config(env="Pendulum-v1", hidden_sizes=(16, 16), learning_starts=10, **settings)
    return DDPG(config, env.observation_space, env.action_space, CPU)


@pytest.mark.parametrize("env", [PENDULUM, AsymmetricDial()], ids=["pendulum", "asymmetric"])
def test_random_actions_until_learning_starts_cover_the_bounds(env):
    learner = learner_for(env)
    rng = np.random.default_rng(0)
    obs = observation(env, rng)
    low, high = env.action_space.low, env.action_space.high
    draws = [learner.explore(obs, step, 0, rng) for step in range(1, 11) for _ in range(100)]
    env_actions = np.concatenate([draw[0] for draw in draws])
    stored = np.concatenate([draw[1] for draw in draws])
    assert all(draw[2] == {} for draw in draws)
    assert stored.shape == (1000, env.action_space.shape[0]) and stored.dtype == np.float32
    np.testing.assert_allclose(env_actions, scale_action(stored, low, high), rtol=1e-6, atol=1e-6)
    assert (env_actions >= low).all() and (env_actions <= high).all()
    # uniform in the bounds: the mean is their midpoint, and the extremes come within 1% of each end
    assert (np.abs(env_actions.mean(axis=0) - (low + high) / 2) < 0.06 * (high - low)).all()
    assert (env_actions.min(axis=0) < low + 0.01 * (high - low)).all()
    assert (env_actions.max(axis=0) > high - 0.01 * (high - low)).all()
    replay_rng = np.random.default_rng(0)
    observation(env, replay_rng)
    again = learner.explore(obs, 1, 0, replay_rng)[1]
    np.testing.assert_array_equal(again, draws[0][1])  # drawn from the loop's generator: resumable


@pytest.mark.parametrize("env", [PENDULUM, AsymmetricDial()], ids=["pendulum", "asymmetric"])
@pytest.mark.parametrize("noise", ["gaussian", "ou"])
def test_actions_after_learning_starts_are_the_actors_plus_clipped_noise(env, noise):
    learner = learner_for(env, noise=noise, noise_sigma=0.8, noise_theta=0.15, noise_dt=1.0)
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(0)
    clipped = 0
    for step in range(11, 61):
        obs = observation(env, rng)
        twin = copy.deepcopy(learner.noise)  # the same state and generator: the noise explore will add
        expected = np.clip(learner.agent.unit_act(obs) + twin.sample(), -1.0, 1.0)
        env_actions, stored, row = learner.explore(obs, step, 0, rng)
        np.testing.assert_allclose(stored, expected, rtol=1e-6)
        np.testing.assert_allclose(env_actions, scale_action(stored, low, high), rtol=1e-6, atol=1e-6)
        assert (env_actions >= low).all() and (env_actions <= high).all()
        assert row == {"noise_sigma": 0.8}
        clipped += int((np.abs(stored) == 1.0).sum())
    assert clipped > 5  # a wide noise: some sums left [-1, 1] and were clipped


def test_noise_sigma_anneals_and_none_means_the_actor_alone():
    learner = learner_for(PENDULUM, noise_sigma=0.5, noise_sigma_end=0.1, noise_decay_steps=100)
    rng = np.random.default_rng(0)
    obs = observation(PENDULUM, rng)
    assert learner.explore(obs, 50, 0, rng)[2]["noise_sigma"] == pytest.approx(0.3)
    assert learner.explore(obs, 500, 0, rng)[2]["noise_sigma"] == pytest.approx(0.1)
    quiet = learner_for(PENDULUM, noise="none")
    env_actions, stored, row = quiet.explore(obs, 11, 0, rng)
    np.testing.assert_array_equal(stored, quiet.agent.unit_act(obs))
    np.testing.assert_allclose(env_actions, 2 * stored, rtol=1e-6, atol=1e-6)  # Pendulum's ±2
    assert row == {}


def test_asymmetric_bounds_end_to_end(tmp_path):
    """Every action the env receives, training and evaluation, lies in its bounds, and the policy file acts there."""
    AsymmetricDial.received.clear()
    agent = deeprl.train(
        "ddpg",
        "tests.custom_envs:AsymmetricDial",
        seed=0,
        steps=400,
        run_dir=tmp_path / "run",
        hidden_sizes=(16, 16),
        batch_size=16,
        learning_starts=100,
        noise_sigma=0.5,
        eval_every=400,
        **QUICK,
    )
    received = np.array(AsymmetricDial.received)
    assert received.shape == (400 + 2 * 20 + 2 * 20, 2)  # training, one evaluation and the final one
    space = agent.action_space
    assert (received >= space.low).all() and (received <= space.high).all()
    assert (received[:100].min(axis=0) < space.low + 0.5).all()  # the random start spans each dimension
    assert (received[:100].max(axis=0) > space.high - 0.5).all()
    loaded = deeprl.load(agent.run_dir)
    observations = np.random.default_rng(1).uniform(-1, 1, size=(200, 2)).astype(np.float32)
    actions = loaded.act(observations)
    assert actions.shape == (200, 2) and actions.dtype == np.float32
    assert (actions >= space.low).all() and (actions <= space.high).all()
    np.testing.assert_array_equal(actions, agent.act(observations))
    np.testing.assert_allclose(actions, scale_action(agent.unit_act(observations), space.low, space.high), rtol=1e-6)
    assert loaded.act(observations[0]).shape == (2,)


def test_ou_noise_restarts_at_each_episode_of_a_run(tmp_path, monkeypatch):
    """Pendulum's episodes end every 200 steps: the OU state is 0 at each episode's first step, never later."""
    states: dict[int, np.ndarray] = {}
    explore = DDPG.explore

    def recording_explore(self, obs, step, episodes, rng):
        states[step] = self.noise.x.copy()
        return explore(self, obs, step, episodes, rng)

    monkeypatch.setattr(DDPG, "explore", recording_explore)
    deeprl.train(
        "ddpg",
        "Pendulum-v1",
        seed=0,
        steps=450,
        run_dir=tmp_path / "run",
        noise="ou",
        noise_sigma=0.5,
        hidden_sizes=(8, 8),
        batch_size=16,
        learning_starts=100,
        train_freq=4,
        eval_every=1000,
        **QUICK,
    )
    assert sorted(states) == list(range(1, 451))
    zero = [step for step, x in states.items() if not x.any()]
    # untouched during the random start (through step 100 and at 101, the first noisy step), then restarted at
    # the episode starts 201 and 401 only
    assert zero == [*range(1, 102), 201, 401]


def test_a_diverging_learner_stops_with_the_value_and_the_step(tmp_path):
    with pytest.raises(DeeprlError) as stopped:
        deeprl.train(
            "ddpg",
            "Pendulum-v1",
            seed=0,
            steps=400,
            run_dir=tmp_path / "run",
            hidden_sizes=(8, 8),
            batch_size=16,
            learning_starts=50,
            lr=1e30,
            eval_every=1000,
            **QUICK,
        )
    match = re.fullmatch(
        r"the (critic|actor)_loss became (nan|inf|-inf) at step (\d+); try a lower lr", str(stopped.value)
    )
    assert match, stopped.value
    assert 50 < int(match.group(3)) <= 400


# ------------------------------------------------------------------------------------- exact resume after SIGKILL


@pytest.mark.resume
@pytest.mark.parametrize(("algo", "extra"), [("ddpg", ["--set", "noise=ou"]), ("td3", [])], ids=["ddpg-ou", "td3"])
def test_sigkill_resumes_exactly(tmp_path, uninterrupted, algo, extra):
    """Pendulum (a time limit every 200 steps): the noise process, TD3's target noise from torch's generator and
    its delayed updates all continue as if never stopped."""
    args = [*RESUME_ARGS, *extra]
    kill_and_resume(
        tmp_path,
        uninterrupted(algo, "Pendulum-v1", args),
        args,
        800,
        algo=algo,
        env="Pendulum-v1",
        tags=("train/return", "train/critic_loss", "train/actor_loss", "train/q_mean", "eval/return"),
    )


# ------------------------------------------------------------------------------------------ learning Pendulum
@pytest.mark.learning
@pytest.mark.parametrize(
    ("algo", "config_class", "steps"), [("ddpg", ddpg.Config, 3500), ("td3", td3.Config, 6000)], ids=["ddpg", "td3"]
)
def test_learns_pendulum(tmp_path, algo, config_class, steps):
    assert_learns_pendulum(algo, config_class, steps, tmp_path)
