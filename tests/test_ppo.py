"""PPO and A2C: the losses and target_kl's stop by hand on tiny batches, normalisation statistics that travel inside
policy files, raw Box samples in the rollout, learning CartPole, and exact resume after SIGKILL with both
normalisations on."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch

import deeprl
import deeprl.run
from deeprl import onpolicy
from deeprl.agent import BEST_POLICY, FINAL_POLICY
from deeprl.algos import ppo
from deeprl.algos.ppo import METRIC_COLUMNS, approx_kl, clipped_surrogate, value_loss_of
from deeprl.buffers import RolloutBuffer
from deeprl.experience import EnvRunner
from deeprl.nets import ActorCritic
from deeprl.normalization import RewardScaler, RunningMeanStd
from deeprl.onpolicy import UpdateContext, explained_variance, make_optimizer
from tests.conftest import kill_and_resume

QUICK = {"tensorboard": False, "progress": False, "eval_episodes": 2, "final_eval_episodes": 2}


def test_clipped_surrogate_and_clip_fraction_by_hand():
    ratios = torch.tensor([0.5, 1.0, 1.5, 1.1, 0.7])
    advantages = torch.tensor([1.0, -2.0, 2.0, -1.0, -1.0])
    # min(r A, clip(r, 0.8, 1.2) A) per sample:
    #   r 0.5, A  1: min(0.5, 0.8)   =  0.5   (clipped, but the unclipped term is the smaller)
    #   r 1.0, A -2: min(-2, -2)     = -2
    #   r 1.5, A  2: min(3.0, 2.4)   =  2.4   (clipped: no gain beyond 1.2)
    #   r 1.1, A -1: min(-1.1, -1.1) = -1.1   (inside the range)
    #   r 0.7, A -1: min(-0.7, -0.8) = -0.8   (clipped: no gain below 0.8)
    # mean = (0.5 - 2 + 2.4 - 1.1 - 0.8) / 5 = -0.2, so the loss is 0.2; |r - 1| > 0.2 for 0.5, 1.5, 0.7: 3 of 5
    old_log_probs = torch.tensor([-1.0, -0.5, -2.0, -0.1, -3.0])
    loss, clip_fraction = clipped_surrogate(old_log_probs + ratios.log(), old_log_probs, advantages, 0.2)
    assert loss.item() == pytest.approx(0.2, abs=1e-6)
    assert clip_fraction.item() == pytest.approx(0.6)


def test_value_clipping_by_hand():
    old_values = torch.tensor([1.0, 1.0, 1.0])
    values = torch.tensor([1.5, 0.9, 3.0])
    returns = torch.tensor([2.0, 0.0, 1.0])
    # unclipped squared errors: 0.25, 0.81, 4; kept within 0.2 of the old value: 1.2, 0.9, 1.2 -> 0.64, 0.81, 0.04
    # the larger of each pair: 0.64, 0.81, 4 -> mean 5.45 / 3
    assert value_loss_of(values, old_values, returns, 0.2).item() == pytest.approx(5.45 / 3)
    assert value_loss_of(values, old_values, returns, None).item() == pytest.approx(5.06 / 3)


def test_explained_variance_and_approx_kl_by_hand():
    # returns 1..4 have variance 1.25; the residuals 0, 0, 0, -1 have variance 0.1875: 1 - 0.1875 / 1.25 = 0.85
    assert explained_variance(np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.85)
    assert math.isnan(explained_variance(np.array([1.0, 2.0]), np.array([3.0, 3.0])))
    # ratios 1/2 and 2: (r - 1) - log r = ln 2 - 0.5 and 1 - ln 2, which sum to 0.5
    old_log_probs = torch.tensor([-1.0, -2.0])
    log_probs = old_log_probs + torch.tensor([0.5, 2.0]).log()
    assert approx_kl(log_probs, old_log_probs).item() == pytest.approx(0.25)


def epochs_at_ratio_two(target_kl: float | None) -> tuple[dict[str, float], bool]:
    """PPO's epochs (3 of 2 minibatches) on 4 samples of a 2-action policy that gives each action 1/2 (its head
    zeroed) where the collecting policy gave 1/4: every ratio is 2. With advantages 1 the ratio lies beyond the clip
    range on the side the advantage favours, so the policy gets no gradient and every minibatch's KL stays put.
    (the update's row, whether any parameter moved)"""
    policy = ActorCritic(1, {"type": "Discrete", "n": 2}, hidden_sizes=(4,))
    with torch.no_grad():
        policy.policy_head.weight.zero_()
        policy.policy_head.bias.zero_()
    rollout = RolloutBuffer(4, 1, (1,), np.dtype(np.float32))
    for t in range(4):
        rollout.add([[t]], [t % 2], rewards=[1.0], terminated=[False], truncated=[False], truncated_values=[0.0])
    rollout.log_probs[...] = math.log(0.25)
    rollout.advantages[...] = rollout.returns[...] = 1.0
    config = ppo.Config(n_epochs=3, batch_size=2, target_kl=target_kl, normalize_advantages=False)
    context = UpdateContext(
        config, policy, make_optimizer(config, list(policy.parameters())), np.random.default_rng(0), torch.device("cpu")
    )
    before = [parameter.clone() for parameter in policy.parameters()]
    (row,) = ppo.minibatch_epochs(context, [rollout], clip_range=0.2, step=4)
    return row, any(not torch.equal(old, new) for old, new in zip(before, policy.parameters(), strict=True))


def test_target_kl_stops_the_epochs_at_the_first_minibatch_past_it():
    # r = 2 for every sample: (r - 1) - ln r = 1 - ln 2 = 0.3068528 in every minibatch, the first one included
    kl = 1 - math.log(2)
    stopped, moved = epochs_at_ratio_two(target_kl=0.3)
    assert stopped["epochs"] == 0.0 and not moved  # the first minibatch passes 0.3: its step is not taken
    assert stopped["approx_kl"] == pytest.approx(kl)  # the row shows the KL that stopped it
    assert stopped["policy_loss"] == pytest.approx(-1.2) and stopped["clip_fraction"] == 1.0  # -min(2, 1.2) * 1
    for target_kl in (0.31, None):  # never passed: 3 epochs of 2 steps each (the value head learns)
        full, moved = epochs_at_ratio_two(target_kl)
        assert full["epochs"] == 3.0 and moved
        assert full["approx_kl"] == pytest.approx(kl)


def test_running_statistics_and_reward_scaling_by_hand():
    stats = RunningMeanStd((2,))
    data = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 13.0], [7.0, 15.0]])
    stats.update(data[:1])
    stats.update(data[1:])
    assert stats.mean == pytest.approx(data.mean(axis=0), rel=1e-4)  # a prior count of 1e-4 weighs almost nothing
    assert stats.var == pytest.approx(data.var(axis=0), abs=0.01)  # the prior: mean 0, variance 1
    scaler = RewardScaler(n_envs=1, gamma=0.5)
    # discounted returns 2, then 0.5 * 2 + 2 = 3: the first reward over a std of ~0 is clipped at 10; the second is
    # 2 over the std of {2, 3}, 0.5; the episode's end restarts the discounted return
    assert scaler(np.array([2.0]), np.array([False])) == pytest.approx([10.0])
    assert scaler(np.array([2.0]), np.array([True])) == pytest.approx([4.0], rel=1e-3)
    assert scaler.returns.tolist() == [0.0]


def test_best_policy_file_carries_the_observation_statistics_of_its_step(tmp_path, monkeypatch):
    probe = np.array([0.3, -1.5, 0.05, 2.0], dtype=np.float32)
    saved = []  # (file name, step, network input of the probe, action on it) as each policy file was written
    save_policy = deeprl.run.save_policy

    def recording_save_policy(path, algo, agent, env_spec, step=None):
        saved.append((path.name, step, agent.network_input(probe[None])[0].copy(), agent.act(probe)))
        save_policy(path, algo, agent, env_spec, step)

    monkeypatch.setattr(deeprl.run, "save_policy", recording_save_policy)
    agent = deeprl.train(
        "ppo",
        "CartPole-v1",
        seed=3,
        steps=1536,
        run_dir=tmp_path / "run",
        n_envs=2,
        n_steps=128,
        eval_every=512,
        normalize_observations=True,
        **QUICK,
    )
    best = [entry for entry in saved if entry[0] == BEST_POLICY][-1]
    # saved before the end, so its statistics are older than the final ones (another seed, if this ever fails)
    assert best[1] == agent.summary["best_policy_step"] < 1536
    assert not np.array_equal(best[2], agent.network_input(probe[None])[0])

    alone = tmp_path / "elsewhere" / "agent.pt"  # the file by itself: nothing beside it is needed
    alone.parent.mkdir()
    shutil.copy(tmp_path / "run" / BEST_POLICY, alone)
    meta = json.loads(torch.load(alone, weights_only=True)["meta_json"])
    assert set(meta["obs_normalization"]) == {"mean", "var", "count", "clip"}
    loaded = deeprl.load(alone)
    assert np.array_equal(loaded.network_input(probe[None])[0], best[2])
    assert loaded.act(probe) == best[3]
    final = deeprl.load(tmp_path / "run" / FINAL_POLICY)
    assert np.array_equal(final.network_input(probe[None])[0], agent.network_input(probe[None])[0])


def test_box_actions_stored_raw_and_sent_clipped_and_scaled_and_lr_annealed(tmp_path, monkeypatch):
    stored, sent = [], []
    add, env_step = onpolicy.RolloutBuffer.add, EnvRunner.step

    def recording_add(self, obs, actions, *rest):
        stored.append(actions.copy())
        add(self, obs, actions, *rest)

    def recording_step(self, actions, step):
        sent.append(actions.copy())
        return env_step(self, actions, step)

    monkeypatch.setattr(onpolicy.RolloutBuffer, "add", recording_add)
    monkeypatch.setattr(EnvRunner, "step", recording_step)
    # a wide Gaussian (std e^1) samples far beyond the [-1, 1] it acts in (Pendulum's torque of ±2) at once
    agent = deeprl.train(
        "ppo",
        "Pendulum-v1",
        seed=0,
        steps=256,
        run_dir=tmp_path / "run",
        n_envs=2,
        n_steps=64,
        log_std_init=1.0,
        lr=4e-4,
        lr_end=0.0,
        eval_every=256,
        **QUICK,
    )
    raw, scaled = np.concatenate(stored), np.concatenate(sent)
    assert (np.abs(raw) > 1).mean() > 0.2
    np.testing.assert_allclose(scaled, 2 * np.clip(raw, -1, 1), rtol=0, atol=1e-6)
    with open(agent.run_dir / "metrics.csv") as metrics:
        updates = [row for row in csv.DictReader(metrics) if row["kind"] == "update"]
    # a row per rollout of 2 x 64 steps; lr falls linearly from 4e-4 at step 0 to 0 at step 256
    assert [(int(row["step"]), float(row["lr"])) for row in updates] == [(128, 2e-4), (256, 0.0)]
    assert all(row[column] for row in updates for column in METRIC_COLUMNS)
    loaded = deeprl.load(agent.run_dir)
    for action in (loaded.act(obs, deterministic=False) for obs in np.random.default_rng(0).normal(size=(50, 3))):
        assert action.shape == (1,) and -2 <= action[0] <= 2


@pytest.mark.learning
def test_ppo_solves_cartpole_with_its_default_preset(tmp_path):
    agent = deeprl.train(
        "ppo",
        "CartPole-v1",
        seed=1,
        run_dir=tmp_path / "run",
        tensorboard=False,
        progress=False,
        stop_on_solve=True,
        final_eval_episodes=5,
    )
    assert agent.summary["solved_at_step"] is not None and agent.summary["solved_at_step"] <= 20_000


@pytest.mark.learning
def test_a2c_learns_cartpole(tmp_path):
    agent = deeprl.train(
        "a2c",
        "CartPole-v1",
        seed=0,
        steps=10_000,
        run_dir=tmp_path / "run",
        tensorboard=False,
        progress=False,
        eval_every=5000,
        eval_episodes=5,
        final_eval_episodes=5,
    )
    assert agent.summary["best"]["mean_return"] > 150  # a random policy averages about 22


PENDULUM_ARGS = [
    "--seed",
    "3",
    "--steps",
    "1536",
    "--quiet",
    "--set",
    "n_envs=2",
    "--set",
    "n_steps=64",
    "--set",
    "batch_size=32",
    "--set",
    "n_epochs=2",
    "--set",
    "normalize_observations=true",
    "--set",
    "normalize_rewards=true",
    "--set",
    "checkpoint_every=384",
    "--set",
    "eval_every=512",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
def test_sigkill_resumes_exactly_with_normalisation(tmp_path, uninterrupted):
    """Pendulum: Box actions, a time limit every 200 steps (bootstrapped values), both normalisations."""
    kill_and_resume(
        tmp_path,
        uninterrupted("ppo", "Pendulum-v1", PENDULUM_ARGS),
        PENDULUM_ARGS,
        768,
        algo="ppo",
        env="Pendulum-v1",
        tags=(
            "train/return",
            "update/policy_loss",
            "update/value_loss",
            "update/approx_kl",
            "update/clip_fraction",
            "update/explained_variance",
            "eval/return",
        ),
    )


A2C_ARGS = [
    "--seed",
    "4",
    "--steps",
    "2400",
    "--quiet",
    "--set",
    "n_envs=3",
    "--set",
    "checkpoint_every=600",
    "--set",
    "eval_every=1200",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "normalize_observations=true",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
def test_a2c_sigkill_resumes_exactly(tmp_path, uninterrupted):
    """A2C on CartPole with three copies killed mid-episode."""
    kill_and_resume(
        tmp_path,
        uninterrupted("a2c", "CartPole-v1", A2C_ARGS),
        A2C_ARGS,
        1200,
        algo="a2c",
        tags=("train/return", "update/policy_loss", "update/value_loss", "update/explained_variance", "eval/return"),
    )
