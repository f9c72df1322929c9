"""REINFORCE: the policy gradient by hand on a tiny batch, learning on CartPole, and exact resume after SIGKILL
with several env copies caught in the middle of their episodes."""

from __future__ import annotations

import pytest

import deeprl
from tests.conftest import final_evaluation_replayed, kill_and_resume

TRAIN_ARGS = [
    "--seed",
    "2",
    "--steps",
    "3000",
    "--quiet",
    "--set",
    "n_envs=3",
    "--set",
    "episodes_per_update=2",
    "--set",
    "checkpoint_every=600",
    "--set",
    "eval_every=1000",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
    "--set",
    "baseline=value",
]


@pytest.mark.resume
def test_sigkill_mid_episodes_resumes_exactly(tmp_path, uninterrupted):
    kill_and_resume(
        tmp_path,
        uninterrupted("reinforce", "CartPole-v1", TRAIN_ARGS),
        TRAIN_ARGS,
        1200,
        algo="reinforce",
        tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"),
    )


@pytest.mark.learning
def test_reinforce_learns_cartpole(tmp_path):
    agent = deeprl.train(
        "reinforce",
        "CartPole-v1",
        seed=0,
        steps=12_000,
        run_dir=tmp_path / "run",
        tensorboard=False,
        eval_every=4000,
        eval_episodes=5,
        final_eval_episodes=10,
    )
    assert agent.summary["best"]["mean_return"] > 150  # a random policy averages about 22
    # the files hold the policies that were scored: loaded, each plays its final evaluation's episodes again
    for which, policy in (("best", "best_policy.pt"), ("final", "policy.pt")):
        replayed = final_evaluation_replayed(agent.run_dir, policy, "CartPole-v1", episodes=10)
        assert replayed == agent.summary[which]["returns"], which
