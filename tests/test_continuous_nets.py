"""Continuous-control building blocks: action scaling, the tanh-squashed Gaussian's log-density against independent
references, the actor and critic networks, fan-in initialisation and Polyak averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from deeprl.nets import (
    DeterministicActor,
    QCritic,
    SoftUpdate,
    SquashedGaussianActor,
    fan_in_init_,
    set_learning_rate,
    squashed_log_prob,
)
from deeprl.policies import scale_action, unscale_action

LOW = np.array([-2.0, 0.0], dtype=np.float32)  # asymmetric, different per dimension
HIGH = np.array([2.0, 10.0], dtype=np.float32)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-6) -> None:
    """Without torch.testing, whose first call imports sympy (about a second)."""
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), rtol=tolerance, atol=tolerance)


# ------------------------------------------------------------------------------------------------ action scaling


def test_scale_and_unscale_asymmetric_bounds_by_hand():
    unit = np.array([[0.0, -1.0], [1.0, 1.0], [-1.0, 0.5]], dtype=np.float32)
    env_actions = np.array([[0.0, 0.0], [2.0, 10.0], [-2.0, 7.5]], dtype=np.float32)
    scaled = scale_action(unit, LOW, HIGH)
    np.testing.assert_allclose(scaled, env_actions)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(unscale_action(env_actions, LOW, HIGH), unit)


def test_scale_unscale_round_trip():
    unit = np.random.default_rng(0).uniform(-1, 1, size=(100, 2))
    np.testing.assert_allclose(unscale_action(scale_action(unit, LOW, HIGH), LOW, HIGH), unit, atol=1e-12)


# ------------------------------------------------------------------------------------ squashed Gaussian density


def _gaussian_sample(batch: int, action_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(batch, action_dim, generator=generator, dtype=torch.float64)
    std = torch.rand(batch, action_dim, generator=generator, dtype=torch.float64) + 0.3
    pre_tanh = mean + std * torch.randn(batch, action_dim, generator=generator, dtype=torch.float64)
    return mean, std, pre_tanh


def test_squashed_log_prob_matches_change_of_variables_by_jacobian():
    mean, std, pre_tanh = _gaussian_sample(batch=6, action_dim=3)
    gaussian_log_prob = Normal(mean, std).log_prob(pre_tanh).sum(dim=-1)
    expected = []
    for u, log_density in zip(pre_tanh, gaussian_log_prob, strict=True):
        jacobian = torch.autograd.functional.jacobian(torch.tanh, u)  # (3, 3)
        expected.append(log_density - torch.linalg.slogdet(jacobian).logabsdet)
    assert_close(squashed_log_prob(gaussian_log_prob, pre_tanh), torch.stack(expected), tolerance=1e-10)


def test_squashed_log_prob_matches_torch_transformed_distribution():
    mean, std, pre_tanh = _gaussian_sample(batch=50, action_dim=2)
    reference = TransformedDistribution(Normal(mean, std), [TanhTransform()])
    gaussian_log_prob = Normal(mean, std).log_prob(pre_tanh).sum(dim=-1)
    # the reference inverts the actions with atanh: loose enough for its round trip, tight against a wrong term
    assert_close(
        squashed_log_prob(gaussian_log_prob, pre_tanh),
        reference.log_prob(torch.tanh(pre_tanh)).sum(dim=-1),
        tolerance=1e-6,
    )


def test_squashed_log_prob_is_finite_far_in_the_tails():
    pre_tanh = torch.tensor([[30.0, -30.0], [0.0, 0.0]])  # float32: tanh(±30) rounds to ±1 exactly
    log_prob = squashed_log_prob(torch.zeros(2), pre_tanh)
    assert torch.isfinite(log_prob).all()
    # log(1 − tanh(u)²) = log(4e^{−2|u|} / (1 + e^{−2|u|})²) ≈ 2 log 2 − 2|u| per dimension
    expected = torch.tensor([-2 * (2 * math.log(2.0) - 60.0), 0.0])
    assert_close(log_prob, expected, tolerance=1e-5)


# ----------------------------------------------------------------------------------------------------- networks


def test_squashed_gaussian_actor_samples_and_log_probs():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(obs_dim=4, action_dim=2, hidden_sizes=(16, 16), activation="relu").double()
    obs = torch.randn(64, 4, dtype=torch.float64)
    actions, log_probs = actor(obs, generator=torch.Generator().manual_seed(5))
    assert actions.shape == (64, 2) and log_probs.shape == (64,)
    assert actions.abs().max() < 1.0
    # the same draw again from the same generator, and its density under an independent reference
    again, _ = actor(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(actions, again)
    mean, log_std = actor.mean_and_log_std(obs)
    reference = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    assert_close(log_probs, reference.log_prob(actions).sum(dim=-1), tolerance=1e-6)
    # reparameterised: the actions carry gradients to the mean head
    actions.sum().backward()
    assert actor.mean_head.weight.grad is not None and actor.mean_head.weight.grad.abs().sum() > 0


def test_squashed_gaussian_actor_deterministic_is_tanh_of_the_mean():
    torch.manual_seed(1)
    actor = SquashedGaussianActor(obs_dim=3, action_dim=2, hidden_sizes=(8,), activation="tanh")
    obs = torch.randn(10, 3)
    actions, _ = actor(obs, deterministic=True)
    expected = torch.tanh(actor.mean_head(actor.trunk(obs)))
    assert_close(actions, expected)
    numpy_forward = actor.numpy_forward()
    np.testing.assert_allclose(numpy_forward(obs.numpy()), expected.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("log_std_bias", "clamped_log_std"), [(10.0, 2.0), (-50.0, -20.0)])
def test_squashed_gaussian_actor_clamps_log_std(log_std_bias, clamped_log_std):
    actor = SquashedGaussianActor(obs_dim=3, action_dim=2, hidden_sizes=(8,), activation="relu")
    with torch.no_grad():
        for head, bias in ((actor.mean_head, 0.0), (actor.log_std_head, log_std_bias)):
            head.weight.zero_()
            head.bias.fill_(bias)
    actions, log_probs = actor(torch.randn(5, 3), deterministic=True)
    assert torch.equal(actions, torch.zeros(5, 2))
    # at u = mean = 0 the tanh correction is 0: log π = Σ_dims (−log std − ½ log 2π)
    expected = 2 * (-clamped_log_std - 0.5 * math.log(2 * math.pi))
    assert_close(log_probs, torch.full((5,), expected), tolerance=1e-5)


@pytest.mark.parametrize("action_layer", [0, 1])
def test_q_critic_shapes(action_layer):
    critic = QCritic(obs_dim=5, action_dim=2, hidden_sizes=(16, 8), activation="relu", action_layer=action_layer)
    q_values = critic(torch.randn(7, 5), torch.randn(7, 2))
    assert q_values.shape == (7,)
    linears = [layer for layer in critic.modules() if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == (
        [(7, 16), (16, 8), (8, 1)] if action_layer == 0 else [(5, 16), (18, 8), (8, 1)]
    )


def test_q_critic_action_layer_one_uses_the_action_only_after_the_first_layer():
    critic = QCritic(obs_dim=3, action_dim=2, hidden_sizes=(4,), activation="relu", action_layer=1)
    obs, actions = torch.randn(6, 3), torch.randn(6, 2)
    features = torch.relu(critic.obs_layers[0](obs))
    assert_close(critic(obs, actions), critic.q_layers(torch.cat([features, actions], dim=1)).squeeze(-1))
    with pytest.raises(ValueError, match="hidden layers"):
        QCritic(obs_dim=3, action_dim=2, hidden_sizes=(), action_layer=1)


def test_deterministic_actor_numpy_forward_equals_torch():
    torch.manual_seed(2)
    actor = DeterministicActor(obs_dim=4, action_dim=3, hidden_sizes=(32, 32), activation="relu", init="fan_in")
    obs = torch.randn(9, 4)
    actions = actor(obs)
    assert actions.shape == (9, 3) and actions.abs().max() <= 1.0
    np.testing.assert_allclose(actor.numpy_forward()(obs.numpy()), actions.detach().numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "network",
    [
        lambda: DeterministicActor(obs_dim=3, action_dim=2, hidden_sizes=(400, 300), init="fan_in"),
        lambda: QCritic(obs_dim=3, action_dim=2, hidden_sizes=(400, 300), action_layer=1, init="fan_in"),
    ],
)
def test_fan_in_init_bounds(network):
    torch.manual_seed(3)
    *hidden, final = [layer for layer in network().modules() if isinstance(layer, nn.Linear)]
    for layer in hidden:
        bound = 1 / math.sqrt(layer.in_features)
        for tensor in (layer.weight, layer.bias):
            # within the bound, and spread over it (uniform on ±bound, not a narrower default)
            assert tensor.abs().max() <= bound and tensor.abs().max() > 0.9 * bound
    for tensor in (final.weight, final.bias):
        assert tensor.abs().max() <= 3e-3


def test_fan_in_init_final_layer_bound_is_what_default_init_exceeds():
    torch.manual_seed(4)
    final = DeterministicActor(obs_dim=3, action_dim=2, hidden_sizes=(300,), init="default").body[-2]
    assert final.weight.abs().max() > 3e-3
    fan_in_init_(final, final_layer_bound=1e-4)  # alone, the layer is the final one
    assert final.weight.abs().max() <= 1e-4


def test_soft_update_by_hand():
    def network(weight: list[float], bias: float, running_mean: float) -> nn.Sequential:
        layers = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
        with torch.no_grad():
            layers[0].weight.copy_(torch.tensor([weight]))
            layers[0].bias.fill_(bias)
        layers[1].running_mean.fill_(running_mean)
        layers[1].num_batches_tracked.fill_(int(running_mean))
        return layers

    target, online = network([1.0, 2.0], 0.0, 3.0), network([11.0, 22.0], 10.0, 7.0)
    SoftUpdate(target, online, tau=0.1)()
    # 0.9·target + 0.1·online
    assert_close(target[0].weight, torch.tensor([[2.0, 4.0]]))
    assert_close(target[0].bias, torch.tensor([1.0]))
    # buffers copied, not averaged
    assert target[1].running_mean.item() == 7.0 and target[1].num_batches_tracked.item() == 7
    assert online[0].weight.tolist() == [[11.0, 22.0]]  # the online net is left alone
    assert target[0].weight.grad is None and target[0].weight.requires_grad


def test_soft_update_follows_the_networks_as_training_and_resuming_change_them():
    online = nn.Linear(1, 1)
    target = nn.Linear(1, 1)
    update_target = SoftUpdate(target, online, tau=0.5)  # made once, when the algorithm is built
    # a resume loads both networks' saved weights; an optimiser step then moves the online one
    online.load_state_dict({"weight": torch.tensor([[4.0]]), "bias": torch.tensor([2.0])})
    target.load_state_dict({"weight": torch.tensor([[0.0]]), "bias": torch.tensor([0.0])})
    optimizer = torch.optim.SGD(online.parameters(), lr=1.0)
    online(torch.tensor([[1.0]])).sum().backward()  # gradient 1 for the weight and the bias
    optimizer.step()
    update_target()
    # halfway from the loaded target (0, 0) to the stepped online net (4 - 1, 2 - 1)
    assert target.weight.item() == 1.5 and target.bias.item() == 0.5


def test_set_learning_rate_reaches_every_group_of_every_optimizer():
    first, second, third = (nn.Parameter(torch.tensor([1.0])) for _ in range(3))
    two_groups = torch.optim.SGD([{"params": [first], "lr": 1.0}, {"params": [second], "lr": 0.5}])
    one_group = torch.optim.SGD([third], lr=2.0)
    set_learning_rate([two_groups, one_group], 0.25)
    for parameter in (first, second, third):
        parameter.grad = torch.tensor([4.0])
    two_groups.step()
    one_group.step()
    # each parameter moved by 0.25 * its gradient: 1 - 0.25 * 4 = 0
    assert [first.item(), second.item(), third.item()] == [0.0, 0.0, 0.0]
