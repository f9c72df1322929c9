"""The GPU check, in one command, for a machine with a CUDA device: training batches reach the GPU through pinned
memory intact (pictures as uint8), and each suite trains end to end with `device=cuda`, timed beside the same run on
that machine's CPU; a policy trained on the GPU loads and plays on the CPU.

    python benchmarks/device_check.py                  # every run below, GPU then CPU
    python benchmarks/device_check.py --devices cuda   # the GPU alone
    python benchmarks/device_check.py --out check.json
    python benchmarks/device_check.py --devices cpu    # the runs alone, on a machine without a GPU

Needs deeprl's `atari` and `mujoco` extras. Each run is short (a few thousand steps, one greedy game at the end):
what it measures is training steps/s, not learning. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import deeprl
from deeprl.buffers import to_device

QUIET = {"eval_every": 1_000_000, "final_eval_episodes": 1, "checkpoint_every": 0, "tensorboard": False}
# (algorithm, env, steps, settings): one run per suite and family; learning starts early so most steps learn.
RUNS = [
    ("dqn", "PongNoFrameskip-v4", 8_000, {"learning_starts": 1_000}),
    ("ppo", "PongNoFrameskip-v4", 8_192, {}),
    ("ppo", "HalfCheetah-v5", 8_192, {}),
    ("sac", "HalfCheetah-v5", 3_000, {"learning_starts": 1_000}),
]


def check_transfers(device: str) -> list[str]:
    """What goes wrong when a batch's arrays travel to `device` (nothing: an empty list)."""
    problems = []
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(32, 4, 84, 84), dtype=np.uint8)
    returns = rng.standard_normal(32).astype(np.float32)
    for name, array in (("frames", frames), ("returns", returns), ("strided frames", frames[:, ::2])):
        tensor = to_device(array, device)
        torch.cuda.synchronize()
        if tensor.device.type != "cuda" or tensor.dtype != torch.from_numpy(array).dtype:
            problems.append(f"{name}: arrived as {tensor.dtype} on {tensor.device}")
        elif not np.array_equal(tensor.cpu().numpy(), array):
            problems.append(f"{name}: the values changed on the way")
    return problems


def timed_run(algo: str, env: str, steps: int, settings: dict, device: str, folder: Path) -> dict:
    run_dir = folder / f"{algo}-{env}-{device}"
    started = time.perf_counter()
    deeprl.train(algo, env, seed=0, steps=steps, run_dir=run_dir, device=device, progress=False, **QUIET, **settings)
    summary = json.loads((run_dir / "eval.json").read_text())
    on_cpu = deeprl.evaluate(deeprl.load(run_dir / "policy.pt"), env, episodes=1, seed=1)  # a GPU policy on the CPU
    return {
        "algo": algo,
        "env": env,
        "device": device,
        "steps": steps,
        "train_steps_per_second": summary["train_steps_per_second"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "loaded_on_cpu_return": float(on_cpu.mean),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cuda,cpu", help="comma-separated, e.g. cuda,cpu")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    devices = args.devices.split(",")
    problems: list[str] = []
    if "cuda" in devices:
        if not torch.cuda.is_available():
            print("device_check: no CUDA device here (torch.cuda.is_available() is False)", file=sys.stderr)
            return 2
        print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
        problems = check_transfers("cuda")
        print("transfers:", "; ".join(problems) or "ok (pinned, intact, dtypes kept)", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for algo, env, steps, settings in RUNS:
            for device in devices:
                try:
                    result = timed_run(algo, env, steps, settings, device, Path(folder))
                except Exception as error:  # report every run, then fail
                    problems.append(f"{algo} {env} on {device}: {type(error).__name__}: {error}")
                    print(problems[-1], flush=True)
                    continue
                results.append(result)
                print(
                    f"{algo} {env} {device}: {result['train_steps_per_second']:.0f} training steps/s "
                    f"({result['wall_seconds']} s in all); its policy on the CPU: {result['loaded_on_cpu_return']:.1f}",
                    flush=True,
                )
    if args.out:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        args.out.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__, "runs": results}, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
