"""What training several seeds in one process saves: K seeds of an algorithm trained together (`deeprl train ALGO ENV
--seeds ...`, their updates stacked on a seed axis) against the same K seeds trained one after another, in this one
process, with the same settings; and whether each seed's run is the same in both.

    python benchmarks/many_seeds.py [--runs dqn:CartPole-v1,td3:Pendulum-v1,sac:Pendulum-v1] [--seeds 0-9]
        [--steps 10000] [--out DIR]

Evaluation is left to the end (one final episode per run), so the wall-clock is training's (with what a seeds
directory writes at its end: the seeds' report and curves); each algorithm trains
its `default` preset's networks and settings for --steps steps, on one torch thread. Prints a Markdown table: seconds
for all K seeds each way, their ratio, env steps per second over all seeds, and whether every seed's metrics.csv
(time column aside) and final weights are equal both ways.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import deeprl
from deeprl.config import parse_seeds


def metrics_without_time(run_dir: Path) -> list[str]:
    return [line.rsplit(",", 1)[0] for line in (run_dir / "metrics.csv").read_text().splitlines()]


def same_run(first: Path, second: Path) -> bool:
    """The same metrics.csv rows (time aside) and the same final policy weights."""
    if metrics_without_time(first) != metrics_without_time(second):
        return False
    weights = [torch.load(path / "policy.pt", weights_only=True)["state_dict"] for path in (first, second)]
    return weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def measure(algo: str, env: str, seeds: list[int], steps: int, root: Path) -> dict:
    settings = dict(
        steps=steps,
        progress=False,
        eval_every=steps,
        eval_episodes=1,
        final_eval_episodes=1,
        tensorboard=False,
        checkpoint_every=0,
        stop_on_solve=False,
        torch_threads=1,
    )
    # first calls import and compile what later ones reuse (plots, reports, optimisers): not counted on either side
    deeprl.train(algo, env, seeds=seeds[:1], run_dir=root / "warm-up", **settings)
    started = time.perf_counter()
    deeprl.train(algo, env, seeds=seeds, run_dir=root / "together", **settings)
    together = time.perf_counter() - started
    started = time.perf_counter()
    for seed in seeds:
        deeprl.train(algo, env, seed=seed, run_dir=root / f"alone-{seed}", **settings)
    alone = time.perf_counter() - started
    same = all(same_run(root / "together" / f"seed-{seed}", root / f"alone-{seed}") for seed in seeds)
    return {"algo": algo, "env": env, "together": together, "alone": alone, "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="dqn:CartPole-v1,td3:Pendulum-v1,sac:Pendulum-v1", help="ALGO:ENV,...")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder, removed)")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix="deeprl-many-seeds-"))
    print(
        f"{len(seeds)} seeds ({args.seeds}), {args.steps:,} steps each; {platform.processor() or platform.machine()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n"
    )
    print("| algorithm | env | seeds together, s | one after another, s | ratio | steps/s together | same runs |")
    print("|---|---|---:|---:|---:|---:|:---:|")
    try:
        for pair in args.runs.split(","):
            algo, env = pair.split(":")
            result = measure(algo, env, seeds, args.steps, root / f"{algo}-{env}")
            print(
                f"| {algo} | {env} | {result['together']:.1f} | {result['alone']:.1f} | "
                f"{result['together'] / result['alone']:.2f} | {len(seeds) * args.steps / result['together']:,.0f} | "
                f"{'yes' if result['same'] else 'NO'} |",
                flush=True,
            )
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
