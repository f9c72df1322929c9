"""DQN's math: TD targets, the dueling head, target-network updates, one gradient step and its clipping."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from deeprl.algos.dqn import DQN, Config, td_target
from deeprl.buffers import ReplayBuffer
from deeprl.nets import QNetwork

NEXT_Q_TARGET = torch.tensor([[1.0, 3.0, 2.0], [4.0, 0.5, 6.0]])
# The online net prefers other actions than the target net does, so DQN and Double DQN differ.
NEXT_Q_ONLINE = torch.tensor([[9.0, 0.0, 1.0], [0.0, 7.0, 1.0]])


def test_td_target_plain_max():
    returns = torch.tensor([1.0, -2.0])
    discounts = torch.tensor([0.5, 0.25])
    target = td_target(returns, discounts, NEXT_Q_TARGET)
    # 1 + 0.5 * max(1, 3, 2) = 2.5;  -2 + 0.25 * max(4, 0.5, 6) = -0.5
    torch.testing.assert_close(target, torch.tensor([2.5, -0.5]))


def test_td_target_double_dqn_uses_online_argmax_valued_by_target():
    returns = torch.tensor([1.0, -2.0])
    discounts = torch.tensor([0.5, 0.25])
    target = td_target(returns, discounts, NEXT_Q_TARGET, NEXT_Q_ONLINE)
    # online argmax: action 0 (target value 1) and action 1 (target value 0.5)
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.5 * 1.0, -2.0 + 0.25 * 0.5]))


def test_td_target_terminal_does_not_bootstrap():
    returns = torch.tensor([1.0, 3.0])
    discounts = torch.tensor([0.0, 0.0])
    torch.testing.assert_close(td_target(returns, discounts, NEXT_Q_TARGET), returns)
    torch.testing.assert_close(td_target(returns, discounts, NEXT_Q_TARGET, NEXT_Q_ONLINE), returns)


def test_td_target_n_step_and_truncated_discounts():
    # a 3-step window with gamma 0.5 (discount 0.125) and a 1-step truncated transition (discount 0.5)
    returns = torch.tensor([2.75, 1.0])
    discounts = torch.tensor([0.125, 0.5])
    target = td_target(returns, discounts, NEXT_Q_TARGET)
    torch.testing.assert_close(target, torch.tensor([2.75 + 0.125 * 3.0, 1.0 + 0.5 * 6.0]))


def test_dueling_head_is_value_plus_centred_advantage():
    net = QNetwork(obs_dim=2, n_actions=3, hidden_sizes=(2,), dueling=True)
    with torch.no_grad():
        trunk = net.trunk[0]
        trunk.weight.copy_(torch.eye(2))
        trunk.bias.zero_()
        net.value_head.weight.copy_(torch.tensor([[1.0, 1.0]]))
        net.value_head.bias.fill_(0.5)
        net.advantage_head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        net.advantage_head.bias.copy_(torch.tensor([0.0, 0.0, 3.0]))
    obs = torch.tensor([[1.0, 2.0], [-1.0, 4.0]])
    # row 1: features (1, 2), V = 3.5, A = (1, 2, 3), mean 2 -> Q = 3.5 + (-1, 0, 1)
    # row 2: features relu(-1, 4) = (0, 4), V = 4.5, A = (0, 4, 3), mean 7/3
    expected = torch.tensor([[2.5, 3.5, 4.5], [4.5 - 7 / 3, 4.5 + 4 - 7 / 3, 4.5 + 3 - 7 / 3]])
    torch.testing.assert_close(net(obs), expected)


def test_dueling_head_matches_its_heads_for_random_weights():
    torch.manual_seed(0)
    net = QNetwork(obs_dim=4, n_actions=5, hidden_sizes=(16, 8), dueling=True)
    obs = torch.randn(7, 4)
    with torch.no_grad():
        features = net.trunk(obs)
        value, advantage = net.value_head(features), net.advantage_head(features)
        q = net(obs)
    assert q.shape == (7, 5)
    torch.testing.assert_close(q, value + advantage - advantage.mean(dim=1, keepdim=True))
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), value)


def dqn_for(**settings) -> DQN:
    """DQN on 3 numbers and 2 actions, one hidden layer of 8 (unless `settings` say otherwise)."""
    config = Config(**{"hidden_sizes": (8,), **settings})
    return DQN(config, gym.spaces.Box(-np.inf, np.inf, shape=(3,)), gym.spaces.Discrete(2), torch.device("cpu"))


def fill(module: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.fill_(value)


def test_target_starts_as_a_frozen_copy():
    learner = dqn_for()
    for online, target in zip(learner.q_net.parameters(), learner.target_net.parameters()):
        torch.testing.assert_close(online, target, rtol=0, atol=0)
        assert not target.requires_grad
        assert online.data_ptr() != target.data_ptr()


def test_update_target_tau_one_copies_exactly():
    learner = dqn_for(tau=1.0, dueling=True)
    torch.manual_seed(3)
    with torch.no_grad():
        for parameter in learner.q_net.parameters():
            parameter.copy_(torch.randn_like(parameter))
    learner.update_target()
    for online, target in zip(learner.q_net.parameters(), learner.target_net.parameters()):
        assert torch.equal(online, target)


def test_update_target_tau_half_gives_midpoint():
    learner = dqn_for(tau=0.5)
    fill(learner.q_net, 2.0)
    fill(learner.target_net, -1.0)
    learner.update_target()
    for parameter in learner.target_net.parameters():
        assert torch.all(parameter == 0.5)
    learner.update_target()
    for parameter in learner.target_net.parameters():
        assert torch.all(parameter == 1.25)
    for parameter in learner.q_net.parameters():  # the online net is untouched
        assert torch.all(parameter == 2.0)


@pytest.mark.parametrize("double_q", [False, True])
def test_gradient_steps_fit_a_fixed_target(double_q):
    """With the target frozen at zero, repeated updates drive Q(s, a) towards the rewards."""
    torch.manual_seed(0)
    learner = dqn_for(lr=1e-2, double_q=double_q, loss="mse", max_grad_norm=None)
    fill(learner.target_net, 0.0)
    replay = ReplayBuffer(8, (3,), np.dtype(np.float32))
    for index in range(4):
        obs = np.eye(3, dtype=np.float32)[index % 3]
        replay.add(obs, index % 2, float(index), obs, terminated=False, truncated=False)
    batch = replay.batch_at(np.arange(4), n_step=1, gamma=0.9)  # target = reward + 0.9 * 0
    losses = [learner.learn(batch, step)["loss"] for step in range(1, 301)]
    assert losses[-1] < 0.01 * losses[0]
    with torch.no_grad():
        q_taken = learner.q_net(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(q_taken, batch.returns, atol=0.05, rtol=0)


def test_batchnorm_targets_use_batch_statistics_like_the_predictions():
    """One update's loss equals Huber(Q(s, a), r + gamma * max Q_target(s')) with both nets in train mode."""
    torch.manual_seed(3)
    config = Config(
        double_q=False,
        loss="huber",
        hidden_sizes=(),
        conv_channels=(4,),
        conv_kernels=(3,),
        conv_strides=(2,),
        batch_norm=True,
    )
    learner = DQN(
        config, gym.spaces.Box(0, 255, shape=(1, 8, 8), dtype=np.uint8), gym.spaces.Discrete(2), torch.device("cpu")
    )
    replay = ReplayBuffer(16, (1, 8, 8), np.dtype(np.uint8))
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, size=(9, 1, 8, 8), dtype=np.uint8)
    for index in range(8):
        replay.add(pictures[index], index % 2, 1.0, pictures[index + 1], terminated=False, truncated=False)
    batch = replay.batch_at(np.arange(8), n_step=1, gamma=0.9)
    online, target = copy.deepcopy(learner.q_net).train(), copy.deepcopy(learner.target_net).train()
    with torch.no_grad():
        q_taken = online(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        batch_statistics = batch.returns + 0.9 * target(batch.next_obs).max(1).values
        running_statistics = batch.returns + 0.9 * target.eval()(batch.next_obs).max(1).values
    expected = torch.nn.functional.smooth_l1_loss(q_taken, batch_statistics).item()
    other = torch.nn.functional.smooth_l1_loss(q_taken, running_statistics).item()
    assert abs(expected - other) > 0.01  # the check below can tell the two apart
    assert learner.learn(batch, step=1)["loss"] == pytest.approx(expected, rel=1e-5)
    assert not learner.q_net.training and not learner.target_net.training  # acting uses running statistics


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("dueling", [False, True])
def test_numpy_forward_matches_torch_and_follows_weight_updates(activation, dueling):
    torch.manual_seed(1)
    net = QNetwork(obs_dim=4, n_actions=3, hidden_sizes=(16, 8), activation=activation, dueling=dueling)
    forward = net.numpy_forward()
    assert forward is not None
    obs = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)

    def check() -> None:
        with torch.no_grad():
            expected = net(torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(forward(obs), expected, rtol=1e-5, atol=1e-6)

    check()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)  # an in-place update, as training does
    net(torch.from_numpy(obs)).pow(2).sum().backward()
    optimizer.step()
    check()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(-1.5)
    check()


def test_numpy_forward_declines_unknown_layers():
    from deeprl.nets import numpy_sequential

    assert numpy_sequential(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid())) is None
    assert numpy_sequential(torch.nn.Sequential(torch.nn.Linear(2, 2).double())) is None
    relu = numpy_sequential(torch.nn.Sequential(torch.nn.ReLU()))
    np.testing.assert_array_equal(relu(np.array([[-1.0, 2.0]], dtype=np.float32)), [[0.0, 2.0]])


def test_set_lr():
    learner = dqn_for(lr=1e-3)
    learner.set_lr(2.5e-4)
    assert [group["lr"] for group in learner.optimizer.param_groups] == [2.5e-4]


def small_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    replay = ReplayBuffer(16, (3,), np.dtype(np.float32))
    for index in range(8):
        obs, next_obs = rng.normal(size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)
        replay.add(obs, index % 2, 10.0 * rng.normal(), next_obs, terminated=index == 7, truncated=False)
    return replay.batch_at(np.arange(8), n_step=1, gamma=0.9)


def gradients_at_step(**settings) -> tuple[list[torch.Tensor], float, float]:
    """The gradients the optimiser steps with in one update, that update's loss, and the loss by hand."""
    torch.manual_seed(0)
    learner = dqn_for(**settings)
    config = learner.config
    batch = small_batch()
    with torch.no_grad():
        q_taken = learner.q_net(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        target = batch.returns + batch.discounts * learner.target_net(batch.next_obs).max(1).values
        by_hand = (torch.nn.functional.mse_loss if config.loss == "mse" else torch.nn.functional.smooth_l1_loss)(
            q_taken, target
        ).item()
    seen: list[torch.Tensor] = []
    step = learner.optimizer.step

    def recording_step(*args, **kwargs):
        seen.extend(parameter.grad.clone() for parameter in learner.parameters)
        return step(*args, **kwargs)

    learner.optimizer.step = recording_step
    loss = learner.learn(batch, step=1)["loss"]
    return seen, loss, by_hand


def global_norm(gradients: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum((gradient**2).sum() for gradient in gradients)))


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_update_clips_gradients_before_the_step(loss):
    base = {"double_q": False, "loss": loss}
    free, free_loss, by_hand = gradients_at_step(max_grad_norm=None, **base)
    assert free_loss == pytest.approx(by_hand, rel=1e-6)  # the loss the update reports is the TD loss
    assert global_norm(free) > 0.2  # large rewards: the clips below bind
    clipped, _, _ = gradients_at_step(max_grad_norm=0.1, **base)
    assert global_norm(clipped) == pytest.approx(0.1, rel=1e-4)
    for before, after in zip(free, clipped):  # rescaled, not reshaped
        torch.testing.assert_close(after, before * 0.1 / global_norm(free), rtol=1e-4, atol=1e-7)
    clamped, _, _ = gradients_at_step(max_grad_norm=None, grad_clip_value=0.01, **base)
    for before, after in zip(free, clamped):
        torch.testing.assert_close(after, before.clamp(-0.01, 0.01))
    # both: each element clamped first, then the whole rescaled to the norm
    both, _, _ = gradients_at_step(max_grad_norm=0.02, grad_clip_value=0.01, **base)
    clamped_norm = global_norm([gradient.clamp(-0.01, 0.01) for gradient in free])
    assert clamped_norm > 0.02
    for before, after in zip(free, both):
        torch.testing.assert_close(after, before.clamp(-0.01, 0.01) * 0.02 / clamped_norm, rtol=1e-4, atol=1e-7)
