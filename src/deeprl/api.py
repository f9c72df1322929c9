"""The Python entry point for training: resolve the config, check the env fits, run the algorithm."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import torch
from threadpoolctl import threadpool_limits

from deeprl.action_masks import check_first_mask
from deeprl.agent import Agent
from deeprl.algos import check_spaces, get_algorithm
from deeprl.checkpoint import load_latest_checkpoint
from deeprl.config import (
    RunConfig,
    apply_settings,
    build_config,
    config_to_yaml,
    env_presets,
    read_config_record,
    validate_fields,
)
from deeprl.envs import (
    OBJECT_ENV_SUFFIX,
    check_time_limit,
    env_options,
    env_source,
    is_object_env,
    reward_threshold,
    run_env_checker,
    spec_factory,
)
from deeprl.errors import DeeprlError, warn
from deeprl.files import atomic_write_text
from deeprl.offpolicy import OffPolicyConfig
from deeprl.onpolicy import OnPolicyConfig
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
    (which records its preset), or defaults < preset < settings. An env given as a Python object (`env` is its
    recorded name, see envs.env_source) takes the presets of the id its spec names."""
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
        config = apply_settings(config, settings)
        validate_fields(config)
        return module, config, record.preset
    if algo is None or env is None:
        raise DeeprlError("train needs an algorithm and an env (or --config FILE)")
    module = get_algorithm(algo)
    preset_env = env.removesuffix(OBJECT_ENV_SUFFIX)
    preset = preset or preset_named_by(module.Config.algo, preset_env, settings) or "default"
    if preset_env != env:
        settings = {"env": env, **settings}
    return module, build_config(module.Config, preset_env, preset, settings), preset


def preset_named_by(algo: str, env: str, settings: dict[str, Any]) -> str | None:
    """The preset a setting chooses when no preset is named: `critic=q` starts from the env's `q` preset, which
    sets critic to q with the settings that make that variant learn. None where no setting does."""
    presets = env_presets(algo, env)
    for name, value in settings.items():
        chosen = presets.get(str(value)) or {}
        if str(value) != "default" and name in chosen and str(chosen[name]) == str(value):
            warn(
                f"{name}={value} starts from the '{value}' preset for {env} (its tuned settings for this variant; "
                f"your settings apply over it; the preset 'default' keeps the defaults)"
            )
            return str(value)
    return None


STEP_CAP_VARIABLE = "DEEPRL_MAX_STEPS"


def capped_steps(config: RunConfig, already: int = 0) -> RunConfig:
    """`DEEPRL_MAX_STEPS=N` in the environment caps every run at N steps (N more than the `already` trained of a
    run continued to a larger budget): a whole script or README can be smoke-tested quickly exactly as written.
    The cap is said aloud and recorded in config.yaml. It refuses nothing: a budget it cuts below the first
    update makes a smoke test, not a refusal."""
    text = os.environ.get(STEP_CAP_VARIABLE)
    if not text:
        return config
    try:
        cap = int(text)
    except ValueError:
        raise DeeprlError(f"{STEP_CAP_VARIABLE} must be a whole number of steps (got '{text}')") from None
    if cap < 1:
        raise DeeprlError(f"{STEP_CAP_VARIABLE} must be >= 1 (got {cap})")
    if config.total_steps <= already + cap:
        return config
    warn(
        f"{STEP_CAP_VARIABLE}={cap} caps this run at {already + cap} steps (its settings ask for {config.total_steps})"
    )
    return dataclasses.replace(config, total_steps=already + cap)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeeprlError(f"device '{name}' requested but CUDA is not available here (use cpu or auto)")
    return torch.device(name)


def train(
    algo: str | None = None,
    env: str | gym.Env | Callable[..., gym.Env] | None = None,
    *,
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
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

    `env` is an env id, a `package.module:Class`, a gymnasium.Env or a function making one (see envs.env_source
    for what a run records of each). `preset` picks tuned settings for the env (`deeprl list` shows them;
    default: "default"); `settings` are config fields (`lr=3e-4`, `hidden_sizes=(64, 64)`), applied over the
    preset. `progress` shows training progress; None shows it where someone is watching (a terminal or a
    notebook) and keeps logs quiet. `resume=RUN` continues a run from its newest intact checkpoint instead: an
    interrupted one, or with `steps` a larger budget (a finished one too); `env` gives it an env that was given as a
    Python object. `on_evaluation` is called after every periodic evaluation with a dict: seed, step, episode,
    eval_return (and _std), best_return, solved, solved_at_step, train_seconds and checkpoint_step (the newest
    checkpoint's, or None).

    `seeds` (range(10), [0, 2, 5]) trains one run per seed, in one process, in the seeds directory `run_dir`
    (deeprl.many_seeds), and returns their agents in a list; `resume` of a seeds directory continues its seeds.
    """
    if seeds is not None and resume is None:
        if seed is not None:
            raise DeeprlError("give seed or seeds, not both")
        from deeprl.many_seeds import train_seeds  # it builds on this module

        flags = {"total_steps": steps, "device": device}
        return train_seeds(
            algo,
            env,
            seeds,
            preset=preset,
            config=config,
            run_dir=run_dir,
            progress=progress,
            on_evaluation=on_evaluation,
            settings={**settings, **{key: value for key, value in flags.items() if value is not None}},
        )
    if resume is not None:
        given = [
            name
            for name, value in (
                ("algo", algo),
                ("seed", seed),
                ("seeds", seeds),
                ("preset", preset),
                ("config", config),
                ("run_dir", run_dir),
                ("device", device),
            )
            if value is not None
        ]
        if given or settings:
            raise DeeprlError(
                f"resume continues a run with the settings its config.yaml holds; drop "
                f"{', '.join([*given, *settings])} (steps and env may go with resume)"
            )
        return resume_run(resume, steps=steps, env=env, progress=progress, on_evaluation=on_evaluation)
    flags = {"seed": seed, "total_steps": steps, "device": device}
    settings.update({key: value for key, value in flags.items() if value is not None})
    module, run_config, capped_config, preset, make_base = resolve_run(algo, env, preset, config, settings)
    if run_dir is None:
        run_dir = default_run_dir(
            run_config.algo, run_config.env.removesuffix(OBJECT_ENV_SUFFIX), run_config.seed, preset
        )
    return _run(
        module,
        capped_config,
        preset,
        Path(run_dir),
        progress,
        None,
        on_evaluation,
        make_base=make_base,
        capped=capped_config is not run_config,
        budget=run_config,
    )


def resolve_run(
    algo: str | None,
    env: str | gym.Env | Callable[..., gym.Env] | None,
    preset: str | None,
    config: str | Path | None,
    settings: dict[str, Any],
) -> tuple[ModuleType, RunConfig, RunConfig, str | None, Callable[[str | None], gym.Env] | None]:
    """A new run's algorithm module, config, config as DEEPRL_MAX_STEPS caps it, preset, and the maker of the env's
    copies where it is given as a Python object (said aloud: no later process can rebuild it)."""
    source = None if env is None else env_source(env)
    env_settings = {} if source is None else dict(source.settings)
    env_name = env_settings.pop("env", None)
    module, run_config, preset = resolve_config(
        algo, env_name, preset=preset, config_file=config, settings={**env_settings, **settings}
    )
    make_base = None if source is None else source.make_base
    if make_base is not None:
        warn_env_object(run_config)
    return module, run_config, capped_steps(run_config), preset, make_base


def warn_env_object(run_config: RunConfig) -> None:
    """An env given as a Python object cannot be rebuilt by a later process: say how to pass it again."""
    warn(
        f"the env object is recorded as '{run_config.env}', which no later process can rebuild: resume with "
        "deeprl.train(resume=RUN, env=env), evaluate with deeprl.evaluate(agent, env) and re-run with "
        "deeprl.train(config=FILE, env=env), passing the same env"
    )


# Fewer learning updates than this in a whole run is said aloud: such a policy has barely trained.
FEW_UPDATES = 10


def first_update(config: RunConfig) -> tuple[int, str] | None:
    """The step of a run's first learning update and what decides it, where the settings fix it: on-policy
    (A2C, PPO) after one rollout; off-policy (DQN, DDPG, TD3, SAC) after learning_starts, once batch_size
    transitions are stored, on a train_freq boundary (counted in episodes, the step is a lower bound). None
    where episodes decide it (REINFORCE learns from whole episodes) or the first update always comes (the
    actor-critics learn from every rollout, a short last one included)."""
    if isinstance(config, OnPolicyConfig):
        return config.n_steps * config.n_envs, (
            f"after one rollout of n_steps * n_envs = {config.n_steps} * {config.n_envs} steps"
        )
    if not isinstance(config, OffPolicyConfig):
        return None
    # gradient rounds start at steps > learning_starts, with at least batch_size transitions stored (one a step)
    step = max(config.learning_starts + 1, config.batch_size)
    decided_by = (
        f"learning_starts = {config.learning_starts}"
        if step == config.learning_starts + 1
        else f"batch_size = {config.batch_size} (transitions stored before a batch can be drawn)"
    )
    if config.train_freq_unit == "steps" and step % config.train_freq:
        step += config.train_freq - step % config.train_freq
        decided_by += f", on a multiple of train_freq = {config.train_freq}"
    return step, f"after {decided_by}"


def check_first_update(config: RunConfig) -> None:
    """Refuse a budget that ends before the first learning update: such a run would learn nothing."""
    first = first_update(config)
    if first is not None and config.total_steps < first[0]:
        step, decided = first
        raise DeeprlError(
            f"{config.algo} would not learn in {config.total_steps} steps: its first update comes at "
            f"step {step}, {decided}; give at least {step} steps (total_steps) or change that setting"
        )


def schedules_over_total_steps(config: RunConfig) -> list[str]:
    """The settings that anneal something over total_steps: a run continued to another budget follows a schedule
    that a run started with that budget would have followed from its first step."""
    annealed = [name for name in ("lr_end", "clip_range_end") if getattr(config, name, None) is not None]
    if getattr(config, "noise_sigma_end", None) is not None and getattr(config, "noise_decay_steps", 0) is None:
        annealed.append("noise_sigma_end (noise_decay_steps: None)")
    return annealed


def resume_run(
    run_dir: str | Path,
    *,
    steps: int | None = None,
    env: str | gym.Env | Callable[..., gym.Env] | None = None,
    progress: bool | None = None,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
) -> Agent:
    """Continue a run from its newest intact checkpoint, exactly as it would have gone on: an interrupted run to
    its budget, or any run to a larger budget `steps` (a finished one too, as if started with that budget where
    no setting anneals over total_steps). `env` is needed for a run whose env was given as a Python object."""
    path = Path(run_dir)
    if (path / "seeds.json").is_file():
        from deeprl.many_seeds import resume_seeds  # it builds on this module

        return resume_seeds(path, steps=steps, env=env, progress=progress, on_evaluation=on_evaluation)
    if not (path / "config.yaml").is_file():
        raise DeeprlError(f"{path} is not a run directory (no config.yaml)")
    module, run_config, preset = resolve_config(None, None, config_file=path / "config.yaml")
    make_base = _resume_env(path, run_config, env)
    finished_step = _finished_step(path)
    if finished_step is not None and steps is None:
        raise DeeprlError(
            f"run {path} already finished at step {finished_step} (eval.json exists); "
            f"`deeprl resume {path} --steps N` continues it to a larger budget N"
        )
    checkpoint = load_latest_checkpoint(path, run_config.algo, run_config.env)
    capped = False
    if steps is not None:
        checkpoint_step = checkpoint["run"]["step"]
        reached = checkpoint_step if finished_step is None else finished_step
        if steps <= reached:
            raise DeeprlError(
                f"run {path} {'finished' if finished_step is not None else 'is checkpointed'} at step "
                f"{reached}: steps must be larger to continue it (got {steps})"
            )
        annealed = schedules_over_total_steps(run_config)
        if annealed and steps != run_config.total_steps:
            anneal = "anneals" if len(annealed) == 1 else "anneal"
            warn(
                f"{', '.join(annealed)} {anneal} over total_steps: up to step {checkpoint_step} this run followed the "
                f"{run_config.total_steps}-step schedule, so it differs from a run started with {steps} steps"
            )
        if checkpoint_step < reached:
            warn(
                f"run {path} continues from its newest checkpoint, at step {checkpoint_step} (it ended at step "
                f"{reached}): those steps are trained again"
            )
        extended = dataclasses.replace(run_config, total_steps=steps)
        run_config = capped_steps(extended, already=reached)
        capped = run_config is not extended
    return _run(
        module,
        run_config,
        preset,
        path,
        progress,
        checkpoint,
        on_evaluation,
        make_base=make_base,
        capped=capped,
        extend=steps is not None,
    )


def _resume_env(path: Path, config: RunConfig, env: Any) -> Callable[[str | None], gym.Env] | None:
    """The maker of a resumed run's env copies when it was given as a Python object (None: from config.yaml)."""
    if env is None:
        if is_object_env(config.env):
            raise DeeprlError(
                f"run {path} trained on an env given as a Python object ('{config.env}'): resume it in "
                "Python, passing the same env: deeprl.train(resume=RUN, env=env)"
            )
        return None
    source = env_source(env)
    differing = [
        f"{name} {getattr(config, name)!r}" for name, value in source.settings.items() if getattr(config, name) != value
    ]
    if differing:
        raise DeeprlError(f"run {path} trained on another env than the one given (its {', '.join(differing)})")
    return source.make_base


def _finished_step(path: Path) -> int | None:
    """The step a finished run ended at (its eval.json says), or None for an unfinished run."""
    summary_path = path / "eval.json"
    if not summary_path.is_file():
        return None
    try:
        return int(json.loads(summary_path.read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DeeprlError(f"{summary_path} is damaged; move it away to resume run {path}") from None


def _extend_run(path: Path, config: RunConfig, preset: str | None) -> None:
    """Record a run's new budget; a finished run's eval.json moves aside (eval-step-N.json), as its end is no
    longer the end, so that an interrupted continuation is an ordinary unfinished run."""
    summary_path = path / "eval.json"
    finished_step = _finished_step(path)
    atomic_write_text(path / "config.yaml", config_to_yaml(config, preset))
    if finished_step is not None:
        os.replace(summary_path, path / f"eval-step-{finished_step}.json")


def _run(
    module: ModuleType,
    run_config: RunConfig,
    preset: str | None,
    path: Path,
    progress: bool | None,
    checkpoint: dict[str, Any] | None,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
    *,
    make_base: Callable[[str | None], gym.Env] | None = None,
    capped: bool = False,
    extend: bool = False,
    budget: RunConfig | None = None,
) -> Agent:
    """Train (or continue from `checkpoint`) in run directory `path`. `make_base` makes the copies of an env given
    as a Python object; `capped`: DEEPRL_MAX_STEPS cut the budget; `extend`: the budget grows (resume --steps);
    `budget`: a new run's settings before any cap, refused if they end before the first update."""
    torch_device = resolve_device(run_config.device)
    opened = _opened_run(
        module, run_config, preset, path, progress, checkpoint, on_evaluation, make_base, extend, budget
    )
    with opened as (make_run_env, run):
        agent = module.train(
            run_config, make_run_env, run, torch_device, resume=None if checkpoint is None else checkpoint["algo"]
        )
    return _trained(agent, run_config, path, capped)


@contextmanager
def _opened_run(
    module: ModuleType,
    run_config: RunConfig,
    preset: str | None,
    path: Path,
    progress: bool | None,
    checkpoint: dict[str, Any] | None,
    on_evaluation: Callable[[dict[str, Any]], None] | None,
    make_base: Callable[[str | None], gym.Env] | None,
    extend: bool,
    budget: RunConfig | None,
    handle_signals: bool = True,
) -> Iterator[tuple[Callable[..., gym.Env], Run]]:
    """The checked env's factory and the open Run of a run directory (see `_run`), closed after the block; a failed
    write to the directory becomes one line."""
    options = env_options(run_config)
    if run_config.check_env:
        run_env_checker(options, make_base)
    make_run_env = spec_factory(options, make_base)
    train_env = make_run_env()
    try:
        check_spaces(run_config.algo, run_config.env, train_env)
        check_time_limit(train_env, run_config.env)
        module.check_setup(run_config, train_env)
        if budget is not None:  # after the checks of the env and the settings: what is wrong with them comes first
            check_first_update(budget)
        _, info = train_env.reset(seed=run_config.seed)  # a broken env fails here, before the run directory exists
        check_first_mask(train_env, info, run_config.env)
        threshold = run_config.solve_threshold
        if threshold is None:
            threshold = reward_threshold(train_env)
        if checkpoint is None:
            prepare_run_dir(path)
        elif extend:
            _extend_run(path, run_config, preset)
        torch.set_num_threads(run_config.torch_threads)
        # Building a torch optimiser imports torch._dynamo on first use (seconds of imports): import it before the
        # run's clock starts, so that time to solve measures training.
        importlib.import_module("torch._dynamo")
        # NumPy's BLAS acts for small nets (nets.numpy_sequential); its default pool of one thread per core fights
        # torch and every other process for the cores, and small products gain nothing from splitting.
        blas_threads = threadpool_limits(run_config.torch_threads, user_api="blas")
        run = Run(
            path,
            run_config,
            module.METRIC_COLUMNS,
            make_run_env,
            threshold,
            preset=preset,
            show_progress=someone_watching() if progress is None else progress,
            resume_state=None if checkpoint is None else checkpoint["run"],
            on_evaluation=on_evaluation,
            handle_signals=handle_signals,
        )
        try:
            yield make_run_env, run
        finally:
            run.close()
            blas_threads.restore_original_limits()
    except OSError as error:  # disk full, directory removed or read-only: the last checkpoint is intact
        raise DeeprlError(
            f"writing to run directory {path} failed: {error.strerror or error}; earlier checkpoints are intact"
        ) from None
    finally:
        train_env.close()


def _trained(agent: Agent, run_config: RunConfig, path: Path, capped: bool) -> Agent:
    """The agent of a finished run, its run directory and env noted; a run that barely trained is said aloud."""
    agent.run_dir = path
    agent.env_spec = env_options(run_config)
    updates = agent.summary["updates"]
    # a capped run is a smoke test (its cap said it is cut short); a run that stopped solved has trained enough
    if updates < FEW_UPDATES and not capped and not agent.summary["solved"]:
        first = first_update(run_config)
        warn(
            f"this run made only {updates} learning update{'' if updates == 1 else 's'} in {agent.summary['steps']} "
            f"steps: its policy has barely trained (give it more steps"
            + ("" if first is None else f"; the first update comes {first[1]}")
            + ")"
        )
    return agent
