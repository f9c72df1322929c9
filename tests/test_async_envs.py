"""`vector: async`, a process per env copy (Gymnasium's AsyncVectorEnv): a PPO run on a MuJoCo env resumes exactly
after SIGKILL, and no env process outlives its trainer, whether it stops on SIGINT, SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deeprl.envs import make_env
from deeprl.experience import EnvRunner
from tests.conftest import Trainer, kill_and_resume, newest_step, subprocess_env

ENV = "Hopper-v5"
ARGS = [
    "--steps",
    "512",
    "--quiet",
    "--set",
    "vector=async",
    "--set",
    "n_envs=2",
    "--set",
    "n_steps=64",
    "--set",
    "batch_size=64",
    "--set",
    "n_epochs=2",
    "--set",
    "checkpoint_every=128",
    "--set",
    "eval_every=100000",
    "--set",
    "eval_episodes=1",
    "--set",
    "final_eval_episodes=1",
    "--set",
    "tensorboard=true",
]


def children(pid: int) -> list[int]:
    """The processes `pid` has started (Linux's /proc/PID/task/*/children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie has; whoever adopted it has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_until(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


class _Run:
    config = None

    def end_episode(self, *args, **kwargs) -> None:
        pass


def test_async_copies_step_and_replay_as_in_process_copies_do():
    """The same seeded actions give the same observations in both kinds, and both rebuild a copy mid-episode from
    its start and actions."""
    runners = [EnvRunner(lambda: make_env(ENV), 2, seed=3, run=_Run(), vector=kind) for kind in ("sync", "async")]
    try:
        rng = np.random.default_rng(0)
        for step in range(1, 120):  # several episodes end (a random Hopper falls within about 20-60 steps)
            actions = rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
            steps = [runner.step(actions, step) for runner in runners]
            np.testing.assert_array_equal(steps[0].next_obs, steps[1].next_obs)
            np.testing.assert_array_equal(runners[0].obs, runners[1].obs)
        assert runners[0].episodes == runners[1].episodes >= 2
        state, in_process = runners[1].state_dict(), runners[0].state_dict()
        assert torch.equal(state.pop("obs"), in_process.pop("obs")) and state == in_process
        state["obs"] = torch.from_numpy(runners[1].obs)
        fresh = EnvRunner(lambda: make_env(ENV), 2, seed=3, run=_Run(), vector="async")
        try:
            fresh.load_state_dict(state)  # refuses in one line unless it reaches the same observations
            np.testing.assert_array_equal(fresh.obs, runners[1].obs)
            assert fresh.episode_lengths.tolist() == runners[1].episode_lengths.tolist()
        finally:
            fresh.close()
    finally:
        for runner in runners:
            runner.close()


def test_async_copies_answer_what_the_runner_asks_of_an_env():
    """Whether the observations stack frames (the replay memory stores each frame once) and the action masks of an
    env's action_masks() reach the runner from copies in other processes too."""
    atari = EnvRunner(lambda: make_env("tests.custom_envs:ScriptedAtari"), 1, seed=0, run=_Run(), vector="async")
    assert atari.frame_channels == 1
    atari.close()
    grids = [
        EnvRunner(lambda: make_env("deeprl.envs.examples:MaskedGrid"), 2, seed=1, run=_Run(), vector=kind)
        for kind in ("sync", "async")
    ]
    try:
        assert grids[1].mask_source == "method"
        rng = np.random.default_rng(0)
        for step in range(1, 40):
            masks = grids[0].action_masks
            np.testing.assert_array_equal(masks, grids[1].action_masks)
            actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
            for grid in grids:
                grid.step(actions, step)
    finally:
        for grid in grids:
            grid.close()


@pytest.mark.resume
def test_sigkill_resumes_an_async_mujoco_ppo_run_exactly(tmp_path: Path, uninterrupted):
    reference = uninterrupted("ppo", ENV, ARGS)
    kill_and_resume(tmp_path, reference, ARGS, 128, algo="ppo", env=ENV, tags=("train/return", "eval/return"))


@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 130), (signal.SIGKILL, -9)])
def test_no_env_process_outlives_its_trainer(tmp_path: Path, stop: signal.Signals, exit_code: int):
    """Ctrl-C and SIGTERM (sent to the env processes too, as a terminal and a process-group kill send them): the
    trainer checkpoints and closes its copies, which leave the signals to it; SIGKILL: each copy sees its pipe close."""
    args = [arg if arg != "512" else "100000" for arg in ARGS]
    trainer = Trainer(tmp_path / "run", args, algo="ppo", env=ENV)
    trainer.wait_for(
        lambda: newest_step(trainer.run_dir) >= 128 and len(children(trainer.process.pid)) == 2, "2 copies"
    )
    workers = children(trainer.process.pid)
    trainer.process.send_signal(stop)
    if stop != signal.SIGKILL:
        for pid in workers:
            os.kill(pid, stop)
    assert trainer.process.wait(timeout=120) == exit_code, trainer.stderr()
    assert "Traceback" not in trainer.stderr()
    wait_until(lambda: all(gone(pid) for pid in workers), "every env process to exit")


def test_a_process_that_never_closes_its_async_copies_still_exits():
    """The copies ignore SIGTERM, which is how multiprocessing ends daemon children at exit before waiting for them:
    without closing them first, a script (or a test that failed before its close) would never exit."""
    script = (
        "import gymnasium as gym\n"
        "from deeprl.experience import vector_env\n"
        "envs = vector_env(lambda: gym.make('CartPole-v1'), 2, 'async')\n"
        "envs.reset(seed=0)\n"
        "print(len(envs.processes), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "2\n"), done.stderr
