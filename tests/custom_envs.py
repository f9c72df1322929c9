"""Environments for tests of custom `package.module:ClassName` entry points."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right (action 1) from cell 0 to cell `length`; action 0 stays put. Reward -1 per step."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, length: int = 5, render_mode: str | None = None) -> None:
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, float(length), shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action):
        self.position += int(action)
        terminated = self.position >= self.length
        return self._obs(), -1.0, terminated, False, {}

    def render(self):
        frame = np.zeros((8, 8 * (self.length + 1), 3), dtype=np.uint8)
        frame[:, 8 * self.position : 8 * self.position + 8] = 255
        return frame


class Broken(gym.Env):
    """An env whose constructor fails, as user code sometimes does."""

    def __init__(self) -> None:
        raise RuntimeError("the warehouse is on fire")


def not_an_env() -> object:
    return object()


class WrongShape(Corridor):
    """Declares a (1,) observation but returns (2,)."""

    def _obs(self) -> np.ndarray:
        return np.array([self.position, 0.0], dtype=np.float32)


class EscapesBounds(Corridor):
    """Its observations leave the declared [0, length] range after a few steps."""

    def _obs(self) -> np.ndarray:
        return np.array([self.position * 10.0], dtype=np.float32)


class IgnoresSeed(Corridor):
    """Same seed, different first observation: Gymnasium's checker rejects it."""

    def __init__(self, length: int = 5, render_mode: str | None = None) -> None:
        super().__init__(length, render_mode)
        self.resets = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position + 0.001 * self.resets], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.resets += 1
        return super().reset(seed=seed, options=options)


class UndrawnCorridor(Corridor):
    """A Corridor written without watching in mind: its constructor takes no render_mode."""

    def __init__(self, length: int = 5) -> None:
        super().__init__(length)


class BlankCorridor(Corridor):
    """Takes a render_mode, but its render() draws nothing."""

    def render(self):
        return None


class AsymmetricDial(gym.Env):
    """A Box action space with different, asymmetric bounds per dimension (low [-1, 0], high [3, 10]): each step
    the reward is minus the squared distance of the action from (2, 8), relative to the bounds' widths, on a random
    observation; episodes last 20 steps. Every action any instance receives is kept in `received`, so a test can
    check what reached the env."""

    received: ClassVar[list[np.ndarray]] = []
    target: ClassVar[np.ndarray] = np.array([2.0, 8.0], dtype=np.float32)

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(
            np.array([-1.0, 0.0], dtype=np.float32), np.array([3.0, 10.0], dtype=np.float32), dtype=np.float32
        )
        self.steps = 0

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-1.0, 1.0, size=2).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action)
        AsymmetricDial.received.append(action.copy())
        widths = self.action_space.high - self.action_space.low
        reward = -float((((action - self.target) / widths) ** 2).sum())
        self.steps += 1
        return self._obs(), reward, False, self.steps >= 20, {}


class UnboundedActions(gym.Env):
    """A Box action space without bounds (-inf, inf): nothing to scale a [-1, 1] actor to."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), -float(np.square(action).sum()), False, False, {}


class PendulumInUnits(gym.ActionWrapper):
    """Pendulum-v1 (with its 200-step time limit) whose torque is given in other units: its action space is the Box
    [low, high], mapped affinely onto Pendulum's [-2, 2] before Pendulum sees it. The mapping is computed in float64
    and handed to Pendulum as float32, the dtype Pendulum's own action space has."""

    def __init__(self, low: float, high: float, dtype: type = np.float32) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.pendulum_low, self.pendulum_high = self.env.action_space.low, self.env.action_space.high
        self.action_space = gym.spaces.Box(low, high, shape=(1,), dtype=dtype)

    def action(self, action: np.ndarray) -> np.ndarray:
        low, high = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        fraction = (np.asarray(action, dtype=np.float64) - low) / (high - low)
        pendulum_low = self.pendulum_low.astype(np.float64)
        torque = pendulum_low + fraction * (self.pendulum_high.astype(np.float64) - pendulum_low)
        return torque.astype(np.float32)


class NarrowPendulum(PendulumInUnits):
    """Pendulum's torque in units four times larger: the Box [-0.5, 0.5]."""

    def __init__(self) -> None:
        super().__init__(-0.5, 0.5)


class OffsetPendulum(PendulumInUnits):
    """Pendulum's torque shifted by 5: the Box [3, 7]. float64, because a float32 in [4, 7] holds one bit less than
    the same torque in [0, 2]: a float32 offset Box could not carry the torque the actor chose to the bit."""

    def __init__(self) -> None:
        super().__init__(3.0, 7.0, dtype=np.float64)


class PictureSide(gym.Env):
    """A picture task learnt in seconds: each step shows a uint8 picture (`size` x `size`, 3 channels, in `layout`
    HWC or CHW) whose left or right half is lit, drawn at random; action 0 says left, 1 says right, and a right
    answer earns 1. Episodes last 10 steps: 10 is perfect, a policy that cannot see scores 5 on average."""

    episode_length = 10

    def __init__(self, layout: str = "HWC", size: int = 36) -> None:
        self.layout, self.size = layout, size
        shape = (size, size, 3) if layout == "HWC" else (3, size, size)
        self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.side, self.steps = 0, 0

    def _obs(self) -> np.ndarray:
        picture = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        half = self.size // 2
        picture[:, half * self.side : half * (self.side + 1)] = (200, 120, 40)  # a colour per channel
        return picture if self.layout == "HWC" else picture.transpose(2, 0, 1).copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.side, self.steps = int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def _reward(self, action) -> float:
        return float(int(action) == self.side)

    def step(self, action):
        reward = self._reward(action)
        self.side, self.steps = int(self.np_random.integers(2)), self.steps + 1
        return self._obs(), reward, self.steps >= self.episode_length, False, {}


class PictureSideCHW(PictureSide):
    """PictureSide with its channels first."""

    def __init__(self) -> None:
        super().__init__(layout="CHW")


class PictureSideBox(PictureSide):
    """PictureSide answered with a Box action in [-1, 1]: its sign says the side (negative left), rewarded by 1 -
    |action - target| for target -1 (left) or 1 (right)."""

    def __init__(self, layout: str = "HWC", size: int = 36) -> None:
        super().__init__(layout=layout, size=size)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def _reward(self, action) -> float:
        return 1.0 - abs(float(np.asarray(action).reshape(-1)[0]) - (2 * self.side - 1))


class TinyPicture(PictureSide):
    """PictureSide at 20x20 pixels: smaller than the Nature CNN takes (36x36)."""

    def __init__(self) -> None:
        super().__init__(size=20)


class ScriptedAtari(gym.Env):
    """An Atari-like game with known frames, lives and rewards, for the Atari preprocessing's tests. It offers what
    the preprocessing reads from a real one: `ale` (lives, screens, frame limit), `get_action_meanings()` and
    `_frameskip`. Frame f (the reset shows frame 0, each step is one frame) is a uniform picture of gray level
    `level(f)`; in colour its channels are level, level // 2 and 255 - level. Lives are lost at LIVES_LOST_AT, the
    last one ends the game; rewards come at the frames of REWARDS. `actions` logs every action the game receives."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 60}
    LIVES = 3
    LIVES_LOST_AT = (38, 80, 120)
    REWARDS: ClassVar[dict[int, float]] = {13: 5.0, 14: -2.0, 22: -7.0, 50: 10.0, 97: 0.5}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, shape=(210, 160, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self._frameskip = 1
        self.ale = _ScriptedALE(self)
        self.frame, self.lives, self.actions = 0, self.LIVES, []

    @staticmethod
    def level(frame: int) -> int:
        return (37 * frame) % 251  # jumps up and down, so the max of two frames is not simply the newer one

    def get_action_meanings(self) -> list[str]:
        return ["NOOP", "FIRE", "RIGHT", "LEFT"]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.frame, self.lives, self.actions = 0, self.LIVES, []
        return self.render(), {"lives": self.lives}

    def step(self, action):
        self.frame += 1
        self.actions.append(int(action))
        self.lives -= self.frame in self.LIVES_LOST_AT
        return self.render(), self.REWARDS.get(self.frame, 0.0), self.lives == 0, False, {"lives": self.lives}

    def render(self) -> np.ndarray:
        level = self.level(self.frame)
        frame = np.empty((210, 160, 3), dtype=np.uint8)
        frame[...] = (level, level // 2, 255 - level)
        return frame


class _ScriptedALE:
    """The part of ale_py's ALEInterface the preprocessing calls, for ScriptedAtari."""

    def __init__(self, game: ScriptedAtari) -> None:
        self.game = game

    def lives(self) -> int:
        return self.game.lives

    def getScreenGrayscale(self, out: np.ndarray) -> None:
        out[...] = self.game.level(self.game.frame)

    def getScreenRGB(self, out: np.ndarray) -> None:
        out[...] = self.game.render()

    def getInt(self, name: str) -> int:
        return {"max_num_frames_per_episode": 0}[name]


class DictCorridor(gym.Env):
    """A corridor of 5 cells entered in the middle; a cue in the observation says which end pays +1 (the other
    costs -1), so the policy must read it. Observations are a nested Dict with a Tuple, a MultiBinary and a text
    label (ignored); actions: 0 left, 1 right. An episode ends at either end, or after 20 steps.
    `left_from_second_cell` counts the moves left from cell 1 that instances of each class took."""

    LENGTH = 5
    left_from_second_cell = 0

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {
                "position": gym.spaces.Discrete(self.LENGTH),
                "cue": gym.spaces.Dict({"side": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.MultiBinary(2)))}),
                "label": gym.spaces.Text(12),
            }
        )
        self.action_space = gym.spaces.Discrete(2)
        self.position, self.goal, self.steps = 2, 0, 0

    def _obs(self) -> dict:
        side = np.eye(2, dtype=np.int8)[self.goal]
        return {"position": self.position, "cue": {"side": (self.goal, side)}, "label": "corridor"}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position, self.goal, self.steps = 2, int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def step(self, action):
        if int(action) == 0 and self.position == 1:
            type(self).left_from_second_cell += 1
        self.position += 1 if int(action) == 1 else -1
        self.steps += 1
        at_end = self.position in (0, self.LENGTH - 1)
        reward = (1.0 if (self.position == 0) == (self.goal == 0) else -1.0) if at_end else -0.05
        return self._obs(), reward, at_end, self.steps >= 20, {}


class DictReach(gym.Env):
    """Move a point on a line (Box action in [-1, 1], a step of 0.25 per unit) towards a target at -0.5 or +0.5,
    which a Discrete entry of the Dict observation names; reward: minus the distance. 20 steps an episode."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {"position": gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32), "target": gym.spaces.Discrete(2)}
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.position, self.target, self.steps = 0.0, 0, 0

    def _obs(self) -> dict:
        return {"position": np.array([self.position], dtype=np.float32), "target": self.target}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position, self.target, self.steps = 0.0, int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def step(self, action):
        self.position = float(np.clip(self.position + 0.25 * float(np.asarray(action).reshape(-1)[0]), -1.0, 1.0))
        self.steps += 1
        reward = -abs(self.position - (0.5 if self.target == 1 else -0.5))
        return self._obs(), reward, False, self.steps >= 20, {}


class MaskedDictCorridor(DictCorridor):
    """DictCorridor whose observation also carries an `action_mask` entry (PettingZoo's layout): moving left is
    masked in the leftmost free cell."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = gym.spaces.Dict(
            {**self.observation_space.spaces, "action_mask": gym.spaces.MultiBinary(2)}
        )

    def _obs(self) -> dict:
        return {**super()._obs(), "action_mask": np.array([self.position > 1, 1], dtype=np.int8)}


class MaskedDials(gym.Env):
    """MultiDiscrete([3, 4]) actions under a mask given only in info["action_mask"] (7 booleans: the first dial's 3
    choices, then the second's 4), a random non-empty subset of each dial's choices per step. The reward is 1 for an
    action the mask allows and -1 otherwise; episodes last 20 steps. Every action it is given is checked against the
    mask of its state, and `invalid` counts those it did not allow (every instance together)."""

    invalid: ClassVar[int] = 0
    nvec: ClassVar[tuple[int, int]] = (3, 4)

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(7,), dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete(self.nvec)
        self.mask = np.ones(7, dtype=np.bool_)
        self.steps = 0

    def _draw(self) -> tuple[np.ndarray, dict]:
        parts = []
        for choices in self.nvec:
            part = self.np_random.random(choices) < 0.4
            part[self.np_random.integers(choices)] = True  # each dial keeps a valid choice
            parts.append(part)
        self.mask = np.concatenate(parts)
        return self.mask.astype(np.float32), {"action_mask": self.mask.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        return self._draw()

    def step(self, action):
        first, second = (int(choice) for choice in np.asarray(action))
        allowed = bool(self.mask[first] and self.mask[3 + second])
        MaskedDials.invalid += not allowed
        self.steps += 1
        obs, info = self._draw()
        return obs, 1.0 if allowed else -1.0, False, self.steps >= 20, info


class ConflictingMasks(gym.Env):
    """Discrete(3), whose action_masks() allows only action 0 and whose info["action_mask"] only action 1: the method
    takes precedence. `received` keeps every action given (every instance together); episodes last 5 steps."""

    received: ClassVar[list[int]] = []

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.steps = 0

    def action_masks(self) -> np.ndarray:
        return np.array([True, False, False])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(2, dtype=np.float32), {"action_mask": np.array([False, True, False])}

    def step(self, action):
        ConflictingMasks.received.append(int(action))
        self.steps += 1
        info = {"action_mask": np.array([False, True, False])}
        return np.zeros(2, dtype=np.float32), 0.0, False, self.steps >= 5, info


class WrongMaskShape(ConflictingMasks):
    """Discrete(3) whose action_masks() gives 4 booleans."""

    def action_masks(self) -> np.ndarray:
        return np.ones(4, dtype=np.bool_)


class NoValidAction(ConflictingMasks):
    """Discrete(3) whose mask allows nothing from its third step on."""

    def action_masks(self) -> np.ndarray:
        return np.array([self.steps < 2, False, False])


class MaskedBoxActions(ConflictingMasks):
    """A Box action space whose env still offers action_masks(): masks do not apply to continuous actions."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


class PictureAndPosition(PictureSide):
    """PictureSide as a Dict of its 36x36 picture ('image', which alone says the side) and a 'position' vector (the
    episode's progress and a number drawn at random, telling nothing of the side): the picture must be read."""

    def __init__(self, layout: str = "HWC", size: int = 36) -> None:
        super().__init__(layout=layout, size=size)
        picture_space = self.observation_space
        position = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict({"image": picture_space, "position": position})

    def _obs(self) -> dict:
        noise = self.np_random.uniform(-1.0, 1.0)
        position = np.array([self.steps / self.episode_length, noise], dtype=np.float32)
        return {"image": super()._obs(), "position": position}


class PictureAndPositionBox(PictureAndPosition):
    """PictureAndPosition answered with a Box action in [-1, 1], rewarded as PictureSideBox."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    _reward = PictureSideBox._reward
