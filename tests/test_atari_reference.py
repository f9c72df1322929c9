"""deeprl's Atari preprocessing against the wrappers others train with, on the same seeded games and the same random
actions, frame by frame: Gymnasium's AtariPreprocessing + FrameStackObservation, and Stable-Baselines3's AtariWrapper
with the frame stacker of its VecFrameStack.

Byte-equal where the settings agree. Where they legitimately differ, the tests say how and compare the rest:
- SB3 max-pools the last two frames in colour and converts to gray with OpenCV's weights; Gymnasium (and so deeprl)
  max-pools the ALE's own grayscale screen. Fed the ALE's grayscale as three equal colour channels (which OpenCV's
  conversion leaves as they are), SB3's frames are deeprl's byte for byte; in colour they are too on Breakout, and
  on Pong differ on the pixels where a moving sprite's two frames overlap.
- After a lost life deeprl presses FIRE and action 2 within the step and the game goes on; SB3's EpisodicLifeEnv
  ends its episode, and its reset first plays a no-op step. The SB3 side here presses FIRE and 2 itself instead of
  resetting, so its game stays deeprl's.
- SB3's stack starts a game with zeros, deeprl's with the first frame repeated.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.atari_wrappers import AtariWrapper
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

from deeprl.envs import make_env
from deeprl.envs.atari import LEARNING_REWARD, LEARNING_TERMINAL

FIRE, AFTER_FIRE = 1, 2
STEPS = 350  # agent steps per game id: a Breakout game with random actions lasts about 160


class ScreenGrayscaleAsColour(gym.ObservationWrapper):
    """The ALE's grayscale screen as three equal colour channels."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        height, width, _ = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.repeat(self.env.unwrapped.ale.getScreenGrayscale()[..., None], 3, axis=2)


def random_actions(env: gym.Env) -> np.ndarray:
    return np.random.default_rng(1).integers(env.action_space.n, size=STEPS)


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "ALE/Breakout-v5"])
def test_frames_match_gymnasiums_wrappers_where_deeprl_adds_nothing(env_id: str):
    """Without FIRE on reset (deeprl's own part), deeprl's env is Gymnasium's two wrappers, sticky actions included:
    the same pictures, game rewards and game ends; life loss and clipping only add `info` entries."""
    ours = make_env(env_id, atari_fire_reset=False)
    game = gym.wrappers.AtariPreprocessing(gym.make(env_id, frameskip=1), noop_max=30)
    reference = gym.wrappers.FrameStackObservation(game, 4, padding_type="reset")
    games, lives_lost, lives = 0, 0, 0
    obs, info = ours.reset(seed=0)
    expected, _ = reference.reset(seed=0)
    for action in random_actions(ours):
        np.testing.assert_array_equal(obs, expected)
        lives = info["lives"]
        obs, reward, terminated, truncated, info = ours.step(action)
        expected, game_reward, ended, cut, _ = reference.step(action)
        assert (reward, terminated, truncated) == (game_reward, ended, cut)
        assert info[LEARNING_REWARD] == np.sign(game_reward)
        lost = info["lives"] < lives
        assert info[LEARNING_TERMINAL] == (lost or terminated)
        lives_lost += lost
        if terminated or truncated:
            np.testing.assert_array_equal(obs, expected)
            games += 1
            obs, info = ours.reset(seed=games)
            expected, _ = reference.reset(seed=games)
    if env_id == "ALE/Breakout-v5":
        assert games >= 1 and lives_lost >= 5  # whole games and lost lives were compared


@pytest.mark.parametrize(
    ("env_id", "ale_grayscale"),
    [("PongNoFrameskip-v4", True), ("BreakoutNoFrameskip-v4", True), ("BreakoutNoFrameskip-v4", False)],
)
def test_frames_match_sb3s_atari_wrapper_and_frame_stack(env_id: str, ale_grayscale: bool):
    ours = make_env(env_id)
    game = gym.make(env_id)  # NoFrameskip-v4: the ids SB3's AtariWrapper is made for
    sb3 = AtariWrapper(ScreenGrayscaleAsColour(game) if ale_grayscale else game)  # SB3's defaults
    stack = StackedObservations(1, 4, sb3.observation_space)  # VecFrameStack's, channels last
    games, lives_lost, frames_this_game = 0, 0, 0

    def compare_stacks(obs: np.ndarray, frame: np.ndarray) -> None:
        theirs = stack.update(frame[None], np.array([False]), [{}])[0][0].transpose(2, 0, 1)
        seen = min(frames_this_game, 4)  # frames since the game began; SB3 pads the rest with zeros
        np.testing.assert_array_equal(obs[-seen:], theirs[-seen:])
        assert not theirs[:-seen].any()
        np.testing.assert_array_equal(obs[:-seen], np.broadcast_to(obs[-seen], obs[:-seen].shape))

    def start_game(seed: int) -> None:
        nonlocal frames_this_game
        obs, _ = ours.reset(seed=seed)
        frame, _ = sb3.reset(seed=seed)
        stack.reset(np.zeros((1, *frame.shape), dtype=np.uint8))
        frames_this_game = 1
        compare_stacks(obs, frame)

    start_game(0)
    for action in random_actions(ours):
        obs, _, terminated, truncated, info = ours.step(action)
        frame, clipped, life_or_game_over, cut, _ = sb3.step(action)
        assert (info[LEARNING_TERMINAL], info[LEARNING_REWARD], truncated) == (life_or_game_over, clipped, cut)
        assert terminated == sb3.get_wrapper_attr("was_real_done")
        if life_or_game_over and not terminated:  # FIRE and 2, as deeprl pressed them, instead of SB3's reset
            lives_lost += 1
            for start in (FIRE, AFTER_FIRE):
                frame, more, *_ = sb3.step(start)
                assert more == 0  # nothing scored while a life starts
        frames_this_game += 1
        compare_stacks(obs, frame)
        if terminated or truncated:
            games += 1
            start_game(games)
    if env_id.startswith("Breakout"):
        assert games >= 1 and lives_lost >= 4


def test_sb3s_colour_max_pooling_differs_on_pong_only_where_sprites_move():
    """SB3 takes the maximum of two colour frames channel by channel and then converts to gray: where a sprite has
    moved between them, that is not the maximum of the two gray frames (Gymnasium's, deeprl's)."""
    ours = make_env("PongNoFrameskip-v4")
    sb3 = AtariWrapper(gym.make("PongNoFrameskip-v4"))
    ours.reset(seed=0)
    sb3.reset(seed=0)
    differing, largest = [], 0
    for action in random_actions(ours):
        obs, *_ = ours.step(action)
        frame, *_ = sb3.step(action)
        difference = np.abs(obs[-1].astype(int) - frame[..., 0])
        differing.append(np.count_nonzero(difference) / difference.size)
        largest = max(largest, int(difference.max()))
    assert 0 < np.mean(differing) < 0.005 and largest <= 16  # measured: 0.18% of the pixels, by up to 16 levels
