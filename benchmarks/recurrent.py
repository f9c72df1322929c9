"""Memory where it is needed: CartPole without its velocities (CartPoleNoVel-v1), side by side in one invocation.

    python benchmarks/recurrent.py --seeds 0-4 [--frameworks recurrent,plain,sb3] [--steps N] [--eval-every 4096]
        [--stop-on-solve] [--env CartPoleNoVel-v1] [--out benchmarks/results/recurrent.json]

- recurrent: deeprl's PPO with its `default` preset for the env (the RL Zoo's RecurrentPPO settings: an LSTM of 64
  units for the policy and one for the critic, 8 envs x 32 steps, 20 epochs, ...);
- plain: the same preset with `recurrent=none` (the same MLPs reading the observation alone), at the same budget;
- sb3: sb3-contrib's RecurrentPPO (MlpLstmPolicy) with the RL Zoo's `ppo_lstm` hyperparameters for the env.

Each (framework, seed) trains in a fresh subprocess of this script (`--worker`), one at a time, the three frameworks
in turn for each seed, one torch thread each. All are evaluated alike (benchmarks/compare.py's protocol): each time
training crosses a multiple of `--eval-every` env steps, 20 greedy episodes through deeprl.evaluation.evaluate on
seeds 1_000_000 + 1000*seed + i with the clock paused (solved: the first such evaluation at the env's threshold,
475), and the final agent 20 greedy episodes on seeds 2_000_000 + 1000*seed + i. With `--stop-on-solve` every
framework stops at that evaluation, and the final agent is the one that solved. The recurrent agents keep a state
per evaluation slot, reset at each episode's start. Prints a Markdown report and writes the per-seed results as JSON
after every run (a long invocation cut short keeps what it finished).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from compare import (
    EVAL_EPISODES,
    FINAL_EVAL_SEED,
    PERIODIC_EVAL_SEED,
    crosses_eval_boundary,
    machine_info,
    package_versions,
)

FRAMEWORKS = ("recurrent", "plain", "sb3")
LABELS = {"recurrent": "deeprl PPO + LSTM", "plain": "deeprl PPO (no memory)", "sb3": "sb3-contrib RecurrentPPO + Zoo"}
# The RL Zoo's hyperparams/ppo_lstm.yml entry for CartPoleNoVel-v1 (facts carried over: normalize true, policy
# MlpLstmPolicy; `lin_x` schedules are x * progress_remaining).
ZOO_PPO_LSTM = {
    "CartPoleNoVel-v1": {
        "n_timesteps": 100_000,
        "n_envs": 8,
        "normalize": True,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": ("lin", 1e-3),
        "clip_range": ("lin", 0.2),
        "policy_kwargs": {
            "ortho_init": False,
            "activation_fn": "ReLU",
            "lstm_hidden_size": 64,
            "enable_critic_lstm": True,
            "net_arch": {"pi": [64], "vf": [64]},
        },
    },
    # the Zoo's entry less use_sde/sde_sample_freq (state-dependent exploration: deeprl's Gaussian has a
    # state-independent log std, so both sides explore alike)
    "PendulumNoVel-v1": {
        "n_timesteps": 100_000,
        "n_envs": 4,
        "normalize": True,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "policy_kwargs": {
            "ortho_init": False,
            "activation_fn": "ReLU",
            "lstm_hidden_size": 64,
            "enable_critic_lstm": True,
            "net_arch": {"pi": [64], "vf": [64]},
        },
    },
}


# ------------------------------------------------------------------------------------------------- workers


def run_deeprl(
    env_id: str, seed: int, eval_every: int, steps: int | None, threshold: float, recurrent: bool, stop_on_solve: bool
) -> dict[str, Any]:
    """deeprl's PPO with the env's default preset (recurrent, or with recurrent=none)."""
    import torch

    import deeprl

    torch.set_num_threads(1)
    settings: dict[str, Any] = {
        "eval_every": eval_every,
        "eval_episodes": EVAL_EPISODES,
        "final_eval_episodes": EVAL_EPISODES,
        "tensorboard": False,
        "stop_on_solve": stop_on_solve,
        "torch_threads": 1,
        "solve_confirm_episodes": 0,  # solved means the same for all: one evaluation at the threshold
        "solve_threshold": threshold,
    }
    if not recurrent:
        settings["recurrent"] = "none"
    with tempfile.TemporaryDirectory(prefix="deeprl-bench-") as scratch:
        started = time.perf_counter()
        agent = deeprl.train("ppo", env_id, seed=seed, steps=steps, run_dir=Path(scratch) / "run", **settings)
        wall_seconds = time.perf_counter() - started
    summary = agent.summary
    return {
        "steps": summary["steps"],
        "solved_at_step": summary["solved_at_step"],
        "solved_train_seconds": summary["solved_train_seconds"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall_seconds, 3),
        "final": summary["final"]["mean_return"],
        "final_returns": summary["final"]["returns"],
    }


class RecurrentSB3Agent:
    """What deeprl.evaluation.evaluate needs of an agent, backed by a RecurrentPPO model: its LSTM state per
    evaluation slot, started afresh (episode_start) where `reset` says an episode begins."""

    def __init__(self, model: Any, normalizer: Any) -> None:
        self.model, self.normalizer = model, normalizer
        self.observation_space, self.action_space = model.observation_space, model.action_space
        self.state: Any = None
        self.episode_starts: np.ndarray | None = None

    def reset(self, copies: Any = None) -> None:
        if copies is None:
            self.state, self.episode_starts = None, None
        elif self.episode_starts is not None:
            self.episode_starts[list(copies)] = True

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        batch = np.asarray(obs)
        if self.episode_starts is None:
            self.episode_starts = np.ones(len(batch), dtype=bool)
        actions, self.state = self.model.predict(
            self.normalizer.normalize_obs(batch),
            state=self.state,
            episode_start=self.episode_starts,
            deterministic=deterministic,
        )
        self.episode_starts[:] = False
        return actions


def run_sb3(
    env_id: str, seed: int, eval_every: int, steps: int | None, threshold: float, stop_on_solve: bool
) -> dict[str, Any]:
    """sb3-contrib's RecurrentPPO with the Zoo's hyperparameters, evaluated periodically with the clock paused."""
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    import deeprl.envs  # noqa: F401 (registers the env id)
    from deeprl.evaluation import evaluate

    torch.set_num_threads(1)
    zoo = dict(ZOO_PPO_LSTM[env_id])
    budget = steps if steps is not None else int(zoo.pop("n_timesteps"))
    zoo.pop("n_timesteps", None)
    n_envs, normalize = zoo.pop("n_envs"), zoo.pop("normalize")
    for key in ("learning_rate", "clip_range"):
        if isinstance(zoo[key], tuple):  # ("lin", initial): annealed to 0 as the Zoo's lin_<initial>
            _, initial = zoo[key]
            zoo[key] = lambda progress_remaining, initial=initial: progress_remaining * initial
    zoo["policy_kwargs"] = {
        **zoo["policy_kwargs"],
        "activation_fn": getattr(torch.nn, zoo["policy_kwargs"]["activation_fn"]),
    }

    class PeriodicEval(BaseCallback):
        def __init__(self, started: float, agent: RecurrentSB3Agent) -> None:
            super().__init__()
            self.started, self.agent = started, agent
            self.eval_seconds, self.last_evaluated = 0.0, 0
            self.solved_at_step: int | None = None
            self.solved_train_seconds: float | None = None

        def _on_step(self) -> bool:
            if not crosses_eval_boundary(self.last_evaluated, self.num_timesteps, eval_every):
                return True
            self.last_evaluated = self.num_timesteps
            eval_started = time.perf_counter()
            train_seconds = eval_started - self.started - self.eval_seconds
            result = evaluate(self.agent, env_id, episodes=EVAL_EPISODES, seed=PERIODIC_EVAL_SEED + 1000 * seed)
            self.eval_seconds += time.perf_counter() - eval_started
            if self.solved_at_step is None and result.mean >= threshold:
                self.solved_at_step, self.solved_train_seconds = self.num_timesteps, round(train_seconds, 3)
            return not (stop_on_solve and self.solved_at_step is not None)

    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    normalizer = VecNormalize(env, gamma=zoo["gamma"]) if normalize else None  # the Zoo discounts with gamma
    started = time.perf_counter()
    model = RecurrentPPO("MlpLstmPolicy", normalizer or env, seed=seed, device="cpu", verbose=0, **zoo)
    agent = RecurrentSB3Agent(model, normalizer)
    callback = PeriodicEval(started, agent)
    model.learn(total_timesteps=budget, callback=callback)
    train_seconds = time.perf_counter() - started - callback.eval_seconds
    final = evaluate(agent, env_id, episodes=EVAL_EPISODES, seed=FINAL_EVAL_SEED + 1000 * seed)
    return {
        "steps": int(model.num_timesteps),
        "solved_at_step": callback.solved_at_step,
        "solved_train_seconds": callback.solved_train_seconds,
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "final": final.mean,
        "final_returns": final.returns.tolist(),
    }


def worker_main(args: argparse.Namespace) -> None:
    """One (framework, seed) run; the result is the last line on stdout, as JSON."""
    (seed,) = args.seeds
    if args.worker == "sb3":
        result = run_sb3(args.env, seed, args.eval_every, args.steps, args.threshold, args.stop_on_solve)
    else:
        recurrent = args.worker == "recurrent"
        result = run_deeprl(args.env, seed, args.eval_every, args.steps, args.threshold, recurrent, args.stop_on_solve)
    result.update(framework=args.worker, seed=seed)
    print(json.dumps(result), flush=True)


def launch_worker(framework: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--seeds", str(seed)]
    command += ["--env", args.env, "--eval-every", str(args.eval_every), "--threshold", repr(args.threshold)]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.stop_on_solve:
        command.append("--stop-on-solve")
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = process.stdout.strip().splitlines()
    if process.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (process.stderr or process.stdout).strip().splitlines()[-10:]
    return {"framework": framework, "seed": seed, "error": "\n".join(tail) or "no output"}


# ------------------------------------------------------------------------------------------------- report


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "unsolved"
    return f"{value:,.{digits}f}"


def markdown_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['env']}, seeds {', '.join(map(str, report['seeds']))}; solved: an evaluation of 20 episodes at "
        f"{report['threshold']:g} or more; final: 20 fresh episodes of the final agent"
        + (" (every run stopped at its first solving evaluation)." if report["stop_on_solve"] else "."),
        "",
        "| framework | seed | solved at step | training seconds to solve | final (20 fresh episodes) | steps | "
        "training seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in report["runs"]:
        if "error" in run:
            lines.append(f"| {LABELS[run['framework']]} | {run['seed']} | error: {run['error'].splitlines()[-1]} |")
            continue
        lines.append(
            f"| {LABELS[run['framework']]} | {run['seed']} | {_cell(run['solved_at_step'])} | "
            f"{_cell(run['solved_train_seconds'], 1)} | {run['final']:.1f} | {run['steps']:,} | "
            f"{run['train_seconds']:.1f} |"
        )
    lines += ["", "| framework | solved | final >= threshold | median steps to solve | median seconds to solve |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for framework in report["frameworks"]:
        runs = [run for run in report["runs"] if run["framework"] == framework and "error" not in run]
        solved = [run for run in runs if run["solved_at_step"] is not None]
        steps = statistics.median(run["solved_at_step"] for run in solved) if solved else None
        seconds = statistics.median(run["solved_train_seconds"] for run in solved) if solved else None
        finals = sum(run["final"] >= report["threshold"] for run in runs)
        lines.append(
            f"| {LABELS[framework]} | {len(solved)}/{len(runs)} | {finals}/{len(runs)} | {_cell(steps)} | "
            f"{_cell(seconds, 1)} |"
        )
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    from deeprl.config import parse_seeds as deeprl_seeds

    return deeprl_seeds(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPoleNoVel-v1", choices=sorted(ZOO_PPO_LSTM))
    parser.add_argument("--seeds", type=parse_seeds, default=[0])
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--steps", type=int, help="budget in env steps (default: the preset's and the Zoo's 100k)")
    parser.add_argument("--eval-every", type=int, default=4096)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--stop-on-solve", action="store_true", help="stop each run at its first solving evaluation")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    frameworks = [name for name in args.frameworks.split(",") if name]
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        parser.error(f"unknown frameworks {', '.join(unknown)} (known: {', '.join(FRAMEWORKS)})")
    report: dict[str, Any] = {
        "env": args.env,
        "seeds": args.seeds,
        "frameworks": frameworks,
        "threshold": args.threshold,
        "eval_every": args.eval_every,
        "steps": args.steps,
        "stop_on_solve": args.stop_on_solve,
        "command": " ".join(sys.argv),
        "machine": machine_info(),
        "versions": package_versions(),
        "runs": [],
    }
    for seed in args.seeds:
        for framework in frameworks:
            run = launch_worker(framework, seed, args)
            report["runs"].append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
            if args.out is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=1))
    print(markdown_report(report))


if __name__ == "__main__":
    main()
