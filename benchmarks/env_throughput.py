"""Raw env throughput: agent steps/s of deeprl's envs (Atari with its preprocessing, MuJoCo) at 1, 2, 4, 8 copies,
stepped in one process (Gymnasium's SyncVectorEnv, what deeprl trains with) or a process per copy (AsyncVectorEnv).

    python benchmarks/env_throughput.py [--envs PongNoFrameskip-v4,HalfCheetah-v5] [--copies 1,2,4,8]
        [--vectors sync,async] [--seconds 5]

Random actions, no learning: this is the ceiling an algorithm's env side sets. An Atari agent step is 4 emulator
frames under the standard preprocessing (frames/s = 4 x steps/s). Prints a Markdown table with the machine and the
exact command.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone

import gymnasium as gym
import numpy as np

from deeprl.envs import env_factory

VECTORS = {"sync": gym.vector.SyncVectorEnv, "async": gym.vector.AsyncVectorEnv}
WARMUP_STEPS = 50


def steps_per_second(env_id: str, copies: int, vector: str, seconds: float) -> float:
    """Agent steps/s summed over the copies, after a warm-up, over at least `seconds` of stepping."""
    envs = VECTORS[vector]([env_factory(env_id) for _ in range(copies)])
    try:
        envs.reset(seed=0)
        envs.action_space.seed(0)
        actions = [envs.action_space.sample() for _ in range(64)]  # drawn up front: sampling is not the env's cost
        for index in range(WARMUP_STEPS):
            envs.step(actions[index % len(actions)])
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for action in actions[:16]:
                envs.step(action)
            steps += 16
        return steps * copies / (time.perf_counter() - start)
    finally:
        envs.close()


def frames_per_step(env_id: str) -> int:
    """Emulator frames per agent step: the preprocessing's frame skip for an Atari game, else 1."""
    env = env_factory(env_id)()
    try:
        skips = [
            getattr(wrapper, "frame_skip", None)
            for wrapper in _wrappers(env)
            if isinstance(wrapper, gym.wrappers.AtariPreprocessing)
        ]
        return int(skips[0]) if skips else 1
    finally:
        env.close()


def _wrappers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="PongNoFrameskip-v4,BreakoutNoFrameskip-v4,HalfCheetah-v5,Hopper-v5")
    parser.add_argument("--copies", default="1,2,4,8")
    parser.add_argument("--vectors", default="sync,async")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    env_ids = args.envs.split(",")
    copies = [int(count) for count in args.copies.split(",")]
    vectors = args.vectors.split(",")
    unknown = sorted(set(vectors) - set(VECTORS))
    if unknown:
        raise SystemExit(f"unknown vector kind {', '.join(unknown)} (choose from {', '.join(VECTORS)})")
    print(f"`python benchmarks/env_throughput.py {shlex.join(sys.argv[1:])}`")
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at "
        f"start, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"Gymnasium {gym.__version__}, NumPy {np.__version__}\n"
    )
    print("| env | vector | " + " | ".join(f"{count} cop{'y' if count == 1 else 'ies'}" for count in copies) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in copies) + " |")
    for env_id in env_ids:
        frames = frames_per_step(env_id)
        for vector in vectors:
            cells = []
            for count in copies:
                rate = steps_per_second(env_id, count, vector, args.seconds)
                cells.append(f"{rate:,.0f}" + (f" ({rate * frames:,.0f} frames)" if frames > 1 else ""))
            print(f"| {env_id} | {vector} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
