"""The forked deeprl processes the other tests rely on (tests/forking_cli.py) are real processes: their own pid
under the forking server, their own exit code, signals that reach them, and the settings given to one child only."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from tests.conftest import forker, run_deeprl, start_deeprl, wait_for


def train(steps: int) -> list[str]:
    return [
        "train",
        "dqn",
        "CartPole-v1",
        "--steps",
        str(steps),
        "--run-dir",
        "run",
        "--quiet",
        "--set",
        "learning_starts=100",
        "--set",
        "tensorboard=false",
        "--set",
        "checkpoint_every=200",
    ]


def process_state(pid: int) -> tuple[str, int]:
    """(state letter, parent pid) from /proc: R running, S sleeping, T stopped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def test_a_child_is_its_own_process_under_the_server(tmp_path):
    trainer = start_deeprl(train(50_000), tmp_path)
    try:
        wait_for(lambda: (tmp_path / "run" / ".lock").is_file(), "the run's lock", trainer)
        assert trainer.pid not in (os.getpid(), forker().server.pid)
        assert process_state(trainer.pid)[1] == forker().server.pid
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(trainer.pid)  # deeprl's own getpid
    finally:
        trainer.kill()
    assert trainer.returncode == -signal.SIGKILL


def test_sigstop_freezes_and_sigcont_resumes_a_child(tmp_path):
    trainer = start_deeprl(train(50_000), tmp_path)
    try:
        wait_for(lambda: (tmp_path / "run" / "metrics.csv").is_file(), "the first rows", trainer)
        trainer.send_signal(signal.SIGSTOP)
        wait_for(lambda: process_state(trainer.pid)[0] == "T", "the stop")
        size = (tmp_path / "run" / "metrics.csv").stat().st_size
        trainer.send_signal(signal.SIGCONT)
        wait_for(lambda: (tmp_path / "run" / "metrics.csv").stat().st_size > size, "rows after the stop", trainer)
        trainer.send_signal(signal.SIGINT)  # Ctrl-C: deeprl checkpoints and exits 130
        assert trainer.wait(timeout=120) == 130
    finally:
        trainer.kill()
    assert "continue with: deeprl resume" in trainer.stderr()


@pytest.mark.parametrize(
    ("args", "code"),
    [(["--version"], 0), (["train", "foo", "CartPole-v1"], 2), ([], 2)],
    ids=["version", "bad-input", "no-command"],
)
def test_a_child_exits_with_the_commands_code_and_its_own_output(tmp_path, args, code):
    result = run_deeprl(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    if code == 0:
        assert result.stdout.startswith("deeprl ") and result.stderr == ""
    else:
        assert result.stdout == "" and result.stderr.startswith("deeprl: error: ")


def test_settings_reach_one_child_only(tmp_path):
    """An environment variable set or removed, a file-size limit and a folder on the import path apply in the
    child they were given to, not in the server or in the next child."""
    (tmp_path / "probe.py").write_text(
        "import os, resource, sys\n"
        "print(os.environ.get('DEEPRL_PROBE'), os.environ.get('HOME') is None,"
        " resource.getrlimit(resource.RLIMIT_FSIZE)[0], sys.path[0])\n"
    )
    given = start_deeprl(
        [], tmp_path, script=tmp_path / "probe.py", env={"DEEPRL_PROBE": "1", "HOME": None}, file_size_limit=10_000
    )
    assert given.wait(timeout=60) == 0, given.stderr()
    assert given.stdout().split() == ["1", "True", "10000", str(tmp_path)]
    plain = start_deeprl([], tmp_path, script=tmp_path / "probe.py")
    assert plain.wait(timeout=60) == 0, plain.stderr()
    unlimited = str(resource.getrlimit(resource.RLIMIT_FSIZE)[0])
    assert plain.stdout().split() == ["None", str("HOME" not in os.environ), unlimited, str(tmp_path)]


def test_a_pausing_child_stops_itself_halfway_through_the_write_it_was_told(tmp_path):
    trainer = start_deeprl(train(2000), tmp_path, pause_at=("step-*.pt", 2))
    try:
        wait_for(lambda: process_state(trainer.pid)[0] == "T", "the paused write", trainer)
        (partial,) = (tmp_path / "run" / "checkpoints").glob(".step-*.pt.*.tmp")
        assert partial.stat().st_size > 0
        assert len(list((tmp_path / "run" / "checkpoints").glob("step-*.pt"))) == 1  # the first one is whole
    finally:
        trainer.kill()
