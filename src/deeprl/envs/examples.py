"""Small environments whose best return is known, one per kind of action deeprl's policies take beyond Discrete and
Box, and one where most actions are invalid in most states (an action mask). Train on them by entry point, e.g.
`deeprl train ppo deeprl.envs.examples:CodeLock`.

- `CodeLock` (MultiDiscrete): guess each digit of a code shown in the observation; best return 10.
- `LightSwitches` (MultiBinary): set each switch as the observation asks; best return 10.
- `MaskedGrid` (Discrete, masked): walk a grid by naming the next cell; only the neighbouring cells are valid; best
  return -2 (size - 1), -10 on the default 6x6 grid. `GridWalk` is the same task without the mask.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

EPISODE_STEPS = 10


class CodeLock(gym.Env):
    """Each step shows a code of len(digits) digits (digit d in 0..digits[d]-1, one-hot per digit) and takes a guess
    of every digit (MultiDiscrete(digits)); the reward is the fraction of digits guessed right. A new code is drawn
    every step; an episode lasts 10 steps. Best return 10; guessing at random earns 10 * mean(1 / digits)."""

    def __init__(self, digits: tuple[int, ...] = (2, 3, 4)) -> None:
        self.digits = np.array(digits)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(int(self.digits.sum()),), dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete(self.digits)
        self.code = np.zeros(len(self.digits), dtype=np.int64)
        self.steps = 0

    def _draw(self) -> np.ndarray:
        self.code = self.np_random.integers(self.digits)
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        obs[np.cumsum([0, *self.digits[:-1]]) + self.code] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self._draw(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(np.mean(np.asarray(action) == self.code))
        self.steps += 1
        return self._draw(), reward, self.steps >= EPISODE_STEPS, False, {}


class LightSwitches(gym.Env):
    """Each step shows which of `switches` lights should be on (0/1 each) and takes a setting of every switch
    (MultiBinary(switches)); the reward is the fraction set right. A new request is drawn every step; an episode lasts
    10 steps. Best return 10; random settings earn 5."""

    def __init__(self, switches: int = 6) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(switches,), dtype=np.float32)
        self.action_space = gym.spaces.MultiBinary(switches)
        self.wanted = np.zeros(switches, dtype=np.int8)
        self.steps = 0

    def _draw(self) -> np.ndarray:
        self.wanted = self.np_random.integers(2, size=self.action_space.n).astype(np.int8)
        return self.wanted.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.steps = 0
        return self._draw(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(np.mean(np.asarray(action) == self.wanted))
        self.steps += 1
        return self._draw(), reward, self.steps >= EPISODE_STEPS, False, {}


class GridWalk(gym.Env):
    """A `size` x `size` grid walked from the top-left cell to the bottom-right one. An action names the cell to step
    to (Discrete(size * size)); only the up to 4 cells next to the current one are valid, so at most 4 of the
    size * size actions are. An invalid action leaves the walker where it is. Every step costs 1; episodes end at the
    goal or are cut after `max_steps`. Best return -2 (size - 1).

    The env says nothing of which actions are valid (MaskedGrid does). `invalid_actions` counts the invalid actions
    every instance of GridWalk and MaskedGrid was given (a benchmark reads it)."""

    invalid_actions: ClassVar[int] = 0
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}
    CELL_PIXELS = 16

    def __init__(self, size: int = 6, max_steps: int = 100, render_mode: str | None = None) -> None:
        self.size, self.max_steps, self.render_mode = size, max_steps, render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(size * size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(size * size)
        self.cell, self.steps = 0, 0

    def valid_cells(self) -> np.ndarray:
        """A boolean per action: the cells next to the current one."""
        row, column = divmod(self.cell, self.size)
        mask = np.zeros(self.size * self.size, dtype=np.bool_)
        for next_row, next_column in ((row - 1, column), (row + 1, column), (row, column - 1), (row, column + 1)):
            if 0 <= next_row < self.size and 0 <= next_column < self.size:
                mask[next_row * self.size + next_column] = True
        return mask

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        obs[self.cell] = 1.0
        return obs

    def render(self) -> np.ndarray:
        """The grid as a picture: the goal green, the walker white, the cells it may step to gray."""
        cells = np.zeros((self.size * self.size, 3), dtype=np.uint8)
        cells[self.valid_cells()] = (90, 90, 90)
        cells[-1] = (40, 160, 60)
        cells[self.cell] = (255, 255, 255)
        picture = cells.reshape(self.size, self.size, 3)
        return picture.repeat(self.CELL_PIXELS, axis=0).repeat(self.CELL_PIXELS, axis=1)

    def _info(self) -> dict[str, Any]:
        return {}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cell, self.steps = 0, 0
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.valid_cells()[int(action)]:
            self.cell = int(action)
        else:
            GridWalk.invalid_actions += 1
        self.steps += 1
        terminated = self.cell == self.size * self.size - 1
        return self._obs(), -1.0, terminated, self.steps >= self.max_steps and not terminated, self._info()


class MaskedGrid(GridWalk):
    """GridWalk whose valid actions come from `action_masks()` and, the same, in `info["action_mask"]`."""

    def action_masks(self) -> np.ndarray:
        return self.valid_cells()

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self.valid_cells()}
