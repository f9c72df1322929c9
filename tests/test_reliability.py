"""Bad environments, bad numbers and unwritable places stop a run with one clear line (exit code 2)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import run_deeprl

SMALL = [
    "--steps",
    "300",
    "--quiet",
    "--set",
    "learning_starts=50",
    "--set",
    "eval_every=1000",
    "--set",
    "tensorboard=false",
    "--set",
    "final_eval_episodes=2",
]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_observation_of_the_wrong_shape_is_named_before_any_file_is_written(tmp_path):
    result = run_deeprl("train", "dqn", "tests.custom_envs:WrongShape", "--run-dir", "run", *SMALL, cwd=tmp_path)
    assert_one_line_error(
        result, "tests.custom_envs:WrongShape", "reset()", "outside its observation_space", "[0. 0.]", "shape (2,)"
    )
    assert not (tmp_path / "run").exists()


def test_observation_out_of_bounds_during_training_is_named(tmp_path):
    result = run_deeprl("train", "dqn", "tests.custom_envs:EscapesBounds", "--run-dir", "run", *SMALL, cwd=tmp_path)
    assert_one_line_error(result, "tests.custom_envs:EscapesBounds", "step()", "[10.]")


def test_check_env_runs_gymnasiums_checker(tmp_path):
    result = run_deeprl(
        "train",
        "dqn",
        "tests.custom_envs:IgnoresSeed",
        "--run-dir",
        "run",
        "--set",
        "check_env=true",
        *SMALL,
        cwd=tmp_path,
    )
    assert_one_line_error(result, "tests.custom_envs:IgnoresSeed", "fails Gymnasium's env checker")
    assert not (tmp_path / "run").exists()
    healthy = run_deeprl(
        "train",
        "dqn",
        "tests.custom_envs:Corridor",
        "--run-dir",
        "ok",
        "--set",
        "check_env=true",
        "--set",
        "max_episode_steps=50",
        *SMALL,
        cwd=tmp_path,
    )
    assert healthy.returncode == 0, healthy.stderr


def test_unwritable_run_directory(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    result = run_deeprl("train", "dqn", "CartPole-v1", "--run-dir", "a_file/run", *SMALL, cwd=tmp_path)
    assert_one_line_error(result, "cannot create run directory a_file/run")
    assert (tmp_path / "a_file").read_text() == "not a directory"


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_diverging_loss_stops_with_the_step(tmp_path, loss):
    result = run_deeprl(
        "train",
        "dqn",
        "CartPole-v1",
        "--run-dir",
        "run",
        *SMALL,
        "--set",
        "lr=1e30",
        "--set",
        f"loss={loss}",
        "--set",
        "max_grad_norm=none",
        cwd=tmp_path,
    )
    line = assert_one_line_error(result)
    # the shared off-policy loop's words: which value became what, when, and what to try
    match = re.fullmatch(r"deeprl: error: the loss became (nan|inf|-inf) at step (\d+); try a lower lr", line)
    assert match, line
    assert 50 < int(match.group(2)) <= 300


@pytest.mark.resume
def test_full_disk_while_checkpointing_stops_cleanly_and_resumes(tmp_path):
    """Writes that fail mid-run (here: a 60 kB file-size limit, which the kernel enforces like a full disk,
    failing the write with EFBIG) stop training with one line; the previous checkpoint stays intact and
    usable, no temporary file is left behind, and the run resumes once space is back."""
    limit = 60_000  # a checkpoint outgrows this once the replay buffer holds ~1 250 transitions
    args = [
        "train",
        "dqn",
        "CartPole-v1",
        "--run-dir",
        "run",
        "--steps",
        "3000",
        "--quiet",
        "--set",
        "learning_starts=50",
        "--set",
        "eval_every=100000",
        "--set",
        "tensorboard=false",
        "--set",
        "final_eval_episodes=2",
        "--set",
        "checkpoint_every=500",
        "--set",
        "hidden_sizes=[16]",
    ]
    result = run_deeprl(*args, cwd=tmp_path, file_size_limit=limit)
    assert_one_line_error(
        result, "writing to run directory run failed", "File too large", "earlier checkpoints are intact"
    )
    run_dir = tmp_path / "run"
    assert not any(path.name.endswith(".tmp") for path in run_dir.rglob("*"))
    assert not (run_dir / "eval.json").exists()
    written = sorted((run_dir / "checkpoints").glob("step-*.pt"))
    assert written and all(path.stat().st_size < limit for path in written)

    from deeprl.checkpoint import load_latest_checkpoint

    state = load_latest_checkpoint(run_dir, "dqn", "CartPole-v1")  # intact: no warning, no error
    assert 0 < state["algo"]["step"] < 3000
    resumed = run_deeprl("resume", "run", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "eval.json").is_file()


def test_non_finite_parameters_are_named_with_the_step():
    import torch

    from deeprl.errors import DeeprlError
    from deeprl.nets import QNetwork, check_finite

    q_net = QNetwork(obs_dim=4, n_actions=2, hidden_sizes=(8,))
    check_finite(q_net, step=10)  # finite: nothing happens
    with torch.no_grad():
        q_net.body[2].bias[1] = float("inf")
    with pytest.raises(DeeprlError, match=r"parameter body\.2\.bias became non-finite by step 77; the last good"):
        check_finite(q_net, step=77)
