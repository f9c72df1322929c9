"""The Python API as Stable-Baselines3 users call it: env objects and functions making envs, budgets too small to
learn, `agent.predict`, a loaded agent's summary, the critic a setting chooses, and envs without a time limit."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import deeprl
from deeprl.api import first_update, resolve_config
from deeprl.envs import check_time_limit, make_env
from deeprl.errors import DeeprlError
from deeprl.evaluation import evaluate
from deeprl.run import TIME_COLUMN
from tests.conftest import run_deeprl
from tests.custom_envs import Corridor

# a small PPO: 2 copies x 64 steps a rollout, so 512 steps make 4 updates
SMALL_PPO = {
    "seed": 0,
    "steps": 512,
    "n_steps": 64,
    "n_envs": 2,
    "eval_every": 256,
    "eval_episodes": 2,
    "final_eval_episodes": 2,
    "lr_end": None,
    "progress": False,
}


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without its wall-clock column (the one column that differs between equal runs)."""
    with open(run_dir / "metrics.csv", newline="") as stream:
        return [{key: value for key, value in row.items() if key != TIME_COLUMN} for row in csv.DictReader(stream)]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_deeprl(*args, cwd=cwd, env={"DEEPRL_MAX_STEPS": None})  # never capped, whatever the outer env says


# ------------------------------------------------------------------------------------------ env objects


@pytest.fixture(scope="module")
def id_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("id") / "run"
    deeprl.train("ppo", "CartPole-v1", run_dir=run_dir, **SMALL_PPO)
    return run_dir


def test_an_env_instance_trains_as_its_id_does(id_run, tmp_path, capsys):
    agent = deeprl.train("ppo", gym.make("CartPole-v1"), run_dir=tmp_path / "run", **SMALL_PPO)
    assert agent.summary["steps"] == 512
    # a registered id rebuilds the instance: the run records the id and is the very run of the id
    assert "env: CartPole-v1\n" in (tmp_path / "run" / "config.yaml").read_text()
    assert metric_rows(tmp_path / "run") == metric_rows(id_run)
    assert "Python object" not in capsys.readouterr().err
    # so resume, eval and --config need nothing more: the command line continues it
    result = run_cli("resume", str(tmp_path / "run"), "--steps", "640", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["steps"] == 640


def test_an_instance_keeps_its_keyword_arguments_and_time_limit(tmp_path):
    env = gym.make("CartPole-v1", max_episode_steps=50, sutton_barto_reward=True, render_mode="rgb_array")
    deeprl.train("ppo", env, run_dir=tmp_path / "run", **SMALL_PPO)
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "env: CartPole-v1\n" in config and "sutton_barto_reward: true" in config
    assert "max_episode_steps: 50\n" in config
    lengths = [int(float(row["length"])) for row in metric_rows(tmp_path / "run") if row["kind"] == "train"]
    assert max(lengths) <= 50


def test_a_function_making_the_env_is_called_for_every_copy(tmp_path, capsys):
    made = []

    def make_cartpole() -> gym.Env:
        env = gym.make("CartPole-v1")
        made.append(env)
        return env

    agent = deeprl.train("ppo", make_cartpole, run_dir=tmp_path / "run", **SMALL_PPO)
    assert agent.summary["steps"] == 512
    # one to look at, one for the checks, 2 training copies, then evaluations' own envs
    assert len(made) > 4
    assert "env: CartPole-v1 (Python object)\n" in (tmp_path / "run" / "config.yaml").read_text()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no later process can rebuild" in line]
    assert len(warnings) == 1
    assert "deeprl.train(resume=RUN, env=env)" in warnings[0] and "deeprl.evaluate(agent, env)" in warnings[0]
    # the same env given again evaluates and resumes; without it, one line says what is needed
    assert evaluate(agent, make_cartpole, episodes=2).returns.shape == (2,)
    with pytest.raises(DeeprlError, match=r"given as a Python object .*deeprl\.train\(resume=RUN, env=env\)"):
        deeprl.train(resume=tmp_path / "run", steps=640)
    resumed = deeprl.train(resume=tmp_path / "run", steps=640, env=make_cartpole, progress=False)
    assert resumed.summary["steps"] == 640
    loaded = deeprl.load(tmp_path / "run")
    with pytest.raises(DeeprlError, match="pass the same env again"):
        evaluate(loaded, episodes=2)
    result = run_cli("eval", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "was given to deeprl.train as a Python object" in result.stderr


def test_an_env_object_no_id_rebuilds_is_copied(tmp_path):
    """A custom class instance has no spec: each copy is a deep copy of the object as it was given."""
    corridor = gym.wrappers.TimeLimit(Corridor(length=3), max_episode_steps=20)
    agent = deeprl.train("ppo", corridor, run_dir=tmp_path / "run", **SMALL_PPO)
    assert agent.summary["steps"] == 512
    assert corridor.unwrapped.position == 0  # the object itself was never stepped
    assert "env: Corridor (Python object)\n" in (tmp_path / "run" / "config.yaml").read_text()
    result = evaluate(agent, corridor, episodes=3)  # its copies again: at least 3 steps of -1, at most 20
    assert np.all((result.returns <= -3) & (result.returns >= -20))
    with pytest.raises(DeeprlError, match="trained on another env than the one given"):
        deeprl.train(resume=tmp_path / "run", steps=640, env=gym.make("CartPole-v1"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (lambda: "CartPole-v1", "the env function .* returned str, not a gymnasium.Env"),
        (42, "env must be an env id, a gymnasium.Env or a function making one"),
    ],
)
def test_what_is_not_an_env_is_refused_in_one_line(tmp_path, env, message):
    with pytest.raises(DeeprlError, match=message):
        deeprl.train("ppo", env, run_dir=tmp_path / "run", **SMALL_PPO)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ budgets and updates


def test_first_updates_by_hand():
    def config(algo, **settings):
        return resolve_config(algo, "CartPole-v1", preset="default", settings=settings)[1]

    assert first_update(config("ppo", n_steps=1024, n_envs=4))[0] == 4096
    # off-policy: a step past learning_starts, batch_size transitions stored, on a multiple of train_freq
    assert first_update(config("dqn", learning_starts=100, batch_size=32, train_freq=4))[0] == 104
    assert first_update(config("dqn", learning_starts=10, batch_size=64, train_freq=1))[0] == 64
    assert "batch_size = 64" in first_update(config("dqn", learning_starts=10, batch_size=64, train_freq=1))[1]
    # REINFORCE waits for whole episodes, the actor-critics learn from every rollout: nothing to refuse
    assert first_update(config("reinforce")) is None and first_update(config("actor-critic")) is None


@pytest.mark.parametrize(
    ("algo", "env", "steps", "needed"),
    [
        ("ppo", "LunarLander-v3", 200, "16384, after one rollout of n_steps * n_envs = 1024 * 16"),
        ("ppo", "LunarLander-v3", 2000, "16384, after one rollout of n_steps * n_envs = 1024 * 16"),
        ("sac", "Pendulum-v1", 500, "1001, after learning_starts = 1000"),
    ],
)
def test_a_budget_that_ends_before_the_first_update_is_refused(tmp_path, algo, env, steps, needed):
    refusal = re.escape(f"would not learn in {steps} steps: its first update comes at step {needed}")
    with pytest.raises(DeeprlError, match=refusal):
        deeprl.train(algo, env, steps=steps, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_command_line_refuses_ppo_on_pendulum_at_3000_steps(tmp_path):
    result = run_cli("train", "ppo", "Pendulum-v1", "--steps", "3000", "--run-dir", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "deeprl: error: ppo would not learn in 3000 steps: its first update comes at step 4096, "
        "after one rollout of n_steps * n_envs = 1024 * 4 steps; give at least 4096 steps "
        "(total_steps) or change that setting\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_run_with_few_updates_says_how_many(tmp_path, capsys):
    # gradient rounds of 2 steps at steps 104, 108 and 112: 6 updates
    agent = deeprl.train(
        "dqn",
        "CartPole-v1",
        steps=112,
        learning_starts=100,
        batch_size=32,
        train_freq=4,
        gradient_steps=2,
        eval_every=1000,
        eval_episodes=2,
        final_eval_episodes=2,
        run_dir=tmp_path / "run",
        progress=False,
    )
    assert agent.summary["updates"] == 6
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["updates"] == 6
    assert "this run made only 6 learning updates in 112 steps" in capsys.readouterr().err


def test_a_run_that_stopped_because_it_solved_does_not_say_it_barely_trained(tmp_path, capsys):
    # a return of 5 is solved at the first evaluation (CartPole's episodes last 8 steps or more): one update
    agent = deeprl.train(
        "ppo",
        "CartPole-v1",
        steps=10_000,
        n_envs=1,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        eval_every=64,
        eval_episodes=2,
        final_eval_episodes=2,
        solve_threshold=5,
        solve_confirm_episodes=0,
        stop_on_solve=True,
        run_dir=tmp_path / "run",
        progress=False,
    )
    assert (agent.summary["solved"], agent.summary["steps"], agent.summary["updates"]) == (True, 64, 1)
    assert "barely trained" not in capsys.readouterr().err


def test_on_policy_updates_are_counted_in_eval_json(id_run):
    summary = json.loads((id_run / "eval.json").read_text())
    assert summary["updates"] == 4 == sum(row["kind"] == "update" for row in metric_rows(id_run))


def test_the_step_cap_refuses_nothing(tmp_path, monkeypatch, capsys):
    """DEEPRL_MAX_STEPS smoke-tests scripts: a cap below the first update runs (and says only that it caps)."""
    monkeypatch.setenv("DEEPRL_MAX_STEPS", "200")
    agent = deeprl.train(
        "dqn",
        "CartPole-v1",
        steps=900,
        eval_every=1000,
        eval_episodes=2,
        final_eval_episodes=2,
        run_dir=tmp_path / "run",
        progress=False,
    )
    assert agent.summary["steps"] == 200 and agent.summary["updates"] == 0
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["deeprl: warning: DEEPRL_MAX_STEPS=200 caps this run at 200 steps (its settings ask for 900)"]


# ------------------------------------------------------------------------------------- time limits


def test_an_env_without_a_time_limit_is_refused_before_the_run_starts(tmp_path):
    with pytest.raises(DeeprlError, match=r"CliffWalking-v1 has no time limit .*set max_episode_steps=N"):
        deeprl.train("dqn", "CliffWalking-v1", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    check_time_limit(make_env("CliffWalking-v1", max_episode_steps=100), "CliffWalking-v1")  # a limit given: fine


# ---------------------------------------------------------------------- the critic a setting chooses


def test_critic_q_starts_from_the_q_preset(capsys):
    _, config, preset = resolve_config("actor-critic", "CartPole-v1", settings={"critic": "q"})
    assert preset == "q"
    assert (config.critic, config.all_actions, config.reward_scale, config.lr) == ("q", True, 0.01, 2e-3)
    assert "critic=q starts from the 'q' preset for CartPole-v1" in capsys.readouterr().err
    # the user's own settings still win, and a named preset is kept
    _, config, _ = resolve_config("actor-critic", "CartPole-v1", settings={"critic": "q", "lr": 1e-3})
    assert config.lr == 1e-3 and config.all_actions
    _, config, preset = resolve_config("actor-critic", "CartPole-v1", preset="default", settings={"critic": "q"})
    assert preset == "default" and not config.all_actions


# ------------------------------------------------------------------------- predict and loaded agents


@pytest.mark.parametrize(
    ("algo", "env", "settings"),
    [
        ("dqn", "CartPole-v1", {"learning_starts": 32, "batch_size": 16}),
        ("ppo", "CartPole-v1", {"n_steps": 32, "n_envs": 2}),
        ("sac", "Pendulum-v1", {"learning_starts": 32, "batch_size": 16}),
    ],
)
def test_predict_returns_the_action_and_no_state(tmp_path, algo, env, settings):
    trained = deeprl.train(
        algo,
        env,
        steps=64,
        eval_every=64,
        eval_episodes=1,
        final_eval_episodes=1,
        run_dir=tmp_path / "run",
        progress=False,
        **settings,
    )
    observations = np.stack([make_env(env).reset(seed=seed)[0] for seed in range(5)])
    for agent in (trained, deeprl.load(tmp_path / "run")):
        action, state = agent.predict(observations[0], deterministic=True)
        assert state is None and np.array_equal(action, agent.act(observations[0], deterministic=True))
        actions, state = agent.predict(observations)
        assert state is None and np.array_equal(actions, agent.act(observations))


def test_a_loaded_agent_carries_its_runs_summary(id_run, tmp_path):
    agent = deeprl.load(id_run)
    assert agent.summary == json.loads((id_run / "eval.json").read_text())
    loose = tmp_path / "policy.pt"  # a model file outside any run directory has no summary
    loose.write_bytes((id_run / "policy.pt").read_bytes())
    assert deeprl.load(loose).summary is None


def test_eval_of_a_folder_that_is_no_run_says_so(tmp_path):
    result = run_cli("eval", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"deeprl: error: {tmp_path} is neither a run directory (no config.yaml) nor a model file\n"
