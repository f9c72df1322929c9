"""The actor-critic family: each critic trains; the TD actor-critic learns CartPole; exact resume after SIGKILL
with Q and V critics on a shared trunk; Q critics refuse continuous actions in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import deeprl
from deeprl.errors import DeeprlError
from tests.test_resume import (
    Trainer,
    assert_resumes_identically,
    deeprl_command,
    environment,
    stop_with_rows_past_checkpoint,
)

TRAIN_ARGS = [
    "--seed", "1", "--steps", "2400", "--quiet", "--set", "critic=advantage", "--set", "shared_trunk=true",
    "--set", "n_envs=2", "--set", "n_steps=7", "--set", "checkpoint_every=500", "--set", "eval_every=1000",
    "--set", "eval_episodes=2", "--set", "final_eval_episodes=2", "--set", "tensorboard=true",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("actor_critic") / "run"
    subprocess.run(deeprl_command("train", "actor-critic", "CartPole-v1", "--run-dir", str(run_dir), *TRAIN_ARGS),
                   env=environment(), check=True, stdout=subprocess.DEVNULL, timeout=300)
    return run_dir


def test_sigkill_resumes_exactly(tmp_path, reference):
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS, algo="actor-critic")
    stop_with_rows_past_checkpoint(trainer, 1000)
    trainer.kill()
    assert_resumes_identically(trainer.run_dir, reference,
                               tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"))


@pytest.mark.parametrize("critic", ["q", "advantage", "td"])
def test_each_critic_trains_and_logs_its_updates(tmp_path, critic):
    agent = deeprl.train("actor-critic", "CartPole-v1", seed=0, steps=400, run_dir=tmp_path / critic, critic=critic,
                         n_envs=2, n_steps=5, tensorboard=False, eval_every=400, eval_episodes=2,
                         final_eval_episodes=2)
    rows = [line.split(",") for line in (agent.run_dir / "metrics.csv").read_text().splitlines()]
    updates = [row for row in rows if row[0] == "update"]
    assert len(updates) == 400 // (2 * 5)  # one update per rollout of 5 steps of 2 copies
    assert all(float(row[rows[0].index("value_loss")]) > 0 for row in updates)
    assert deeprl.load(agent.run_dir).act(np.zeros(4, dtype=np.float32)) in (0, 1)


def test_td_actor_critic_learns_cartpole(tmp_path):
    agent = deeprl.train("actor-critic", "CartPole-v1", seed=0, steps=20_000, run_dir=tmp_path / "run",
                         tensorboard=False, eval_every=5000, eval_episodes=5, final_eval_episodes=5)
    assert agent.summary["best"]["mean_return"] > 120  # a random policy averages about 22


def test_q_critics_refuse_continuous_actions(tmp_path):
    with pytest.raises(DeeprlError, match=r"critic=q learns Q\(s, a\) for each discrete action; Pendulum-v1 has "
                                          r"Box\(-2.0, 2.0, \(1,\), float32\): use critic=td"):
        deeprl.train("actor-critic", "Pendulum-v1", critic="q", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    result = subprocess.run([sys.executable, "-m", "deeprl", "train", "actor-critic", "Pendulum-v1", "--set",
                             "critic=advantage", "--run-dir", str(tmp_path / "cli")], env=environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "use critic=td" in result.stderr
