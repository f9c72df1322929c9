"""Atari games (the Arcade Learning Environment, `pip install 'deeprl[atari]'`) and their standard preprocessing.

The preprocessing is the DQN Nature paper's, as Stable-Baselines3's AtariWrapper and CleanRL apply it: up to 30
random no-op frames when a game starts, each action repeated for 4 frames with the observation the pixel-wise
maximum of the last two (Atari sprites flicker between frames), FIRE pressed when a game or a life starts in games
that wait for it, 84x84 grayscale pictures, and a stack of the last 4 of them (channels first: (4, 84, 84) bytes).
Gymnasium's own `AtariPreprocessing` and `FrameStackObservation` do the frames; the wrappers here do the rest.

Two parts are for learning only: a lost life ends the episode and rewards are clipped to their sign. The env's
episode stays the whole game and its reward the game's own, so evaluations and every reported return are the
game's scores; the learning signals travel in `info` (LEARNING_TERMINAL, LEARNING_REWARD), which the training loop
hands to the learner instead (`deeprl.envs.learning_signals`). The game goes on after a lost life, as in the
Nature paper, and a resumed run replays whole games.

Importing this module imports neither ale_py nor OpenCV: only making an Atari env does.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.errors import DeeprlError

ATARI_INSTALL = "pip install 'deeprl[atari]'"

# Keys of `info` whose values a learner takes instead of the env's: the reward to learn from, and whether the
# step ends the episode for learning although the env's episode goes on.
LEARNING_REWARD = "learning_reward"
LEARNING_TERMINAL = "learning_terminal"

# The attribute by which an env says its observations stack frames that shift by one each step (its value: the
# channels of one frame), so that a replay memory may store each frame once (deeprl.buffers.FrameStacks).
FRAME_CHANNELS = "frame_channels"

FIRE = "FIRE"
# After FIRE the DQN baselines press the action after it (index 2) too; doing the same keeps runs comparable
# with theirs frame for frame.
AFTER_FIRE = 2

# Legacy Atari ids ale_py registers without a namespace: Pong-v0, Pong-v4, PongNoFrameskip-v4, ...
_LEGACY_ID = re.compile(r"[A-Z][A-Za-z0-9]*-v[04]")
_CERTAINLY_LEGACY_ID = re.compile(r"[A-Z][A-Za-z0-9]*(NoFrameskip|Deterministic)-v[04]")


@dataclasses.dataclass(frozen=True)
class AtariSettings:
    """The preprocessing's settings (RunConfig's `atari_*` env options, the same names without the prefix).
    `preprocessing` None: on for Atari games, off for other envs."""

    preprocessing: bool | None = None
    noop_max: int = 30
    frame_skip: int = 4
    screen_size: int = 84
    grayscale: bool = True
    terminal_on_life_loss: bool = True
    fire_reset: bool = True
    clip_rewards: bool = True
    frame_stack: int = 4

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> AtariSettings:
        """Settings from make_env's `atari_*` keyword arguments (None: the default)."""
        return cls(**{name.removeprefix("atari_"): value for name, value in options.items() if value is not None})

    def wanted_for(self, env_id: str) -> bool:
        """Whether an env made from `env_id` gets the preprocessing (its id registered by ale_py, unless turned
        off). Custom entry points are decided once made (`wanted_for_env`)."""
        return self.preprocessing is not False and is_ale_id(env_id)

    def wanted_for_env(self, env: gym.Env, env_name: str) -> bool:
        """Whether the made env `env` gets the preprocessing; asked for on another env, one line says it cannot."""
        if self.preprocessing is None:
            return is_atari(env)
        if self.preprocessing and not is_atari(env):
            raise DeeprlError(f"atari_preprocessing is for Atari games (ALE envs), not {env_name}")
        return self.preprocessing

    def game_kwargs(self, env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The game's constructor arguments: the preprocessing skips frames itself, so the game must not."""
        if self.frame_skip == 1:
            return env_kwargs
        if env_kwargs.get("frameskip", 1) != 1:
            raise DeeprlError(
                f"env_kwargs frameskip={env_kwargs['frameskip']!r} and atari_frame_skip="
                f"{self.frame_skip} would both skip frames ({env_id}): set atari_frame_skip=1 to let "
                "the game skip, or leave frameskip out"
            )
        return {**env_kwargs, "frameskip": 1}


# The settings as env options (RunConfig fields, make_env keyword arguments): atari_noop_max, ...
ATARI_OPTIONS = tuple(f"atari_{field.name}" for field in dataclasses.fields(AtariSettings))


def is_atari(env: gym.Env) -> bool:
    """Whether `env` is an Atari game: its core has an Arcade Learning Environment (`ale`) to read frames and
    lives from."""
    return hasattr(env.unwrapped, "ale") and hasattr(env.unwrapped, "get_action_meanings")


def is_ale_id(env_id: str) -> bool:
    """Whether `env_id` is registered (after `register_ale_envs`) by ale_py."""
    spec = gym.registry.get(env_id)
    return spec is not None and str(spec.entry_point).startswith("ale_py")


def register_ale_envs(env_id: str) -> None:
    """Register ale_py's ids when `env_id` looks like one of them and is not registered yet (Gymnasium 1.x registers
    them only on request), so that no other env pays for importing the emulator. Without ale-py an Atari id is one
    line naming the install command."""
    if env_id in gym.registry:
        return
    certain = env_id.startswith("ALE/") or _CERTAINLY_LEGACY_ID.fullmatch(env_id) is not None
    if not (certain or _LEGACY_ID.fullmatch(env_id)):
        return
    if register_installed_ale_envs() or not certain:
        return  # without ale-py, an id that may be another env's misspelt gets the unknown-id line and the command
    raise DeeprlError(
        f"environment '{env_id}' is an Atari game, which needs the Arcade Learning Environment: {ATARI_INSTALL}"
    )


def register_installed_ale_envs() -> bool:
    """Register ale_py's ids if it is installed (`deeprl list --envs` shows them too); whether it is."""
    try:
        ale_py = importlib.import_module("ale_py")
    except ImportError:
        return False
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # not its banner on stderr for every game made
    gym.register_envs(ale_py)
    return True


def missing_atari_hint(env_id: str) -> str:
    """For an unknown id that may be a legacy Atari one (Pong-v4) while ale-py is missing: how to get them."""
    if _LEGACY_ID.fullmatch(env_id) and importlib.util.find_spec("ale_py") is None:
        return f"; Atari games need {ATARI_INSTALL}"
    return ""


def has_frame_limit(env: gym.Env) -> bool:
    """Whether an Atari game truncates its own episodes (ALE's max_num_frames_per_episode; v5 and v4 ids: 108 000
    frames, 30 minutes of play)."""
    ale = getattr(env.unwrapped, "ale", None)
    return ale is not None and hasattr(ale, "getInt") and ale.getInt("max_num_frames_per_episode") > 0


def emulator_state(env: gym.Env) -> bytes | None:
    """The whole state of an Atari game's emulator with its own random generator, which draws the sticky actions and
    which neither a reset without a seed nor the env's `np_random` sets (None for other envs): plain bytes, about
    14 KB."""
    ale = getattr(env.unwrapped, "ale", None)
    if ale is None or not hasattr(ale, "cloneState"):  # not an ALE game, or one without an emulator state to save
        return None
    return ale.cloneState(include_rng=True).serialize()


def restore_emulator_state(env: gym.Env, state: bytes) -> None:
    """Put the emulator of the Atari game `env` back in `state` (from `emulator_state`)."""
    ale_py = importlib.import_module("ale_py")
    env.unwrapped.ale.restoreState(ale_py.ALEState(state))


def preprocess(env: gym.Env, settings: AtariSettings, env_name: str) -> gym.Env:
    """`env` (an Atari game named `env_name`, made with frameskip=1 when `settings.frame_skip` > 1) with the
    standard preprocessing."""
    try:
        importlib.import_module("cv2")
    except ImportError:
        raise DeeprlError(
            f"the Atari preprocessing resizes pictures with OpenCV, which is missing: {ATARI_INSTALL}"
        ) from None
    if settings.frame_skip > 1 and getattr(env.unwrapped, "_frameskip", 1) != 1:
        raise DeeprlError(
            f"{env_name} skips frames itself (frameskip={env.unwrapped._frameskip}) and "
            f"atari_frame_skip={settings.frame_skip} would skip again: make it with frameskip=1, or "
            "set atari_frame_skip=1"
        )
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=settings.noop_max,
        frame_skip=settings.frame_skip,
        screen_size=settings.screen_size,
        terminal_on_life_loss=False,  # Gymnasium's ends the game itself; here a lost life ends learning episodes only
        grayscale_obs=settings.grayscale,
    )
    if settings.fire_reset and FIRE in env.unwrapped.get_action_meanings():
        env = FireOnStart(env)
    if settings.terminal_on_life_loss:
        env = LifeLossEndsLearningEpisode(env)
    if settings.clip_rewards:
        env = LearningRewardSign(env)
    # padding_type "reset": a game's first observation is its first frame repeated, as FrameStacks expects
    env = gym.wrappers.FrameStackObservation(env, settings.frame_stack, padding_type="reset")
    if not settings.grayscale:
        env = StackedColoursAsChannels(env)
    return FramesShiftByOne(env, frame_channels=1 if settings.grayscale else 3)


class FireOnStart(gym.Wrapper):
    """Presses FIRE, then action 2, when a game starts and after each lost life: games such as Breakout wait for
    FIRE before they go on, and a learner would otherwise first have to discover that. The rewards of these steps
    count towards the step that lost the life."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self.start_actions = (meanings.index(FIRE), AFTER_FIRE)[: len(meanings) - 1]
        self.lives = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        for action in self.start_actions:
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:  # a game that ends while starting: start again, without a seed
                obs, info = self.env.reset()
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        lost, self.lives = lives < self.lives, lives
        for next_action in self.start_actions:
            if not lost or terminated or truncated:
                break
            obs, more, terminated, truncated, info = self.env.step(next_action)
            reward += more
        self.lives = self.env.unwrapped.ale.lives()
        return obs, reward, terminated, truncated, info


class LifeLossEndsLearningEpisode(gym.Wrapper):
    """Marks a step that loses a life (or ends the game) as terminal for learning, `info[LEARNING_TERMINAL]`,
    as the DQN Nature paper does; the game, and the env's episode, go on until the game is over."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        info = {**info, LEARNING_TERMINAL: bool(terminated or lives < self.lives)}
        self.lives = lives
        return obs, reward, terminated, truncated, info


class LearningRewardSign(gym.Wrapper):
    """Gives the reward's sign (-1, 0 or 1) as the reward to learn from, `info[LEARNING_REWARD]`, so that one
    learning rate suits games whose points differ by orders of magnitude; the env's reward stays the game's."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, LEARNING_REWARD: float(np.sign(reward))}


class FramesShiftByOne(gym.Wrapper):
    """Says (attribute FRAME_CHANNELS) that the observations stack frames of `frame_channels` channels along their
    first axis, oldest first, that each step shifts them by one frame and that an episode's first observation repeats
    its first frame; it changes nothing else."""

    def __init__(self, env: gym.Env, frame_channels: int) -> None:
        super().__init__(env)
        setattr(self, FRAME_CHANNELS, frame_channels)


class StackedColoursAsChannels(gym.ObservationWrapper):
    """A stack of colour frames (stack, height, width, 3) as one channels-first picture (3 * stack, height, width),
    the frames in stack order, each frame's red, green and blue together: the CNN reads three dimensions."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        stack, height, width, colours = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0, 255, shape=(stack * colours, height, width), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        stack, height, width, colours = observation.shape
        return np.ascontiguousarray(observation.transpose(0, 3, 1, 2)).reshape(stack * colours, height, width)
