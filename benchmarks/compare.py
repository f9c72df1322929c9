"""Time-to-solve, side by side: a deeprl algorithm against Stable-Baselines3 with the RL Zoo's tuned hyperparameters.

    python benchmarks/compare.py [--algo dqn|ppo|a2c|ddpg|td3|sac] --env CartPole-v1 --seeds 0-4
        [--eval-every 1000] [--steps N] [--sb3-steps N] [--set KEY=VALUE ...] [--frameworks deeprl,sb3]
        [--threshold R] [--jobs 1] [--out benchmarks/results/NAME.json] | --resume OUT.json | --plot OUT.json

Each (framework, seed) trains in a fresh subprocess of this script (`--worker`), deeprl then SB3 for each
seed, so neither framework's imports, threads or crashes touch the other and slow drifts of a shared
machine hit both alike. `--jobs N` trains N of them at once (each worker uses one thread: at most one per free
core, or they slow each other). Both are evaluated the same way: each time training crosses a multiple of
`--eval-every` env steps, 20 greedy episodes through `deeprl.evaluation.evaluate` on seeds
1_000_000 + 1000*seed + i, with the clock paused; the final agent gets 20 greedy episodes on seeds
2_000_000 + 1000*seed + i. Prints a Markdown report (per-seed table, summary with deeprl/SB3 ratios),
writes the raw per-seed results to JSON and the learning curves beside it (OUT.png: each framework's mean over
seeds ± one std); `--plot OUT.json` draws them again from a report.

Atari games (the Zoo's `atari` entry) and MuJoCo v5 ids (the Zoo's `-v4` entries) run too: SB3 trains with the
Zoo's wrappers (AtariWrapper and a 4-frame stack; VecNormalize where the entry normalises), deeprl with its own
preprocessing and presets. Both report whole-game returns: SB3's agent is evaluated on games played in its own
wrappers with reward clipping off, each life started with FIRE as in its training (`--eval-episodes` games).

Runs of hours survive an interruption: the JSON is written from the start and after every run, and each run keeps
a folder beside it (OUT-runs/FRAMEWORK-sSEED). `--resume OUT.json` carries on the recorded command: finished runs
stay; a deeprl run that was cut off resumes from its newest checkpoint (exactly, with its training clock as the
checkpoint left it); an SB3 run carries on from what it saved at its newest evaluation, in fresh envs (not exact).
A kept deeprl run checkpoints at each evaluation, as SB3's saves, so both lose the same span.

`--set KEY=VALUE` changes a deeprl setting over its preset, where a shorter budget than the Zoo's makes a setting
mean something else on one side: the Zoo's `exploration_fraction: 0.1` is 10% of whatever budget SB3 is given, deeprl's
`epsilon_decay_steps` a number of steps (DQN on Atari at 1M steps: `--set epsilon_decay_steps=100000`). The report
lists them.
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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

FRAMEWORKS = ("deeprl", "sb3", "deeprl-seeds")
DEFAULT_FRAMEWORKS = ["deeprl", "sb3"]
# deeprl-seeds: every seed in one process (`deeprl train --seeds`), stepping together where the algorithm stacks them
LABELS = {"deeprl": "deeprl", "sb3": "SB3 + Zoo", "deeprl-seeds": "deeprl, all seeds in one process"}
# --algo -> the stable_baselines3 class; deeprl.train and the Zoo's hyperparams/{algo}.yml use the key.
ALGOS = {"dqn": "DQN", "ppo": "PPO", "a2c": "A2C", "ddpg": "DDPG", "td3": "TD3", "sac": "SAC"}
EVAL_EPISODES = 20
PERIODIC_EVAL_SEED = 1_000_000  # the same bases deeprl's Run uses, so both frameworks see the same episodes
FINAL_EVAL_SEED = 2_000_000
# Zoo keys that shape the environment (or name classes to import) rather than configure the model:
# reproducing them is out of scope, so refuse them rather than silently benchmark a different setup.
ZOO_ENV_KEYS = (
    "env_wrapper",
    "frame_stack",
    "vec_env_wrapper",
    "callback",
    "env_kwargs",
    "monitor_kwargs",
    "replay_buffer_class",
)
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"  # the one env_wrapper compare.py rebuilds
ZOO_SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")  # where the Zoo reads `lin_<initial>`
ZOO_KWARGS_TEXT_KEYS = ("policy_kwargs", "replay_buffer_kwargs")  # Python dict text in the YAML
# Zoo noise_type -> stable_baselines3.common.noise class, built with the action dimension in the worker.
NOISE_CLASSES = {"normal": "NormalActionNoise", "ornstein-uhlenbeck": "OrnsteinUhlenbeckActionNoise"}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # YAML 1.1 reads 1e-3 (no dot) as a string
VERSIONED_PACKAGES = ("deeprl", "torch", "gymnasium", "numpy", "stable-baselines3", "rl_zoo3")


# ------------------------------------------------------------------------------------ RL Zoo hyperparameters


def zoo_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The Zoo's entry for `env_id`, as written in the installed rl_zoo3's hyperparams/{algo}.yml."""
    # find_spec locates the package without importing it: `import rl_zoo3` monkey-patches Gymnasium's
    # TimeLimit, which must not leak into deeprl's runs or differ between workers.
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("rl_zoo3 is not installed: pip install rl_zoo3 (it holds the tuned hyperparameters)")
    path = Path(next(iter(spec.submodule_search_locations))) / "hyperparams" / f"{algo}.yml"
    table = yaml.safe_load(path.read_text())
    key = zoo_key(env_id, table)
    if key is None:
        known = ", ".join(key for key in table if key not in ("default", "atari"))
        raise SystemExit(f"the RL Zoo has no {ALGOS[algo]} hyperparameters for {env_id} (it has: {known})")
    return dict(table[key])


def zoo_key(env_id: str, table: dict[str, Any]) -> str | None:
    """The Zoo entry for `env_id`: its own, else `atari` for an Atari game, else the -v4 entry of a MuJoCo v5 id
    (the Zoo tuned the v4 ids; v5 changed the models' details, not the tasks)."""
    if env_id in table:
        return env_id
    if "atari" in table and is_atari_id(env_id):
        return "atari"
    v4 = re.sub(r"-v5$", "-v4", env_id)
    return v4 if v4 != env_id and v4 in table else None


def is_atari_id(env_id: str) -> bool:
    from deeprl.envs.atari import is_ale_id, register_ale_envs

    register_ale_envs(env_id)
    return is_ale_id(env_id)


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
    if isinstance(node, ast.Dict):  # normalize: "{'norm_obs': True, 'norm_reward': False}"
        if any(key is None for key in node.keys):
            raise ValueError("**expansion is not supported")
        return {ast.literal_eval(key): _kwargs_value(value) for key, value in zip(node.keys, node.values)}
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


@dataclass(frozen=True)
class LinearSchedule:
    """The Zoo's `lin_<initial>`: SB3 calls it with progress_remaining, 1 at the start and 0 at the end."""

    initial: float

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial

    def __repr__(self) -> str:  # how the JSON records it
        return f"lin_{self.initial:g}"


@dataclass
class SB3Setup:
    """A Zoo entry read into what the SB3 worker builds; plain data, so it is testable without SB3."""

    budget: int  # n_timesteps, in env steps
    policy: str
    n_envs: int
    normalize: dict[str, Any] | None  # VecNormalize keyword arguments; None: no VecNormalize
    noise: dict[str, Any] | None  # {"kind": a NOISE_CLASSES key, "sigma": per-dimension std}; None: none
    kwargs: dict[str, Any]  # for the SB3 class, action noise still to be built
    atari_frame_stack: int | None = None  # an Atari entry: AtariWrapper, then this many frames stacked


def _read_normalize(value: Any, gamma: Any) -> dict[str, Any] | None:
    """Zoo `normalize` (true, or text/dict of VecNormalize options) -> VecNormalize keyword arguments."""
    if value is False or value is None:
        return None
    options = {} if value is True else parse_kwargs_text(value) if isinstance(value, str) else dict(value)
    if gamma is not None:  # the Zoo discounts the normalised reward with the algorithm's gamma
        options["gamma"] = gamma
    return options


def sb3_setup(zoo: dict[str, Any]) -> SB3Setup:
    """Read a Zoo entry the way rl_zoo3's ExperimentManager does, refusing what compare.py does not reproduce."""
    params = {
        key: float(value) if isinstance(value, str) and NUMBER.fullmatch(value.strip()) else value
        for key, value in zoo.items()
    }
    atari_frame_stack = None
    if params.get("env_wrapper") in (ATARI_WRAPPER, [ATARI_WRAPPER]):  # the Zoo's Atari setup, rebuilt in run_sb3
        del params["env_wrapper"]
        atari_frame_stack = int(params.pop("frame_stack", 1))
    params.pop("optimize_memory_usage", None)  # how SB3 stores its replay, not what it learns
    unsupported = [key for key in ZOO_ENV_KEYS if key in params]
    policy = str(params.pop("policy"))
    if "." in policy:  # a custom policy class the Zoo would import
        unsupported.append(f"policy {policy}")
    if unsupported:
        raise SystemExit(f"this Zoo entry uses {', '.join(unsupported)}, which compare.py does not reproduce")
    budget = int(params.pop("n_timesteps"))
    n_envs = int(params.pop("n_envs", 1))
    normalize = _read_normalize(params.pop("normalize", None), params.get("gamma"))
    noise, kind, std = None, params.pop("noise_type", None), params.pop("noise_std", None)
    if kind is not None:
        kind = str(kind).strip()
        if kind not in NOISE_CLASSES or std is None:
            raise SystemExit(
                f"cannot read the Zoo's action noise: noise_type {kind!r} (known: "
                f"{', '.join(NOISE_CLASSES)}), noise_std {std!r}"
            )
        noise = {"kind": kind, "sigma": float(std)}
    for key in ZOO_KWARGS_TEXT_KEYS:
        if isinstance(params.get(key), str):
            params[key] = parse_kwargs_text(params[key])
    if isinstance(params.get("train_freq"), list):  # [4, "episode"] -> (4, "episode"), as the Zoo does
        params["train_freq"] = tuple(params["train_freq"])
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("lin_"):
            if key not in ZOO_SCHEDULE_KEYS or not NUMBER.fullmatch(value[4:]):
                raise SystemExit(f"cannot read the Zoo schedule {key}: {value!r}")
            params[key] = LinearSchedule(float(value[4:]))
    return SB3Setup(budget, policy, n_envs, normalize, noise, params, atari_frame_stack)


def crosses_eval_boundary(last_evaluated: int, num_timesteps: int, eval_every: int) -> bool:
    """Whether training passed a multiple of `eval_every` since the last evaluation: with n_envs copies the
    step count grows n_envs at a time and may never land on the multiple itself."""
    return num_timesteps // eval_every > last_evaluated // eval_every


# ------------------------------------------------------------------------------------------------- workers


# deeprl settings the harness fixes for every run, as SB3's side runs alike
HARNESS_FIXED: dict[str, Any] = {
    "tensorboard": False,
    "stop_on_solve": False,
    "torch_threads": 1,
    "solve_confirm_episodes": 0,  # solved means the same for both: one evaluation at the threshold
}
# and all it sets, through its own options (--eval-every, --threshold, ...) too: a --set of one of these is refused
HARNESS_SETTINGS = (
    *HARNESS_FIXED,
    *("eval_every", "eval_episodes", "final_eval_episodes", "solve_threshold", "checkpoint_every"),
    *("total_steps", "seed", "device"),
)


def harness_settings(
    eval_every: int, episodes: int, threshold: float | None, overrides: dict[str, str] | None, kept: bool
) -> dict[str, Any]:
    """deeprl's settings in the harness: its evaluations, HARNESS_FIXED, the threshold and the --set overrides."""
    settings: dict[str, Any] = {
        "eval_every": eval_every,
        "eval_episodes": episodes,
        "final_eval_episodes": episodes,
        **HARNESS_FIXED,
    }
    if threshold is not None:
        settings["solve_threshold"] = threshold
    if kept:
        # A kept run may be cut off (a session's end, a reboot): a checkpoint at each evaluation loses no more of it
        # than SB3's side loses, which saves at each evaluation. Checkpoint time is not training time on either side.
        settings["checkpoint_every"] = eval_every
    settings.update(overrides or {})
    return settings


def run_deeprl(
    algo: str,
    env_id: str,
    seed: int,
    eval_every: int,
    steps: int | None,
    threshold: float | None,
    episodes: int,
    run_dir: Path | None = None,
    overrides: dict[str, str] | None = None,
) -> dict:
    """Train deeprl's `algo` (its `default` preset, with `overrides` over it, as `deeprl train --set`) and read the
    result from the run's summary. In `run_dir` (kept) when given, resuming the run there if it was cut off; in a
    temporary folder otherwise."""
    import torch

    import deeprl
    from deeprl.checkpoint import checkpoint_dir

    torch.set_num_threads(1)
    settings = harness_settings(eval_every, episodes, threshold, overrides, kept=run_dir is not None)
    with tempfile.TemporaryDirectory(prefix="deeprl-bench-") as scratch:
        if run_dir is None:
            run_dir = Path(scratch) / "run"
        checkpoints = sorted(checkpoint_dir(run_dir).glob("step-*.json"))
        resumed_from = None
        started = time.perf_counter()
        if (run_dir / "eval.json").is_file():  # finished as the harness was stopped, before its report
            summary = json.loads((run_dir / "eval.json").read_text())
        else:
            if checkpoints:
                resumed_from = json.loads(checkpoints[-1].read_text())["step"]
                agent = deeprl.train(resume=run_dir, progress=False)
            else:
                if run_dir.exists():  # cut off before its first checkpoint: nothing to keep
                    shutil.rmtree(run_dir)
                agent = deeprl.train(algo, env_id, seed=seed, steps=steps, run_dir=run_dir, device="cpu", **settings)
            summary = agent.summary
            assert summary is not None, "deeprl.train returned an agent without a summary"
        wall_seconds = time.perf_counter() - started
        return deeprl_result(run_dir, summary, wall_seconds, resumed_from)


def deeprl_result(run_dir: Path, summary: dict[str, Any], wall_seconds: float, resumed_from: int | None) -> dict:
    """What the report keeps of a finished deeprl run: its summary, evaluations and settings."""
    with open(run_dir / "metrics.csv") as metrics:
        evals = [
            {
                "step": int(row["step"]),
                "mean": float(row["return"]),
                "std": float(row["return_std"]),
                "train_seconds": float(row["time_s"]),
            }
            for row in csv.DictReader(metrics)
            if row["kind"] == "eval"
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
        "resumed_from_step": resumed_from,  # wall_seconds is then this process's part alone
    }


def run_deeprl_seeds(
    algo: str,
    env_id: str,
    seeds: list[int],
    eval_every: int,
    steps: int | None,
    threshold: float | None,
    episodes: int,
    run_dir: Path,
    overrides: dict[str, str] | None = None,
) -> list[dict]:
    """Every seed in one process (`deeprl.train(seeds=...)`: DQN's seeds step together, their updates stacked), in
    the seeds directory `run_dir`, carried on from the seeds' checkpoints if it was cut off; one result per seed,
    each with the wall-clock of the whole process (all seeds trained in it)."""
    import torch

    import deeprl
    from deeprl.checkpoint import checkpoint_dir

    torch.set_num_threads(1)
    settings = harness_settings(eval_every, episodes, threshold, overrides, kept=True)
    seed_dirs = [run_dir / f"seed-{seed}" for seed in seeds]
    resumed_from = None
    started = time.perf_counter()
    if not all((seed_dir / "eval.json").is_file() for seed_dir in seed_dirs):
        found = [sorted(checkpoint_dir(seed_dir).glob("step-*.json")) for seed_dir in seed_dirs]
        if (run_dir / "seeds.json").is_file() and all(found):
            resumed_from = min(json.loads(steps_found[-1].read_text())["step"] for steps_found in found)
            deeprl.train(resume=run_dir, progress=False)
        else:
            if run_dir.exists():  # cut off before every seed's first checkpoint: nothing to keep
                shutil.rmtree(run_dir)
            deeprl.train(algo, env_id, seeds=seeds, steps=steps, run_dir=run_dir, device="cpu", **settings)
    wall_seconds = time.perf_counter() - started
    return [
        {
            **deeprl_result(seed_dir, json.loads((seed_dir / "eval.json").read_text()), wall_seconds, resumed_from),
            "seed": seed,
        }
        for seed, seed_dir in zip(seeds, seed_dirs, strict=True)
    ]


class SB3Agent:
    """What `deeprl.evaluation.evaluate` needs from an agent, backed by an SB3 model (batches included)."""

    def __init__(self, model: Any, normalizer: Any = None) -> None:
        self.model = model
        # The training VecNormalize: its normalize_obs reads the running statistics without updating them,
        # so evaluating leaves them as training left them.
        self.normalizer = normalizer
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        return self.model.predict(obs, deterministic=deterministic)[0]


def atari_env_kwargs(env_id: str) -> dict[str, Any]:
    """What the game needs so that SB3's AtariWrapper does the only frame skipping: a v5 id skips 4 frames itself."""
    return {"frameskip": 1} if env_id.startswith("ALE/") else {}


def sb3_atari_envs(env_id: str, n_envs: int, seed: int, frame_stack: int, whole_games: bool = False) -> Any:
    """The Zoo's Atari setup: SB3's AtariWrapper over Monitor-wrapped games seeded seed + rank, frames stacked.
    `whole_games` turns reward clipping off (what evaluation plays). Life loss still ends the agent's episodes, so
    that each life starts with FIRE as in its training (deeprl's games do the same), while Monitor, beneath the
    wrapper, counts whole games and the game's points."""
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    wrapper_kwargs = {"clip_reward": False} if whole_games else None
    envs = make_atari_env(
        env_id, n_envs=n_envs, seed=seed, env_kwargs=atari_env_kwargs(env_id), wrapper_kwargs=wrapper_kwargs
    )
    return VecFrameStack(envs, n_stack=frame_stack)


def sb3_atari_games(model: Any, env_id: str, episodes: int, seed: int, frame_stack: int) -> Any:
    """`episodes` whole games of the greedy SB3 agent in its own wrappers: their returns are the game's points."""
    from deeprl.evaluation import EvalResult

    envs = sb3_atari_envs(env_id, 1, seed, frame_stack, whole_games=True)
    returns: list[float] = []
    lengths: list[int] = []
    obs = envs.reset()
    while len(returns) < episodes:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, infos = envs.step(action)
        if "episode" in infos[0]:  # Monitor, under AtariWrapper, ends its episodes with the game
            returns.append(float(infos[0]["episode"]["r"]))
            lengths.append(int(infos[0]["episode"]["l"]))
    envs.close()
    return EvalResult(returns=returns, lengths=lengths, seed=seed)


SB3_PROGRESS = "progress.json"  # names the newest saved model (and statistics, replay) of an SB3 run


def read_sb3_progress(run_dir: Path | None) -> dict[str, Any] | None:
    """What an SB3 run saved at its newest evaluation, if anything."""
    if run_dir is None or not (run_dir / SB3_PROGRESS).is_file():
        return None
    return json.loads((run_dir / SB3_PROGRESS).read_text())


def save_sb3_progress(run_dir: Path, model: Any, normalizer: Any, state: dict[str, Any], with_replay: bool) -> None:
    """The model (with its optimiser), VecNormalize's statistics and, off-policy, the replay buffer, under names
    of their step; then the progress file that names them, written last, so that a stop in between leaves the
    previous set in use; then the older files go."""
    run_dir.mkdir(parents=True, exist_ok=True)
    step = state["num_timesteps"]
    files = {"model": f"model-{step}.zip"}
    model.save(run_dir / files["model"])
    if normalizer is not None:
        files["normalizer"] = f"vecnormalize-{step}.pkl"
        normalizer.save(str(run_dir / files["normalizer"]))
    if with_replay:
        files["replay"] = f"replay-{step}.pkl"
        model.save_replay_buffer(run_dir / files["replay"])
    write_json(run_dir / SB3_PROGRESS, {**state, "files": files})
    for path in run_dir.iterdir():
        if path.name != SB3_PROGRESS and path.name not in files.values():
            path.unlink()


def run_sb3(
    algo: str,
    env_id: str,
    seed: int,
    eval_every: int,
    steps: int | None,
    threshold: float,
    episodes: int,
    run_dir: Path | None = None,
) -> dict:
    """Train SB3's `algo` with the Zoo's hyperparameters, evaluating periodically with the clock paused. With a
    `run_dir`, the model is saved at every evaluation, and a run cut off carries on from the newest save: the same
    weights, optimiser, statistics and replay, in fresh envs (not exact: SB3 keeps no env or random state)."""
    import numpy as np
    import stable_baselines3
    import torch
    from stable_baselines3.common import noise as sb3_noise
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from deeprl.evaluation import evaluate

    torch.set_num_threads(1)
    setup = sb3_setup(zoo_hyperparams(algo, env_id))
    budget = steps if steps is not None else setup.budget

    def greedy_episodes(agent: SB3Agent, seed_base: int) -> Any:
        if setup.atari_frame_stack is not None:
            return sb3_atari_games(agent.model, env_id, episodes, seed_base, setup.atari_frame_stack)
        return evaluate(agent, env_id, episodes=episodes, seed=seed_base)

    class PeriodicEval(BaseCallback):
        """Each time training crosses a multiple of `eval_every` env steps: 20 greedy episodes, timed so
        the training clock can drop them."""

        def __init__(self, started: float, agent: SB3Agent, saved: dict[str, Any] | None) -> None:
            super().__init__()
            self.started = started
            self.agent = agent
            self.eval_seconds = 0.0
            self.last_evaluated = 0
            self.evals: list[dict[str, Any]] = []
            self.solved_at_step: int | None = None
            self.solved_train_seconds: float | None = None
            if saved is not None:  # its training seconds so far, on the clock that counts from `started`
                self.started -= saved["train_seconds"]
                self.last_evaluated, self.evals = saved["num_timesteps"], saved["evals"]
                self.solved_at_step, self.solved_train_seconds = saved["solved_at_step"], saved["solved_train_seconds"]

        def _on_step(self) -> bool:
            if not crosses_eval_boundary(self.last_evaluated, self.num_timesteps, eval_every):
                return True
            self.last_evaluated = self.num_timesteps
            eval_started = time.perf_counter()
            train_seconds = eval_started - self.started - self.eval_seconds
            result = greedy_episodes(self.agent, PERIODIC_EVAL_SEED + 1000 * seed)
            self.eval_seconds += time.perf_counter() - eval_started
            self.evals.append(
                {
                    "step": self.num_timesteps,
                    "mean": result.mean,
                    "std": result.std,
                    "train_seconds": round(train_seconds, 3),
                }
            )
            if self.solved_at_step is None and result.mean >= threshold:
                self.solved_at_step, self.solved_train_seconds = self.num_timesteps, round(train_seconds, 3)
            if run_dir is not None and self.num_timesteps < budget:
                saving_started = time.perf_counter()
                state = {
                    "num_timesteps": self.num_timesteps,
                    "train_seconds": round(train_seconds, 3),
                    "evals": self.evals,
                    "solved_at_step": self.solved_at_step,
                    "solved_train_seconds": self.solved_train_seconds,
                }
                save_sb3_progress(run_dir, self.model, normalizer, state, with_replay)
                self.eval_seconds += time.perf_counter() - saving_started  # as deeprl's checkpoints: not training
            return True  # keep training after solving, as deeprl does with stop_on_solve=False

    # Monitor-wrapped copies seeded seed + rank, as the Zoo builds them (n_envs 1: what SB3 makes of an env).
    if setup.atari_frame_stack is not None:
        env = sb3_atari_envs(env_id, setup.n_envs, seed, setup.atari_frame_stack)
    else:
        env = make_vec_env(env_id, n_envs=setup.n_envs, seed=seed)
    normalizer = None if setup.normalize is None else VecNormalize(env, **setup.normalize)
    kwargs = dict(setup.kwargs)
    if setup.noise is not None:
        dimension = env.action_space.shape[0]
        noise_class = getattr(sb3_noise, NOISE_CLASSES[setup.noise["kind"]])
        kwargs["action_noise"] = noise_class(mean=np.zeros(dimension), sigma=setup.noise["sigma"] * np.ones(dimension))
    algorithm = getattr(stable_baselines3, ALGOS[algo])
    # an Atari replay of 100k frame stacks is gigabytes: such a run starts again instead
    with_replay = algo not in ("ppo", "a2c") and setup.atari_frame_stack is None
    saved = read_sb3_progress(run_dir)
    if saved is not None and with_replay != ("replay" in saved["files"]):
        saved = None
    # The clock starts where deeprl's does: env made, networks and replay buffer not yet built.
    started = time.perf_counter()
    if saved is None:
        model = algorithm(setup.policy, normalizer or env, seed=seed, device="cpu", verbose=0, **kwargs)
    else:
        if normalizer is not None:
            normalizer = VecNormalize.load(str(run_dir / saved["files"]["normalizer"]), env)
        schedules = {key: value for key, value in kwargs.items() if callable(value)}  # lin_X, rebuilt as they were
        model = algorithm.load(
            run_dir / saved["files"]["model"], env=normalizer or env, device="cpu", custom_objects=schedules
        )
        if with_replay:
            model.load_replay_buffer(run_dir / saved["files"]["replay"])
    agent = SB3Agent(model, normalizer)
    callback = PeriodicEval(started, agent, saved)
    # carried on: the budget left, with num_timesteps (and so the schedules' progress) where the save left them
    model.learn(
        total_timesteps=budget - (0 if saved is None else saved["num_timesteps"]),
        callback=callback,
        reset_num_timesteps=saved is None,
    )
    train_seconds = time.perf_counter() - callback.started - callback.eval_seconds  # with a resumed run's before
    final = greedy_episodes(agent, FINAL_EVAL_SEED + 1000 * seed)
    (normalizer or env).close()
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
        "resumed_from_step": None if saved is None else saved["num_timesteps"],
        # JSON-native where possible; schedules as lin_<initial>, classes such as nn.ReLU as their repr
        "hyperparams": json.loads(
            json.dumps(
                {
                    "policy": setup.policy,
                    "total_timesteps": budget,
                    "n_envs": setup.n_envs,
                    "atari_frame_stack": setup.atari_frame_stack,
                    "normalize": setup.normalize,
                    "action_noise": setup.noise,
                    **setup.kwargs,
                },
                default=repr,
            )
        ),
    }


def deeprl_overrides(pairs: list[str], algo: str, env_id: str) -> dict[str, str]:
    """`--set KEY=VALUE` pairs -> deeprl settings; refused in one line when malformed, unknown to `algo`, invalid
    for it on `env_id`, or the harness's own."""
    from deeprl.api import resolve_config
    from deeprl.config import parse_set_args
    from deeprl.errors import DeeprlError

    try:
        settings = parse_set_args(pairs)
        owned = [key for key in settings if key in HARNESS_SETTINGS]
        if owned:
            raise DeeprlError(f"--set {owned[0]}: the harness sets it for both frameworks (see its --help)")
        resolve_config(algo, env_id, settings=dict(settings))
    except DeeprlError as error:
        raise SystemExit(str(error)) from None
    return settings


def worker_main(args: argparse.Namespace) -> None:
    """One (framework, seed) run; the result is the last line on stdout, as JSON."""
    if args.worker == "deeprl-seeds":
        results = run_deeprl_seeds(
            args.algo,
            args.env,
            args.seeds,
            args.eval_every,
            args.steps,
            args.threshold,
            args.eval_episodes,
            args.run_dir,
            deeprl_overrides(args.settings, args.algo, args.env),
        )
        for result in results:
            result.update(framework=args.worker, env=args.env, algo=args.algo)
            result["steps_per_second"] = round(result["steps"] / result["train_seconds"], 1)
        print(json.dumps(results), flush=True)
        return
    (seed,) = args.seeds
    if args.worker == "deeprl":
        result = run_deeprl(
            args.algo,
            args.env,
            seed,
            args.eval_every,
            args.steps,
            args.threshold,
            args.eval_episodes,
            args.run_dir,
            deeprl_overrides(args.settings, args.algo, args.env),
        )
    else:
        result = run_sb3(
            args.algo, args.env, seed, args.eval_every, args.sb3_steps, args.threshold, args.eval_episodes, args.run_dir
        )
    result.update(framework=args.worker, seed=seed, env=args.env, algo=args.algo)
    result["steps_per_second"] = round(result["steps"] / result["train_seconds"], 1)
    print(json.dumps(result), flush=True)


def launch_worker(
    framework: str, seeds: list[int], args: argparse.Namespace, threshold: float, runs_dir: Path
) -> list[dict]:
    """One worker process: a (framework, seed) run, or every seed's of deeprl-seeds; one result per seed."""
    label = ",".join(str(seed) for seed in seeds)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        framework,
        "--algo",
        args.algo,
        "--env",
        args.env,
        "--seeds",
        label,
        "--eval-every",
        str(args.eval_every),
        "--threshold",
        repr(threshold),
        "--eval-episodes",
        str(args.eval_episodes),
    ]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.sb3_steps is not None:
        command += ["--sb3-steps", str(args.sb3_steps)]
    for pair in args.settings:
        command += ["--set", pair]
    command += ["--run-dir", str(runs_dir / f"{framework}-s{label.replace(',', '_')}")]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = process.stdout.strip().splitlines()
    if process.returncode == 0 and lines:
        try:
            result = json.loads(lines[-1])
            return result if isinstance(result, list) else [result]
        except json.JSONDecodeError:
            pass
    tail = (process.stderr or process.stdout).strip().splitlines()[-15:]
    return [
        {
            "framework": framework,
            "seed": seed,
            "env": args.env,
            "returncode": process.returncode,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "error": "\n".join(tail) or "no output",
        }
        for seed in seeds
    ]


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
        # every seed's training, as a person waits for it: one process after another, or all in one
        "all_seeds_wall_seconds": (
            max((run["wall_seconds"] for run in runs), default=0.0)
            if runs and runs[0].get("framework") == "deeprl-seeds"
            else sum(run["wall_seconds"] for run in runs)
        ),
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
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "platform": platform.platform(),
    }


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
        f"### {ALGOS[report['algo']]} on {report['env']}: " + " vs ".join(LABELS[name] for name in frameworks),
        "",
        f"- Command: `{report['command']}`",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores "
        f"(load average {machine['load_average_at_start']:.2f} at start); {report['date']}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"- Solved: mean of {report['eval_episodes']} greedy episodes ≥ {threshold:g}, evaluated every "
        f"{report['eval_every']:,} env steps (episode seeds {PERIODIC_EVAL_SEED:_} + 1000·seed + i); "
        f"seconds are training wall-clock with evaluation excluded; 1 torch thread, CPU.",
        f"- Stays solved: the final agent's mean over {report['eval_episodes']} greedy episodes on fresh seeds "
        f"({FINAL_EVAL_SEED:_} + 1000·seed + i) ≥ {threshold:g}.",
    ]
    if report.get("deeprl_settings"):
        given = ", ".join(f"{key}={value}" for key, value in report["deeprl_settings"].items())
        lines.append(f"- deeprl settings over its preset `default` (--set): {given}")
    budget_sources = {
        "deeprl": ("preset `default`", "--steps"),
        "deeprl-seeds": ("preset `default`", "--steps"),
        "sb3": ("RL Zoo n_timesteps", "--sb3-steps"),
    }
    for name in frameworks:
        budgets = sorted({run["budget_steps"] for run in runs if run["framework"] == name and "budget_steps" in run})
        default_source, flag = budget_sources[name]
        override = report["steps_override"]["sb3" if name == "sb3" else "deeprl"]
        source = default_source if override is None else f"{flag} override"
        budget_text = ", ".join(f"{budget:,}" for budget in budgets) or "unknown (every run crashed)"
        lines.append(f"- {LABELS[name]} budget: {budget_text} env steps ({source})")
    if "sb3" in frameworks:
        zoo = ", ".join(
            f"{key}={int(value) if isinstance(value, float) and value.is_integer() else value}"
            for key, value in report["zoo_hyperparams"].items()
        )
        lines.append(f"- SB3 hyperparameters (rl_zoo3 hyperparams/{report['algo']}.yml): {zoo}")
    if report.get("resumed"):
        how = {
            "deeprl": "its checkpoint, exactly",
            "deeprl-seeds": "the seeds' checkpoints, exactly",
            "sb3": "its saved model, in fresh envs",
        }
        continued = [
            f"{LABELS[run['framework']]} seed {run['seed']} from step {run['resumed_from_step']:,} "
            f"({how[run['framework']]})"
            for run in runs
            if run.get("resumed_from_step")
        ]
        lines.append(
            f"- Carried on with --resume ({', '.join(report['resumed'])}); runs cut off and carried on: "
            + (", ".join(continued) or "none")
            + " (training seconds as the save left them; work after it is redone and not counted)"
        )

    lines += [
        "",
        "| seed | framework | solved at step | solved at s | steps run | train s | steps/s "
        "| final mean ± std | stays solved |",
        "|---:|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
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
    both = "deeprl" in stats and "sb3" in stats
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
    row("seconds to solve, median", lambda s: _seconds(s["seconds_to_solve_median"]), "seconds_to_solve_median")
    row("seconds to solve, worst", lambda s: _seconds(s["seconds_to_solve_worst"]))
    row(
        "training steps/s, median",
        lambda s: "n/a" if s["steps_per_second_median"] is None else f"{s['steps_per_second_median']:,.0f}",
    )
    row("final agent stays solved", lambda s: f"{s['stays_solved']}/{s['seeds']}")
    row(
        "final agent mean return, median",
        lambda s: "n/a" if s["final_mean_median"] is None else f"{s['final_mean_median']:.1f}",
    )
    if "deeprl-seeds" in frameworks:
        row("every seed trained, wall-clock s", lambda s: f"{s.get('all_seeds_wall_seconds', 0.0):,.1f}")
    if any(s["errors"] for s in stats.values()):
        row("crashed runs", lambda s: str(s["errors"]))
    lines += [
        "",
        "An unsolved seed counts as never solving: a median or worst that reads *unsolved* means "
        "at least half (median) or one (worst) of the seeds did not reach the threshold.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main


def parse_seeds(text: str) -> list[int]:
    """`0-4` -> [0, 1, 2, 3, 4]; `0,3,7-8` -> [0, 3, 7, 8] (deeprl's own parser, as an argparse type)."""
    from deeprl.config import parse_seeds as parse
    from deeprl.errors import DeeprlError

    try:
        return parse(text)
    except DeeprlError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    parser.add_argument("--algo", choices=ALGOS, default="dqn", help="the algorithm both frameworks train")
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id (SB3 needs a Zoo entry for it)")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-4"), help="e.g. 0-4 or 0,2,5")
    parser.add_argument("--eval-every", type=positive_int, default=1000, help="env steps between evaluations")
    parser.add_argument("--steps", type=positive_int, help="deeprl budget (default: preset total_steps)")
    parser.add_argument("--sb3-steps", type=positive_int, help="SB3 budget (default: the Zoo's n_timesteps)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a deeprl setting over its preset, as deeprl train --set (say why beside the result); repeatable",
    )
    parser.add_argument(
        "--frameworks", type=parse_frameworks, default=DEFAULT_FRAMEWORKS, help="deeprl,sb3 (and deeprl-seeds)"
    )
    parser.add_argument("--threshold", type=float, help="solving return (default: env's reward_threshold)")
    parser.add_argument(
        "--jobs", type=positive_int, default=1, help="workers training at once (at most one per free core)"
    )
    parser.add_argument(
        "--eval-episodes", type=positive_int, default=EVAL_EPISODES, help="greedy episodes (games) per evaluation"
    )
    parser.add_argument("--out", type=Path, help="raw JSON (default: benchmarks/results/ALGO-ENV-DATE.json)")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="OUT.json",
        help="carry on the command recorded in OUT.json (its other runs kept)",
    )
    parser.add_argument("--plot", type=Path, metavar="OUT.json", help="draw a report's learning curves as OUT.png")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)  # a worker's kept run directory
    return parser


def resumed_arguments(path: Path) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The arguments of the command a report records, and the report; refused in one line when unusable."""
    try:
        report = json.loads(path.read_text())
        recorded = shlex.split(report["command"])[2:]  # python benchmarks/compare.py ...
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"cannot resume {path}: not a report of this harness ({error})") from None
    args = build_parser().parse_args(recorded)
    args.out, args.resume = path, path
    return args, report


def report_figure(report: dict[str, Any]) -> Any:
    """The learning curves of a report: each framework's greedy evaluations against environment steps, the mean over
    its seeds with a band of ± one standard deviation (population, as BENCHMARKS.md's tables give it) and each seed's
    own curve faint; the threshold dashed."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5), layout="constrained")
    axes = figure.subplots()
    for index, name in enumerate(report["frameworks"]):
        runs = [run for run in report["runs"] if run["framework"] == name and run.get("evals")]
        color = f"C{index}"
        for run in runs:
            steps, means = zip(*((point["step"], point["mean"]) for point in run["evals"]), strict=True)
            axes.plot(steps, means, color=color, alpha=0.3, linewidth=1)
        curves = [{point["step"]: point["mean"] for point in run["evals"]} for run in runs]
        shared = sorted(set.intersection(*(set(curve) for curve in curves))) if curves else []
        if not shared:
            continue
        values = np.array([[curve[step] for step in shared] for curve in curves])
        mean, spread = values.mean(axis=0), values.std(axis=0)
        label = f"{LABELS[name]} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
        axes.plot(shared, mean, color=color, linewidth=2, label=label)
        if len(runs) > 1:
            axes.fill_between(shared, mean - spread, mean + spread, color=color, alpha=0.2, linewidth=0)
    axes.axhline(
        report["threshold"], color="gray", linestyle="--", linewidth=1, label=f"threshold {report['threshold']:g}"
    )
    axes.set_title(f"{ALGOS[report['algo']]} on {report['env']}")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("greedy evaluation return (mean over seeds ± std)")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return figure


def write_figure(report: dict[str, Any], out: Path) -> Path:
    """The report's learning curves beside its JSON (OUT.png)."""
    from deeprl.media import save_figure

    path = out.with_suffix(".png")
    save_figure(report_figure(report), path)
    return path


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
    if args.plot is not None:
        try:
            report = json.loads(args.plot.read_text())
            print(write_figure(report, args.plot))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"cannot plot {args.plot}: not a report of this harness ({error})") from None
        return
    report: dict[str, Any] | None = None
    if args.resume is not None:
        given = sys.argv[1:]
        if len(given) != (1 if given[0].startswith("--resume=") else 2):
            raise SystemExit("--resume carries on the command its report records: give it no other options")
        args, report = resumed_arguments(args.resume)
    import gymnasium as gym

    is_atari_id(args.env)  # registers the Atari ids on request, as deeprl does
    try:
        spec = gym.spec(args.env)
    except gym.error.Error as error:
        raise SystemExit(f"unknown environment {args.env}: {error}") from None
    threshold = args.threshold if args.threshold is not None else spec.reward_threshold
    if threshold is None:
        raise SystemExit(f"{args.env} declares no reward_threshold: pass --threshold")
    overrides = deeprl_overrides(args.settings, args.algo, args.env)  # a bad --set is refused before any training
    zoo = zoo_hyperparams(args.algo, args.env) if "sb3" in args.frameworks else {}
    if zoo:
        sb3_setup(zoo)  # refuse an unsupported Zoo entry before spending any time training
    stamp = datetime.now(timezone.utc)
    out = args.out or Path(__file__).resolve().parent / "results" / (
        f"{args.algo}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.env)}-{stamp:%Y%m%d-%H%M%S}.json"
    )
    if report is not None:
        # finished runs stay; a run that was cut off (or crashed) is made again, a deeprl one from its checkpoint
        report["runs"] = [run for run in report["runs"] if "error" not in run]
        report.setdefault("resumed", []).append(f"{stamp:%Y-%m-%d %H:%M} UTC")
    else:
        report = {
            "command": shlex.join(["python", *sys.argv]),
            "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
            "machine": machine_info(),
            "versions": package_versions(),
            "algo": args.algo,
            "env": args.env,
            "threshold": float(threshold),
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
            "seeds": args.seeds,
            "frameworks": args.frameworks,
            "steps_override": {"deeprl": args.steps, "sb3": args.sb3_steps},
            "deeprl_settings": overrides,
            "zoo_hyperparams": zoo,
            "runs": [],
        }
    runs_dir = out.with_name(f"{out.stem}-runs")
    if args.resume is None and (out.exists() or runs_dir.exists()):
        raise SystemExit(f"{out} or {runs_dir} exists: choose another --out, or carry it on with --resume {out}")
    write_json(out, report)  # from the start: what --resume carries on
    done = {(run["framework"], run["seed"]) for run in report["runs"]}
    # Alternate frameworks within each seed so a slow spell on the shared machine hits both.
    tasks: list[tuple[str, list[int]]] = []
    for seed in args.seeds:
        for framework in args.frameworks:
            if (framework, seed) in done or any(framework == name and seed in seeds for name, seeds in tasks):
                continue
            # deeprl-seeds trains every seed in one process, in the first seed's turn
            seeds = [seed] if framework != "deeprl-seeds" else [s for s in args.seeds if (framework, s) not in done]
            tasks.append((framework, seeds))

    def train(task: tuple[str, list[int]]) -> list[dict]:
        framework, seeds = task
        sys.stderr.write(f"[{framework} seed {','.join(map(str, seeds))}] training ...\n")  # one write: jobs interleave
        return launch_worker(framework, seeds, args, float(threshold), runs_dir)

    # --jobs N trains N workers at once (threads only wait on their subprocesses); one worker per free core keeps
    # the wall-clock comparable, more share cores and slow each other alike
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(train, task): task[0] for task in tasks}
        for future in as_completed(futures):
            framework, results = futures[future], future.result()
            report["runs"] += results
            write_json(out, report)
            for run in results:
                if "error" in run:
                    outcome = f"crashed (exit {run['returncode']}): {run['error'].splitlines()[-1]}"
                else:
                    solved = (
                        "not solved"
                        if run["solved_at_step"] is None
                        else f"solved at step {run['solved_at_step']:,} ({run['solved_train_seconds']:.1f} s)"
                    )
                    outcome = (
                        f"{solved}; final mean {run['final']['mean_return']:.1f}; "
                        f"{run['steps_per_second']:,.0f} steps/s"
                    )
                print(f"[{framework} seed {run['seed']}] {outcome}", file=sys.stderr, flush=True)
    order = {
        (seed, framework): index
        for index, (seed, framework) in enumerate(
            (seed, framework) for seed in args.seeds for framework in args.frameworks
        )
    }
    report["runs"].sort(key=lambda run: order[run["seed"], run["framework"]])
    report["summary"] = {
        name: summarise([run for run in report["runs"] if run["framework"] == name], float(threshold))
        for name in args.frameworks
    }
    report["markdown"] = markdown_report(report)
    write_json(out, report)
    print(report["markdown"])
    print(f"\nraw results: {out}; learning curves: {write_figure(report, out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
