"""Several seeds of one configuration trained in one process: `deeprl train ALGO ENV --seeds 0-9`,
`deeprl.train(ALGO, ENV, seeds=range(10))`.

A seeds directory holds one ordinary run directory per seed (seed-0/, seed-1/, ...: eval, watch, plot, report and
resume each work on it alone) and seeds.json, which names them. Where the algorithm stacks seeds (DQN:
deeprl.seed_axis) they step together and their gradient steps run as one, each seed's numbers those of its
single-seed run; elsewhere the seeds train one after another in this process, with one line saying why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.agent import Agent
from deeprl.api import (
    _finished_step,
    _opened_run,
    _resume_env,
    _run,
    _trained,
    resolve_config,
    resolve_device,
    resolve_run,
    resume_run,
)
from deeprl.checkpoint import load_latest_checkpoint
from deeprl.config import RunConfig
from deeprl.envs import OBJECT_ENV_SUFFIX, env_options, spec_factory
from deeprl.errors import DeeprlError, Interrupted, warn
from deeprl.files import atomic_write_json, atomic_write_text
from deeprl.run import Run, someone_watching

SEEDS_FILE = "seeds.json"


def seeds_label(seeds: Sequence[int]) -> str:
    """0-9 for a range of seeds, 0,2,5 for the rest."""
    seeds = list(seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(seed) for seed in seeds)


def default_seeds_dir(algo: str, env: str, seeds: Sequence[int], preset: str | None) -> Path:
    """runs/ALGO-ENV[-PRESET]-seedsLABEL-TIME, as run.default_run_dir names a single seed's run."""
    named = [algo, env] + ([preset] if preset not in (None, "default") else [])
    safe = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in named)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = seeds_label(seeds).replace(",", "_")
    path, copy = Path("runs") / f"{safe}-seeds{label}-{stamp}", 1
    while path.exists():
        copy += 1
        path = Path("runs") / f"{safe}-seeds{label}-{stamp}-{copy}"
    return path


def is_seeds_dir(path: Path) -> bool:
    return (path / SEEDS_FILE).is_file()


def seed_run_dirs(path: Path) -> list[Path]:
    """The run directories of a seeds directory, in seed order."""
    try:
        record = json.loads((path / SEEDS_FILE).read_text())
        return [path / name for name in record["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DeeprlError(f"{path / SEEDS_FILE} is unreadable ({error}); its seeds' runs are {path}/seed-N") from None


def stack_refusal(
    module: ModuleType, config: RunConfig, make_base: Callable[[str | None], gym.Env] | None
) -> str | None:
    """Why this algorithm's seeds of these settings on this env cannot step together (None: they can)."""
    if not hasattr(module, "train_seeds"):
        return f"{config.algo} does not stack seeds yet (DQN, DDPG, TD3, SAC, A2C and PPO do)"
    env = spec_factory(env_options(config), make_base)()
    try:
        return module.seeds_refusal(config, env.observation_space)
    finally:
        env.close()


def train_seeds(
    algo: str | None,
    env: str | gym.Env | Callable[..., gym.Env] | None,
    seeds: Sequence[int],
    *,
    preset: str | None,
    config: str | Path | None,
    run_dir: str | Path | None,
    progress: bool | None,
    on_evaluation: Callable[[dict[str, Any]], None] | None,
    settings: dict[str, Any],
) -> list[Agent]:
    """deeprl.train's `seeds`: one run per seed in the seeds directory `run_dir`; their agents, in seed order."""
    seeds = [int(seed) for seed in seeds]
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise DeeprlError(f"seeds must be distinct, non-negative and at least one (got {seeds})")
    module, run_config, capped_config, preset, make_base = resolve_run(algo, env, preset, config, settings)
    path = (
        Path(run_dir)
        if run_dir is not None
        else default_seeds_dir(run_config.algo, run_config.env.removesuffix(OBJECT_ENV_SUFFIX), seeds, preset)
    )
    if is_seeds_dir(path):
        raise DeeprlError(f"{path} already holds the runs of seeds {seeds_label_of(path)}: resume it, or pick another")
    configs = [dataclasses.replace(capped_config, seed=seed) for seed in seeds]
    budgets = [dataclasses.replace(run_config, seed=seed) for seed in seeds]
    return _train(
        module,
        configs,
        preset,
        path,
        [None] * len(seeds),
        progress,
        on_evaluation,
        make_base=make_base,
        capped=capped_config is not run_config,
        budgets=budgets,
    )


def seeds_label_of(path: Path) -> str:
    return seeds_label(int(run_dir.name.removeprefix("seed-")) for run_dir in seed_run_dirs(path))


def resume_seeds(
    path: Path,
    *,
    steps: int | None,
    env: Any,
    progress: bool | None,
    on_evaluation: Callable[[dict[str, Any]], None] | None,
) -> list[Agent]:
    """Continue a seeds directory's unfinished runs from their checkpoints: together from the newest step that every
    one of them has a checkpoint of, where the algorithm stacks them; one after another where it does not (or
    with `steps`, a larger budget for every seed)."""
    run_dirs = seed_run_dirs(path)
    if steps is not None:  # each run continues to the new budget as `deeprl resume RUN --steps N` does
        agents = [resume_run(run_dir, steps=steps, env=env, progress=progress) for run_dir in run_dirs]
        write_group_files(path)
        return agents
    unfinished = [run_dir for run_dir in run_dirs if _finished_step(run_dir) is None]
    if not unfinished:
        raise DeeprlError(
            f"every run of {path} has finished; `deeprl resume {path} --steps N` continues them to a larger budget N"
        )
    first_started = next((run_dir for run_dir in run_dirs if (run_dir / "config.yaml").is_file()), None)
    if first_started is None:
        raise DeeprlError(f"no seed of {path} has started: train them again (deeprl train ... --run-dir {path})")
    module, first_config, preset = resolve_config(None, None, config_file=first_started / "config.yaml")
    make_base = _resume_env(first_started, first_config, env)
    refusal = stack_refusal(module, first_config, make_base)
    if refusal is not None:  # one after another: the seeds that have started continue, the others start
        started = [run_dir for run_dir in unfinished if (run_dir / "config.yaml").is_file()]
        fresh = [
            dataclasses.replace(first_config, seed=int(run_dir.name.removeprefix("seed-")))
            for run_dir in unfinished
            if run_dir not in started
        ]
        with _interrupted_seeds(path):
            agents = [
                resume_run(run_dir, env=env, progress=progress, on_evaluation=on_evaluation) for run_dir in started
            ]
        if fresh:
            agents += _train(
                module, fresh, preset, path, [None] * len(fresh), progress, on_evaluation, make_base=make_base
            )
        else:
            write_group_files(path)
        return agents
    configs = [resolve_config(None, None, config_file=run_dir / "config.yaml")[1] for run_dir in unfinished]
    newest = [load_latest_checkpoint(run_dir, config.algo, config.env) for run_dir, config in zip(unfinished, configs)]
    common = min(checkpoint["run"]["step"] for checkpoint in newest)
    checkpoints = [
        checkpoint
        if checkpoint["run"]["step"] == common
        else load_latest_checkpoint(run_dir, config.algo, config.env, at_most=common)
        for checkpoint, run_dir, config in zip(newest, unfinished, configs)
    ]
    if any(checkpoint["run"]["step"] != common for checkpoint in checkpoints):
        raise DeeprlError(
            f"the seeds of {path} hold no checkpoints of one step to continue together from; resume each alone: "
            f"deeprl resume {unfinished[0]}"
        )
    return _train(module, configs, preset, path, checkpoints, progress, on_evaluation, make_base=make_base)


def _train(
    module: ModuleType,
    configs: list[RunConfig],
    preset: str | None,
    path: Path,
    checkpoints: list[dict[str, Any] | None],
    progress: bool | None,
    on_evaluation: Callable[[dict[str, Any]], None] | None,
    *,
    make_base: Callable[[str | None], gym.Env] | None = None,
    capped: bool = False,
    budgets: list[RunConfig] | None = None,
) -> list[Agent]:
    """Train (or continue from `checkpoints`) each config's seed in path/seed-N."""
    seeds = [config.seed for config in configs]
    run_dirs = [path / f"seed-{seed}" for seed in seeds]
    budgets = budgets or [None] * len(configs)
    refusal = stack_refusal(module, configs[0], make_base)
    if refusal is not None:
        warn(f"the seeds train one after another in this process: {refusal}")
        agents = []
        for config, run_dir, checkpoint, budget in zip(configs, run_dirs, checkpoints, budgets, strict=True):
            with _seeds_dir(path, configs, run_dirs), _interrupted_seeds(path):
                agent = _run(
                    module,
                    config,
                    preset,
                    run_dir,
                    progress,
                    checkpoint,
                    on_evaluation,
                    make_base=make_base,
                    capped=capped,
                    budget=budget,
                )
            agents.append(agent)
        write_group_files(path)
        return agents
    device = resolve_device(configs[0].device)
    show = someone_watching() if progress is None else progress
    with _interrupted_seeds(path), ExitStack() as opened_runs:
        opened = []
        for config, run_dir, checkpoint, budget in zip(configs, run_dirs, checkpoints, budgets, strict=True):
            with _seeds_dir(path, configs, run_dirs):
                run = _opened_run(
                    module,
                    config,
                    preset,
                    run_dir,
                    False,
                    checkpoint,
                    on_evaluation,
                    make_base,
                    False,
                    budget,
                    handle_signals=False,
                )
                opened.append(opened_runs.enter_context(run))
        runs = [run for _, run in opened]
        for run in runs:
            run.announces = False
        opened_runs.enter_context(_stop_on_signal(runs))
        agents = module.train_seeds(
            configs,
            [make_env for make_env, _ in opened],
            runs,
            device,
            [None if checkpoint is None else checkpoint["algo"] for checkpoint in checkpoints],
            _announcer(runs, seeds, show),
        )
    agents = [_trained(agent, config, run_dir, capped) for agent, config, run_dir in zip(agents, configs, run_dirs)]
    write_group_files(path)
    return agents


def write_group_files(path: Path) -> None:
    """The seeds' mean learning curve with its 95% CI (curves.png) and their report (report.html, without videos)."""
    from deeprl.report import REPORT_FILE, report_html

    plot_seeds(path, path / "curves.png")
    atomic_write_text(path / REPORT_FILE, report_html([path], video=False))


def plot_seeds(path: Path, output: Path, x: str = "steps") -> None:
    """The mean learning curve of a seeds directory's runs and its 95% CI, against steps or time."""
    from deeprl.media import plot_groups

    run_dirs = [run_dir for run_dir in seed_run_dirs(path) if (run_dir / "metrics.csv").is_file()]
    if not run_dirs:
        raise DeeprlError(f"no seed of {path} has started yet")
    record = json.loads((path / SEEDS_FILE).read_text())
    label = f"{record['algo']} on {record['env']}, seeds {seeds_label_of(path)}"
    plot_groups({label: run_dirs}, output, x=x, title=f"{label}: mean and 95% CI")


@contextmanager
def _seeds_dir(path: Path, configs: list[RunConfig], run_dirs: list[Path]) -> Iterator[None]:
    """seeds.json in place while a seed's run opens; where the first one is refused before its run directory
    exists, nothing is left behind."""
    written = not (path / SEEDS_FILE).is_file()
    if written:
        path.mkdir(parents=True, exist_ok=True)
        record = {
            "algo": configs[0].algo,
            "env": configs[0].env,
            "seeds": [config.seed for config in configs],
            "runs": [run_dir.name for run_dir in run_dirs],
        }
        atomic_write_json(path / SEEDS_FILE, record)
    try:
        yield
    except DeeprlError:
        if written and not any(run_dir.exists() for run_dir in run_dirs):
            (path / SEEDS_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.rmdir()  # only where empty
        raise


@contextmanager
def _interrupted_seeds(path: Path) -> Iterator[None]:
    """A stop request's one line names the seeds directory to resume, not one seed's run."""
    try:
        yield
    except Interrupted as stop:
        step = re.search(r"step (\d+)", str(stop))
        at = step.group(1) if step else "?"
        raise Interrupted(f"interrupted at step {at}; checkpoints saved; continue with: deeprl resume {path}") from None


@contextmanager
def _stop_on_signal(runs: list[Run]) -> Iterator[None]:
    """SIGINT or SIGTERM asks every seed's run to checkpoint and stop (a second one stops at once)."""
    asked = []

    def on_signal(signum: int, frame: Any) -> None:
        if asked:
            raise KeyboardInterrupt
        asked.append(signum)
        print(f"{signal.Signals(signum).name}: every seed checkpoints at the next step", flush=True)
        for run in runs:
            run.stop_requested = True

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _announcer(runs: list[Run], seeds: list[int], show: bool) -> Callable[[int, list[int]], None]:
    """One line after each round of evaluations: the evaluated seeds' mean, spread and how many have solved."""
    started = time.perf_counter()
    label = seeds_label(seeds)

    def announce(step: int, evaluated: list[int]) -> None:
        if not show:
            return
        means = np.array([runs[index].last_evaluation.mean for index in evaluated])
        solved = sum(run.record.solved_step is not None for run in runs)
        print(
            f"step {step:>8} | seeds {label} | eval mean {means.mean():8.2f} (min {means.min():.2f}, max "
            f"{means.max():.2f}) | solved {solved}/{len(runs)} | {time.perf_counter() - started:7.1f} s",
            flush=True,
        )

    return announce
