"""The same task with its actions in other units, side by side, for every continuous-action algorithm.

    python benchmarks/action_units.py --out runs/action-units [--algos sac,ppo] [--seed 0]

Each algorithm trains one seed on Pendulum-v1, then on Pendulum with its torque given on a narrow Box [-0.5, 0.5]
and on an offset Box [3, 7] (tests.custom_envs.NarrowPendulum and OffsetPendulum map it back to Pendulum's
[-2, 2]), one training at a time in this process, with the same settings: Pendulum-v1's default preset where the
algorithm has one, at a short budget. Prints a Markdown table of the final evaluation's mean return on each, and
whether the three runs' metrics.csv (wall-clock column aside) and eval.json returns are identical.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import deeprl
from deeprl.config import preset_settings

ENVS = {
    "Pendulum-v1": "Pendulum-v1 [-2, 2]",
    "tests.custom_envs:NarrowPendulum": "narrow [-0.5, 0.5]",
    "tests.custom_envs:OffsetPendulum": "offset [3, 7]",
}
# short budgets that learn something (not all solve): about ten seconds a run on a small CPU
BUDGETS: dict[str, dict[str, Any]] = {
    "sac": {"total_steps": 4000},
    "td3": {"total_steps": 4000},
    "ddpg": {"total_steps": 4000},
    "ppo": {"total_steps": 20480},
    "a2c": {"total_steps": 20000},
    "reinforce": {"total_steps": 20000},
    "actor-critic": {"total_steps": 20000},
}
SETTINGS = {
    "eval_every": 2000,
    "eval_episodes": 5,
    "final_eval_episodes": 10,
    "solve_threshold": -200.0,
    "stop_on_solve": False,
    "tensorboard": False,
    "progress": False,
}


def learning_record(run_dir: Path) -> tuple[list[dict[str, str]], list[list[float]]]:
    with open(run_dir / "metrics.csv") as metrics:
        rows = [{key: value for key, value in row.items() if key != "time_s"} for row in csv.DictReader(metrics)]
    evaluations = json.loads((run_dir / "eval.json").read_text())
    return rows, [evaluations[name]["returns"] for name in ("best", "final")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default=",".join(BUDGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="directory for the run directories")
    args = parser.parse_args()

    print("| algo | steps | " + " | ".join(ENVS.values()) + " | same learning | seconds (3 runs) |")
    print("| --- | ---: | " + " | ".join("---:" for _ in ENVS) + " | --- | ---: |")
    for algo in args.algos.split(","):
        settings = {**preset_settings(algo, "Pendulum-v1", "default"), **SETTINGS, **BUDGETS[algo]}
        finals, records = [], []
        started = time.perf_counter()
        for env in ENVS:
            run_dir = Path(args.out) / algo / env.replace(":", "_")
            agent = deeprl.train(algo, env, seed=args.seed, run_dir=run_dir, **settings)
            finals.append(agent.summary["final"]["mean_return"])
            records.append(learning_record(run_dir))
        seconds = time.perf_counter() - started
        same = all(record == records[0] for record in records[1:])
        print(
            f"| {algo} | {settings['total_steps']} | "
            + " | ".join(f"{final:.1f}" for final in finals)
            + f" | {'yes, bit for bit' if same else 'NO'} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
