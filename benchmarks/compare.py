"""DQN time-to-solve, side by side: deeprl against Stable-Baselines3 with the RL Zoo's tuned hyperparameters.

    python benchmarks/compare.py --env CartPole-v1 --seeds 0-4 [--eval-every 1000] [--steps N]
        [--sb3-steps N] [--frameworks deeprl,sb3] [--threshold R] [--out benchmarks/results/NAME.json]

Each (framework, seed) trains in a fresh subprocess of this script (`--worker`), deeprl then SB3 for each
seed, so neither framework's imports, threads or crashes touch the other and slow drifts of a shared
machine hit both alike. Both are evaluated the same way: every `--eval-every` env steps, 20 greedy
episodes through `deeprl.evaluate.evaluate` on seeds 1_000_000 + 1000*seed + i, with the clock paused;
the final agent gets 20 greedy episodes on seeds 2_000_000 + 1000*seed + i. Prints a Markdown report
(per-seed table, summary with deeprl/SB3 ratios) and writes the raw per-seed results to JSON.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

FRAMEWORKS = ("deeprl", "sb3")
LABELS = {"deeprl": "deeprl", "sb3": "SB3 + Zoo"}
EVAL_EPISODES = 20
PERIODIC_EVAL_SEED = 1_000_000  # the same bases deeprl's Run uses, so both frameworks see the same episodes
FINAL_EVAL_SEED = 2_000_000
# Zoo keys that shape the environment rather than the model: reproducing them is out of scope, so refuse
# them rather than silently benchmark a different setup than the Zoo's.
ZOO_ENV_KEYS = ("env_wrapper", "frame_stack", "normalize", "vec_env_wrapper", "callback", "env_kwargs",
                "monitor_kwargs")
VERSIONED_PACKAGES = ("deeprl", "torch", "gymnasium", "numpy", "stable-baselines3", "rl_zoo3")


# ------------------------------------------------------------------------------------ RL Zoo hyperparameters


def zoo_hyperparams(env_id: str) -> dict[str, Any]:
    """The Zoo's DQN entry for `env_id`, as written in the installed rl_zoo3's hyperparams/dqn.yml."""
    # find_spec locates the package without importing it: `import rl_zoo3` monkey-patches Gymnasium's
    # TimeLimit, which must not leak into deeprl's runs or differ between workers.
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("rl_zoo3 is not installed: pip install rl_zoo3 (it holds the tuned hyperparameters)")
    path = Path(next(iter(spec.submodule_search_locations))) / "hyperparams" / "dqn.yml"
    table = yaml.safe_load(path.read_text())
    if env_id not in table:
        known = ", ".join(key for key in table if key not in ("default", "atari"))
        raise SystemExit(f"the RL Zoo has no DQN hyperparameters for {env_id} (it has: {known})")
    return dict(table[env_id])


def parse_kwargs_text(text: str) -> dict[str, Any]:
    """`"dict(net_arch=[256, 256])"` -> {"net_arch": [256, 256]} without eval (literals and nn.X only)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        value = _kwargs_value(node)
    except (SyntaxError, ValueError) as error:
        raise SystemExit(f"cannot read Zoo keyword arguments {text!r}: {error}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"Zoo keyword arguments {text!r} are not a dict")
    return value


def _kwargs_value(node: ast.expr) -> Any:
    is_dict_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
    if is_dict_call and not node.args:
        if any(keyword.arg is None for keyword in node.keywords):
            raise ValueError("**expansion is not supported")
        return {keyword.arg: _kwargs_value(keyword.value) for keyword in node.keywords}
    # Activation classes (activation_fn=nn.ReLU) are the only non-literals the Zoo writes.
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "nn":
        import torch.nn

        if not isinstance(getattr(torch.nn, node.attr, None), type):
            raise ValueError(f"unknown torch.nn class nn.{node.attr}")
        return getattr(torch.nn, node.attr)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_kwargs_value(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    signed_number = isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.Constant) or signed_number:
        return ast.literal_eval(node)
    raise ValueError(f"only literals, dict(...) and nn.<Class> are allowed, not {ast.unparse(node)!r}")


def sb3_dqn_setup(zoo: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(budget in env steps, policy name, keyword arguments for stable_baselines3.DQN) from a Zoo entry."""
    params = dict(zoo)
    budget = int(float(params.pop("n_timesteps")))
    policy = str(params.pop("policy"))
    n_envs = int(params.pop("n_envs", 1))
    unsupported = [key for key in ZOO_ENV_KEYS if key in params] + (["n_envs"] if n_envs != 1 else [])
    if unsupported:
        raise SystemExit(f"this Zoo entry uses {', '.join(unsupported)}, which compare.py does not reproduce")
    if isinstance(params.get("policy_kwargs"), str):
        params["policy_kwargs"] = parse_kwargs_text(params["policy_kwargs"])
    if isinstance(params.get("train_freq"), list):  # [4, "episode"] -> (4, "episode"), as the Zoo does
        params["train_freq"] = tuple(params["train_freq"])
    schedules = [key for key, value in params.items() if isinstance(value, str) and value.startswith("lin_")]
    if schedules:
        raise SystemExit(f"Zoo schedules ({', '.join(schedules)}) are not supported by compare.py")
    return budget, policy, params


# ------------------------------------------------------------------------------------------------- workers


def run_deeprl(env_id: str, seed: int, eval_every: int, steps: int | None, threshold: float | None) -> dict:
    """Train deeprl's DQN (its `default` preset) and read the result from the run's summary."""
    import torch

    import deeprl

    torch.set_num_threads(1)
    settings: dict[str, Any] = {
        "eval_every": eval_every, "eval_episodes": EVAL_EPISODES, "final_eval_episodes": EVAL_EPISODES,
        "tensorboard": False, "stop_on_solve": False, "torch_threads": 1,
    }
    if threshold is not None:
        settings["solve_threshold"] = threshold
    with tempfile.TemporaryDirectory(prefix="deeprl-bench-") as scratch:
        run_dir = Path(scratch) / "run"
        started = time.perf_counter()
        agent = deeprl.train("dqn", env_id, seed=seed, steps=steps, run_dir=run_dir, device="cpu", **settings)
        wall_seconds = time.perf_counter() - started
        summary = agent.summary
        assert summary is not None, "deeprl.train returned an agent without a summary"
        with open(run_dir / "metrics.csv") as metrics:
            evals = [
                {"step": int(row["step"]), "mean": float(row["return"]), "std": float(row["return_std"]),
                 "train_seconds": float(row["time_s"])}
                for row in csv.DictReader(metrics) if row["kind"] == "eval"
            ]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return {
        "budget_steps": config["total_steps"],
        "steps": summary["steps"],
        "threshold": summary["solve_threshold"],
        "solved_at_step": summary["solved_at_step"],
        "solved_train_seconds": summary["solved_train_seconds"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall_seconds, 3),
        "final": summary["final"],
        "best": summary["best"],  # the agent deeprl.load(run_dir) returns, on the same fresh seeds
        "evals": evals,
        "hyperparams": config,
    }


class SB3Agent:
    """What `deeprl.evaluate.evaluate` needs from an agent, backed by an SB3 model (batches included)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        return self.model.predict(obs, deterministic=deterministic)[0]


def run_sb3(env_id: str, seed: int, eval_every: int, steps: int | None, threshold: float) -> dict:
    """Train SB3's DQN with the Zoo's hyperparameters, evaluating periodically with the clock paused."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    from deeprl.evaluate import evaluate

    torch.set_num_threads(1)
    zoo_budget, policy, kwargs = sb3_dqn_setup(zoo_hyperparams(env_id))
    budget = steps if steps is not None else zoo_budget

    class PeriodicEval(BaseCallback):
        """Every `eval_every` env steps: 20 greedy episodes, timed so the training clock can drop them."""

        def __init__(self, started: float) -> None:
            super().__init__()
            self.started = started
            self.eval_seconds = 0.0
            self.evals: list[dict[str, Any]] = []
            self.solved_at_step: int | None = None
            self.solved_train_seconds: float | None = None

        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every != 0:
                return True
            eval_started = time.perf_counter()
            train_seconds = eval_started - self.started - self.eval_seconds
            result = evaluate(SB3Agent(self.model), env_id, episodes=EVAL_EPISODES,
                              seed=PERIODIC_EVAL_SEED + 1000 * seed)
            self.eval_seconds += time.perf_counter() - eval_started
            self.evals.append({"step": self.num_timesteps, "mean": result.mean, "std": result.std,
                               "train_seconds": round(train_seconds, 3)})
            if self.solved_at_step is None and result.mean >= threshold:
                self.solved_at_step, self.solved_train_seconds = self.num_timesteps, round(train_seconds, 3)
            return True  # keep training after solving, as deeprl does with stop_on_solve=False

    env = Monitor(gym.make(env_id))
    # The clock starts where deeprl's does: env made, networks and replay buffer not yet built.
    started = time.perf_counter()
    model = DQN(policy, env, seed=seed, device="cpu", verbose=0, **kwargs)
    callback = PeriodicEval(started)
    model.learn(total_timesteps=budget, callback=callback)
    train_seconds = time.perf_counter() - started - callback.eval_seconds
    final = evaluate(SB3Agent(model), env_id, episodes=EVAL_EPISODES, seed=FINAL_EVAL_SEED + 1000 * seed)
    env.close()
    return {
        "budget_steps": budget,
        "steps": int(model.num_timesteps),
        "threshold": threshold,
        "solved_at_step": callback.solved_at_step,
        "solved_train_seconds": callback.solved_train_seconds,
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "final": final.to_dict(),
        "evals": callback.evals,
        # JSON-native where possible; classes such as nn.ReLU as their repr
        "hyperparams": json.loads(
            json.dumps({"policy": policy, "total_timesteps": budget, **kwargs}, default=repr)
        ),
    }


def worker_main(args: argparse.Namespace) -> None:
    """One (framework, seed) run; the result is the last line on stdout, as JSON."""
    (seed,) = args.seeds
    if args.worker == "deeprl":
        result = run_deeprl(args.env, seed, args.eval_every, args.steps, args.threshold)
    else:
        result = run_sb3(args.env, seed, args.eval_every, args.sb3_steps, args.threshold)
    result.update(framework=args.worker, seed=seed, env=args.env)
    result["steps_per_second"] = round(result["steps"] / result["train_seconds"], 1)
    print(json.dumps(result), flush=True)


def launch_worker(framework: str, seed: int, args: argparse.Namespace, threshold: float) -> dict:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--env", args.env,
        "--seeds", str(seed), "--eval-every", str(args.eval_every), "--threshold", repr(threshold),
    ]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.sb3_steps is not None:
        command += ["--sb3-steps", str(args.sb3_steps)]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = process.stdout.strip().splitlines()
    if process.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (process.stderr or process.stdout).strip().splitlines()[-15:]
    return {
        "framework": framework, "seed": seed, "env": args.env, "returncode": process.returncode,
        "wall_seconds": round(time.perf_counter() - started, 3), "error": "\n".join(tail) or "no output",
    }


# ------------------------------------------------------------------------------------------------- reports


def summarise(runs: list[dict], threshold: float) -> dict[str, Any]:
    """Per-framework statistics; an unsolved (or crashed) seed counts as infinitely slow to solve."""
    done = [run for run in runs if "error" not in run]

    def solve_values(key: str) -> list[float]:
        return [math.inf if run.get(key) is None else float(run[key]) for run in runs]

    steps, seconds = solve_values("solved_at_step"), solve_values("solved_train_seconds")
    finals = [run["final"]["mean_return"] for run in done]
    return {
        "seeds": len(runs),
        "errors": len(runs) - len(done),
        "solved": sum(math.isfinite(value) for value in steps),
        "steps_to_solve_median": statistics.median(steps) if runs else math.inf,
        "steps_to_solve_worst": max(steps, default=math.inf),
        "seconds_to_solve_median": statistics.median(seconds) if runs else math.inf,
        "seconds_to_solve_worst": max(seconds, default=math.inf),
        "steps_per_second_median": statistics.median(r["steps_per_second"] for r in done) if done else None,
        "train_seconds_median": statistics.median(r["train_seconds"] for r in done) if done else None,
        "stays_solved": sum(mean >= threshold for mean in finals),
        "final_mean_median": statistics.median(finals) if finals else None,
    }


def _steps(value: float | None) -> str:
    return "unsolved" if value is None or not math.isfinite(value) else f"{int(value):,}"


def _seconds(value: float | None) -> str:
    return "unsolved" if value is None or not math.isfinite(value) else f"{value:.1f}"


def _ratio(numerator: float, denominator: float) -> str:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def _json_safe(value: Any) -> Any:
    """JSON has no infinity: an unsolved statistic is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_at_start": os.getloadavg()[0],
            "platform": platform.platform()}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def markdown_report(report: dict[str, Any]) -> str:
    frameworks, threshold, runs = report["frameworks"], report["threshold"], report["runs"]
    machine, versions = report["machine"], report["versions"]
    lines = [
        f"### DQN on {report['env']}: " + " vs ".join(LABELS[name] for name in frameworks),
        "",
        f"- Command: `{report['command']}`",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores "
        f"(load average {machine['load_average_at_start']:.2f} at start); {report['date']}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"- Solved: mean of {EVAL_EPISODES} greedy episodes ≥ {threshold:g}, evaluated every "
        f"{report['eval_every']:,} env steps (episode seeds {PERIODIC_EVAL_SEED:_} + 1000·seed + i); "
        f"seconds are training wall-clock with evaluation excluded; 1 torch thread, CPU.",
        f"- Stays solved: the final agent's mean over {EVAL_EPISODES} greedy episodes on fresh seeds "
        f"({FINAL_EVAL_SEED:_} + 1000·seed + i) ≥ {threshold:g}.",
    ]
    budget_sources = {"deeprl": ("preset `default`", "--steps"), "sb3": ("RL Zoo n_timesteps", "--sb3-steps")}
    for name in frameworks:
        budgets = sorted({run["budget_steps"] for run in runs
                          if run["framework"] == name and "budget_steps" in run})
        default_source, flag = budget_sources[name]
        source = default_source if report["steps_override"][name] is None else f"{flag} override"
        budget_text = ", ".join(f"{budget:,}" for budget in budgets) or "unknown (every run crashed)"
        lines.append(f"- {LABELS[name]} budget: {budget_text} env steps ({source})")
    if "sb3" in frameworks:
        zoo = ", ".join(f"{key}={int(value) if isinstance(value, float) and value.is_integer() else value}"
                        for key, value in report["zoo_hyperparams"].items())
        lines.append(f"- SB3 hyperparameters (rl_zoo3 hyperparams/dqn.yml): {zoo}")

    lines += ["", "| seed | framework | solved at step | solved at s | steps run | train s | steps/s "
              "| final mean ± std | stays solved |", "|---:|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for run in sorted(runs, key=lambda run: (run["seed"], frameworks.index(run["framework"]))):
        label = LABELS[run["framework"]]
        if "error" in run:
            first_error = run["error"].splitlines()[-1].replace("|", "\\|")
            lines.append(f"| {run['seed']} | {label} | crashed: {first_error} | | | | | | |")
            continue
        final = run["final"]
        lines.append(
            f"| {run['seed']} | {label} | {_steps(run['solved_at_step'])} "
            f"| {_seconds(run['solved_train_seconds'])} "
            f"| {run['steps']:,} | {run['train_seconds']:.1f} | {run['steps_per_second']:,.0f} "
            f"| {final['mean_return']:.1f} ± {final['std_return']:.1f} "
            f"| {'yes' if final['mean_return'] >= threshold else 'no'} |"
        )

    stats = report["summary"]
    both = all(name in stats for name in FRAMEWORKS)
    labels = " | ".join(LABELS[name] for name in frameworks)
    header = f"| | {labels}" + (" | deeprl / SB3 |" if both else " |")
    lines += ["", header, "|---|" + "---:|" * (len(frameworks) + both)]

    def row(title: str, cell: Callable[[dict[str, Any]], str], ratio_key: str | None = None) -> None:
        cells = [cell(stats[name]) for name in frameworks]
        if both:
            cells.append(_ratio(stats["deeprl"][ratio_key], stats["sb3"][ratio_key]) if ratio_key else "")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    row("solved within budget", lambda s: f"{s['solved']}/{s['seeds']}")
    row("env steps to solve, median", lambda s: _steps(s["steps_to_solve_median"]), "steps_to_solve_median")
    row("env steps to solve, worst", lambda s: _steps(s["steps_to_solve_worst"]))
    row("seconds to solve, median", lambda s: _seconds(s["seconds_to_solve_median"]),
        "seconds_to_solve_median")
    row("seconds to solve, worst", lambda s: _seconds(s["seconds_to_solve_worst"]))
    row("training steps/s, median",
        lambda s: "n/a" if s["steps_per_second_median"] is None else f"{s['steps_per_second_median']:,.0f}")
    row("final agent stays solved", lambda s: f"{s['stays_solved']}/{s['seeds']}")
    row("final agent mean return, median",
        lambda s: "n/a" if s["final_mean_median"] is None else f"{s['final_mean_median']:.1f}")
    if any(s["errors"] for s in stats.values()):
        row("crashed runs", lambda s: str(s["errors"]))
    lines += ["", "An unsolved seed counts as never solving: a median or worst that reads *unsolved* means "
              "at least half (median) or one (worst) of the seeds did not reach the threshold."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main


def parse_seeds(text: str) -> list[int]:
    """`0-4` -> [0, 1, 2, 3, 4]; `0,3,7-8` -> [0, 3, 7, 8]."""
    seeds: list[int] = []
    try:
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            low, _, high = part.partition("-")
            seeds += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like 0-4 or 0,2,5 (got {text!r})") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and non-negative (got {text!r})")
    return seeds


def parse_frameworks(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"frameworks must be distinct names from {', '.join(FRAMEWORKS)}")
    return names


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id (SB3 needs a Zoo DQN entry)")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"), help="e.g. 0-4 or 0,2,5")
    parser.add_argument("--eval-every", type=positive_int, default=1000, help="env steps between evaluations")
    parser.add_argument("--steps", type=positive_int, help="deeprl budget (default: preset total_steps)")
    parser.add_argument("--sb3-steps", type=positive_int, help="SB3 budget (default: the Zoo's n_timesteps)")
    parser.add_argument("--frameworks", type=parse_frameworks, default=list(FRAMEWORKS), help="deeprl,sb3")
    parser.add_argument("--threshold", type=float, help="solving return (default: env's reward_threshold)")
    parser.add_argument("--out", type=Path, help="raw JSON (default: benchmarks/results/dqn-ENV-DATE.json)")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    return parser


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, so an interrupted benchmark leaves the last complete set of runs readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(_json_safe(data), indent=2) + "\n")
    os.replace(temporary, path)


def main() -> None:
    args = build_parser().parse_args()
    if args.worker:
        worker_main(args)
        return
    import gymnasium as gym

    try:
        spec = gym.spec(args.env)
    except gym.error.Error as error:
        raise SystemExit(f"unknown environment {args.env}: {error}") from None
    threshold = args.threshold if args.threshold is not None else spec.reward_threshold
    if threshold is None:
        raise SystemExit(f"{args.env} declares no reward_threshold: pass --threshold")
    zoo = zoo_hyperparams(args.env) if "sb3" in args.frameworks else {}
    if zoo:
        sb3_dqn_setup(zoo)  # refuse an unsupported Zoo entry before spending any time training
    stamp = datetime.now(timezone.utc)
    out = args.out or Path(__file__).resolve().parent / "results" / (
        f"dqn-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.env)}-{stamp:%Y%m%d-%H%M%S}.json")
    report: dict[str, Any] = {
        "command": shlex.join(["python", *sys.argv]),
        "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "machine": machine_info(),
        "versions": package_versions(),
        "env": args.env,
        "threshold": float(threshold),
        "eval_every": args.eval_every,
        "eval_episodes": EVAL_EPISODES,
        "seeds": args.seeds,
        "frameworks": args.frameworks,
        "steps_override": {"deeprl": args.steps, "sb3": args.sb3_steps},
        "zoo_hyperparams": zoo,
        "runs": [],
    }
    # Alternate frameworks within each seed so a slow spell on the shared machine hits both.
    for seed in args.seeds:
        for framework in args.frameworks:
            print(f"[{framework} seed {seed}] training ...", file=sys.stderr, flush=True)
            run = launch_worker(framework, seed, args, float(threshold))
            report["runs"].append(run)
            write_json(out, report)
            if "error" in run:
                outcome = f"crashed (exit {run['returncode']}): {run['error'].splitlines()[-1]}"
            else:
                solved = ("not solved" if run["solved_at_step"] is None else
                          f"solved at step {run['solved_at_step']:,} ({run['solved_train_seconds']:.1f} s)")
                outcome = (f"{solved}; final mean {run['final']['mean_return']:.1f}; "
                           f"{run['steps_per_second']:,.0f} steps/s")
            print(f"[{framework} seed {seed}] {outcome}", file=sys.stderr, flush=True)
    report["summary"] = {
        name: summarise([run for run in report["runs"] if run["framework"] == name], float(threshold))
        for name in args.frameworks
    }
    report["markdown"] = markdown_report(report)
    write_json(out, report)
    print(report["markdown"])
    print(f"\nraw results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
