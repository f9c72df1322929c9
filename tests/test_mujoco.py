"""MuJoCo ids (the `mujoco` extra): bad input about them is one line, with nothing MuJoCo prints before it (the line
for a missing extra is tested with the Atari ones, tests/test_atari.py), and PPO's InvertedPendulum-v5 preset learns
to balance on a CI-sized budget, its policy file carrying the observation statistics a loaded agent acts through."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
import yaml

import deeprl
from deeprl.agent import FINAL_POLICY
from tests.conftest import run_deeprl, subprocess_env
from tests.continuous_control import RandomAgent


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


# The preset's first 10 rollouts of 512 steps. Measured, the loaded final agent on this test's 10 episodes: 1000 (every
# episode balanced to the time limit) on each of seeds 0-9 (about 2.5 CPU-s of training each); after 4 096 steps 8 of
# 10 seeds score 1000 (seed 6: 522, seed 7: 107); after 3 072 steps 179-324 on seeds 0-2, 2 048 steps 92-105.
LEARNING_STEPS = 5_120
EVAL_SEED = 123_456


@pytest.mark.learning
def test_ppo_preset_learns_inverted_pendulum_through_its_saved_observation_statistics(tmp_path: Path):
    """The preset for InvertedPendulum-v5 standardises observations (the run records it); the policy file, copied
    away from its run, holds statistics of every observation the run saw, deeprl.load applies them exactly as
    computed by hand here, the loaded agent balances the pole to the time limit where random actions let it fall
    within a few steps, and the same weights fed the raw observations let it fall."""
    trained = deeprl.train(
        "ppo",
        "InvertedPendulum-v5",
        seed=0,
        steps=LEARNING_STEPS,
        run_dir=tmp_path / "run",
        progress=False,
        tensorboard=False,
        device="cpu",
        # one short evaluation at the end and no confirmation of its solve on 20 more episodes: this test evaluates
        # the saved file itself
        eval_every=LEARNING_STEPS + 1,
        final_eval_episodes=1,
        solve_confirm_episodes=0,
    )
    recorded = yaml.safe_load((trained.run_dir / "config.yaml").read_text())
    assert (recorded["preset"], recorded["normalize_observations"]) == ("default", True)

    alone = tmp_path / "elsewhere" / "agent.pt"  # the file by itself: nothing beside it is needed
    alone.parent.mkdir()
    shutil.copy(trained.run_dir / FINAL_POLICY, alone)
    blob = torch.load(alone, weights_only=True)
    meta = json.loads(blob["meta_json"])
    statistics = meta["obs_normalization"]
    assert statistics["count"] == pytest.approx(LEARNING_STEPS + 1, abs=1e-3)  # the first observation, one a step
    mean, var = np.array(statistics["mean"]), np.array(statistics["var"])
    assert mean.shape == var.shape == (4,)  # cart position, pole angle and their velocities
    assert (var > 0).all() and not np.allclose(var, 1.0)

    loaded = deeprl.load(alone)
    env = gym.make("InvertedPendulum-v5")
    probe, terminated = [env.reset(seed=7)[0]], False
    while not terminated:  # the cart pushed hard one way until the pole falls: velocities far from the mean
        obs, _, terminated, _, _ = env.step(np.array([3.0], dtype=np.float32))
        probe.append(obs)
    probe.append(np.array([0.0, 1.5, 0.0, 20.0]))  # a pole far past falling, spinning: beyond the clip
    probe = np.array(probe)  # float64, as MuJoCo gives them
    by_hand = np.clip((probe - mean) / np.sqrt(var + 1e-8), -statistics["clip"], statistics["clip"])
    assert np.abs(by_hand[-1]).max() == statistics["clip"] == 10.0
    np.testing.assert_allclose(loaded.network_input(probe), by_hand, rtol=1e-6, atol=1e-6)

    learned = deeprl.evaluate(loaded, "InvertedPendulum-v5", episodes=10, seed=EVAL_SEED)
    random = deeprl.evaluate(RandomAgent(env.action_space, seed=0), "InvertedPendulum-v5", episodes=10, seed=EVAL_SEED)
    assert random.mean < 20, random.returns  # about 5: the pole falls within a few steps
    assert learned.mean > 500, learned.returns  # 1000 measured: balanced to the time limit
    assert learned.mean > 25 * random.mean

    del meta["obs_normalization"]  # the same weights, acting on the raw observations
    raw = tmp_path / "raw.pt"
    torch.save({**blob, "meta_json": json.dumps(meta)}, raw)
    unnormalised = deeprl.evaluate(deeprl.load(raw), "InvertedPendulum-v5", episodes=10, seed=EVAL_SEED)
    assert unnormalised.mean < learned.mean / 5, unnormalised.returns  # measured 60 (seeds 1, 2: 19, 47)


def test_an_agent_is_watched_and_reported_on_a_machine_without_a_display(tmp_path: Path):
    """MuJoCo's default OpenGL (a GLFW window) cannot start without a display: watch and report draw through EGL
    there (media.choose_headless_opengl), in fresh processes that were given no backend."""
    run_dir = deeprl.train(
        "td3",
        "InvertedPendulum-v5",
        seed=0,
        steps=300,
        batch_size=32,
        run_dir=tmp_path / "run",
        progress=False,
        tensorboard=False,
        eval_every=1000,
        final_eval_episodes=1,
    ).run_dir
    env = subprocess_env()
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):
        env.pop(name, None)

    def deeprl_cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "deeprl", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    watched = deeprl_cli("watch", str(run_dir), "--video", "pendulum.mp4")
    assert watched.returncode == 0, watched.stderr
    (length,) = deeprl.evaluate(deeprl.load(run_dir), "InvertedPendulum-v5", episodes=1, seed=10_000).lengths
    with imageio.get_reader(tmp_path / "pendulum.mp4", format="FFMPEG") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == 1 + int(length)  # the reset frame and one a step
    assert frames[0].shape == (480, 480, 3) and frames[0].std() > 10  # a picture, not a blank frame
    reported = deeprl_cli("report", str(run_dir), "--every", "2")
    assert reported.returncode == 0, reported.stderr
    page = (run_dir / "report.html").read_text()
    assert '<video controls muted loop playsinline width="480" src="data:video/mp4;base64,' in page
    assert "No video" not in page
