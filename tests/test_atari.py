"""The Atari preprocessing: hand-made frames (tests.custom_envs.ScriptedAtari), real games against Gymnasium's own
wrappers, a DQN run on a real game, and the one-line answers when an extra is missing."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl.algos import dqn
from deeprl.buffers import ReplayBuffer
from deeprl.envs import make_env
from deeprl.envs.atari import LEARNING_REWARD, LEARNING_TERMINAL
from deeprl.errors import DeeprlError
from deeprl.experience import EnvRunner
from deeprl.offpolicy import Exploration, OffPolicyTrainer
from deeprl.run import FINAL_EVAL_SEED
from tests.conftest import kill_and_resume, rows_without_time, run_deeprl
from tests.custom_envs import ScriptedAtari

SCRIPTED = "tests.custom_envs:ScriptedAtari"
NOOP, FIRE, AFTER_FIRE = 0, 1, 2


def picture(last_frame: int) -> np.ndarray:
    """What the preprocessing shows after a step ending at ScriptedAtari frame `last_frame`: the max of that frame
    and the one before, 84x84 (a uniform picture stays uniform when resized)."""
    level = max(ScriptedAtari.level(last_frame - 1), ScriptedAtari.level(last_frame))
    return np.full((84, 84), level, dtype=np.uint8)


# ScriptedAtari without no-ops, stepped with NOOP: the reset presses FIRE (frames 1-4) and action 2 (5-8); each
# step is 4 frames. Lives go at frames 38, 80 and 120 (the steps ending at 40, 80 and 120); after the first two the
# wrapper presses FIRE and 2 again (8 more frames), so the steps' last frames are:
STEP_ENDS = [*range(12, 37, 4), 48, *range(52, 77, 4), 88, *range(92, 117, 4), 120]
LIFE_LOST_STEPS = [7, 15, 23]  # indices into STEP_ENDS; the last one ends the game
# the game's rewards (frames 13 and 14: 5 - 2; 22: -7; 50: 10; 97: 0.5) by step
STEP_REWARDS = {1: 5.0 - 2.0, 3: -7.0, 8: 10.0, 18: 0.5}
GAME_RETURN = 3.0 - 7.0 + 10.0 + 0.5


def test_hand_made_frames_are_skipped_max_pooled_stacked_in_order_with_clipped_rewards_and_lives():
    env = make_env(SCRIPTED, atari_noop_max=0)
    assert env.observation_space == gym.spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, np.stack([picture(8)] * 4))  # the stack starts as copies of the first
    assert env.unwrapped.actions == [FIRE] * 4 + [AFTER_FIRE] * 4
    frames = [picture(8)] * 4
    for step, last_frame in enumerate(STEP_ENDS):
        previous = obs
        obs, reward, terminated, truncated, info = env.step(NOOP)
        np.testing.assert_array_equal(obs[:3], previous[1:])  # oldest first: the stack shifts by one
        if step < len(STEP_ENDS) - 1:
            frames.append(picture(last_frame))
            np.testing.assert_array_equal(obs, np.stack(frames[-4:]))
        assert reward == STEP_REWARDS.get(step, 0.0)  # the game's own
        assert info[LEARNING_REWARD] == np.sign(STEP_REWARDS.get(step, 0.0))
        assert info[LEARNING_TERMINAL] == (step in LIFE_LOST_STEPS)
        assert terminated == (step == len(STEP_ENDS) - 1) and not truncated  # the env's episode: the whole game
        assert env.unwrapped.frame == last_frame
    # each action lasts 4 frames; FIRE and 2 start each life
    life = [FIRE] * 4 + [AFTER_FIRE] * 4
    assert env.unwrapped.actions == [*life, *[NOOP] * 32, *life, *[NOOP] * 32, *life, *[NOOP] * 32]


class _Run:
    """The part of deeprl.run.Run an EnvRunner reports finished episodes to."""

    def __init__(self) -> None:
        self.episodes: list[tuple[int, int, float, int]] = []

    def end_episode(self, step: int, episode: int, episodic_return: float, length: int, **extra: float) -> None:
        self.episodes.append((step, episode, episodic_return, length))


def test_learning_sees_clipped_rewards_and_lives_while_whole_games_are_reported():
    run = _Run()
    runner = EnvRunner(lambda: make_env(SCRIPTED, atari_noop_max=0), 1, seed=0, run=run)
    for step in range(len(STEP_ENDS)):
        transitions = runner.step(np.array([NOOP]), step + 1)
        assert transitions.rewards.tolist() == [np.sign(STEP_REWARDS.get(step, 0.0))]
        assert transitions.terminated.tolist() == [step in LIFE_LOST_STEPS]
        runner.report(transitions)
        if step < len(STEP_ENDS) - 1:  # a lost life is no episode: the game goes on, nothing is reset
            assert run.episodes == []
            np.testing.assert_array_equal(runner.obs, transitions.next_obs)
    assert run.episodes == [(len(STEP_ENDS), 1, GAME_RETURN, len(STEP_ENDS))]
    assert runner.envs.envs[0].unwrapped.frame == 8  # a new game, started with FIRE and 2
    runner.close()


class _ConstantAgent:
    def act(self, observations: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.full(len(observations), NOOP)


def test_evaluation_plays_whole_games_with_the_games_rewards():
    result = deeprl.evaluate(_ConstantAgent(), lambda: make_env(SCRIPTED, atari_noop_max=0), episodes=3)
    assert result.returns.tolist() == [GAME_RETURN] * 3
    assert result.lengths.tolist() == [len(STEP_ENDS)] * 3


class _RecordingAlgorithm:
    """An off-policy algorithm that always plays NOOP and records when the trainer asks it to learn and to end an
    episode."""

    def __init__(self, config, observation_space, action_space, device) -> None:
        self.agent = _ConstantAgent()
        self.learn_steps: list[int] = []
        self.episodes_ended: list[int] = []

    def explore(self, obs, step, episodes, rng) -> Exploration:
        return Exploration(np.array([NOOP]), np.array([NOOP]), {})

    def learn(self, batch, step: int) -> dict[str, float]:
        self.learn_steps.append(step)
        return {"loss": float(step)}

    def after_step(self, step: int) -> None:
        pass

    def after_episode(self, episodes: int) -> None:
        self.episodes_ended.append(episodes)

    def load_state_dict(self, state: dict) -> None:
        pass


def test_episode_counted_schedules_count_whole_games_not_lives():
    """train_freq_unit=episodes (and target_update_unit=episodes, through after_episode) count the env's episodes:
    whole games, although each lost life ends learning's episode."""
    config = dqn.Config(
        env=SCRIPTED, atari_noop_max=0, train_freq=1, train_freq_unit="episodes", learning_starts=0, batch_size=1
    )
    run = _Run()
    run.count_update = lambda: None
    runner = EnvRunner(lambda: make_env(SCRIPTED, atari_noop_max=0), 1, seed=0, run=run)
    trainer = OffPolicyTrainer(config, runner, run, np.random.default_rng(0), torch.device("cpu"), _RecordingAlgorithm)
    game = len(STEP_ENDS)
    step, lives_lost = 0, 0
    while step < 2 * game:
        step = trainer.advance(step)
        lives_lost += int(trainer.episode_ended)
    assert lives_lost == 2 * len(LIFE_LOST_STEPS)  # learning saw every lost life as an episode end
    assert trainer.algorithm.learn_steps == [game, 2 * game]  # a round at the end of each game, none at a lost life
    assert trainer.algorithm.episodes_ended == [1, 2]
    # one row per game
    assert [row[:2] for row in run.episodes] == [(game, 1), (2 * game, 2)]
    runner.close()


def test_a_checkpoint_with_whole_observations_in_its_replay_memory_is_one_line():
    """Checkpoints of Atari runs that stored whole observations (an older deeprl) cannot fill a memory of frames."""
    config = dqn.Config(env=SCRIPTED, atari_noop_max=0, buffer_size=10, batch_size=1)
    run = _Run()
    runner = EnvRunner(lambda: make_env(SCRIPTED, atari_noop_max=0), 1, seed=0, run=run)
    trainer = OffPolicyTrainer(config, runner, run, np.random.default_rng(0), torch.device("cpu"), _RecordingAlgorithm)
    assert trainer.replay.frame_stacks is not None
    whole = ReplayBuffer(10, (4, 84, 84), np.dtype(np.uint8), shared_next_obs=True)
    with pytest.raises(DeeprlError, match="holds whole observations in its replay memory"):
        trainer.load_state_dict({"step": 7, "replay": whole.state_dict()})
    runner.close()


def test_games_start_with_1_to_noop_max_random_no_ops_then_fire():
    starts = []
    for seed in range(12):
        env = make_env(SCRIPTED, atari_noop_max=30)
        env.reset(seed=seed)
        actions = env.unwrapped.actions
        noops = actions.index(FIRE)
        assert 1 <= noops <= 30 and actions[noops:] == [FIRE] * 4 + [AFTER_FIRE] * 4
        again = make_env(SCRIPTED, atari_noop_max=30)
        again.reset(seed=seed)
        assert again.unwrapped.actions == actions  # drawn from the env's seeded generator
        starts.append(noops)
    assert len(set(starts)) > 6


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        ({"atari_grayscale": False}, (12, 84, 84)),
        ({"atari_screen_size": 42}, (4, 42, 42)),
        ({"atari_frame_stack": 2}, (2, 84, 84)),
        ({"atari_frame_skip": 1}, (4, 84, 84)),
        ({"atari_preprocessing": False}, (210, 160, 3)),
    ],
)
def test_each_part_is_a_setting(options: dict, shape: tuple[int, ...]):
    env = make_env(SCRIPTED, atari_noop_max=0, **options)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == obs.shape == shape
    obs, *_ = env.step(NOOP)
    if options.get("atari_grayscale") is False:  # frames in stack order, each frame's red, green, blue together
        for index, last_frame in enumerate([8, 8, 8, 12]):
            before, last = ScriptedAtari.level(last_frame - 1), ScriptedAtari.level(last_frame)
            colours = [max(before, last), max(before // 2, last // 2), max(255 - before, 255 - last)]
            assert obs[3 * index : 3 * index + 3, 0, 0].tolist() == colours
    if options.get("atari_frame_skip") == 1:  # one frame a step, no pooling: frame 2 (after FIRE and 2), then 3
        assert obs[:, 0, 0].tolist() == [ScriptedAtari.level(2)] * 3 + [ScriptedAtari.level(3)]


def test_clipping_life_loss_and_fire_can_each_be_turned_off():
    env = make_env(
        SCRIPTED, atari_noop_max=0, atari_clip_rewards=False, atari_terminal_on_life_loss=False, atari_fire_reset=False
    )
    env.reset(seed=0)
    assert env.unwrapped.actions == []
    infos = [env.step(NOOP)[-1] for _ in range(12)]
    assert all(LEARNING_REWARD not in info and LEARNING_TERMINAL not in info for info in infos)
    assert env.unwrapped.actions == [NOOP] * 48  # no FIRE after the life lost at frame 38


def test_a_run_directory_rebuilds_its_atari_settings(tmp_path: Path):
    (tmp_path / "config.yaml").write_text(
        f"algo: dqn\nenv: '{SCRIPTED}'\natari_frame_stack: 2\natari_grayscale: false\n"
    )
    assert make_env(tmp_path).observation_space.shape == (6, 84, 84)


# ---------------------------------------------------------------------------------------------- real games


class GymnasiumReference:
    """The same preprocessing written with Gymnasium's AtariPreprocessing alone (no life loss, no clipping), FIRE and
    action 2 pressed by hand when the game or a life starts, the frames stacked here: what deeprl's env must show."""

    def __init__(self, env_id: str) -> None:
        self.env = gym.wrappers.AtariPreprocessing(gym.make(env_id, frameskip=1), noop_max=30)
        self.fire = "FIRE" in self.env.unwrapped.get_action_meanings()

    def reset(self, seed: int) -> np.ndarray:
        frame, info = self.env.reset(seed=seed)
        if self.fire:
            self.env.step(FIRE)
            frame, _, _, _, info = self.env.step(AFTER_FIRE)
        self.lives = info["lives"]
        self.frames = [frame] * 4
        return np.stack(self.frames)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, bool]:
        """(stack, the game's reward, terminated, truncated, whether a life was lost)."""
        frame, reward, terminated, truncated, info = self.env.step(action)
        lost = info["lives"] < self.lives
        if lost and self.fire and not (terminated or truncated):
            for start in (FIRE, AFTER_FIRE):
                frame, more, terminated, truncated, info = self.env.step(start)
                reward += more
        self.lives = info["lives"]
        self.frames.append(frame)
        return np.stack(self.frames[-4:]), float(reward), terminated, truncated, lost or terminated


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "ALE/Breakout-v5"])
def test_real_games_match_gymnasiums_wrappers_frame_for_frame(env_id: str):
    ours, reference = make_env(env_id), GymnasiumReference(env_id)
    assert ours.observation_space.shape == (4, 84, 84)
    rng = np.random.default_rng(1)
    lives_lost = 0
    for game in range(2):
        obs, _ = ours.reset(seed=game)
        np.testing.assert_array_equal(obs, reference.reset(seed=game))
        for _ in range(400):
            action = int(rng.integers(ours.action_space.n))
            obs, reward, terminated, truncated, info = ours.step(action)
            expected, game_reward, ended, cut, lost = reference.step(action)
            np.testing.assert_array_equal(obs, expected)
            assert (reward, terminated, truncated) == (game_reward, ended, cut)
            assert info[LEARNING_REWARD] == np.sign(game_reward)
            assert info[LEARNING_TERMINAL] == lost
            lives_lost += lost
            if terminated or truncated:
                break
    if env_id == "ALE/Breakout-v5":
        assert lives_lost >= 3  # the life-loss path was taken


def test_a_v5_game_without_sticky_actions_is_the_noframeskip_v4_game():
    v5 = make_env("ALE/Breakout-v5", env_kwargs={"repeat_action_probability": 0.0})
    v4 = make_env("BreakoutNoFrameskip-v4")
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(v5.reset(seed=3)[0], v4.reset(seed=3)[0])
    games = 0
    for _ in range(600):
        action = int(rng.integers(4))
        (obs5, *outcome5, _), (obs4, *outcome4, _) = v5.step(action), v4.step(action)
        np.testing.assert_array_equal(obs5, obs4)
        assert outcome5 == outcome4
        if outcome5[1] or outcome5[2]:  # the next games start unseeded, from each env's generator
            np.testing.assert_array_equal(v5.reset()[0], v4.reset()[0])
            games += 1
    assert games >= 2


def test_dqn_on_a_real_game_reports_whole_game_returns(tmp_path: Path):
    run_dir = tmp_path / "run"
    deeprl.train(
        "dqn",
        "ALE/Breakout-v5",
        steps=300,
        run_dir=run_dir,
        progress=False,
        seed=0,
        learning_starts=250,
        buffer_size=1000,
        eval_every=10**6,
        eval_episodes=1,
        final_eval_episodes=2,
        tensorboard=False,
        checkpoint_every=0,
    )
    summary = json.loads((run_dir / "eval.json").read_text())
    agent = deeprl.load(run_dir / "policy.pt")
    assert agent.env_spec["atari_frame_stack"] == 4
    # replay the final evaluation's games with Gymnasium's own wrappers: the returns are the game's points over
    # all its lives, until the game is over
    returns = []
    for episode in range(2):
        reference = GymnasiumReference("ALE/Breakout-v5")
        obs = reference.reset(seed=FINAL_EVAL_SEED + episode)
        total, lives_lost, ended = 0.0, 0, False
        while not ended:
            obs, reward, terminated, truncated, lost = reference.step(int(agent.act(obs[None])[0]))
            total, lives_lost, ended = total + reward, lives_lost + lost, terminated or truncated
        assert reference.env.unwrapped.ale.game_over() and lives_lost == 5
        returns.append(total)
    assert summary["final"]["returns"] == returns


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_a_runner_rebuilt_from_its_state_continues_a_sticky_action_game(vector: str):
    """Sticky actions draw from the emulator's own random numbers, which Gymnasium's env generator does not hold: a
    runner rebuilt from a checkpoint's state after unseeded resets (whole games played) continues exactly as the
    original, copy by copy."""

    def make() -> gym.Env:
        return make_env("ALE/Breakout-v5")  # repeat_action_probability 0.25

    original = EnvRunner(make, 2, seed=0, run=_Run(), vector=vector)
    resumed = EnvRunner(make, 2, seed=0, run=_Run(), vector=vector)
    try:  # closed whatever happens: copies in processes of their own must not outlive the test
        rng = np.random.default_rng(0)
        step = 0
        while not all("rng" in start for start in original.episode_starts):  # each copy began an unseeded game
            step += 1
            original.step(rng.integers(4, size=2), step)
        for _ in range(30):
            step += 1
            original.step(rng.integers(4, size=2), step)
        resumed.load_state_dict(torch.load(_saved(original.state_dict()), weights_only=True))  # as a checkpoint's
        np.testing.assert_array_equal(resumed.obs, original.obs)
        games = original.episodes
        for _ in range(300):
            step += 1
            actions = rng.integers(4, size=2)
            expected, got = original.step(actions, step), resumed.step(actions, step)
            np.testing.assert_array_equal(got.next_obs, expected.next_obs)
            np.testing.assert_array_equal(got.rewards, expected.rewards)
            np.testing.assert_array_equal(got.terminated, expected.terminated)
            assert got.ended == expected.ended
        assert original.episodes > games  # a game ended after the resume too
    finally:
        original.close()
        resumed.close()


def _saved(state: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


RESUME_ARGS = [
    "--steps",
    "500",
    "--quiet",
    "--set",
    "learning_starts=450",
    "--set",
    "buffer_size=1000",
    "--set",
    "checkpoint_every=250",
    "--set",
    "eval_every=100000",
    "--set",
    "eval_episodes=1",
    "--set",
    "final_eval_episodes=1",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
def test_sigkill_resumes_a_sticky_action_atari_run_exactly_with_its_frames_in_replay(tmp_path: Path, uninterrupted):
    """ALE/Breakout-v5 repeats the previous action with probability 0.25, drawn by the emulator."""
    reference = uninterrupted("dqn", "ALE/Breakout-v5", RESUME_ARGS)
    state = kill_and_resume(
        tmp_path, reference, RESUME_ARGS, 250, env="ALE/Breakout-v5", tags=("train/return", "eval/return")
    )
    # games had ended before the checkpoint: the resumed copy replays a game started unseeded, its emulator restored
    games = [row for row in rows_without_time(reference / "metrics.csv") if row["kind"] == "train"]
    assert int(games[0]["step"]) <= state["step"]


def test_deeprl_list_envs_shows_the_atari_ids(tmp_path: Path):
    result = run_deeprl("list", "--envs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert {"ALE/Pong-v5", "ALE/Breakout-v5", "PongNoFrameskip-v4", "CartPole-v1"} <= set(ids)


# ------------------------------------------------------------------------------------------ missing extras


def deeprl_without(modules: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The deeprl command in a process where importing `modules` fails, as if they were not installed (forked from
    the pre-imported server, which has loaded none of them: the script checks that first)."""
    script = cwd.with_name(cwd.name + "-without.py")
    script.write_text(
        f"import sys\nfor name in {modules!r}:\n"
        "    assert name not in sys.modules, f'{name} was imported before the test could hide it'\n"
        "    sys.modules[name] = None\n"
        "from deeprl.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    return run_deeprl(*args, cwd=cwd, script=script, timeout=120)


@pytest.mark.parametrize(
    ("missing", "args", "line"),
    [
        (
            ["ale_py"],
            ("train", "dqn", "ALE/Pong-v5"),
            "deeprl: error: environment 'ALE/Pong-v5' is an Atari game, which needs the Arcade Learning Environment: "
            "pip install 'deeprl[atari]'",
        ),
        (
            ["ale_py"],
            ("train", "dqn", "PongNoFrameskip-v4"),
            "deeprl: error: environment 'PongNoFrameskip-v4' is an Atari game, which needs the Arcade Learning "
            "Environment: pip install 'deeprl[atari]'",
        ),
        (
            ["ale_py"],
            ("train", "dqn", "Breakout-v4"),  # a legacy id: perhaps Atari, perhaps a misspelt other one
            "deeprl: error: unknown environment 'Breakout-v4'; `deeprl list --envs` shows the registered ids "
            "(Environment `Breakout` doesn't exist.); Atari games need pip install 'deeprl[atari]'",
        ),
        (
            ["cv2"],
            ("train", "dqn", "ALE/Pong-v5"),
            "deeprl: error: the Atari preprocessing resizes pictures with OpenCV, which is missing: "
            "pip install 'deeprl[atari]'",
        ),
        (
            ["mujoco"],
            ("train", "ppo", "Hopper-v5"),
            "deeprl: error: environment 'Hopper-v5' needs MuJoCo, which is missing: pip install 'deeprl[mujoco]'",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_its_install_command(
    tmp_path: Path, missing: list[str], args: tuple[str, ...], line: str
):
    result = deeprl_without(missing, *args, "--run-dir", "run", "--steps", "100", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("ALE/Pong-v5", "--set", "env_kwargs={frameskip: 4}"),
            "deeprl: error: env_kwargs frameskip=4 and atari_frame_skip=4 would both skip frames (ALE/Pong-v5): set "
            "atari_frame_skip=1 to let the game skip, or leave frameskip out",
        ),
        (
            ("CartPole-v1", "--set", "atari_preprocessing=true"),
            "deeprl: error: atari_preprocessing is for Atari games (ALE envs), not CartPole-v1",
        ),
    ],
)
def test_atari_settings_that_cannot_work_are_refused(tmp_path: Path, args: tuple[str, ...], line: str):
    result = run_deeprl("train", "dqn", *args, "--run-dir", "run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == line
    assert not (tmp_path / "run").exists()
