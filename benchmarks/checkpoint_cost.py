"""What checkpointing costs: time and size of one DQN checkpoint with a full replay buffer, and its share of
a default training run.

    python benchmarks/checkpoint_cost.py --env Acrobot-v1 --buffer 100000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deeprl.algos import dqn
from deeprl.buffers import ReplayBuffer
from deeprl.checkpoint import save_checkpoint
from deeprl.config import build_config
from deeprl.envs import make_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Acrobot-v1")
    parser.add_argument("--buffer", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(1)
    config = build_config(dqn.Config, args.env, "default", {"buffer_size": args.buffer})
    env = make_env(args.env)
    obs_dim = int(np.prod(env.observation_space.shape))
    algorithm = dqn.DQN(config, env.observation_space, env.action_space, torch.device("cpu"))
    replay = ReplayBuffer(args.buffer, env.observation_space.shape, np.dtype(np.float32))
    rng = np.random.default_rng(0)
    for _ in range(args.buffer):  # a full buffer of plausible values
        obs = rng.standard_normal(obs_dim).astype(np.float32)
        replay.add(obs, int(rng.integers(env.action_space.n)), float(rng.standard_normal()), obs, False, False)
    state = {"algo": {**algorithm.state_dict(), "replay": replay.state_dict()}, "run": {}}
    seconds, size = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            started = time.perf_counter()
            state["algo"]["replay"] = replay.state_dict()  # copying the arrays is part of the cost
            path = save_checkpoint(Path(scratch), repeat, state, "dqn", args.env)
            seconds.append(time.perf_counter() - started)
            size = path.stat().st_size
    per_checkpoint = statistics.median(seconds)
    checkpoints = config.total_steps // config.checkpoint_every if config.checkpoint_every else 0
    print(f"{args.env}, buffer {args.buffer} transitions of {obs_dim} floats, {config.hidden_sizes} net")
    print(f"checkpoint: {size / 2**20:.1f} MiB, {per_checkpoint * 1000:.0f} ms (median of {args.repeats})")
    print(
        f"default preset: {checkpoints} checkpoints in {config.total_steps} steps "
        f"= {checkpoints * per_checkpoint:.2f} s of checkpointing"
    )


if __name__ == "__main__":
    main()
