"""Agent steps/s of an EnvPool Atari game under EnvPool's own standard preprocessing (30 no-ops, 4-frame skip with
max-pooling, FIRE on reset, 84x84 grayscale with area interpolation, a stack of 4), random actions, one synchronous
batch of `--copies` games per step; and the CPU microseconds an agent step took.

    /path/to/envpool-venv/bin/python benchmarks/envpool_steps.py --env PongNoFrameskip-v4 --copies 4 --seconds 5

Run by `benchmarks/env_throughput.py --vectors ...,envpool --envpool-python PATH` in EnvPool's own virtualenv (it
imports neither deeprl nor torch, so EnvPool need not be installed beside them). Prints the two numbers.
"""

from __future__ import annotations

import argparse
import time

import envpool
import numpy as np

WARMUP_STEPS = 50


def envpool_game(env_id: str) -> tuple[str, float]:
    """EnvPool's task id and sticky-action probability for a Gymnasium Atari id: PongNoFrameskip-v4 is EnvPool's
    Pong-v5 without sticky actions, ALE/Pong-v5 the same with 0.25."""
    if env_id.endswith("NoFrameskip-v4"):
        return env_id.removesuffix("NoFrameskip-v4") + "-v5", 0.0
    if env_id.startswith("ALE/") and env_id.endswith("-v5"):
        return env_id.removeprefix("ALE/"), 0.25
    raise SystemExit(f"no EnvPool counterpart for {env_id} (use a NoFrameskip-v4 or ALE/...-v5 id)")


def steps_per_second(env_id: str, copies: int, seconds: float) -> tuple[float, float]:
    """Agent steps/s summed over the copies, after a warm-up, over at least `seconds` of stepping, and the CPU
    microseconds an agent step took (EnvPool's threads included)."""
    task, sticky = envpool_game(env_id)
    envs = envpool.make(task, env_type="gymnasium", num_envs=copies, seed=0, repeat_action_probability=sticky)
    try:
        envs.reset()
        rng = np.random.default_rng(0)
        actions = rng.integers(envs.action_space.n, size=(64, copies))  # drawn up front, as env_throughput's
        for index in range(WARMUP_STEPS):
            envs.step(actions[index % len(actions)])
        steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            for action in actions[:16]:
                envs.step(action)
            steps += 16
        agent_steps = steps * copies
        return agent_steps / (time.perf_counter() - start), (time.process_time() - cpu_start) / agent_steps * 1e6
    finally:
        envs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--copies", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(*steps_per_second(args.env, args.copies, args.seconds))


if __name__ == "__main__":
    main()
