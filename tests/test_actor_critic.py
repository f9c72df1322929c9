"""The actor-critic family: each critic trains; the critics' targets by hand; the TD actor-critic learns CartPole;
exact resume after SIGKILL with Q and V critics on a shared trunk, multi-step targets and two learning rates;
Q critics refuse continuous actions in one line."""

from __future__ import annotations

import math

import pytest
import torch

import deeprl
from deeprl.algos.actor_critic import Config, QHead, critic_targets
from deeprl.errors import DeeprlError
from tests.conftest import final_evaluation_replayed, kill_and_resume, run_deeprl

TRAIN_ARGS = [
    "--seed",
    "1",
    "--steps",
    "2400",
    "--quiet",
    "--set",
    "critic=advantage",
    "--set",
    "shared_trunk=true",
    "--set",
    "n_envs=2",
    "--set",
    "n_steps=7",
    "--set",
    "checkpoint_every=500",
    "--set",
    "eval_every=1000",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
    "--set",
    "multi_step=true",
    "--set",
    "actor_lr=3e-4",  # the advantage preset's two learning rates
]


@pytest.mark.resume
def test_sigkill_resumes_exactly(tmp_path, uninterrupted):
    kill_and_resume(
        tmp_path,
        uninterrupted("actor-critic", "CartPole-v1", TRAIN_ARGS),
        TRAIN_ARGS,
        1000,
        algo="actor-critic",
        tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"),
    )


@pytest.mark.parametrize("critic", ["q", "advantage", "td"])
def test_each_critic_trains_and_logs_its_updates(tmp_path, critic):
    agent = deeprl.train(
        "actor-critic",
        "CartPole-v1",
        seed=0,
        steps=400,
        run_dir=tmp_path / critic,
        critic=critic,
        n_envs=2,
        n_steps=5,
        tensorboard=False,
        eval_every=400,
        eval_episodes=2,
        final_eval_episodes=2,
    )
    rows = [line.split(",") for line in (agent.run_dir / "metrics.csv").read_text().splitlines()]
    updates = [row for row in rows if row[0] == "update"]
    assert len(updates) == 400 // (2 * 5)  # one update per rollout of 5 steps of 2 copies
    for column in ("policy_loss", "value_loss"):  # a measurement of each update, not a placeholder
        losses = [float(row[rows[0].index(column)]) for row in updates]
        assert all(math.isfinite(loss) for loss in losses) and len(set(losses)) > len(losses) // 2, column
    # the policy file holds the actor that was scored: loaded, it plays the final evaluation's episodes again
    replayed = final_evaluation_replayed(agent.run_dir, "policy.pt", "CartPole-v1", episodes=2)
    assert replayed == agent.summary["final"]["returns"]


@pytest.mark.learning
def test_td_actor_critic_learns_cartpole(tmp_path):
    agent = deeprl.train(
        "actor-critic",
        "CartPole-v1",
        seed=0,
        steps=20_000,
        run_dir=tmp_path / "run",
        tensorboard=False,
        eval_every=5000,
        eval_episodes=5,
        final_eval_episodes=5,
    )
    assert agent.summary["best"]["mean_return"] > 120  # a random policy averages about 22


def test_q_critics_refuse_continuous_actions(tmp_path):
    with pytest.raises(
        DeeprlError,
        match=r"critic=q learns Q\(s, a\) for each discrete action; Pendulum-v1 has "
        r"Box\(-2.0, 2.0, \(1,\), float32\): use critic=td",
    ):
        deeprl.train("actor-critic", "Pendulum-v1", critic="q", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    result = run_deeprl(
        "train", "actor-critic", "Pendulum-v1", "--set", "critic=advantage", "--run-dir", "cli", cwd=tmp_path
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "use critic=td" in result.stderr


# Three steps of two copies, flattened step by step: copy 0 ends at step 1 (a true terminal), copy 1 is cut by a
# time limit at step 2. Rewards 1, gamma 0.5, the critic's value of each step's next observation below.
ROLLOUT = {
    "rewards": torch.ones(6),
    "terminated": torch.tensor([False, False, True, False, False, False]),
    "truncated": torch.tensor([False, False, False, False, False, True]),
    "next_values": torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0, 60.0]),
}


def test_one_step_targets_by_hand():
    targets = critic_targets(**ROLLOUT, gamma=0.5, n_steps=3, multi_step=False)
    # r + 0.5 V(s'), except copy 0's terminal (no future) at step 1
    torch.testing.assert_close(targets, torch.tensor([6.0, 11.0, 1.0, 21.0, 26.0, 31.0]))


def test_multi_step_targets_by_hand():
    targets = critic_targets(**ROLLOUT, gamma=0.5, n_steps=3, multi_step=True)
    # copy 0: step 2 bootstraps at the rollout's end (1 + 0.5 * 50), step 1 is terminal (1), step 0 sees only
    # its own episode (1 + 0.5 * 1). Copy 1: step 2 bootstraps from its final observation (1 + 0.5 * 60),
    # steps 1 and 0 discount it (1 + 0.5 * 31, 1 + 0.5 * 16.5).
    torch.testing.assert_close(targets, torch.tensor([1.5, 9.25, 1.0, 16.5, 26.0, 31.0]))


def test_advantage_head_starts_near_zero():
    """The advantage critic's head is A(s, .) on top of V: it starts near 0, so no action looks better before it
    has been tried (learnt from an arbitrary start, an action seldom tried kept a low Q and the policy dropped it)."""
    torch.manual_seed(0)
    states = torch.randn(256, 4)
    advantage = QHead(None, 4, 2, Config(env="CartPole-v1", critic="advantage"))(states)
    q_values = QHead(None, 4, 2, Config(env="CartPole-v1", critic="q"))(states)
    assert advantage.abs().max() < 0.05 < q_values.abs().max()
