"""MuJoCo ids (the `mujoco` extra): bad input about them is one line, with nothing MuJoCo prints before it. The line
for a missing extra is tested with the Atari ones (tests/test_atari.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_deeprl


@pytest.mark.parametrize(
    ("args", "line"),
    [
        # HalfCheetah's model file makes MuJoCo print a deprecation warning on stderr before the line (and log it in
        # MUJOCO_LOG.TXT in the working directory)
        (
            ("train", "dqn", "HalfCheetah-v5"),
            "deeprl: error: dqn cannot act in HalfCheetah-v5: its action space is Box(-1.0, 1.0, (6,), float32) "
            "(algorithms for it: reinforce, a2c, ppo, actor-critic, ddpg, td3, sac)",
        ),
        (
            ("train", "sac", "Hopper-v3"),
            "deeprl: error: environment 'Hopper-v3' cannot be made: The mujoco v2 and v3 based environments have been "
            "moved to the gymnasium-robotics project (https://github.com/Farama-Foundation/gymnasium-robotics); use "
            "Hopper-v5",
        ),
    ],
)
def test_bad_input_about_a_mujoco_id_is_one_line(tmp_path: Path, args: tuple[str, ...], line: str):
    result = run_deeprl(*args, "--run-dir", "run", "--steps", "1000", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == line
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no run, and no MUJOCO_LOG.TXT of its warning
