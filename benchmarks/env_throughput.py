"""Raw env throughput: agent steps/s of deeprl's envs (Atari with its preprocessing, MuJoCo) at 1, 2, 4, 8 copies,
stepped in one process (Gymnasium's SyncVectorEnv, what deeprl trains with) or a process per copy (AsyncVectorEnv),
and for Atari games beside EnvPool's C++ pool of the same games (`envpool`).

    python benchmarks/env_throughput.py [--envs PongNoFrameskip-v4,HalfCheetah-v5] [--copies 1,2,4,8]
        [--vectors sync,async,envpool --envpool-python /work/envpool-venv/bin/python] [--seconds 5]

Random actions, no learning: this is the ceiling an algorithm's env side sets. An Atari agent step is 4 emulator
frames under the standard preprocessing (frames/s = 4 x steps/s). The kinds are measured in turn at each number of
copies, so that a change in the machine's load touches them alike. EnvPool runs in the virtualenv of
`--envpool-python` (benchmarks/envpool_steps.py), apart from deeprl's. Prints a Markdown table with the machine and
the exact command.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone

import gymnasium as gym
import numpy as np

from deeprl.envs import env_factory

VECTORS = {"sync": gym.vector.SyncVectorEnv, "async": gym.vector.AsyncVectorEnv}
ENVPOOL = "envpool"
ENVPOOL_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "envpool_steps.py")
WARMUP_STEPS = 50


def steps_per_second(env_id: str, copies: int, vector: str, seconds: float) -> tuple[float, float]:
    """Agent steps/s summed over the copies, after a warm-up, over at least `seconds` of stepping, and the CPU
    microseconds an agent step took (this process and the copies' own, all cores together): on a loaded machine the
    rate moves with the load, the CPU time much less."""
    envs = VECTORS[vector]([env_factory(env_id) for _ in range(copies)])
    try:
        envs.reset(seed=0)
        envs.action_space.seed(0)
        actions = [envs.action_space.sample() for _ in range(64)]  # drawn up front: sampling is not the env's cost
        for index in range(WARMUP_STEPS):
            envs.step(actions[index % len(actions)])
        steps, start, cpu_start = 0, time.perf_counter(), cpu_seconds(envs)
        while time.perf_counter() - start < seconds:
            for action in actions[:16]:
                envs.step(action)
            steps += 16
        agent_steps = steps * copies
        return agent_steps / (time.perf_counter() - start), (cpu_seconds(envs) - cpu_start) / agent_steps * 1e6
    finally:
        envs.close()


def cpu_seconds(envs: gym.vector.VectorEnv) -> float:
    """The CPU seconds used so far by this process and by the copies' processes (AsyncVectorEnv's)."""
    total = time.process_time()
    for process in getattr(envs, "processes", []):
        with open(f"/proc/{process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name: state, ppid, ...
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def envpool_steps_per_second(python: str, env_id: str, copies: int, seconds: float) -> tuple[float, float]:
    """EnvPool's agent steps/s and CPU microseconds a step for the same game, measured in the interpreter `python`
    (EnvPool's virtualenv)."""
    command = [python, ENVPOOL_SCRIPT, "--env", env_id, "--copies", str(copies), "--seconds", str(seconds)]
    rate, cpu = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return float(rate), float(cpu)


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
    parser.add_argument("--envpool-python", help="the Python of a virtualenv with EnvPool installed (for envpool)")
    args = parser.parse_args()
    env_ids = args.envs.split(",")
    copies = [int(count) for count in args.copies.split(",")]
    vectors = args.vectors.split(",")
    unknown = sorted(set(vectors) - {*VECTORS, ENVPOOL})
    if unknown:
        raise SystemExit(f"unknown vector kind {', '.join(unknown)} (choose from {', '.join([*VECTORS, ENVPOOL])})")
    if ENVPOOL in vectors and not args.envpool_python:
        raise SystemExit("--vectors envpool needs --envpool-python (EnvPool lives in a virtualenv of its own)")
    print(f"`python benchmarks/env_throughput.py {shlex.join(sys.argv[1:])}`")
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at "
        f"start, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"Gymnasium {gym.__version__}, NumPy {np.__version__}\n"
    )
    print("Agent steps/s (emulator frames/s; CPU microseconds an agent step took, all processes and threads)\n")
    print("| env | vector | " + " | ".join(f"{count} cop{'y' if count == 1 else 'ies'}" for count in copies) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in copies) + " |")
    for env_id in env_ids:
        frames = frames_per_step(env_id)
        kinds = [vector for vector in vectors if vector != ENVPOOL or frames > 1]  # EnvPool here: Atari games only
        cells: dict[str, list[str]] = {vector: [] for vector in kinds}
        for count in copies:
            for vector in kinds:
                if vector == ENVPOOL:
                    rate, cpu = envpool_steps_per_second(args.envpool_python, env_id, count, args.seconds)
                else:
                    rate, cpu = steps_per_second(env_id, count, vector, args.seconds)
                frame_rate = f"{rate * frames:,.0f} frames/s, " if frames > 1 else ""
                cells[vector].append(f"{rate:,.0f} ({frame_rate}{cpu:,.0f} µs CPU)")
        for vector in kinds:
            print(f"| {env_id} | {vector} | " + " | ".join(cells[vector]) + " |", flush=True)
    print(f"\nload {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
