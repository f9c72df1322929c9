"""Checkpoints and exact resume: real `deeprl train` processes are killed and resumed, and must end with
the same weights (bit for bit) and the same metrics.csv (wall-clock column aside) as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import deeprl
from deeprl.checkpoint import load_latest_checkpoint
from deeprl.errors import DeeprlError

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ARGS = [
    "--seed", "0", "--steps", "3000", "--quiet",
    "--set", "checkpoint_every=400", "--set", "eval_every=1000", "--set", "learning_starts=200",
    "--set", "eval_episodes=3", "--set", "final_eval_episodes=3", "--set", "tensorboard=false",
]


def deeprl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "deeprl", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def start_training(run_dir: Path, *extra_args: str) -> subprocess.Popen:
    return subprocess.Popen(
        deeprl_command("train", "dqn", "CartPole-v1", "--run-dir", str(run_dir), *TRAIN_ARGS, *extra_args),
        env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(deeprl_command("resume", str(run_dir), "--quiet"), env=environment(),
                          capture_output=True, text=True, timeout=300)


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step-*.json"))


def newest_step(run_dir: Path) -> int:
    found = checkpoints(run_dir)
    return int(found[-1].stem.split("-")[1]) if found else -1


def wait_for_checkpoints(process: subprocess.Popen, run_dir: Path, count: int) -> None:
    """Wait until the `count`-th checkpoint (one every 400 steps, at an episode end) has been written."""
    deadline = time.monotonic() + 120
    while newest_step(run_dir) < 400 * count:
        assert process.poll() is None, "training ended before the expected checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def killed_run(tmp_path: Path, checkpoints_before_kill: int, extra_delay: float = 0.0) -> Path:
    """A training process SIGKILLed after its n-th checkpoint (plus a delay): its run directory."""
    run_dir = tmp_path / "run"
    process = start_training(run_dir)
    wait_for_checkpoints(process, run_dir, checkpoints_before_kill)
    time.sleep(extra_delay)
    process.kill()
    process.wait()
    return run_dir


def metrics_without_time(run_dir: Path) -> list[str]:
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    return [line.rsplit(",", 1)[0] for line in lines]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    assert metrics_without_time(run_dir) == metrics_without_time(reference)
    for name in ("policy.pt", "best_policy.pt"):
        expected, actual = weights(reference / name), weights(run_dir / name)
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    subprocess.run(deeprl_command("train", "dqn", "CartPole-v1", "--run-dir", str(run_dir), *TRAIN_ARGS),
                   env=environment(), check=True, stdout=subprocess.DEVNULL, timeout=300)
    return run_dir


@pytest.mark.parametrize(("checkpoints_before_kill", "extra_delay"), [(1, 0.0), (2, 0.3), (4, 0.1), (5, 0.25)])
def test_sigkill_then_resume_is_identical(tmp_path, reference, checkpoints_before_kill, extra_delay):
    run_dir = killed_run(tmp_path, checkpoints_before_kill, extra_delay)
    assert not (run_dir / "eval.json").exists()
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference)
    assert len(checkpoints(run_dir)) <= 2  # only the newest two are kept


def test_sigkill_while_a_checkpoint_file_is_being_written(tmp_path, reference):
    """Kill the moment a checkpoint's temporary file appears: the half-written file is never used."""
    run_dir = tmp_path / "run"
    folder = run_dir / "checkpoints"
    process = start_training(run_dir)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint write was caught"
        names = os.listdir(folder) if folder.is_dir() else []
        if newest_step(run_dir) >= 400 and any(name.startswith(".step-") for name in names):
            process.kill()
            break
    process.wait()
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference)


def test_kill_during_checkpoint_write_falls_back(tmp_path, reference):
    """A checkpoint whose write was cut short (truncated data, stale manifest) is skipped with one line."""
    run_dir = killed_run(tmp_path, 3)
    newest = checkpoints(run_dir)[-1].with_suffix(".pt")
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "checksum mismatch" in line]
    assert len(warnings) == 1 and newest.name in warnings[0]
    assert_same_run(run_dir, reference)


def test_sigint_checkpoints_and_exits_130(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = start_training(run_dir)
    wait_for_checkpoints(process, run_dir, 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "deeprl resume" in stderr and "Traceback" not in stderr
    state = load_latest_checkpoint(run_dir, "dqn", "CartPole-v1")
    assert state["algo"]["step"] == newest_step(run_dir)
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference)


def test_resume_refuses_finished_and_checkpointless_runs(tmp_path, reference):
    before = sorted((path.name, path.stat().st_mtime_ns) for path in reference.rglob("*"))
    result = resume(reference)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"deeprl: error: run {reference} already finished (eval.json exists); nothing to resume"
    ]
    assert sorted((path.name, path.stat().st_mtime_ns) for path in reference.rglob("*")) == before
    with pytest.raises(DeeprlError, match="already finished"):
        deeprl.train(resume=reference)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeeprlError, match="not a run directory"):
        deeprl.train(resume=empty)
    (empty / "config.yaml").write_text((reference / "config.yaml").read_text())
    with pytest.raises(DeeprlError, match="no intact checkpoint"):
        deeprl.train(resume=empty)


def test_checkpoint_of_another_env_is_refused(tmp_path, reference):
    run_dir = killed_run(tmp_path, 1)
    with pytest.raises(DeeprlError, match=r"no intact checkpoint.*belongs to dqn on CartPole-v1"):
        load_latest_checkpoint(run_dir, "dqn", "Acrobot-v1")


def test_a_run_in_use_is_not_resumed_twice(tmp_path):
    run_dir = tmp_path / "run"
    process = start_training(run_dir)
    try:
        wait_for_checkpoints(process, run_dir, 1)
        # Frozen, the trainer cannot finish (and remove its lock) while the second process starts up.
        process.send_signal(signal.SIGSTOP)
        result = resume(run_dir)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"deeprl: error: run directory {run_dir} is in use by process {process.pid} "
            f"(remove {run_dir / '.lock'} if it is not deeprl)"
        ]
    finally:
        process.kill()
        process.wait()
    assert (run_dir / ".lock").read_text().strip() == str(process.pid)  # left behind by the killed process
    result = resume(run_dir)  # the stale lock is taken over
    assert result.returncode == 0, result.stderr
    assert not (run_dir / ".lock").exists()


def test_checkpoints_without_the_replay_memory_refill_it_after_resume(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, "--set", "checkpoint_replay=false")
    wait_for_checkpoints(process, run_dir, 1)  # near step 400 episodes are short: several end while refilling
    process.kill()
    process.wait()
    resumed_from = newest_step(run_dir)
    state = load_latest_checkpoint(run_dir, "dqn", "CartPole-v1")
    assert state["algo"]["replay"] is None and state["algo"]["step"] == resumed_from
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"deeprl: warning: the checkpoint at step {resumed_from} holds no replay memory (checkpoint_replay: "
        f"false); it refills until step {resumed_from + 200}, so this run will differ from an uninterrupted one"
    ]
    rows = metrics_without_time(run_dir)
    header = rows[0].split(",")
    train = [dict(zip(header, row.split(","))) for row in rows[1:] if row.startswith("train,")]
    before = [row for row in train if int(row["step"]) <= resumed_from]
    after = [row for row in train if int(row["step"]) > resumed_from]
    reference_rows = metrics_without_time(reference)
    assert [row for row in rows if row.startswith("train,")][: len(before)] == [
        row for row in reference_rows if row.startswith("train,")
    ][: len(before)]  # the same run up to the checkpoint
    # learning_starts is 200: episodes that end before the memory holds 200 new steps have no loss
    assert all((row["loss"] == "") == (int(row["step"]) <= resumed_from + 200) for row in after)
    assert {row["loss"] == "" for row in after} == {True, False}  # both kinds of episode are there
    assert (run_dir / "eval.json").is_file()


class Exploit:
    """Unpickling this creates the marker file: what a malicious checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, reference):
    import hashlib
    import json
    import pickle

    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Exploit(str(marker)))).close()  # the payload is real
    assert marker.exists()
    marker.unlink()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text((reference / "config.yaml").read_text())
    checkpoint = run_dir / "checkpoints" / "step-000000000400.pt"
    checkpoint.parent.mkdir()
    torch.save({"run": Exploit(str(marker)), "algo": {}}, checkpoint)  # a valid checksum: only the content is bad
    data = checkpoint.read_bytes()
    checkpoint.with_suffix(".json").write_text(json.dumps({
        "format": "deeprl-checkpoint", "deeprl_version": "0.1.0", "algo": "dqn", "env": "CartPole-v1",
        "step": 400, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
    }))
    result = resume(run_dir)
    assert result.returncode == 2
    assert "cannot be loaded" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # the refusal is the whole message
    assert not marker.exists()


def test_picture_run_resumes_identically(tmp_path):
    """Screen observations, a BatchNorm CNN and the replay that stores pictures once survive a SIGKILL too:
    the resumed run ends with the same weights (BatchNorm statistics included) and metrics."""
    picture_args = [
        "--seed", "1", "--steps", "900", "--quiet", "--set", "observation=screen_frames", "--set", "screen_height=16",
        "--set", "conv_channels=4,8", "--set", "conv_kernels=3,3", "--set", "hidden_sizes=16",
        "--set", "max_episode_steps=40",  # truncations put final pictures aside in the replay
        "--set", "learning_starts=100", "--set", "batch_size=16", "--set", "buffer_size=700",
        "--set", "checkpoint_every=300", "--set", "eval_every=450", "--set", "eval_episodes=2",
        "--set", "final_eval_episodes=2", "--set", "tensorboard=false",
    ]
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    subprocess.run(deeprl_command("train", "dqn", "CartPole-v1", "--run-dir", str(reference_dir), *picture_args),
                   env=environment(), check=True, stdout=subprocess.DEVNULL, timeout=300)
    process = subprocess.Popen(deeprl_command("train", "dqn", "CartPole-v1", "--run-dir", str(run_dir), *picture_args),
                               env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while newest_step(run_dir) < 600:
        assert process.poll() is None, "training ended before the second checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert not (run_dir / "eval.json").exists()
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference_dir)
    assert any("running_mean" in key for key in weights(run_dir / "policy.pt"))
