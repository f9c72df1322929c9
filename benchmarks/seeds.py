"""Train one preset over many seeds with the real CLI and check every seed's agents on fresh episodes.

    python benchmarks/seeds.py --algo dqn --env CartPole-v1 --seeds 0-9 --episodes 50 --out runs/seeds-cartpole

Each seed runs `deeprl train ALGO ENV --seed S --preset P --run-dir OUT/sS --quiet`; then the agent that
`deeprl.load(run_dir)` returns (the best-evaluated one) and the final agent are each evaluated on
`--episodes` greedy episodes from seeds that training never used. Prints a Markdown table and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import deeprl
from deeprl.config import parse_seeds
from deeprl.evaluation import evaluate

FRESH_SEED = 3_000_000  # neither the periodic (1e6) nor the final (2e6) evaluation seeds of a run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="dqn")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--threshold", type=float, help="pass mark for the loaded agent (default: the run's)")
    parser.add_argument("--out", required=True, help="directory for the run directories")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    out = Path(args.out)
    rows = []
    for seed in parse_seeds(args.seeds):
        run_dir = out / f"s{seed}"
        command = [
            sys.executable,
            "-m",
            "deeprl",
            "train",
            args.algo,
            args.env,
            "--preset",
            args.preset,
            "--seed",
            str(seed),
            "--run-dir",
            str(run_dir),
            "--quiet",
        ]
        for setting in args.settings:
            command += ["--set", setting]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        summary = json.loads((run_dir / "eval.json").read_text())
        threshold = args.threshold if args.threshold is not None else summary["solve_threshold"]
        fresh = FRESH_SEED + 1000 * seed
        # the run directory stands for its env with the wrappers it trained with (pictures, reward shaping)
        best = evaluate(deeprl.load(run_dir), run_dir, args.episodes, seed=fresh)
        final = evaluate(deeprl.load(run_dir / "policy.pt"), run_dir, args.episodes, seed=fresh)
        rows.append(
            {
                "seed": seed,
                "solved_at_step": summary["solved_at_step"],
                "solved_train_seconds": summary["solved_train_seconds"],
                "train_seconds": summary["train_seconds"],
                "steps": summary["steps"],
                "wall_seconds": round(wall, 1),
                "threshold": threshold,
                "loaded_mean": best.mean,
                "loaded_std": best.std,
                "final_mean": final.mean,
                "final_std": final.std,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    print(f"### {args.algo} on {args.env}, preset `{args.preset}`, seeds {args.seeds}\n")
    print(f"- Command: `python {' '.join(sys.argv)}`")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {date}")
    print(f"- Agents evaluated on {args.episodes} greedy episodes from fresh seeds ({FRESH_SEED} + 1000·seed + i)\n")
    print("| seed | solved at step | solved after s (training) | run steps | train s | loaded agent | final agent |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['seed']} | {row['solved_at_step'] or 'unsolved'} | {row['solved_train_seconds'] or '–'} | "
            f"{row['steps']} | {row['train_seconds']:.1f} | {row['loaded_mean']:.1f} ± {row['loaded_std']:.1f} | "
            f"{row['final_mean']:.1f} ± {row['final_std']:.1f} |"
        )
    solved = [row for row in rows if row["solved_at_step"] is not None]
    passed = [row for row in rows if row["loaded_mean"] >= row["threshold"]]
    final_passed = [row for row in rows if row["final_mean"] >= row["threshold"]]
    print(
        f"\nloaded agent ≥ threshold: {len(passed)}/{len(rows)}; final agent ≥ threshold: "
        f"{len(final_passed)}/{len(rows)}; solved during training: {len(solved)}/{len(rows)}"
    )
    if solved:
        steps = [row["solved_at_step"] for row in solved]
        seconds = [row["solved_train_seconds"] for row in solved]
        print(
            f"steps to solve: median {statistics.median(steps):.0f}, worst {max(steps)}; "
            f"training seconds to solve: median {statistics.median(seconds):.1f}, worst {max(seconds):.1f}"
        )


if __name__ == "__main__":
    main()
