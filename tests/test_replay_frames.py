"""ReplayBuffer(frame_channels=...), which stores each frame of a frame stack once: fed the stacks Gymnasium's
FrameStackObservation gives, through episode ends, lost lives, truncations and ring wrap-arounds, it must sample
bit for bit what a buffer keeping whole observations samples, before and after a checkpoint."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

from deeprl.buffers import ReplayBuffer
from deeprl.envs import make_env
from deeprl.envs.atari import FRAME_CHANNELS
from deeprl.experience import EnvRunner

DEPTH, SIDE, GAMMA = 4, 3, 0.9


class CountingFrames(gym.Env):
    """Frames of `channels` x 3 x 3 bytes, each a new number (so that no two neighbours are alike); episodes of 1 to
    9 steps that end terminated or truncated, and a 'lost life' now and then (a terminal for learning only)."""

    def __init__(self, channels: int) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (channels, SIDE, SIDE), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.counter = 0
        self.length = self.left = 0

    def frame(self) -> np.ndarray:
        self.counter += 1
        values = self.counter * 7 + np.arange(self.observation_space.shape[0] * SIDE * SIDE)
        return (values % 256).astype(np.uint8).reshape(self.observation_space.shape)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = int(self.np_random.integers(1, 10))
        return self.frame(), {}

    def step(self, action):
        self.left -= 1
        ended = self.left == 0
        ending = self.np_random.random()
        info = {"life_lost": bool(self.np_random.random() < 0.15)}
        return (
            self.frame(),
            float(self.np_random.integers(-2, 3)),
            ended and ending < 0.6,
            ended and ending >= 0.4,
            info,
        )


def stream(channels: int, seed: int, count: int):
    """`count` transitions (obs, action, reward, next_obs, terminated for learning, truncated) of the stacked env."""
    env = gym.wrappers.FrameStackObservation(CountingFrames(channels), DEPTH)
    shape = (DEPTH * channels, SIDE, SIDE)
    obs, _ = env.reset(seed=seed)
    for _ in range(count):
        action = int(env.np_random.integers(3))
        next_obs, reward, terminated, truncated, info = env.step(action)
        yield obs.reshape(shape), action, reward, next_obs.reshape(shape), terminated or info["life_lost"], truncated
        obs = env.reset()[0] if terminated or truncated else next_obs


def reloaded(buffer: ReplayBuffer, fresh: ReplayBuffer) -> ReplayBuffer:
    """`fresh` with `buffer`'s checkpointed state, through torch.save and a weights_only load."""
    saved = io.BytesIO()
    torch.save(buffer.state_dict(), saved)
    saved.seek(0)
    fresh.load_state_dict(torch.load(saved, weights_only=True))
    return fresh


def assert_same_samples(frames: ReplayBuffer, whole: ReplayBuffer) -> None:
    indices = np.arange(whole.size)  # every stored transition
    for n_step in (1, 3):
        got, want = frames.batch_at(indices, n_step, GAMMA), whole.batch_at(indices, n_step, GAMMA)
        for name in ("obs", "actions", "returns", "next_obs", "discounts"):
            assert torch.equal(getattr(got, name), getattr(want, name)), name


@pytest.mark.parametrize(("channels", "capacity"), [(1, 1), (1, 5), (1, 16), (3, 7)])
def test_frames_stored_once_sample_what_whole_observations_sample(channels: int, capacity: int):
    shape = (DEPTH * channels, SIDE, SIDE)

    def buffers() -> tuple[ReplayBuffer, ReplayBuffer]:
        frames = ReplayBuffer(capacity, shape, np.dtype(np.uint8), frame_channels=channels)
        return frames, ReplayBuffer(capacity, shape, np.dtype(np.uint8), shared_next_obs=True)

    frames, whole = buffers()
    count = 8 * capacity + 30  # wraps around the ring several times
    for added, transition in enumerate(stream(channels, seed=capacity, count=count), start=1):
        frames.add(*transition)
        whole.add(*transition)
        np.testing.assert_array_equal(frames.observations(np.arange(whole.size)), whole.obs[: whole.size])
        assert_same_samples(frames, whole)
        if added == count // 2:  # a checkpoint holds the frames, and sampling goes on exactly after it
            frames, whole = (reloaded(buffer, fresh) for buffer, fresh in zip((frames, whole), buffers()))
    assert not frames.frame_stacks.anchors  # every observation continued or started a stack
    assert frames.frame_stacks.frames.nbytes == (capacity + DEPTH - 1) * channels * SIDE * SIDE
    assert frames.obs.nbytes == 0 and whole.obs.nbytes == capacity * DEPTH * channels * SIDE * SIDE


def test_observations_that_neither_continue_nor_start_a_stack_are_kept_whole():
    """A memory refilled mid-episode (a resumed run without its replay memory) and a stack padded otherwise (zeros)
    come back exactly too: they are kept whole until overwritten."""
    capacity, shape = 6, (DEPTH, SIDE, SIDE)
    frames = ReplayBuffer(capacity, shape, np.dtype(np.uint8), frame_channels=1)
    whole = ReplayBuffer(capacity, shape, np.dtype(np.uint8), shared_next_obs=True)
    transitions = list(stream(1, seed=3, count=40))[5:]  # starts mid-episode
    zero_padded = transitions[9][0].copy()
    zero_padded[:2] = 0
    transitions[9] = (zero_padded, *transitions[9][1:])
    for transition in transitions:
        frames.add(*transition)
        whole.add(*transition)
        assert_same_samples(frames, whole)
        if frames.frame_stacks.added == 12:
            assert len(frames.frame_stacks.anchors) == 2
            frames = reloaded(frames, ReplayBuffer(capacity, shape, np.dtype(np.uint8), frame_channels=1))
    assert not frames.frame_stacks.anchors  # both overwritten since


def test_frame_stacks_say_so_and_other_pictures_do_not():
    assert make_env("tests.custom_envs:ScriptedAtari").get_wrapper_attr(FRAME_CHANNELS) == 1
    screen = make_env("CartPole-v1", observation="screen_frames", screen_height=20, frame_stack=3)
    assert screen.get_wrapper_attr(FRAME_CHANNELS) == 1 and screen.observation_space.shape[0] == 3
    assert not make_env("CartPole-v1", observation="screen_difference").has_wrapper_attr(FRAME_CHANNELS)
    colour = make_env("tests.custom_envs:ScriptedAtari", atari_grayscale=False)
    assert colour.get_wrapper_attr(FRAME_CHANNELS) == 3 and colour.observation_space.shape == (12, 84, 84)

    class _Run:
        config = None

    pictures = EnvRunner(lambda: make_env("tests.custom_envs:TinyPicture"), 1, seed=0, run=_Run())
    assert pictures.frame_channels is None
    pictures.close()
