"""Frames per second of CartPole's picture pipeline: Gymnasium's pygame renderer against deeprl's NumPy
drawing, each followed by the same cut and bicubic shrink to the observation, and whole env steps.

    python benchmarks/screen_speed.py [--frames 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym
import numpy as np
from PIL import Image

from deeprl.envs import make_env
from deeprl.envs.screen import BAND_BOTTOM, BAND_TOP, cart_window, draw_cartpole


def states(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack(
        [rng.uniform(-2.4, 2.4, count), np.zeros(count), rng.uniform(-0.2, 0.2, count), np.zeros(count)], axis=1
    )


def per_second(work, count: int) -> float:
    work(min(count, 50))  # warm up (pygame's first surface, PIL's first resize)
    started = time.perf_counter()
    work(count)
    return count / (time.perf_counter() - started)


def pygame_patches(count: int) -> None:
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    for state in states(count):
        env.unwrapped.state = state
        start, stop = cart_window(state[0])
        band = env.render()[BAND_TOP:BAND_BOTTOM, start:stop]
        Image.fromarray(band).resize((80, 40), Image.Resampling.BICUBIC)
    env.close()


def numpy_patches(count: int) -> None:
    for state in states(count):
        band = draw_cartpole(state[0], state[2], columns=cart_window(state[0]))
        Image.fromarray(band).resize((80, 40), Image.Resampling.BICUBIC)


def env_steps(observation: str, **options) -> callable:
    def work(count: int) -> None:
        env = make_env("CartPole-v1", observation=observation, **options)
        env.reset(seed=0)
        for _ in range(count):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        env.close()

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    count = parser.parse_args().frames
    rows = [
        ("patch via Gymnasium render() (pygame) + cut + bicubic 80x40", per_second(pygame_patches, count)),
        ("patch via deeprl draw_cartpole (NumPy) + cut + bicubic 80x40", per_second(numpy_patches, count)),
        ("env step, observation=state", per_second(env_steps("state"), count)),
        ("env step, observation=screen_difference (3x40x80)", per_second(env_steps("screen_difference"), count)),
        (
            "env step, observation=screen_frames height 20 (2x20x75)",
            per_second(env_steps("screen_frames", screen_height=20), count),
        ),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {count} frames each\n")
    print("| pipeline | frames/s |\n| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    print(f"\nNumPy drawing / pygame rendering: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
