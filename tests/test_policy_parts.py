"""Policy-gradient building blocks: discounted returns, GAE of a RolloutBuffer and its minibatches, and the
ActorCritic network, against values worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deeprl.algos.ppo import gae
from deeprl.buffers import RolloutBuffer, discounted_returns
from deeprl.nets import ActorCritic

GAMMA = 0.5  # powers of 1/2 (and GAE's 1/4) are exact in float32, so results compare exactly
DISCRETE = {"type": "Discrete", "n": 3}
BOX = {"type": "Box", "dim": 2}


def assert_close(actual: torch.Tensor, expected) -> None:
    """Float32 comparison without torch.testing, whose first call imports sympy (about a second)."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_discounted_returns_by_hand():
    rewards = np.array([1.0, 2.0, 3.0])
    # G2 = 3; G1 = 2 + 0.5*3 = 3.5; G0 = 1 + 0.5*3.5 = 2.75
    np.testing.assert_array_equal(discounted_returns(rewards, GAMMA), [2.75, 3.5, 3.0])
    # cut by a time limit with V(final obs) = 4: G2 = 3 + 0.5*4 = 5; G1 = 2 + 0.5*5 = 4.5; G0 = 1 + 0.5*4.5 = 3.25
    np.testing.assert_array_equal(discounted_returns(rewards, GAMMA, bootstrap=4.0), [3.25, 4.5, 5.0])


def test_discounted_returns_per_env_column():
    rewards = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # (time, envs): the same episode twice
    returns = discounted_returns(rewards, GAMMA, bootstrap=np.array([0.0, 4.0]))
    np.testing.assert_array_equal(returns, [[2.75, 3.25], [3.5, 4.5], [3.0, 5.0]])  # the two columns above
    assert returns.dtype == np.float32


# Two envs, four steps. Env 0 ends in a true terminal at step 1 (also flagged truncated with a value that
# must be ignored: a terminal on the time limit's last step has no future) and starts a new episode at
# step 2. Env 1 is cut by a time limit at step 2 with V(final obs) = 6 and starts a new episode at step 3.
REWARDS = [[1, 2], [2, 0], [0, 1], [1, 3]]
VALUES = [[2, 4], [1, 2], [2, 2], [4, 0]]
TERMINATED = [[False, False], [True, False], [False, False], [False, False]]
TRUNCATED = [[False, False], [True, False], [False, True], [False, False]]
TRUNCATED_VALUES = [[0, 0], [8, 0], [0, 6], [0, 0]]
LAST_VALUES = [2, 4]  # V of the observations after step 3


def filled_rollout(gamma: float, gae_lambda: float) -> RolloutBuffer:
    rollout = RolloutBuffer(4, 2, (1,), np.dtype(np.float32))
    for step in range(4):
        rollout.add(
            obs=[[step], [step]],
            actions=[0, 1],
            rewards=REWARDS[step],
            terminated=TERMINATED[step],
            truncated=TRUNCATED[step],
            truncated_values=TRUNCATED_VALUES[step],
        )
    assert rollout.full
    rollout.values[...] = VALUES  # as the policy's scoring fills them in
    rollout.advantages[...], rollout.returns[...] = gae(
        rollout, np.array(LAST_VALUES, dtype=np.float32), gamma, gae_lambda
    )
    return rollout


def test_gae_by_hand():
    rollout = filled_rollout(GAMMA, gae_lambda=0.5)  # gamma * lambda = 0.25
    # env 0: t3: delta = 1 + 0.5*2 - 4 = -2, A = -2
    #        t2: delta = 0 + 0.5*4 - 2 = 0, A = 0 + 0.25*(-2) = -0.5
    #        t1: terminal, delta = 2 + 0 - 1 = 1, A = 1 (chain cut)
    #        t0: delta = 1 + 0.5*1 - 2 = -0.5, A = -0.5 + 0.25*1 = -0.25
    # env 1: t3: delta = 3 + 0.5*4 - 0 = 5, A = 5
    #        t2: truncated, delta = 1 + 0.5*6 - 2 = 2, A = 2 (chain cut)
    #        t1: delta = 0 + 0.5*2 - 2 = -1, A = -1 + 0.25*2 = -0.5
    #        t0: delta = 2 + 0.5*2 - 4 = -1, A = -1 + 0.25*(-0.5) = -1.125
    expected = np.array([[-0.25, -1.125], [1.0, -0.5], [-0.5, 2.0], [-2.0, 5.0]])
    np.testing.assert_array_equal(rollout.advantages, expected)
    np.testing.assert_array_equal(rollout.returns, expected + np.array(VALUES))  # [[1.75, 2.875], [2, 1.5], ...]


def test_gae_lambda_one_is_bootstrapped_returns_minus_values():
    rollout = filled_rollout(GAMMA, gae_lambda=1.0)
    values = np.array(VALUES, dtype=np.float32)
    # env 0: episode [0, 1] ends in a terminal (no bootstrap); episode [2, 3] runs on (bootstrap V = 2)
    env0 = np.concatenate([discounted_returns([1, 2], GAMMA), discounted_returns([0, 1], GAMMA, bootstrap=2.0)])
    # env 1: episode [0, 2] is cut with V(final obs) = 6; episode [3] runs on (bootstrap V = 4)
    env1 = np.concatenate(
        [discounted_returns([2, 0, 1], GAMMA, bootstrap=6.0), discounted_returns([3], GAMMA, bootstrap=4.0)]
    )
    np.testing.assert_array_equal(env0, [2, 2, 1, 2])  # by hand: 1 + 0.5*2, 2; 0 + 0.5*2, 1 + 0.5*2
    np.testing.assert_array_equal(env1, [3, 2, 4, 5])  # by hand: 2 + 0.5*2, 0 + 0.5*4, 1 + 0.5*6; 3 + 0.5*4
    np.testing.assert_array_equal(rollout.advantages, np.stack([env0, env1], axis=1) - values)
    np.testing.assert_array_equal(rollout.returns, np.stack([env0, env1], axis=1))


def test_gae_lambda_zero_is_td_errors():
    rollout = filled_rollout(GAMMA, gae_lambda=0.0)
    # the deltas of test_gae_by_hand
    np.testing.assert_array_equal(rollout.advantages, [[-0.5, -1.0], [1.0, -1.0], [0.0, 2.0], [-2.0, 5.0]])


def test_rollout_refuses_adding_past_full():
    rollout = RolloutBuffer(1, 1, (1,), np.dtype(np.float32))
    row = dict(obs=[[0.0]], actions=[0], rewards=[0.0], terminated=[False], truncated=[False], truncated_values=[0.0])
    rollout.add(**row)
    with pytest.raises(ValueError, match="reset"):
        rollout.add(**row)
    rollout.reset()
    assert not rollout.full
    rollout.add(**row)


def test_minibatches_cover_every_sample_once():
    n_steps, n_envs = 3, 4
    rollout = RolloutBuffer(n_steps, n_envs, (2,), np.dtype(np.float32), action_shape=(1,), action_dtype=np.float32)
    for step in range(n_steps):
        ids = step * n_envs + np.arange(n_envs, dtype=np.float32)  # each sample's id, stored in every field
        rollout.add(
            np.stack([ids, -ids], axis=1),
            ids[:, None],
            rewards=ids,
            terminated=np.zeros(n_envs),
            truncated=np.zeros(n_envs),
            truncated_values=np.zeros(n_envs),
        )
        rollout.log_probs[step] = rollout.values[step] = ids
    rollout.returns[...] = rollout.values  # advantages 0
    batches = list(rollout.minibatches(5, np.random.default_rng(0), "cpu"))
    assert [len(batch.obs) for batch in batches] == [5, 5, 2]
    ids = torch.cat([batch.obs[:, 0] for batch in batches])
    assert sorted(ids.tolist()) == list(range(12))
    assert ids.tolist() != list(range(12))  # shuffled
    for batch in batches:  # the fields of one row belong to one sample
        assert batch.obs.shape[1:] == (2,) and batch.actions.shape[1:] == (1,)
        assert_close(batch.obs[:, 1], -batch.obs[:, 0])
        for field in (batch.actions[:, 0], batch.old_log_probs, batch.old_values, batch.returns):
            assert_close(field, batch.obs[:, 0])
        assert (batch.advantages == 0).all()
    (whole,) = rollout.minibatches(12, np.random.default_rng(0), "cpu")
    assert sorted(whole.obs[:, 0].tolist()) == list(range(12))
    assert np.shares_memory(whole.obs.numpy(), rollout.obs)  # no copy of the whole rollout


def zeroed(net: ActorCritic) -> ActorCritic:
    """Every parameter 0: the trunk outputs tanh(0) = 0, so the policy output is the policy head's bias."""
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
    return net


def test_categorical_log_prob_entropy_and_argmax():
    net = zeroed(ActorCritic(4, DISCRETE, hidden_sizes=(8,)))
    with torch.no_grad():
        net.policy_head.bias.copy_(torch.log(torch.tensor([1.0, 2.0, 5.0])))  # probabilities 1/8, 2/8, 5/8
    obs = torch.randn(2, 4)
    log_probs, entropy, values = net.evaluate_actions(obs, torch.tensor([0, 2]))
    # ln(1/8) = -2.0794415, ln(5/8) = -0.4700036
    assert_close(log_probs, [-2.0794415, -0.4700036])
    # H = 1/8*2.0794415 + 2/8*1.3862944 + 5/8*0.4700036 = 0.2599302 + 0.3465736 + 0.2937523
    assert_close(entropy, [0.9002561, 0.9002561])
    assert_close(values, [0.0, 0.0])
    actions, log_probs, _ = net.act(obs, deterministic=True)
    assert actions.tolist() == [2, 2]
    assert_close(log_probs, [-0.4700036, -0.4700036])


def test_gaussian_log_prob_entropy_and_mean():
    net = zeroed(ActorCritic(3, BOX, hidden_sizes=(8,)))
    with torch.no_grad():
        net.policy_head.bias.copy_(torch.tensor([0.5, -1.0]))
        net.log_std.copy_(torch.tensor([0.0, np.log(2.0)]))  # std 1 and 2
    obs = torch.randn(1, 3)
    log_probs, entropy, _ = net.evaluate_actions(obs, torch.tensor([[1.5, 1.0]]))
    # z = (1.5-0.5)/1 = 1 and (1-(-1))/2 = 1; log N = sum(-z²/2 - ln σ - ln(2π)/2)
    # = -0.5 - 0.5 - 0 - 0.6931472 - 2*0.9189385 = -3.5310242
    assert_close(log_probs, [-3.5310242])
    # H = sum(1/2 + ln(2π)/2 + ln σ) = 1 + 1.8378771 + 0.6931472
    assert_close(entropy, [3.5310243])
    actions, log_probs, _ = net.act(obs, deterministic=True)
    assert_close(actions, [[0.5, -1.0]])
    assert_close(log_probs, [-0.6931472 - 1.8378771])  # at the mean z = 0


def test_box_samples_are_raw_and_scored_raw():
    torch.manual_seed(0)
    net = ActorCritic(3, BOX, log_std_init=2.0)  # std e² ≈ 7.4: most samples fall outside [-1, 1]
    obs = torch.zeros(64, 3)
    actions, log_probs, _ = net.act(obs, deterministic=False)
    assert (actions.abs() > 1).any()
    assert_close(log_probs, net.distribution(obs).log_prob(actions))


@pytest.mark.parametrize("value", ["separate", "shared"])
def test_value_shapes(value):
    net = ActorCritic(5, DISCRETE, value=value)
    obs = torch.randn(7, 5)
    assert net.value(obs).shape == (7,)
    actions, log_probs, values = net.act(obs, deterministic=False)
    assert actions.shape == log_probs.shape == values.shape == (7,)
    assert_close(values, net.value(obs))
    log_probs, entropy, values = net.evaluate_actions(obs, actions)
    assert log_probs.shape == entropy.shape == values.shape == (7,)


def test_value_none_has_no_value_parameters():
    net = ActorCritic(5, BOX, value="none")
    assert not any("value" in name for name, _ in net.named_parameters())
    with pytest.raises(ValueError, match="value='none'"):
        net.value(torch.zeros(1, 5))
    _, _, values = net.act(torch.zeros(1, 5), deterministic=True)
    assert values is None


def test_shared_value_has_fewer_parameters_than_separate():
    def count(value: str) -> int:
        return sum(parameter.numel() for parameter in ActorCritic(5, DISCRETE, value=value).parameters())

    # 5x64 + 64x64 weights and biases of a second trunk: 384 + 4160 = 4544 more
    assert count("separate") - count("shared") == 4544
    assert count("shared") - count("none") == 65  # the value head 64 -> 1


def test_orthogonal_init_gains():
    net = ActorCritic(5, DISCRETE, hidden_sizes=(16,))
    policy_weight = net.policy_head.weight.detach()  # (3, 16): orthonormal rows scaled by 0.01
    assert_close(policy_weight @ policy_weight.T, 1e-4 * np.eye(3))
    value_weight = net.value_head.weight.detach()  # (1, 16): one unit row
    assert_close(value_weight @ value_weight.T, [[1.0]])
    hidden_weight = net.trunk[0].weight.detach()  # (16, 5): orthonormal columns scaled by sqrt(2)
    assert_close(hidden_weight.T @ hidden_weight, 2.0 * np.eye(5))
    assert all((layer.bias == 0).all() for layer in (net.trunk[0], net.policy_head, net.value_head))
    assert (ActorCritic(5, DISCRETE, hidden_sizes=(16,), orthogonal_init=False).policy_head.bias != 0).any()


@pytest.mark.parametrize("recurrent", [False, True])
def test_orthogonal_init_covers_the_cnn_of_picture_policies(recurrent: bool) -> None:
    """The Nature CNN's kernels and its 512-unit layer start orthogonal with gain sqrt(2), zero biases, as SB3's and
    CleanRL's CNN policies do (PyTorch's default init left PPO on Atari with smaller features than theirs)."""
    import gymnasium as gym

    from deeprl.nets import observation_encoder
    from deeprl.recurrent import RecurrentActorCritic

    frames = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action = {"type": "Discrete", "n": 6}

    def build(orthogonal_init: bool) -> torch.nn.Module:
        arguments = {"obs_dim": 4 * 84 * 84, "action": action, "encoder": observation_encoder(frames)}
        arguments.update(hidden_sizes=(), orthogonal_init=orthogonal_init)
        net = RecurrentActorCritic(**arguments, recurrent="gru") if recurrent else ActorCritic(**arguments)
        return net.encoder

    layers = [layer for layer in build(True).modules() if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear)]
    # (out, in x kernel) = (32, 4x8x8), (64, 32x4x4), (64, 64x3x3), (512, 3136): rows orthogonal, of norm sqrt(2)
    assert [tuple(layer.weight.flatten(1).shape) for layer in layers] == [(32, 256), (64, 512), (64, 576), (512, 3136)]
    for layer in layers:
        weight = layer.weight.detach().flatten(1)
        np.testing.assert_allclose((weight @ weight.T).numpy(), 2.0 * np.eye(len(weight)), atol=1e-4)
        assert (layer.bias == 0).all()
    assert build(True).layers[0].weight.is_contiguous(memory_format=torch.channels_last)  # the layout kept
    assert all((layer.bias != 0).any() for layer in build(False).modules() if isinstance(layer, torch.nn.Conv2d))


@pytest.mark.parametrize("action", [DISCRETE, BOX])
def test_json_arguments_rebuild_the_network(action):
    arguments = {
        "obs_dim": 4,
        "action": action,
        "hidden_sizes": [8, 8],
        "activation": "relu",
        "value": "shared",
        "log_std_init": -0.5,
        "orthogonal_init": False,
    }
    net = ActorCritic(**arguments)
    rebuilt = ActorCritic(**json.loads(json.dumps(arguments)))
    rebuilt.load_state_dict(net.state_dict())
    obs = torch.randn(3, 4)
    actions, _, _ = net.act(obs, deterministic=False)
    for rebuilt_output, output in zip(rebuilt.evaluate_actions(obs, actions), net.evaluate_actions(obs, actions)):
        assert_close(rebuilt_output, output)


@pytest.mark.parametrize("action", [DISCRETE, BOX])
def test_numpy_policy_matches_torch(action):
    net = ActorCritic(4, action)
    obs = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    expected = net.policy_head(net.trunk(torch.from_numpy(obs)))  # unnormalised logits, or means
    np.testing.assert_allclose(net.numpy_policy()(obs), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    if action["type"] == "Box":
        assert_close(net.distribution(torch.from_numpy(obs)).mean, expected)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="action must be"):
        ActorCritic(4, {"type": "Text", "max_length": 4})
    with pytest.raises(ValueError, match="value must be one of"):
        ActorCritic(4, DISCRETE, value="dueling")


@pytest.mark.parametrize("action", [DISCRETE, BOX])
def test_evaluate_actions_agrees_with_torch_distributions_to_the_bit(action):
    torch.manual_seed(3)
    net = ActorCritic(4, action, log_std_init=-0.7)
    obs = torch.randn(32, 4)
    with torch.no_grad():
        distribution = net.distribution(obs)
        actions = distribution.sample()
        log_probs, entropy, values = net.evaluate_actions(obs, actions)
        assert torch.equal(log_probs, distribution.log_prob(actions))
        assert torch.equal(entropy, distribution.entropy())
        assert torch.equal(values, net.value(obs))
