"""The Python entry point for training: resolve the config, check the env fits, run the algorithm."""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from deeprl.agent import Agent
from deeprl.algos import check_spaces, get_algorithm
from deeprl.checkpoint import load_latest_checkpoint
from deeprl.config import RunConfig, apply_settings, build_config, read_config_record, validate_fields
from deeprl.envs import env_options, reward_threshold, run_env_checker, spec_factory
from deeprl.errors import DeeprlError, warn
from deeprl.run import Run, default_run_dir, prepare_run_dir, someone_watching


def resolve_config(
    algo: str | None,
    env: str | None,
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[ModuleType, RunConfig, str | None]:
    """The algorithm module, its validated config and the preset it started from: from a config file
    (which records its preset), or defaults < preset < settings."""
    settings = dict(settings or {})
    if config_file is not None:
        if preset is not None:
            raise DeeprlError("--preset does not apply with --config: the file holds every setting (use --set)")
        record = read_config_record(config_file)
        if algo is not None and algo.lower() != record.algo.lower():
            raise DeeprlError(f"{config_file} is a {record.algo} config, not {algo}")
        module = get_algorithm(record.algo)
        config = apply_settings(module.Config(), record.settings, str(config_file))
        if env is not None:
            settings["env"] = env
        config = apply_settings(config, settings, "--set")
        validate_fields(config)
        return module, config, record.preset
    if algo is None or env is None:
        raise DeeprlError("train needs an algorithm and an env (or --config FILE)")
    module = get_algorithm(algo)
    preset = preset or "default"
    return module, build_config(module.Config, env, preset, settings), preset


STEP_CAP_VARIABLE = "DEEPRL_MAX_STEPS"


def capped_steps(config: RunConfig) -> RunConfig:
    """`DEEPRL_MAX_STEPS=N` in the environment caps every run at N steps: a whole script or README can be
    smoke-tested quickly exactly as written. The cap is said aloud and recorded in config.yaml."""
    text = os.environ.get(STEP_CAP_VARIABLE)
    if not text:
        return config
    try:
        cap = int(text)
    except ValueError:
        raise DeeprlError(f"{STEP_CAP_VARIABLE} must be a whole number of steps (got '{text}')") from None
    if cap < 1:
        raise DeeprlError(f"{STEP_CAP_VARIABLE} must be >= 1 (got {cap})")
    if config.total_steps <= cap:
        return config
    warn(f"{STEP_CAP_VARIABLE}={cap} caps this run at {cap} steps (its settings ask for {config.total_steps})")
    return dataclasses.replace(config, total_steps=cap)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeeprlError(f"device '{name}' requested but CUDA is not available here (use cpu or auto)")
    return torch.device(name)


def train(
    algo: str | None = None,
    env: str | None = None,
    *,
    seed: int | None = None,
    steps: int | None = None,
    preset: str | None = None,
    config: str | Path | None = None,
    run_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool | None = None,
    resume: str | Path | None = None,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> Agent:
    """Train `algo` on `env` and return the trained agent (its run directory is `agent.run_dir`).

    `preset` picks tuned settings for the env (`deeprl list` shows them; default: "default"); `settings` are
    config fields (`lr=3e-4`, `hidden_sizes=(64, 64)`), applied over the preset. `progress` shows training
    progress; None shows it where someone is watching (a terminal or a notebook) and keeps logs quiet.
    `resume=RUN` continues an interrupted run from its newest intact checkpoint instead. `on_evaluation` is
    called after every periodic evaluation with a dict: step, episode, eval_return (and _std), best_return,
    solved, solved_at_step, train_seconds and checkpoint_step (the newest checkpoint's, or None).
    """
    if resume is not None:
        return resume_run(resume, progress=progress, on_evaluation=on_evaluation)
    flags = {"seed": seed, "total_steps": steps, "device": device}
    settings.update({key: value for key, value in flags.items() if value is not None})
    module, run_config, preset = resolve_config(algo, env, preset=preset, config_file=config, settings=settings)
    run_config = capped_steps(run_config)
    if run_dir is None:
        run_dir = default_run_dir(run_config.algo, run_config.env, run_config.seed, preset)
    return _run(module, run_config, preset, Path(run_dir), progress, None, on_evaluation)


def resume_run(
    run_dir: str | Path,
    *,
    progress: bool | None = None,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
) -> Agent:
    """Continue an interrupted run from its newest intact checkpoint, exactly as it would have gone on."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file():
        raise DeeprlError(f"{path} is not a run directory (no config.yaml)")
    if (path / "eval.json").is_file():
        raise DeeprlError(f"run {path} already finished (eval.json exists); nothing to resume")
    module, run_config, preset = resolve_config(None, None, config_file=path / "config.yaml")
    checkpoint = load_latest_checkpoint(path, run_config.algo, run_config.env)
    return _run(module, run_config, preset, path, progress, checkpoint, on_evaluation)


def _run(
    module: ModuleType,
    run_config: RunConfig,
    preset: str | None,
    path: Path,
    progress: bool | None,
    checkpoint: dict[str, Any] | None,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
) -> Agent:
    torch_device = resolve_device(run_config.device)
    if run_config.check_env:
        run_env_checker(env_options(run_config))
    make_run_env = spec_factory(env_options(run_config))
    train_env = make_run_env()
    try:
        check_spaces(run_config.algo, run_config.env, train_env)
        module.check_setup(run_config, train_env)
        train_env.reset(seed=run_config.seed)  # a broken env fails here, before the run directory exists
        threshold = run_config.solve_threshold
        if threshold is None:
            threshold = reward_threshold(train_env)
        if checkpoint is None:
            prepare_run_dir(path)
        torch.set_num_threads(run_config.torch_threads)
        # Building a torch optimiser imports torch._dynamo on first use (3-5 s here): import it before the run's
        # clock starts, so that time to solve measures training.
        importlib.import_module("torch._dynamo")
        # NumPy's BLAS acts for small nets (nets.numpy_sequential); its default thread pool was 2.3x slower
        # here on a loaded 2-core machine (Acrobot tutorial preset, 512-wide layers).
        blas_threads = threadpool_limits(run_config.torch_threads, user_api="blas")
        run = Run(
            path, run_config, module.METRIC_COLUMNS, make_run_env, threshold, preset=preset,
            show_progress=someone_watching() if progress is None else progress,
            resume_state=None if checkpoint is None else checkpoint["run"], on_evaluation=on_evaluation,
        )
        try:
            agent = module.train(
                run_config, make_run_env, run, torch_device, resume=None if checkpoint is None else checkpoint["algo"]
            )
        finally:
            run.close()
            blas_threads.restore_original_limits()
    except OSError as error:  # disk full, directory removed or read-only: the last checkpoint is intact
        raise DeeprlError(
            f"writing to run directory {path} failed: {error.strerror or error}; earlier checkpoints are intact"
        ) from None
    finally:
        train_env.close()
    agent.run_dir = path
    agent.env_spec = env_options(run_config)
    return agent
