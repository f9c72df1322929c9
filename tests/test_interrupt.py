"""A run stopped with Ctrl-C can be read (policy, best policy, curve), evaluated and watched, and still resumes
exactly; eval says when a run is unfinished or still training; progress shows where someone is watching."""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import signal
import struct
import termios
import threading
from pathlib import Path

import pytest

import deeprl
from tests.conftest import run_deeprl, start_deeprl, wait_for
from tests.forking_cli import ForkedProcess

TRAIN_ARGS = [
    "--seed",
    "0",
    "--steps",
    "900",
    "--set",
    "eval_every=300",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "learning_starts=200",
    "--set",
    "tensorboard=false",
    "--set",
    "checkpoint_every=100000",
]


def start_training(run_dir: Path) -> ForkedProcess:
    """A trainer, once it has printed its first evaluation's progress line (a best policy exists then)."""
    trainer = start_deeprl(["train", "dqn", "CartPole-v1", "--run-dir", run_dir, *TRAIN_ARGS], run_dir.parent)
    wait_for(lambda: "\n" in trainer.stdout(), "the first progress line", trainer)
    assert trainer.stdout().startswith("step      300 |")
    return trainer


def eval_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as stream:
        return [int(row["step"]) for row in csv.DictReader(stream) if row["kind"] == "eval"]


def without_time(run_dir: Path) -> list[str]:
    return [line.rsplit(",", 1)[0] for line in (run_dir / "metrics.csv").read_text().splitlines()]


@pytest.mark.resume
def test_ctrl_c_leaves_a_run_that_can_be_read_and_resumed_exactly(tmp_path):
    run_dir = tmp_path / "run"
    trainer = start_training(run_dir)
    trainer.send_signal(signal.SIGINT)
    trainer.wait(timeout=120)
    errors = trainer.stderr()
    assert trainer.returncode == 130, errors
    assert f"checkpoint saved; continue with: deeprl resume {run_dir}" in errors

    stopped_at = int(next((run_dir / "checkpoints").glob("step-*.json")).stem.split("-")[1])
    assert not (run_dir / "eval.json").exists()
    current = deeprl.load(run_dir / "policy.pt")
    assert current.policy_step == stopped_at
    assert current.run_dir == run_dir  # a model file inside a run directory knows its run
    best = deeprl.load(run_dir)
    assert best.policy_path.name == "best_policy.pt" and best.policy_step in eval_steps(run_dir)
    assert (run_dir / "curve.png").stat().st_size > 0

    evaluated = run_deeprl("eval", run_dir, "--episodes", "2", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.splitlines()[0] == (
        f"note: run {run_dir} stopped at step {stopped_at} before finishing (`deeprl resume {run_dir}` continues "
        f"it); using its best policy so far, from step {best.policy_step}"
    )
    watched = run_deeprl("watch", run_dir, "--video", "stopped.gif", "--every", "10", cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    assert (tmp_path / "stopped.gif").stat().st_size > 0
    assert run_deeprl("plot", run_dir, "-o", "stopped.png", cwd=tmp_path).returncode == 0

    resumed = run_deeprl("resume", run_dir, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = tmp_path / "uninterrupted"
    straight = run_deeprl(
        "train", "dqn", "CartPole-v1", "--run-dir", uninterrupted, "--quiet", *TRAIN_ARGS, cwd=tmp_path
    )
    assert straight.returncode == 0, straight.stderr
    assert without_time(run_dir) == without_time(uninterrupted)
    assert deeprl.load(run_dir / "policy.pt").policy_step == 900
    assert "note:" not in run_deeprl("eval", run_dir, "--episodes", "1", cwd=tmp_path).stdout  # finished now


def test_eval_says_a_run_is_still_training(tmp_path):
    run_dir = tmp_path / "run"
    trainer = start_training(run_dir)
    try:
        trainer.send_signal(signal.SIGSTOP)  # alive, holding its lock, and unable to move on
        evaluated = run_deeprl("eval", run_dir, "--episodes", "2", cwd=tmp_path)
    finally:
        trainer.kill()
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.splitlines()[0] == (
        f"note: run {run_dir} is still training (process {trainer.pid}); using its best policy so far, "
        f"from step {deeprl.load(run_dir).policy_step}"
    )


SCRIPT = """
import deeprl
deeprl.train("dqn", "CartPole-v1", steps=600, run_dir={run_dir!r}, eval_every=300, eval_episodes=2,
             final_eval_episodes=2, learning_starts=100, tensorboard=False)
"""


def run_script(run_dir: Path, on_a_terminal: bool) -> tuple[str, str]:
    """(stdout, what reached stderr) of the Python API training with stderr on a terminal or a file."""
    script = run_dir.with_suffix(".py")
    script.write_text(SCRIPT.format(run_dir=str(run_dir)))
    if not on_a_terminal:
        process = start_deeprl([], run_dir.parent, script=script)
        assert process.wait(timeout=300) == 0, process.stderr()
        return process.stdout(), process.stderr()
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    # the child opens the terminal by its name: this end stays open until the child is gone, so that the reader
    # never finds the terminal closed before the child has opened it
    process = start_deeprl([], run_dir.parent, script=script, stderr=Path(os.ttyname(terminal)))
    shown: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:  # the terminal closed after the process
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    process.wait(timeout=300)
    os.close(terminal)
    reader.join(timeout=30)
    os.close(controller)
    assert process.returncode == 0, b"".join(shown).decode(errors="replace")
    return process.stdout(), b"".join(shown).decode(errors="replace")


def test_the_python_api_shows_progress_where_someone_watches(tmp_path):
    watched_out, terminal = run_script(tmp_path / "watched", on_a_terminal=True)
    assert "600/600" in terminal and "step/s" in terminal  # tqdm's bar, on the terminal
    assert [line[:13] for line in watched_out.splitlines()] == ["step      300", "step      600"]
    quiet_out, quiet_err = run_script(tmp_path / "quiet", on_a_terminal=False)
    assert quiet_out == "" and quiet_err == ""  # a script's log stays clean
