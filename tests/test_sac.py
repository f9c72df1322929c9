"""SAC: the soft critic target and the actor's loss by hand, log-probabilities of the [-1, 1] actions on any Box, alpha
tuned towards the target entropy or held fixed, sampled exploration in the bounds, exact resume after SIGKILL, and
learning Pendulum on a small budget."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal

from deeprl.algos import sac
from deeprl.algos.sac import SAC
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


def learner_for(env: gym.Env = PENDULUM, **settings) -> SAC:
    config = sac.Config(env="Pendulum-v1", hidden_sizes=(8, 8), **settings)
    return SAC(config, env.observation_space, env.action_space, CPU)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-6) -> None:
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), rtol=tolerance, atol=tolerance)


def test_soft_target_actor_loss_and_target_update_by_hand():
    learner = learner_for(alpha=0.5, lr=1e-3, tau=0.1)
    for critic, value in zip(learner.critics_target, (5.0, 3.0)):
        set_constant_output(critic, value)
    for critic, value in zip(learner.critics, (0.0, 1.0)):
        set_constant_output(critic, value)
    batch = tiny_batch()
    targets_before = copy.deepcopy(learner.critics_target.state_dict())
    # learn() draws a' ~ pi(.|s') first, then a ~ pi(.|s) for the actor, from the learner's own generator: the same
    # draws from a generator in the same state
    by_hand = torch.Generator().manual_seed(11)
    with torch.no_grad():
        _, next_log_probs = learner.actor(batch.next_obs, generator=by_hand)
        actions, log_probs = learner.actor(batch.obs, generator=by_hand)
    # y = R + discount * (min(5, 3) - alpha * log pi(a'|s')); the terminal second sample's y is its reward alone
    y = batch.returns + batch.discounts * (3.0 - 0.5 * next_log_probs)
    assert y[1].item() == 2.0
    assert abs(0.9 * 0.5 * next_log_probs[0].item()) > 0.01  # the entropy term is there to see
    expected_critic_loss = (y**2).mean() + ((1.0 - y) ** 2).mean()  # the online critics say 0 and 1

    learner.sampling.manual_seed(11)
    metrics = learner.learn(batch, step=1)
    assert metrics["critic_loss"] == pytest.approx(expected_critic_loss.item(), rel=1e-6)
    assert metrics["q_mean"] == pytest.approx(0.0)
    assert metrics["alpha"] == pytest.approx(0.5)
    assert metrics["entropy"] == pytest.approx(-log_probs.mean().item(), rel=1e-6)
    # the actor's loss, alpha * log pi(a|s) - min_i Q_i(s, a), with the critics after their step (the actor's own
    # step leaves them alone)
    with torch.no_grad():
        q_new = torch.minimum(*(critic(batch.obs, actions) for critic in learner.critics))
    assert metrics["actor_loss"] == pytest.approx((0.5 * log_probs - q_new).mean().item(), rel=1e-5)
    # Polyak averaging after every gradient step: target = 0.9 * target + 0.1 * online
    online = learner.critics.state_dict()
    for key, before in targets_before.items():
        assert_close(learner.critics_target.state_dict()[key], 0.9 * before + 0.1 * online[key])


@pytest.mark.parametrize("env", [PENDULUM, AsymmetricDial()], ids=["pendulum", "asymmetric"])
def test_log_probabilities_are_of_the_unit_actions_whatever_the_bounds(env):
    """The entropy alpha is tuned on is that of the [-1, 1] action on any Box (Pendulum's ±2, the dial's half ranges
    2 and 5): the Gaussian's density corrected for the tanh alone, in the critic target and in the logged entropy."""
    learner = learner_for(env)
    obs = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, size=(64, env.observation_space.shape[0])))
    obs = obs.float()
    with torch.no_grad():
        mean, log_std = learner.actor.mean_and_log_std(obs)
        torch.manual_seed(3)
        actions, log_probs = learner.actor(obs)
    torch.manual_seed(3)
    pre_tanh = mean + log_std.exp() * torch.randn(mean.shape)
    assert_close(actions, torch.tanh(pre_tanh))
    gaussian = Normal(mean, log_std.exp()).log_prob(pre_tanh).sum(dim=-1)
    assert_close(log_probs, gaussian - torch.log(1 - torch.tanh(pre_tanh) ** 2).sum(dim=-1), tolerance=1e-4)
    assert learner.target_entropy == -env.action_space.shape[0]


@pytest.mark.parametrize(("target_entropy", "direction"), [(None, -1), (10.0, 1)], ids=["default", "unreachable"])
def test_alpha_is_tuned_towards_the_target_entropy(target_entropy, direction):
    """The initial policy's entropy (std about 1, on [-1, 1]) is above Pendulum's default target -1: alpha falls. A
    target of 10 nats no policy on [-1, 1] reaches (at most log 2): alpha rises."""
    learner = learner_for(lr=1e-3, target_entropy=target_entropy)
    assert learner.target_entropy == (-1.0 if target_entropy is None else 10.0)
    assert learner.log_alpha.item() == 0.0  # alpha_init 1
    batch = tiny_batch()
    metrics = [learner.learn(batch, step) for step in range(1, 7)]
    assert metrics[0]["alpha"] == 1.0  # reported: the alpha this step used
    assert -1.0 < metrics[0]["entropy"] < 10.0
    # Adam's first step moves log alpha by lr against the sign of its gradient, entropy - target
    alphas = [values["alpha"] for values in metrics]
    assert math.log(alphas[1]) == pytest.approx(direction * 1e-3, rel=1e-3)
    steps = np.diff(alphas)
    assert (direction * steps > 0).all(), alphas
    assert learner.log_alpha.exp().item() == pytest.approx(alphas[-1], rel=2e-3)


def test_fixed_alpha_stays_and_has_no_optimiser():
    learner = learner_for(alpha=0.2)
    assert learner.alpha_optimizer is None and not learner.log_alpha.requires_grad
    batch = tiny_batch()
    alphas = [learner.learn(batch, step)["alpha"] for step in range(1, 4)]
    assert alphas == pytest.approx([0.2] * 3)
    assert learner.log_alpha.item() == pytest.approx(math.log(0.2))
    state = learner.state_dict()
    assert state["alpha_optimizer"] is None
    restored = learner_for(alpha=0.2)
    restored.load_state_dict(state)
    assert restored.log_alpha.item() == learner.log_alpha.item()


@pytest.mark.parametrize("alpha", [None, 0.2], ids=["tuned", "fixed"])
def test_annealed_learning_rate_reaches_every_optimiser(alpha):
    learner = learner_for(alpha=alpha, lr=1e-3)
    learner.set_lr(2.5e-4)
    optimizers = [learner.actor_optimizer, learner.critic_optimizer] + (
        [learner.alpha_optimizer] if alpha is None else []
    )
    assert [group["lr"] for optimizer in optimizers for group in optimizer.param_groups] == [2.5e-4] * len(optimizers)


def test_exploration_samples_the_policy_in_the_bounds_after_learning_starts():
    learner = learner_for(learning_starts=10)
    rng = np.random.default_rng(0)
    obs = rng.uniform(PENDULUM.observation_space.low, PENDULUM.observation_space.high)[None].astype(np.float32)
    random = np.concatenate([learner.explore(obs, 5, 0, rng)[1] for _ in range(300)])
    assert random.min() < -0.95 and random.max() > 0.95  # uniform in [-1, 1] before learning starts
    draws = [learner.explore(obs, 11, 0, rng) for _ in range(300)]
    stored = np.concatenate([draw[1] for draw in draws])
    env_actions = np.concatenate([draw[0] for draw in draws])
    np.testing.assert_allclose(env_actions, 2 * stored, rtol=1e-6, atol=1e-6)
    assert (np.abs(env_actions) <= 2).all()
    assert len(np.unique(stored)) == 300  # sampled, not the mean
    mean_action = learner.agent.unit_act(obs)[0, 0]
    assert mean_action not in stored
    assert learner.agent.act(obs[0]).item() == pytest.approx(2 * mean_action)  # the agent acts with tanh(mean)


# ------------------------------------------------------------------------------------- exact resume after SIGKILL


@pytest.mark.resume
def test_sigkill_resumes_exactly(tmp_path, uninterrupted):
    """Twin critics, tuned alpha and the policy's samples drawn from torch's generator continue as if never
    stopped."""
    kill_and_resume(
        tmp_path,
        uninterrupted("sac", "Pendulum-v1", RESUME_ARGS),
        RESUME_ARGS,
        800,
        algo="sac",
        env="Pendulum-v1",
        tags=("train/return", "train/critic_loss", "train/actor_loss", "train/alpha", "train/entropy", "eval/return"),
    )


@pytest.mark.learning
def test_learns_pendulum(tmp_path):
    """Measured beside DDPG and TD3's (tests/test_ddpg.py); SAC's default lr of 3e-4 needs more steps than this."""
    assert_learns_pendulum("sac", sac.Config, 3500, tmp_path, lr=1e-3)
