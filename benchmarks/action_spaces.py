"""MultiDiscrete and MultiBinary actions, and action masks, measured on deeprl's example envs (deeprl.envs.examples).

    python benchmarks/action_spaces.py optimum [--seeds 0-4] [--steps 60000] [--only "a2c CodeLock"] [--set gamma=0]
    python benchmarks/action_spaces.py masks [--seeds 0-4] [--ppo-steps 30000] [--dqn-steps 15000]
        [--frameworks deeprl,sb3] [--out benchmarks/results/action_masks.json]

`optimum`: PPO and A2C on CodeLock (MultiDiscrete([2, 3, 4])) and LightSwitches (MultiBinary(6)), whose best return is
10: the env steps at which a 20-episode greedy evaluation (every `--eval-every` steps) first scores 10, per seed. Each
step's reward depends on that step's action alone: `--set gamma=0` is the discount that fits.

`masks`: MaskedGrid (a 6x6 grid walked by naming the next cell: 36 actions, at most 4 valid; best return -10) against
GridWalk, the same task without the mask, at the same budget: masked and unmasked PPO (and MaskablePPO of sb3-contrib
with the same settings, side by side) and masked and unmasked DQN. Per seed: the env steps and training seconds to the
first 20-episode greedy evaluation scoring -10 (a run stops there), the final greedy return, and the invalid actions
the envs were given in training and evaluation together (GridWalk.invalid_actions). Each run is one process of this
script (`--worker`), one at a time. Prints a Markdown table and writes the per-seed results to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

GRID_OPTIMUM = -10.0
CODE_OPTIMUM = 10.0
EVAL_EPISODES = 20
# PPO's settings, deeprl's and MaskablePPO's alike (SB3's defaults but rollouts of 512 steps)
PPO_SETTINGS = {"n_steps": 512, "batch_size": 64, "n_epochs": 10, "lr": 3e-4, "gamma": 0.99}


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


# --------------------------------------------------------------------------------------------------- one run each


def invalid_actions_in(action: Any) -> tuple[Any, int]:
    """(what `action()` returns, the invalid actions the grid envs were given meanwhile)."""
    from deeprl.envs.examples import GridWalk

    before = GridWalk.invalid_actions
    outcome = action()
    return outcome, GridWalk.invalid_actions - before


def deeprl_run(algo: str, env: str, seed: int, steps: int, threshold: float, eval_every: int, settings: dict) -> dict:
    import deeprl
    import deeprl.run
    from deeprl.envs.examples import GridWalk

    # the invalid actions of evaluations (every one a run makes goes through deeprl.run's `evaluate`) are counted
    # apart: the training count is the one that tells
    in_evaluations = 0
    original = deeprl.run.evaluate

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_evaluations
        outcome, invalid = invalid_actions_in(lambda: original(*args, **kwargs))
        in_evaluations += invalid
        return outcome

    deeprl.run.evaluate = counted
    GridWalk.invalid_actions = 0
    with tempfile.TemporaryDirectory() as folder:
        agent = deeprl.train(
            algo,
            f"deeprl.envs.examples:{env}",
            seed=seed,
            steps=steps,
            run_dir=Path(folder) / "run",
            progress=False,
            solve_threshold=threshold,
            solve_confirm_episodes=0,
            stop_on_solve=True,
            eval_every=eval_every,
            eval_episodes=EVAL_EPISODES,
            final_eval_episodes=EVAL_EPISODES,
            torch_threads=1,
            **settings,
        )
    summary = agent.summary
    return {
        "solved_at_step": summary["solved_at_step"],
        "solved_seconds": summary["solved_train_seconds"],
        "final_return": summary["final"]["mean_return"],
        "steps": summary["steps"],
        "invalid_actions": GridWalk.invalid_actions - in_evaluations,
        "invalid_actions_in_evaluations": in_evaluations,
    }


class MaskablePolicy:
    """A MaskablePPO model as deeprl.evaluate drives an agent (act under the env's mask)."""

    def __init__(self, model: Any, observation_space: Any, action_space: Any) -> None:
        self.model, self.observation_space, self.action_space = model, observation_space, action_space

    def act(self, obs: Any, deterministic: bool = True, action_mask: Any = None) -> Any:
        return self.model.predict(obs, deterministic=deterministic, action_masks=action_mask)[0]


def maskable_ppo_run(seed: int, steps: int, eval_every: int) -> dict:
    import torch
    from sb3_contrib import MaskablePPO

    import deeprl
    from deeprl.envs.examples import GridWalk, MaskedGrid

    torch.set_num_threads(1)
    GridWalk.invalid_actions = 0
    env = MaskedGrid()
    model = MaskablePPO(
        "MlpPolicy",
        env,
        seed=seed,
        n_steps=PPO_SETTINGS["n_steps"],
        batch_size=PPO_SETTINGS["batch_size"],
        n_epochs=PPO_SETTINGS["n_epochs"],
        learning_rate=PPO_SETTINGS["lr"],
        gamma=PPO_SETTINGS["gamma"],
        device="cpu",
    )
    agent = MaskablePolicy(model, env.observation_space, env.action_space)
    trained, seconds, solved_at, solved_seconds, in_evaluations = 0, 0.0, None, None, 0
    while trained < steps:
        start = time.perf_counter()
        model.learn(eval_every, reset_num_timesteps=False)
        seconds += time.perf_counter() - start
        trained = model.num_timesteps
        result, invalid = invalid_actions_in(
            lambda: deeprl.evaluate(agent, MaskedGrid, episodes=EVAL_EPISODES, seed=1_000_000 + 1000 * seed)
        )
        in_evaluations += invalid
        if result.mean >= GRID_OPTIMUM:
            solved_at, solved_seconds = trained, seconds
            break
    final, invalid = invalid_actions_in(
        lambda: deeprl.evaluate(agent, MaskedGrid, episodes=EVAL_EPISODES, seed=2_000_000 + 1000 * seed)
    )
    in_evaluations += invalid
    return {
        "solved_at_step": solved_at,
        "solved_seconds": None if solved_seconds is None else round(solved_seconds, 3),
        "final_return": final.mean,
        "steps": trained,
        "invalid_actions": GridWalk.invalid_actions - in_evaluations,
        "invalid_actions_in_evaluations": in_evaluations,
    }


def worker(spec: dict) -> dict:
    if spec["framework"] == "sb3":
        return maskable_ppo_run(spec["seed"], spec["steps"], spec["eval_every"])
    return deeprl_run(
        spec["algo"], spec["env"], spec["seed"], spec["steps"], spec["threshold"], spec["eval_every"], spec["settings"]
    )


# ------------------------------------------------------------------------------------------------------ the driver


def run_in_subprocess(spec: dict) -> dict:
    """One run in a fresh process of this script, so neither framework's imports or threads touch the other."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    result = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def optimum_specs(seeds: list[int], steps: int, eval_every: int) -> list[tuple[str, dict]]:
    specs = []
    for env in ("CodeLock", "LightSwitches"):
        for algo, settings in (("ppo", {"n_steps": 512}), ("a2c", {})):
            for seed in seeds:
                label = f"{algo} {env}"
                specs.append(
                    (
                        label,
                        {
                            "framework": "deeprl",
                            "algo": algo,
                            "env": env,
                            "seed": seed,
                            "steps": steps,
                            "threshold": CODE_OPTIMUM - 1e-6,
                            "eval_every": eval_every,
                            "settings": settings,
                        },
                    )
                )
    return specs


def mask_specs(seeds: list[int], ppo_steps: int, dqn_steps: int, eval_every: int, frameworks: list[str]) -> list:
    specs = []
    dqn_settings = {"learning_starts": 1000, "epsilon_decay_steps": 5000}
    runs = [
        ("ppo masked (MaskedGrid)", "deeprl", "ppo", "MaskedGrid", ppo_steps, PPO_SETTINGS),
        ("MaskablePPO (sb3-contrib, MaskedGrid)", "sb3", "ppo", "MaskedGrid", ppo_steps, PPO_SETTINGS),
        ("ppo unmasked (GridWalk)", "deeprl", "ppo", "GridWalk", ppo_steps, PPO_SETTINGS),
        ("dqn masked (MaskedGrid)", "deeprl", "dqn", "MaskedGrid", dqn_steps, dqn_settings),
        ("dqn unmasked (GridWalk)", "deeprl", "dqn", "GridWalk", dqn_steps, dqn_settings),
    ]
    for label, framework, algo, env, steps, settings in runs:
        if framework not in frameworks:
            continue
        for seed in seeds:
            specs.append(
                (
                    label,
                    {
                        "framework": framework,
                        "algo": algo,
                        "env": env,
                        "seed": seed,
                        "steps": steps,
                        "threshold": GRID_OPTIMUM,
                        "eval_every": eval_every,
                        "settings": settings,
                    },
                )
            )
    return specs


def report(results: dict[str, list[dict]], budgets: dict[str, int]) -> str:
    lines = [
        "| run | budget (steps) | solved | steps to solve, per seed | median steps | median seconds | "
        "final return (mean) | invalid actions in training (all seeds) | in evaluations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in results.items():
        good = [run for run in runs if "error" not in run]
        solved = [run for run in good if run["solved_at_step"] is not None]
        per_seed = ", ".join("-" if run.get("solved_at_step") is None else str(run["solved_at_step"]) for run in runs)
        median_steps = statistics.median(run["solved_at_step"] for run in solved) if solved else None
        median_seconds = statistics.median(run["solved_seconds"] for run in solved) if solved else None
        final = statistics.mean(run["final_return"] for run in good) if good else float("nan")
        invalid = sum(run["invalid_actions"] for run in good)
        in_evaluations = sum(run["invalid_actions_in_evaluations"] for run in good)
        lines.append(
            f"| {label} | {budgets[label]} | {len(solved)}/{len(runs)} | {per_seed} | "
            f"{'-' if median_steps is None else int(median_steps)} | "
            f"{'-' if median_seconds is None else f'{median_seconds:.1f}'} | {final:.2f} | "
            f"{invalid} | {in_evaluations} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", choices=("optimum", "masks"))
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--steps", type=int, default=60_000, help="optimum: the budget of every run")
    parser.add_argument("--ppo-steps", type=int, default=30_000)
    parser.add_argument("--dqn-steps", type=int, default=15_000)
    parser.add_argument("--eval-every", type=int, default=None, help="default: 2048 (optimum), 1024 (masks)")
    parser.add_argument("--frameworks", default="deeprl,sb3")
    parser.add_argument("--only", default=None, help="only the runs whose label contains this, e.g. 'a2c CodeLock'")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every deeprl run (e.g. gamma=0)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    seeds = seeds_of(args.seeds)
    if args.part == "optimum":
        specs = optimum_specs(seeds, args.steps, args.eval_every or 2048)
    else:
        specs = mask_specs(seeds, args.ppo_steps, args.dqn_steps, args.eval_every or 1024, args.frameworks.split(","))
    if args.only:
        specs = [(label, spec) for label, spec in specs if args.only in label]
    overrides = {key: yaml.safe_load(value) for key, _, value in (setting.partition("=") for setting in args.set)}
    for _, spec in specs:
        spec["settings"] = {**spec["settings"], **overrides}
    results: dict[str, list[dict]] = {}
    budgets: dict[str, int] = {}
    for label, spec in specs:
        outcome = run_in_subprocess(spec)
        print(label, spec["seed"], outcome, flush=True)
        results.setdefault(label, []).append({"seed": spec["seed"], **outcome})
        budgets[label] = spec["steps"]
    table = report(results, budgets)
    print(table)
    out = args.out or Path(__file__).parent / "results" / f"action_{args.part}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(sys.argv), "results": results, "table": table}, indent=1))


if __name__ == "__main__":
    main()
