"""Bad environments, bad numbers and unwritable places stop a run with one clear line (exit code 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--steps", "300", "--quiet", "--set", "learning_starts=50", "--set", "eval_every=1000",
         "--set", "tensorboard=false", "--set", "final_eval_episodes=2"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.run([sys.executable, "-m", "deeprl", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_observation_of_the_wrong_shape_is_named_before_any_file_is_written(tmp_path):
    result = run_cli("train", "dqn", "tests.custom_envs:WrongShape", "--run-dir", "run", *SMALL, cwd=tmp_path)
    assert_one_line_error(result, "tests.custom_envs:WrongShape", "reset()", "outside its observation_space",
                          "[0. 0.]", "shape (2,)")
    assert not (tmp_path / "run").exists()


def test_observation_out_of_bounds_during_training_is_named(tmp_path):
    result = run_cli("train", "dqn", "tests.custom_envs:EscapesBounds", "--run-dir", "run", *SMALL, cwd=tmp_path)
    assert_one_line_error(result, "tests.custom_envs:EscapesBounds", "step()", "[10.]")


def test_check_env_runs_gymnasiums_checker(tmp_path):
    result = run_cli("train", "dqn", "tests.custom_envs:IgnoresSeed", "--run-dir", "run", "--set", "check_env=true",
                     *SMALL, cwd=tmp_path)
    assert_one_line_error(result, "tests.custom_envs:IgnoresSeed", "fails Gymnasium's env checker")
    assert not (tmp_path / "run").exists()
    healthy = run_cli("train", "dqn", "tests.custom_envs:Corridor", "--run-dir", "ok", "--set", "check_env=true",
                      "--set", "max_episode_steps=50",
                      *SMALL, cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stderr


def test_unwritable_run_directory(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    result = run_cli("train", "dqn", "CartPole-v1", "--run-dir", "a_file/run", *SMALL, cwd=tmp_path)
    assert_one_line_error(result, "cannot create run directory a_file/run")
    assert (tmp_path / "a_file").read_text() == "not a directory"


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_diverging_loss_stops_with_the_step(tmp_path, loss):
    result = run_cli("train", "dqn", "CartPole-v1", "--run-dir", "run", *SMALL, "--set", "lr=1e30",
                     "--set", f"loss={loss}", "--set", "max_grad_norm=none", cwd=tmp_path)
    line = assert_one_line_error(result, "the loss became", "at step")
    step = int(line.split("at step ")[1].split(";")[0])
    assert 50 < step <= 300
