"""MultiDiscrete and MultiBinary actions and action masks: the policy heads' arithmetic by hand, sampling that never
draws a masked action, learning on the example envs (deeprl.envs.examples) and bad input refused in one line."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl import media
from deeprl.action_heads import (
    BernoulliHead,
    CategoricalHead,
    MultiCategoricalHead,
    action_description,
    categorical_log_prob_entropy,
)
from deeprl.algos import algorithms_for, dqn
from deeprl.algos.dqn import td_target
from deeprl.buffers import ReplayBuffer, TransitionBatch
from deeprl.envs.examples import CodeLock, GridWalk, LightSwitches, MaskedGrid
from deeprl.errors import DeeprlError
from deeprl.nets import ActorCritic
from deeprl.policies import PolicyAgent
from tests.conftest import kill_and_resume, run_deeprl
from tests.custom_envs import ConflictingMasks, MaskedDials

CODE_LOCK = "deeprl.envs.examples:CodeLock"
LIGHT_SWITCHES = "deeprl.envs.examples:LightSwitches"


def entropy_of(*probabilities: float) -> float:
    return -sum(p * math.log(p) for p in probabilities if p > 0)


def one_hot_policy(action_space: gym.Space, obs_dim: int = 3) -> ActorCritic:
    """A policy whose head outputs are its bias alone (zero weights), so a test can set them."""
    policy = ActorCritic(obs_dim, action_description(action_space), hidden_sizes=(4,), value="none")
    torch.nn.init.zeros_(policy.policy_head.weight)
    return policy


# ------------------------------------------------------------------------------------------- the math by hand


def test_multidiscrete_log_probability_and_entropy_are_sums_over_dimensions():
    # dimension 0 of 2 choices: probabilities 1/4, 3/4; dimension 1 of 3: 1/4, 1/4, 1/2
    head = MultiCategoricalHead([2, 3])
    logits = torch.tensor([[0.0, math.log(3), 0.0, 0.0, math.log(2)]])
    log_probs, entropy = head.log_prob_entropy(logits, None, torch.tensor([[1, 2]]), None)
    assert log_probs.item() == pytest.approx(math.log(3 / 4) + math.log(1 / 2))
    assert entropy.item() == pytest.approx(entropy_of(1 / 4, 3 / 4) + entropy_of(1 / 4, 1 / 4, 1 / 2))
    # the padding of the narrower dimension is never drawn, and torch.distributions agrees
    distribution = head.distribution(logits, None, None)
    assert distribution.log_prob(torch.tensor([[1, 2]])).item() == pytest.approx(log_probs.item())
    assert distribution.entropy().item() == pytest.approx(entropy.item())
    draws = head.sample(logits.numpy().repeat(4000, axis=0), None, np.random.default_rng(0), False, None)
    assert set(draws[:, 0]) == {0, 1} and set(draws[:, 1]) == {0, 1, 2}
    assert np.mean(draws[:, 0] == 1) == pytest.approx(3 / 4, abs=0.03)
    assert np.mean(draws[:, 1] == 2) == pytest.approx(1 / 2, abs=0.03)


def test_multibinary_log_probability_and_entropy_are_sums_over_bits():
    head = BernoulliHead(2)
    logits = torch.tensor([[0.0, math.log(3)]])  # p(1) = 1/2 and 3/4
    log_probs, entropy = head.log_prob_entropy(logits, None, torch.tensor([[1.0, 0.0]]), None)
    assert log_probs.item() == pytest.approx(math.log(1 / 2) + math.log(1 / 4))
    assert entropy.item() == pytest.approx(entropy_of(1 / 2, 1 / 2) + entropy_of(3 / 4, 1 / 4))
    draws = head.sample(logits.numpy().repeat(4000, axis=0), None, np.random.default_rng(0), False, None)
    assert draws.mean(axis=0) == pytest.approx([1 / 2, 3 / 4], abs=0.03)


def test_deterministic_acting_is_the_mode_of_each_dimension():
    rng = np.random.default_rng(0)
    multi = MultiCategoricalHead([2, 3, 4])
    logits = np.array([[0.0, 1.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]], dtype=np.float32)
    assert multi.sample(logits, None, rng, True, None).tolist() == [[1, 0, 3]]
    torch_mode = multi.distribution(torch.from_numpy(logits), None, None).mode
    assert torch_mode.tolist() == [[1, 0, 3]]
    binary = BernoulliHead(3)
    bits = np.array([[2.0, -1.0, 0.0]], dtype=np.float32)  # a bit at probability 1/2 is 0, in NumPy and torch alike
    assert binary.sample(bits, None, rng, True, None).tolist() == [[1.0, 0.0, 0.0]]
    assert binary.distribution(torch.from_numpy(bits), None, None).mode.tolist() == [[1.0, 0.0, 0.0]]
    # an agent acting deterministically sends the env each dimension's mode, in the env's own dtype and shape
    space = gym.spaces.MultiDiscrete([2, 3, 4], start=[1, 0, -2])
    policy = one_hot_policy(space)
    with torch.no_grad():
        policy.policy_head.bias.copy_(torch.from_numpy(logits[0]))
    agent = PolicyAgent(policy, gym.spaces.Box(-1, 1, (3,)), space, {})
    action = agent.act(np.zeros(3, dtype=np.float32))
    assert action.tolist() == [2, 0, 1] and action.dtype == space.dtype and action in space


def test_masked_log_probability_and_entropy_by_hand():
    # probabilities 1/6, 2/6, 3/6 among the first three actions; the fourth, most likely of all, is masked
    logits = torch.tensor([[0.0, math.log(2), math.log(3), 5.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False]])
    log_probs, entropy = categorical_log_prob_entropy(logits, torch.tensor([2]), mask)
    assert log_probs.item() == pytest.approx(math.log(1 / 2))
    assert entropy.item() == pytest.approx(entropy_of(1 / 6, 2 / 6, 3 / 6))
    (log_probs + entropy).sum().backward()  # 0 * log 0 of the masked action: no NaN in the gradient either
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 3] == 0
    # the distribution torch acts with agrees, and a masked action is never drawn or the mode
    distribution = CategoricalHead(4).distribution(logits.detach(), None, mask)
    assert distribution.entropy().item() == pytest.approx(entropy.item())
    assert distribution.mode.item() == 2
    rows, valid = logits.detach().numpy().repeat(6000, axis=0), mask.numpy().repeat(6000, axis=0)
    draws = CategoricalHead(4).sample(rows, None, np.random.default_rng(0), False, valid)
    assert np.bincount(draws, minlength=4) / 6000 == pytest.approx([1 / 6, 2 / 6, 3 / 6, 0], abs=0.02)


def test_masked_multidiscrete_masks_each_dimension_on_its_own():
    head = MultiCategoricalHead([2, 3])
    logits = torch.zeros(1, 5)
    mask = torch.tensor([[False, True, True, False, True]])  # dimension 0: only 1; dimension 1: 0 or 2
    log_probs, entropy = head.log_prob_entropy(logits, None, torch.tensor([[1, 2]]), mask)
    assert log_probs.item() == pytest.approx(math.log(1) + math.log(1 / 2))
    assert entropy.item() == pytest.approx(0 + math.log(2))
    rng = np.random.default_rng(1)
    draws = head.sample(np.zeros((2000, 5), np.float32), None, rng, False, mask.numpy().repeat(2000, axis=0))
    assert set(draws[:, 0]) == {1} and set(draws[:, 1]) == {0, 2}


def test_a_draw_that_rounds_to_the_total_never_lands_on_a_masked_last_action():
    class DrawsTheTotal:
        def random(self, shape):
            return np.ones(shape)  # past every cumulative probability

    valid = np.array([[True, True, False]])
    assert CategoricalHead(3).sample(np.zeros((1, 3)), None, DrawsTheTotal(), False, valid).tolist() == [1]


# ------------------------------------------------------------------------------------------ learning and input


@pytest.mark.learning
@pytest.mark.parametrize(
    ("algo", "env", "steps", "settings", "at_least"),
    [
        ("ppo", CODE_LOCK, 2048, {"n_steps": 256}, 8.0),
        ("a2c", LIGHT_SWITCHES, 8000, {}, 8.0),
    ],
)
def test_policies_learn_multidiscrete_and_multibinary_actions(tmp_path, algo, env, steps, settings, at_least):
    """Random guesses earn 3.6 (CodeLock) and 5 (LightSwitches) of the best 10. Measured final returns, seeds 0, 1,
    2: ppo at 2 048 steps 10, 10, 10 (each the best from step 1 024 on); a2c at 8 000 steps 9.93, 9.93, 9.95
    (at 4 000: 8.94, 9.70, 9.91)."""
    agent = deeprl.train(algo, env, seed=0, steps=steps, run_dir=tmp_path / "run", progress=False, **settings)
    assert agent.summary["final"]["mean_return"] >= at_least
    loaded = deeprl.load(tmp_path / "run" / "policy.pt")  # the final policy, rebuilt from its file
    env_instance = CodeLock() if env == CODE_LOCK else LightSwitches()
    obs = np.stack([env_instance.reset(seed=seed)[0] for seed in range(8)])
    assert np.array_equal(loaded.act(obs), agent.act(obs))
    assert all(action in env_instance.action_space for action in loaded.act(obs))


def test_reinforce_and_actor_critic_act_in_multidiscrete_and_multibinary_spaces(tmp_path):
    for algo, env in (("reinforce", CODE_LOCK), ("actor-critic", LIGHT_SWITCHES)):
        agent = deeprl.train(algo, env, seed=0, steps=300, run_dir=tmp_path / algo, progress=False, eval_every=300)
        assert agent.act(np.zeros(agent.observation_space.shape, dtype=np.float32)) in agent.action_space


def test_value_based_and_continuous_algorithms_refuse_them_naming_the_algorithms_that_fit(tmp_path):
    fitting = "algorithms for it: reinforce, a2c, ppo, actor-critic"
    assert algorithms_for(CodeLock().action_space) == algorithms_for(LightSwitches().action_space)
    result = run_deeprl("train", "dqn", CODE_LOCK, "--run-dir", "x", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"deeprl: error: dqn cannot act in {CODE_LOCK}: its action space is MultiDiscrete([2 3 4]) ({fitting})"
    ]
    result = run_deeprl("train", "sac", LIGHT_SWITCHES, "--run-dir", "x", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"deeprl: error: sac cannot act in {LIGHT_SWITCHES}: its action space is MultiBinary(6) ({fitting})"
    ]
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------------------------------- action masks

MASKED_GRID = "deeprl.envs.examples:MaskedGrid"


def test_dqn_target_maxes_over_the_next_states_valid_actions_only():
    returns, discounts = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0])
    next_q_target = torch.tensor([[4.0, 9.0, 2.0], [7.0, 1.0, 3.0]])
    next_q_online = torch.tensor([[0.0, 5.0, 1.0], [0.0, 0.0, 0.0]])
    masks = torch.tensor([[True, False, True], [True, True, True]])  # row 1: a terminal successor, all valid
    # classic: max over {4, 2} = 4; Double DQN: the online net's best valid action is 2, valued 2 by the target net
    assert td_target(returns, discounts, next_q_target, None, masks).tolist() == [1 + 0.5 * 4, 2.0]
    assert td_target(returns, discounts, next_q_target, next_q_online, masks).tolist() == [1 + 0.5 * 2, 2.0]
    assert td_target(returns, discounts, next_q_target).tolist() == [1 + 0.5 * 9, 2.0]  # without masks: all actions


@pytest.mark.parametrize(("double_q", "masked", "loss"), [(True, True, 1.0), (False, True, 1.0), (True, False, 16.0)])
def test_dqn_learns_towards_the_best_valid_next_action(double_q, masked, loss):
    """Q(s, .) = (1, 5, 2) everywhere; action 1 is masked in s': the target is 0 + 1 * Q(s', 2) = 2, not 5."""
    config = dqn.Config(env="x", hidden_sizes=(4,), loss="mse", double_q=double_q)
    learner = dqn.DQN(config, gym.spaces.Box(0, 1, (3,)), gym.spaces.Discrete(3), torch.device("cpu"))
    with torch.no_grad():
        for parameter in learner.q_net.parameters():
            parameter.zero_()
        learner.q_net.body[-1].bias.copy_(torch.tensor([1.0, 5.0, 2.0]))
    learner.target_net.load_state_dict(learner.q_net.state_dict())
    next_masks = torch.tensor([[True, False, True]]) if masked else None
    batch = TransitionBatch(
        torch.zeros(1, 3), torch.tensor([0]), torch.tensor([0.0]), torch.zeros(1, 3), torch.tensor([1.0]), next_masks
    )
    assert learner.learn(batch, step=1)["loss"] == loss  # (Q(s, 0) - y)^2 = (1 - 2)^2, or (1 - 5)^2 unmasked


def test_replay_keeps_each_transitions_next_state_mask_and_samples_the_bootstrap_states():
    replay = ReplayBuffer(8, (1,), np.dtype(np.float32), mask_width=3)
    masks = [np.array([True, False, False]), np.array([False, True, False]), np.array([False, False, True])]
    for step, mask in enumerate(masks):
        replay.add(np.array([step]), 0, 1.0, np.array([step + 1]), False, False, mask)
    one_step = replay.batch_at(np.array([0, 2]), n_step=1, gamma=0.9)
    assert one_step.next_action_masks.tolist() == [masks[0].tolist(), masks[2].tolist()]
    three_step = replay.batch_at(np.array([0]), n_step=3, gamma=0.9)  # bootstraps from the third transition's state
    assert three_step.next_action_masks.tolist() == [masks[2].tolist()]
    restored = ReplayBuffer(8, (1,), np.dtype(np.float32), mask_width=3)
    restored.load_state_dict(replay.state_dict())
    assert np.array_equal(restored.next_action_masks[:3], np.stack(masks))


@pytest.mark.parametrize(("algo", "steps"), [("ppo", 2048), ("dqn", 1500), ("reinforce", 600), ("actor-critic", 600)])
def test_no_masked_action_is_ever_taken_in_training_or_evaluation(tmp_path, algo, steps):
    """MaskedGrid counts every invalid action it is given (at most 4 of its 36 actions are valid anywhere)."""
    GridWalk.invalid_actions = 0
    settings = {
        "ppo": {"n_steps": 256},
        # a small Q-network: the preset's 256x256 spends most of the run in its updates, and the masks are the same
        "dqn": {"learning_starts": 200, "hidden_sizes": (32, 32)},
    }.get(algo, {})
    deeprl.train(algo, MASKED_GRID, seed=0, steps=steps, run_dir=tmp_path / "run", progress=False, **settings)
    assert GridWalk.invalid_actions == 0
    deeprl.evaluate(deeprl.load(tmp_path / "run"), MASKED_GRID, episodes=3, deterministic=False)
    assert GridWalk.invalid_actions == 0
    media.play_frames(deeprl.load(tmp_path / "run"), MaskedGrid, episodes=1)  # what `deeprl watch` plays
    assert GridWalk.invalid_actions == 0
    # the same agent on the same grid without its mask: the count is real
    deeprl.evaluate(deeprl.load(tmp_path / "run"), "deeprl.envs.examples:GridWalk", episodes=3, deterministic=False)
    assert GridWalk.invalid_actions > 0


def test_masked_multidiscrete_actions_from_info_are_never_invalid(tmp_path):
    MaskedDials.invalid = 0
    agent = deeprl.train("a2c", "tests.custom_envs:MaskedDials", seed=0, steps=2000, progress=False, run_dir=tmp_path)
    assert MaskedDials.invalid == 0
    assert agent.summary["final"]["mean_return"] == 20.0


def test_the_action_masks_method_takes_precedence_over_info(tmp_path):
    ConflictingMasks.received = []
    deeprl.train(
        "ppo", "tests.custom_envs:ConflictingMasks", seed=0, steps=64, n_steps=32, run_dir=tmp_path, progress=False
    )
    assert set(ConflictingMasks.received) == {0}


def test_agents_act_under_a_given_mask_and_refuse_bad_ones_in_one_line(tmp_path):
    agent = deeprl.train("dqn", MASKED_GRID, seed=0, steps=300, learning_starts=100, run_dir=tmp_path / "q")
    obs = MaskedGrid().reset()[0]
    corner = MaskedGrid().action_masks()  # from cell 0: cells 1 and 6
    assert agent.act(obs, action_mask=corner) in (1, 6)
    assert all(agent.act(obs, deterministic=False, action_mask=corner) in (1, 6) for _ in range(20))
    with pytest.raises(DeeprlError, match=r"^action_mask has shape \(35,\), but the action space Discrete\(36\)"):
        agent.act(obs, action_mask=np.ones(35, dtype=bool))
    with pytest.raises(DeeprlError, match=r"^action_mask allows no action in a state: an env must leave"):
        agent.act(obs, action_mask=np.zeros(36, dtype=bool))
    policy = deeprl.train("ppo", CODE_LOCK, seed=0, steps=64, n_steps=32, run_dir=tmp_path / "p", progress=False)
    code = CodeLock().reset(seed=0)[0]
    only = np.array([False, True, True, False, False, False, False, False, True])  # 1, then 0, then 3
    assert policy.act(code, deterministic=False, action_mask=only).tolist() == [1, 0, 3]
    with pytest.raises(DeeprlError, match="masks apply to Discrete and MultiDiscrete actions, not MultiBinary"):
        deeprl.train("ppo", LIGHT_SWITCHES, steps=64, n_steps=32, run_dir=tmp_path / "b", progress=False).act(
            np.zeros(6, np.float32), action_mask=np.ones(6, bool)
        )


BAD_MASKS = [
    (
        "tests.custom_envs:WrongMaskShape",
        "deeprl: error: the action mask of tests.custom_envs:WrongMaskShape (action_masks()) has shape (4,), but the "
        "action space Discrete(3) takes masks of shape (3,)",
    ),
    (
        "tests.custom_envs:NoValidAction",
        "deeprl: error: the action mask of tests.custom_envs:NoValidAction (action_masks()) allows no action in a "
        "state: an env must leave at least one valid action (of each dimension) in every state it expects an action in",
    ),
    (
        "tests.custom_envs:MaskedBoxActions",
        "deeprl: error: the action mask of tests.custom_envs:MaskedBoxActions (action_masks()) is given, but masks "
        "apply to Discrete and MultiDiscrete actions, not Box(-1.0, 1.0, (1,), float32)",
    ),
]


@pytest.mark.parametrize(("env", "message"), BAD_MASKS, ids=["wrong-shape", "no-valid-action", "box-actions"])
def test_bad_masks_stop_the_run_in_one_line(tmp_path, env, message):
    result = run_deeprl("train", "ppo", env, "--run-dir", "run", "--steps", "64", "--set", "n_steps=32", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(message), lines[0]
    # a mask that does not fit is refused before the run starts; one that leaves nothing, where it comes (step 3)
    assert (tmp_path / "run").exists() == env.endswith("NoValidAction")


MASKED_DQN_ARGS = [
    *("--seed", "0", "--steps", "1600", "--quiet"),
    *("--set", "checkpoint_every=400", "--set", "eval_every=800", "--set", "learning_starts=200"),
    *("--set", "eval_episodes=2", "--set", "final_eval_episodes=2", "--set", "tensorboard=true"),
    *("--set", "max_episode_steps=60"),  # truncated episodes too: their final states' masks bootstrap
    *("--set", "hidden_sizes=32,32"),  # the preset's 256x256 updates would take most of the time
]


@pytest.mark.resume
def test_masked_dqn_resumes_exactly_after_sigkill(tmp_path, uninterrupted):
    """The replay memory in the checkpoint holds each transition's next-state mask; the current state's mask is
    recomputed by replaying the episode in progress."""
    kill_and_resume(
        tmp_path, uninterrupted("dqn", MASKED_GRID, MASKED_DQN_ARGS), MASKED_DQN_ARGS, 400, algo="dqn", env=MASKED_GRID
    )


MASKED_REINFORCE_ARGS = [
    *("--seed", "2", "--steps", "2400", "--quiet", "--set", "n_envs=3", "--set", "episodes_per_update=2"),
    *("--set", "checkpoint_every=600", "--set", "eval_every=1200", "--set", "eval_episodes=2"),
    *("--set", "final_eval_episodes=2", "--set", "tensorboard=true", "--set", "max_episode_steps=60"),
]


@pytest.mark.resume
def test_masked_reinforce_resumes_exactly_after_sigkill(tmp_path, uninterrupted):
    """Three copies killed mid-episode: the checkpoint's unfinished episodes hold the masks of their steps."""
    kill_and_resume(
        tmp_path,
        uninterrupted("reinforce", MASKED_GRID, MASKED_REINFORCE_ARGS),
        MASKED_REINFORCE_ARGS,
        600,
        algo="reinforce",
        env=MASKED_GRID,
        tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"),
    )
