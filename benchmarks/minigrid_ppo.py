"""MiniGrid (Dict observations) with PPO: deeprl beside Stable-Baselines3's PPO with its MultiInputPolicy.

    python benchmarks/minigrid_ppo.py [--envs MiniGrid-Empty-8x8-v0,MiniGrid-DoorKey-5x5-v0] [--seeds 0-2]
        [--episodes 100] [--steps N] [--frameworks deeprl,sb3]

Both frameworks train at the same budget (deeprl's `default` preset's total_steps, or `--steps`) with the same
settings: the RL Zoo's MiniGrid PPO hyperparameters (8 envs x 128 steps, 10 epochs of 64-sample minibatches,
gamma 0.99, lambda 0.95, lr 2.5e-4, clip 0.2, observations and rewards normalised, 64x64 tanh MLPs), which deeprl's
presets hold. Then each final policy plays 100 fresh episodes (reset seeds 5_000_000 + i, unused in training),
greedily; an episode is a success when it reaches the goal (MiniGrid pays a positive reward only then).

What each framework reads: MiniGrid's observation is a Dict of the 7x7x3 view ('image', uint8), the direction
(Discrete 4) and a text mission. deeprl encodes it itself (view flattened, direction one-hot, mission ignored).
SB3's MultiInputPolicy refuses text, and sends any uint8 picture to its Nature CNN, which cannot read a 7x7 one
(a kernel of 8 fails); so SB3 gets the Dict without the mission and with the view as float32 values: its
CombinedExtractor then flattens the view and one-hots the direction, the same features deeprl builds.

Each (env, seed, framework) trains in a fresh subprocess of this script (`--worker`), deeprl then SB3 for each
seed, one at a time. Prints a Markdown table of success rates, mean returns and training times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

EPISODE_SEED = 5_000_000
ENVS = ("MiniGrid-Empty-8x8-v0", "MiniGrid-DoorKey-5x5-v0")
# the RL Zoo's MiniGrid PPO settings, in SB3's names (deeprl's presets hold the same values)
SB3_PPO = {
    "n_steps": 128,
    "batch_size": 64,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "learning_rate": 2.5e-4,
    "clip_range": 0.2,
    "ent_coef": 0.0,
}
N_ENVS = 8


def preset_steps(env_id: str) -> int:
    from deeprl.config import env_presets

    return int(env_presets("ppo", env_id)["default"]["total_steps"])


def run_deeprl(env_id: str, seed: int, steps: int, episodes: int) -> dict[str, Any]:
    import tempfile

    import deeprl

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        agent = deeprl.train("ppo", env_id, seed=seed, steps=steps, run_dir=f"{scratch}/run", progress=False)
        seconds = time.perf_counter() - started
        returns = deeprl.evaluate(agent, env_id, episodes=episodes, seed=EPISODE_SEED).returns
    return {"returns": returns.tolist(), "train_seconds": seconds}


def sb3_env(env_id: str) -> Any:
    """MiniGrid's Dict without the text mission, the view as float32 values (see the module docstring)."""
    import gymnasium as gym
    import minigrid  # noqa: F401 - registers the MiniGrid ids

    env = gym.wrappers.FilterObservation(gym.make(env_id), ["direction", "image"])
    image = env.observation_space["image"]
    float_image = gym.spaces.Box(0.0, 255.0, image.shape, dtype=np.float32)
    space = gym.spaces.Dict({"direction": env.observation_space["direction"], "image": float_image})
    return gym.wrappers.TransformObservation(
        env, lambda obs: {"direction": obs["direction"], "image": obs["image"].astype(np.float32)}, space
    )


def run_sb3(env_id: str, seed: int, steps: int, episodes: int) -> dict[str, Any]:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)  # as deeprl's runs (torch_threads=1)
    vec_env = make_vec_env(lambda: sb3_env(env_id), n_envs=N_ENVS, seed=seed)
    # VecNormalize standardises the Box entries named: the view, as deeprl standardises Box entries alone
    envs = VecNormalize(vec_env, gamma=SB3_PPO["gamma"], norm_obs_keys=["image"])
    started = time.perf_counter()
    model = PPO("MultiInputPolicy", envs, seed=seed, device="cpu", **SB3_PPO)
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - started
    envs.training = False
    env, returns = sb3_env(env_id), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=EPISODE_SEED + episode)
        total, done = 0.0, False
        while not done:
            batch = envs.normalize_obs({key: np.asarray(value)[None] for key, value in obs.items()})
            action, _ = model.predict(batch, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action[0]))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return {"returns": returns, "train_seconds": seconds}


def worker(framework: str, env_id: str, seed: int, steps: int, episodes: int) -> None:
    run = run_deeprl if framework == "deeprl" else run_sb3
    print(json.dumps(run(env_id, seed, steps, episodes)))


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=None, help="both frameworks' budget (default: the preset's)")
    parser.add_argument("--frameworks", default="deeprl,sb3")
    parser.add_argument("--worker", nargs=3, metavar=("FRAMEWORK", "ENV", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        framework, env_id, seed = args.worker
        worker(framework, env_id, int(seed), args.steps or preset_steps(env_id), args.episodes)
        return 0
    print(f"command: python {' '.join(sys.argv)}\n")
    print("| env | framework | seed | steps | train s | success rate | mean return |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for env_id in args.envs.split(","):
        steps = args.steps or preset_steps(env_id)
        for seed in parse_seeds(args.seeds):
            for framework in args.frameworks.split(","):
                command = [sys.executable, __file__, "--worker", framework, env_id, str(seed)]
                command += ["--steps", str(steps), "--episodes", str(args.episodes)]
                finished = subprocess.run(command, capture_output=True, text=True)
                if finished.returncode != 0:
                    print(f"| {env_id} | {framework} | {seed} | {steps} | failed: {finished.stderr.strip()[-300:]} |")
                    continue
                result = json.loads(finished.stdout.strip().splitlines()[-1])
                returns = np.array(result["returns"])
                print(
                    f"| {env_id} | {framework} | {seed} | {steps} | {result['train_seconds']:.0f} | "
                    f"{np.mean(returns > 0):.2f} | {returns.mean():.3f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
