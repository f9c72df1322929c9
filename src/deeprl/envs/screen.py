"""CartPole seen through its screen: the picture drawn from the state, cut to the band around the cart
and shrunk, as seed 000 learns from.

Gymnasium draws CartPole with pygame, the whole screen for every frame: far more work than the physics step
it shows. `draw_cartpole` paints the same shapes with NumPy into only the rows the observation uses; a test
compares its pictures with pygame's pixel by pixel.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from deeprl.envs.atari import FRAME_CHANNELS
from deeprl.errors import DeeprlError

# Gymnasium's CartPole picture: 600x400 pixels, y pointing up while drawing, then flipped.
SCREEN_WIDTH, SCREEN_HEIGHT = 600, 400
CART_WIDTH, CART_HEIGHT, POLE_WIDTH = 50.0, 30.0, 10.0
CART_TOP = 100  # y of the track line and of the cart's centre line
AXLE_OFFSET = CART_HEIGHT / 4.0
CART_COLOR, POLE_COLOR, AXLE_COLOR = (0, 0, 0), (202, 152, 101), (129, 132, 203)
# Seed 000 keeps rows 160-320 of the picture (the band the cart and pole move in) and, in the
# difference view, a 320-pixel window centred on the cart.
BAND_TOP, BAND_BOTTOM, CART_WINDOW = 160, 320, 320
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _fill_convex(band: np.ndarray, band_top: int, columns: slice, corners: list[tuple[int, int]], color) -> None:
    """Paint the pixels whose integer coordinates lie inside (or on) a convex polygon given in drawing
    coordinates (y up), clipped to `band` (rows band_top.. of the flipped picture) and `columns`."""
    xs = np.array([corner[0] for corner in corners], dtype=np.float64)
    ys = np.array([corner[1] for corner in corners], dtype=np.float64)
    # the band holds drawing rows y_high down to y_high - len(band) + 1
    y_high = SCREEN_HEIGHT - 1 - band_top
    y_low = y_high - band.shape[0] + 1
    x0, x1 = max(int(xs.min()), columns.start), min(int(np.ceil(xs.max())) + 1, columns.stop)
    y0, y1 = max(int(ys.min()), y_low), min(int(np.ceil(ys.max())) + 1, y_high + 1)
    if x0 >= x1 or y0 >= y1:
        return
    grid_x = np.arange(x0, x1, dtype=np.float64)[None, :]
    grid_y = np.arange(y0, y1, dtype=np.float64)[:, None]
    orientation = np.sign(np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys))
    inside = np.ones((y1 - y0, x1 - x0), dtype=np.bool_)
    for a_x, a_y, b_x, b_y in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        inside &= orientation * ((b_x - a_x) * (grid_y - a_y) - (b_y - a_y) * (grid_x - a_x)) >= 0
    rows = slice(y_high - (y1 - 1), y_high - y0 + 1)  # drawing y descending = picture rows ascending
    region = band[rows, x0 - columns.start : x1 - columns.start]
    region[inside[::-1]] = color


def draw_cartpole(
    cart_x: float,
    pole_angle: float,
    *,
    x_threshold: float = 2.4,
    pole_half_length: float = 0.5,
    band: tuple[int, int] = (BAND_TOP, BAND_BOTTOM),
    columns: tuple[int, int] = (0, SCREEN_WIDTH),
) -> np.ndarray:
    """Rows band[0]:band[1] and columns columns[0]:columns[1] of CartPole's rgb_array picture, drawn
    with the shapes, sizes and colours Gymnasium's pygame renderer uses."""
    top, bottom = band
    cols = slice(*columns)
    picture = np.full((bottom - top, cols.stop - cols.start, 3), 255, dtype=np.uint8)
    scale = SCREEN_WIDTH / (2 * x_threshold)
    cart_center = cart_x * scale + SCREEN_WIDTH / 2.0
    # pygame truncates polygon corners to integers
    left, right = int(cart_center - CART_WIDTH / 2), int(cart_center + CART_WIDTH / 2)
    low, high = int(CART_TOP - CART_HEIGHT / 2), int(CART_TOP + CART_HEIGHT / 2)
    _fill_convex(picture, top, cols, [(left, low), (left, high), (right, high), (right, low)], CART_COLOR)

    pole_length = scale * 2 * pole_half_length
    sin, cos = np.sin(pole_angle), np.cos(pole_angle)
    half = POLE_WIDTH / 2
    pole = []
    for px, py in ((-half, -half), (-half, pole_length - half), (half, pole_length - half), (half, -half)):
        # rotated by -angle (the pole leans right for a positive angle), then moved onto the axle
        pole.append((int(px * cos + py * sin + cart_center), int(-px * sin + py * cos + CART_TOP + AXLE_OFFSET)))
    _fill_convex(picture, top, cols, pole, POLE_COLOR)

    axle_x, axle_y, radius = int(cart_center), int(CART_TOP + AXLE_OFFSET), int(POLE_WIDTH / 2)
    axle_row = SCREEN_HEIGHT - 1 - axle_y - top
    rows = np.arange(max(axle_row - radius, 0), min(axle_row + radius + 1, bottom - top))
    columns_near = np.arange(max(axle_x - radius, cols.start), min(axle_x + radius + 1, cols.stop))
    if rows.size and columns_near.size:
        disc = (columns_near[None, :] - axle_x) ** 2 + (rows[:, None] - axle_row) ** 2 <= radius**2
        picture[rows[0] : rows[-1] + 1, columns_near[0] - cols.start : columns_near[-1] + 1 - cols.start][disc] = (
            AXLE_COLOR
        )

    track_row = SCREEN_HEIGHT - 1 - CART_TOP - top
    if 0 <= track_row < bottom - top:
        picture[track_row] = CART_COLOR
    return picture


def cart_window(cart_x: float, x_threshold: float = 2.4) -> tuple[int, int]:
    """Columns of the 320-pixel window centred on the cart, clamped at the picture's edges (seed 000)."""
    center = int(cart_x * SCREEN_WIDTH / (2 * x_threshold) + SCREEN_WIDTH / 2.0)
    start = min(max(center - CART_WINDOW // 2, 0), SCREEN_WIDTH - CART_WINDOW)
    return start, start + CART_WINDOW


class CartPoleScreen(gym.Wrapper):
    """CartPole whose observations are pictures of the screen instead of the state vector.

    - `difference` (seed 000): the current minus the previous RGB patch of the cart's window, shape
      (3, height, 2 * height), float32 in [-1, 1]; a still picture gives zeros, motion shows as edges.
    - `frames`: the last `frames` grayscale pictures of the whole track, shape (frames, height,
      3.75 * height), uint8 (stored compactly; the network scales them to [0, 1]); an episode's first observation
      repeats its first picture.

    Patches are shrunk with bicubic resampling, as the tutorial does.
    """

    MODES = ("difference", "frames")

    def __init__(self, env: gym.Env, mode: str = "difference", height: int = 40, frames: int = 2) -> None:
        super().__init__(env)
        core = env.unwrapped
        if not all(hasattr(core, name) for name in ("x_threshold", "length", "state")):
            name = env.spec.id if env.spec is not None else type(core).__name__
            raise DeeprlError(f"screen observations are drawn for CartPole only, not {name}")
        if mode not in self.MODES:
            raise DeeprlError(f"unknown screen mode {mode!r} (choose from {', '.join(self.MODES)})")
        self.mode, self.height, self.frames = mode, height, frames
        band_height = BAND_BOTTOM - BAND_TOP
        if mode == "difference":
            self.size = (round(CART_WINDOW * height / band_height), height)  # PIL's (width, height)
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (3, height, self.size[0]), dtype=np.float32)
        else:
            self.size = (round(SCREEN_WIDTH * height / band_height), height)
            self.observation_space = gym.spaces.Box(0, 255, (frames, height, self.size[0]), dtype=np.uint8)
            setattr(self, FRAME_CHANNELS, 1)  # a stack that shifts by one picture a step: replay stores each once
        self._history: np.ndarray | None = None

    def patch(self) -> np.ndarray:
        """The current picture, cut and shrunk: (3, h, w) float32 in [0, 1] or (h, w) uint8 grayscale."""
        core = self.env.unwrapped
        cart_x, pole_angle = float(core.state[0]), float(core.state[2])
        columns = cart_window(cart_x, core.x_threshold) if self.mode == "difference" else (0, SCREEN_WIDTH)
        picture = draw_cartpole(
            cart_x, pole_angle, x_threshold=core.x_threshold, pole_half_length=core.length, columns=columns
        )
        if self.mode == "difference":
            small = Image.fromarray(picture).resize(self.size, Image.Resampling.BICUBIC)
            return np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0
        gray = Image.fromarray(picture).convert("L").resize(self.size, Image.Resampling.BICUBIC)
        return np.asarray(gray, dtype=np.uint8)

    def _observation(self, fresh: bool) -> np.ndarray:
        current = self.patch()
        if self.mode == "difference":
            previous = current if fresh else self._history
            self._history = current
            return current - previous
        if fresh:
            self._history = np.repeat(current[None], self.frames, axis=0)
        else:
            self._history = np.concatenate([self._history[1:], current[None]])
        return self._history.copy()

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = self.env.reset(**kwargs)
        return self._observation(fresh=True), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(fresh=False), reward, terminated, truncated, info
