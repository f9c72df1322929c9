"""Many runs at once: every seed × every combination of a grid of settings, scheduled by Ray Tune.

A sweep directory holds:
- `sweep.yaml`: what was asked (algorithm, env, preset, fixed settings, grid, seeds); `--resume` reads it;
- `runs/NAME-sSEED/`: one ordinary run directory per trial (its config.yaml re-runs it alone);
- `tune/`: Ray Tune's own state, which restores a sweep whose driver died;
- at the end, `trials.csv` (one row per run), `sweep.csv` (one row per configuration, over its seeds),
  `best.yaml` (the best configuration as a file `deeprl train --config` takes), `curves.png` and `report.html`.

Tune restarts a trial whose process died; the trial resumes from deeprl's own newest checkpoint in its run
directory and ends exactly as an uninterrupted run would. The Tune checkpoint a trial reports is only a
marker (run directory and step): deeprl's checkpoint, with its replay memory, stays where it was written.
Ray is imported only here, and only when a sweep runs: it is an optional extra.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from deeprl.config import build_config, coerce, config_fields, config_to_yaml, parse_seeds, unknown_setting_hint
from deeprl.errors import DeeprlError, warn
from deeprl.files import atomic_write_text
from deeprl.stats import mean_ci_iqm

SWEEP_FILE = "sweep.yaml"
RUNS_FOLDER = "runs"
TUNE_FOLDER = "tune"
ERROR_FILE = "error.txt"  # a trial's one-line reason for failing, in its run directory
MARKER_FILE = "deeprl.json"  # inside a Tune checkpoint: which run directory, checkpointed at which step
RAY_MISSING = "deeprl sweep needs Ray Tune, which is not installed: pip install 'deeprl[sweep]'"
TRIAL_RETRIES = 3  # restarts of a trial whose process died, each resuming from its newest checkpoint
CONNECT_TIMEOUT_S = 5.0
RAYLET_WATCH = "deeprl-exit-with-raylet"  # the thread that ends a trial's worker when its Ray node is gone
# Set for every sweep unless the user set them: Ray's servers stay on loopback and send no usage data, and
# the runs train at normal priority: Ray starts its workers at nice 15, where anything else busy on the machine
# (a test suite, a browser) starves them, even of the time to import deeprl.
RAY_QUIET_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_worker_niceness": "0",
}
# Settings a sweep sets itself, so the grid cannot.
SWEEP_ARGUMENTS = {"seed": "--seeds", "total_steps": "--steps", "env": "the ENV argument"}


@dataclasses.dataclass
class SweepSpec:
    """What a sweep runs: `grid` maps a setting to the values tried; every combination runs every seed."""

    algo: str
    env: str
    seeds: list[int]
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    preset: str = "default"
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int | None = None
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of grid values, in the order the grid lists them ([{}] for no grid)."""
        names = list(self.grid)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def trials(self, sweep_dir: Path) -> list[dict[str, Any]]:
        """One entry per (combination, seed): the run directory and the settings of that run."""
        trials = []
        for combination in self.combinations():
            label = combination_label(combination, self.preset)
            for seed in self.seeds:
                name = f"{safe_name(label)}-s{seed}"
                settings = {**self.settings, **combination, "seed": seed}
                if self.steps is not None:
                    settings["total_steps"] = self.steps
                trials.append(
                    {
                        "name": name,
                        "label": label,
                        "combination": combination,
                        "seed": seed,
                        "settings": settings,
                        "run_dir": str((sweep_dir / RUNS_FOLDER / name).resolve()),
                    }
                )
        return trials


def combination_label(combination: dict[str, Any], preset: str) -> str:
    """'lr=0.001 batch_size=64'; the preset's name when the grid is empty."""
    return " ".join(f"{key}={format_setting(value)}" for key, value in combination.items()) or preset


def format_setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_setting(item) for item in value) + "]"
    return str(value)


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", label.replace(" ", "_")) or "run"


# ------------------------------------------------------------------------------------------- the grid


def parse_grid(pairs: list[str]) -> dict[str, list[str]]:
    """`["lr=1e-3,3e-4", "hidden_sizes=[64,64],[128]"]` -> {"lr": ["1e-3", "3e-4"], "hidden_sizes": [...]};
    commas inside brackets belong to one value."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeeprlError(f"--grid expects key=value1,value2 (got '{pair}')")
        if key in grid:
            raise DeeprlError(f"--grid {key} is given twice; list all its values in one --grid")
        values = [value.strip() for value in re.split(r",(?![^[(]*[\])])", text) if value.strip()]
        if not values:
            raise DeeprlError(f"--grid {key}= has no values (give one or more, separated by commas)")
        if len(set(values)) != len(values):
            raise DeeprlError(f"--grid {key} lists a value twice ({text})")
        grid[key] = values
    return grid


def check_spec(spec: SweepSpec) -> list[tuple[dict[str, Any], str | None]]:
    """Refuse a sweep that cannot be right as a whole (unknown algorithm, preset or grid key); return each
    combination with the one-line reason its settings are invalid, or None. Loads no env and no Ray."""
    from deeprl.algos import get_algorithm
    from deeprl.config import preset_settings

    module = get_algorithm(spec.algo)
    preset_settings(spec.algo, spec.env, spec.preset)  # an unknown preset names the available ones
    known = config_fields(module.Config)
    hints = typing.get_type_hints(module.Config)
    for key, values in spec.grid.items():
        if key in SWEEP_ARGUMENTS:
            raise DeeprlError(f"'{key}' cannot be a grid key: a sweep sets it with {SWEEP_ARGUMENTS[key]}")
        if key not in known:
            raise DeeprlError(
                f"unknown grid key '{key}' for {spec.algo}{unknown_setting_hint(key, module.Config)} "
                f"(`deeprl list --settings {spec.algo}` shows them all)"
            )
        if not values:
            raise DeeprlError(f"--grid {key} has no values")
        for value in values:  # a value of the wrong type can never run; one out of range fails its runs alone
            try:
                coerce(key, value, hints[key])
            except DeeprlError as error:
                raise DeeprlError(f"--grid {key}: {error}") from None
    for key in spec.settings:
        if key in SWEEP_ARGUMENTS:
            raise DeeprlError(f"'{key}' is not set with --set in a sweep: use {SWEEP_ARGUMENTS[key]}")
    if not spec.seeds:
        raise DeeprlError("a sweep needs at least one seed (--seeds 0-4)")
    if spec.cpus_per_trial <= 0:
        raise DeeprlError(f"--cpus-per-trial must be > 0 (got {spec.cpus_per_trial:g})")
    if spec.max_concurrent is not None and spec.max_concurrent < 1:
        raise DeeprlError(f"--max-concurrent must be >= 1 (got {spec.max_concurrent})")
    if spec.steps is not None and spec.steps < 1:
        raise DeeprlError(f"--steps must be >= 1 (got {spec.steps})")
    checked = []
    for combination in spec.combinations():
        try:
            build_config(
                module.Config,
                spec.env,
                spec.preset,
                {**spec.settings, **combination, **({"total_steps": spec.steps} if spec.steps else {})},
            )
        except DeeprlError as error:
            checked.append((combination, str(error)))
        else:
            checked.append((combination, None))
    return checked


def spec_to_yaml(spec: SweepSpec) -> str:
    return yaml.safe_dump(dataclasses.asdict(spec), sort_keys=False)


def read_spec(sweep_dir: Path) -> SweepSpec:
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        raise DeeprlError(f"{sweep_dir} is not a sweep directory (no {SWEEP_FILE})")
    try:
        data = yaml.safe_load(path.read_text())
        return SweepSpec(**data)
    except (yaml.YAMLError, TypeError) as error:
        raise DeeprlError(f"{path} is not a sweep description deeprl wrote: {str(error).splitlines()[0]}") from None


def is_sweep_dir(path: Path) -> bool:
    return (path / SWEEP_FILE).is_file()


def default_sweep_dir(algo: str, env: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("sweeps") / f"{safe_name(algo)}-{safe_name(env)}-{stamp}"


# ------------------------------------------------------------------------------------------ one trial


def run_trial(config: dict[str, Any]) -> None:
    """A Tune function trainable: train (or resume, or just report) one run directory, reporting each
    evaluation; a bad setting ends the trial with its one-line reason instead of failing it."""
    from ray import get_runtime_context, tune

    from deeprl.api import resume_run, train

    trial = config["trial"]
    run_dir = Path(trial["run_dir"])
    node = get_runtime_context().get_node_id()
    _exit_with_raylet()
    _wait_for_previous_owner(run_dir)
    reported_checkpoint: list[int | None] = [None]

    def report(metrics: dict[str, Any]) -> None:
        metrics = {**metrics, "node_id": node, "pid": os.getpid()}
        step = metrics.get("checkpoint_step")
        if step is None or step == reported_checkpoint[0]:
            tune.report(metrics)
            return
        reported_checkpoint[0] = step
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / MARKER_FILE).write_text(json.dumps({"run_dir": str(run_dir), "step": step}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    def fail(reason: str) -> None:
        tune.report({"failed": True, "error": reason, "done": True, "node_id": node})

    if (run_dir / ERROR_FILE).is_file():
        fail((run_dir / ERROR_FILE).read_text().strip())
        return
    try:
        summary_path = run_dir / "eval.json"
        if summary_path.is_file():  # finished before its Tune trial knew (the driver died at that moment)
            summary = json.loads(summary_path.read_text())
        else:
            marker = _checkpoint_marker(tune.get_checkpoint())
            if _has_checkpoint(run_dir):
                agent = resume_run(run_dir, progress=False, on_evaluation=report)
            else:
                if marker is not None:
                    raise DeeprlError(
                        f"{run_dir} was checkpointed at step {marker['step']} but this node cannot see it: "
                        "a sweep on several machines needs its --sweep-dir on storage every node shares"
                    )
                if run_dir.exists():  # died before its first checkpoint: start it again from nothing
                    shutil.rmtree(run_dir)
                agent = train(
                    config["algo"],
                    run_dir=run_dir,
                    progress=False,
                    on_evaluation=report,
                    preset=config["preset"],
                    env=config["env"],
                    **trial["settings"],
                )
            summary = agent.summary
    except DeeprlError as error:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ERROR_FILE, f"{error}\n")
        fail(str(error))
        return
    report({"done": True, **trial_metrics(summary)})


def _exit_with_raylet() -> None:
    """End this worker when the Ray node that started it goes (its driver was killed): a trial left running
    would keep writing its run directory while a resumed sweep runs it again. Its checkpoints stay intact."""
    if any(thread.name == RAYLET_WATCH for thread in threading.enumerate()):
        return  # a reused worker: its watch runs already
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name=RAYLET_WATCH, daemon=True).start()


def _wait_for_previous_owner(run_dir: Path, timeout: float = 60.0) -> None:
    """A trial of a sweep resumed moments after its driver died may find its old process still alive (until
    it notices, above); wait for it rather than fail on the run directory's lock."""
    from deeprl.run import RunLock, process_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = RunLock.owner_of(run_dir)
        if owner is None or owner == os.getpid() or not process_alive(owner):
            return
        time.sleep(0.5)


def _has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("step-*.json")) and (run_dir / "config.yaml").is_file()


def _checkpoint_marker(checkpoint: Any) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        path = Path(folder) / MARKER_FILE
        return json.loads(path.read_text()) if path.is_file() else None


def trial_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a finished run's eval.json that a sweep compares."""
    return {
        "step": summary["steps"],
        "solved": summary["solved"],
        "solved_at_step": summary["solved_at_step"],
        "solved_train_seconds": summary["solved_train_seconds"],
        "train_seconds": summary["train_seconds"],
        "final_return": summary["final"]["mean_return"],
        "best_return": summary["best"]["mean_return"],
    }


# -------------------------------------------------------------------------------------------- the driver


def sweep(
    algo: str | None = None,
    env: str | None = None,
    *,
    seeds: list[int] | str = "0-4",
    grid: dict[str, list[Any]] | None = None,
    preset: str | None = None,
    settings: dict[str, Any] | None = None,
    steps: int | None = None,
    cpus_per_trial: float = 1.0,
    max_concurrent: int | None = None,
    sweep_dir: str | Path | None = None,
    address: str | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    results: bool | None = None,
) -> list[dict[str, Any]]:
    """Train `algo` on `env` for every seed × every combination of `grid` ({setting: [values]}) on Ray Tune
    and return the table over seeds, one row per combination (also written to SWEEP/sweep.csv).

    Without `address` Ray starts on this machine (loopback only) and stops at the end; `address` joins a
    running cluster ("auto", "HOST:PORT" or "ray://HOST:PORT"), whose nodes must all see `sweep_dir`.
    `resume=SWEEP_DIR` continues a sweep whose driver stopped, keeping the trials that finished. `progress`
    prints a line per trial; `results` prints the table, the configurations not run and why, and where the files
    are (None: with the progress).
    """
    if resume is not None:
        path = Path(resume)
        spec = read_spec(path)
        if not (path / TUNE_FOLDER).is_dir():
            raise DeeprlError(f"{path} has no Tune state ({TUNE_FOLDER}/) to resume from")
    else:
        if algo is None or env is None:
            raise DeeprlError("sweep needs an algorithm and an env (or --resume SWEEP_DIR)")
        spec = SweepSpec(
            algo=algo,
            env=env,
            seeds=parse_seeds(seeds) if isinstance(seeds, str) else list(seeds),
            grid={key: list(values) for key, values in (grid or {}).items()},
            preset=preset or "default",
            settings=dict(settings or {}),
            steps=steps,
            cpus_per_trial=cpus_per_trial,
            max_concurrent=max_concurrent,
        )
        path = Path(sweep_dir) if sweep_dir is not None else default_sweep_dir(algo, env)
    checked = check_spec(spec)
    if all(reason is not None for _, reason in checked):
        raise DeeprlError(f"every combination is invalid; the first: {checked[0][1]}")
    ray = import_ray()
    if resume is None and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DeeprlError(
            f"sweep directory {path} already exists and is not empty (choose another --sweep-dir, or --resume {path})"
        )
    invalid = {combination_label(combination, spec.preset): reason for combination, reason in checked if reason}
    trials = spec.trials(path)
    runnable = [trial for trial in trials if trial["label"] not in invalid]
    results = progress if results is None else results
    say = print if progress else (lambda *args, **kwargs: None)
    started = time.perf_counter()
    connect(ray, address)  # before the sweep directory exists: an unreachable cluster leaves nothing behind
    try:
        if resume is None:
            _prepare_sweep_dir(path)
            atomic_write_text(path / SWEEP_FILE, spec_to_yaml(spec))
        for trial in trials:  # invalid settings fail at once, with their reason, and never reach Ray
            if trial["label"] in invalid:
                run_dir = Path(trial["run_dir"])
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(run_dir / ERROR_FILE, invalid[trial["label"]] + "\n")
        say(
            f"sweep {path}: {len(runnable)} trials ({len(spec.combinations())} configurations × "
            f"{len(spec.seeds)} seeds), on {_describe_cluster(ray)}"
        )
        for label, reason in invalid.items():  # with the results: they explain its failed rows
            if progress or results:
                print(f"  {label}: not run: {reason}")
        _fit(spec, path, runnable, resume is not None, progress)
    finally:
        ray.shutdown()
    rows = finish_sweep(path, spec)
    say(f"sweep finished in {time.perf_counter() - started:.1f} s")
    if results:
        print(format_table(rows))
        print(f"table: {path / 'sweep.csv'} (per run: {path / 'trials.csv'}); curves: {path / 'curves.png'}")
        if (path / "report.html").is_file():
            print(f"report: {path / 'report.html'} (open it in a browser)")
        if (path / "best.yaml").is_file():
            print(f"best configuration: {path / 'best.yaml'} (deeprl train --config {path / 'best.yaml'})")
    return rows


def import_ray() -> Any:
    for name, value in RAY_QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        import ray
        from ray import tune  # noqa: F401 (the tune extra is what a sweep needs)
    except ImportError:
        raise DeeprlError(RAY_MISSING) from None
    return ray


def _prepare_sweep_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DeeprlError(f"cannot create sweep directory {path}: {error.strerror or error}") from None


def connect(ray: Any, address: str | None) -> None:
    """Start Ray here (loopback, no dashboard), or join the cluster at `address`, failing within seconds
    when nothing answers there."""
    import logging

    options = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": False}
    # Ray says on every start that it turned token authentication on (it stays on), and logs a traceback when
    # a trial's process dies; the sweep's own lines say what happened to each trial instead.
    logging.getLogger("ray").setLevel(logging.CRITICAL)
    if address is None:
        # "local": a Ray instance of the sweep's own, even where another one (`ray start`, another sweep) runs on
        # this machine; without it ray.init joins the newest such instance and refuses num_cpus with a traceback
        ray.init(
            address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1", **options
        )
        return
    if address != "auto":
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as error:
            raise DeeprlError(f"no Ray cluster answers at {address}: {error.strerror or error}") from None
        if not address.startswith("ray://"):
            _check_gcs_answers(address)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise DeeprlError(f"cannot join the Ray cluster at {address}: {str(error).splitlines()[0]}") from None


def _check_gcs_answers(address: str) -> None:
    """Ask the address for its Ray cluster id, as a Ray node does first, with a deadline: Ray's own attempt
    retries for about 20 s, logging every second, when something else (a proxy, another server) answers."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        get_cluster_id = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            get_cluster_id(b"", timeout=CONNECT_TIMEOUT_S)  # an empty GetClusterIdRequest
        except grpc.RpcError as error:
            # a Ray GCS that wants a token still answers as one; anything else is not a Ray cluster
            if error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise DeeprlError(
                    f"no Ray cluster answers at {address}: {error.code().name.lower()} "
                    f"({error.details() or 'no details'})"
                ) from None


def _host_port(address: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:ray://)?\[?([^\]\s]+?)\]?:(\d{1,5})", address)
    if match is None:
        raise DeeprlError(f"--address must be auto, HOST:PORT or ray://HOST:PORT (got '{address}')")
    return match.group(1), int(match.group(2))


def _describe_cluster(ray: Any) -> str:
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cpus = ray.cluster_resources().get("CPU", 0)
    return f"{len(nodes)} Ray node{'s' if len(nodes) != 1 else ''} with {cpus:g} CPUs"


def _fit(spec: SweepSpec, path: Path, trials: list[dict[str, Any]], restoring: bool, progress: bool) -> None:
    from ray import tune

    from deeprl import sweep_progress

    sweep_progress.announcing = progress
    trainable = tune.with_resources(run_trial, {"cpu": spec.cpus_per_trial})
    tune_dir = (path / TUNE_FOLDER).resolve()
    if restoring:
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"algo": spec.algo, "env": spec.env, "preset": spec.preset, "trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=spec.max_concurrent,
                reuse_actors=True,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name=TUNE_FOLDER,
                storage_path=str(tune_dir.parent),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[sweep_progress.TrialAnnouncer(len(trials))],
            ),
        )
    tuner.fit()


def _trial_name(trial: Any) -> str:
    return trial.config["trial"]["name"]


def describe_trial(trial: dict[str, Any], result: dict[str, Any]) -> str:
    name = trial["name"]
    if result.get("failed"):
        return f"{name}: failed: {result.get('error')}"
    if not result.get("done"):
        return f"{name}: stopped at step {result.get('step')}"
    solved = (
        f"solved at step {result['solved_at_step']} ({result['solved_train_seconds']:.1f} s)"
        if result.get("solved")
        else "not solved"
    )
    return f"{name}: {solved}; final agent {result['final_return']:.1f}, best {result['best_return']:.1f}"


# ---------------------------------------------------------------------------------------- the results


def read_trials(path: Path, spec: SweepSpec) -> list[dict[str, Any]]:
    """One row per trial from its run directory: finished (eval.json), failed (error.txt) or unfinished."""
    rows = []
    for trial in spec.trials(path):
        run_dir = Path(trial["run_dir"])
        row: dict[str, Any] = {
            "configuration": trial["label"],
            "seed": trial["seed"],
            "run_dir": str(run_dir),
            **{key: format_setting(value) for key, value in trial["combination"].items()},
        }
        if (run_dir / ERROR_FILE).is_file():
            row.update(status="failed", error=(run_dir / ERROR_FILE).read_text().strip())
        elif (run_dir / "eval.json").is_file():
            row.update(status="finished", **trial_metrics(json.loads((run_dir / "eval.json").read_text())))
        else:
            row.update(status="unfinished")
        rows.append(row)
    return rows


def summarize(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration over its seeds: success rate, median steps and seconds to solve, and the
    final and best agents' scores as mean, 95% bootstrap interval and interquartile mean."""
    rows = []
    for label in dict.fromkeys(trial["configuration"] for trial in trials):
        members = [trial for trial in trials if trial["configuration"] == label]
        finished = [trial for trial in members if trial["status"] == "finished"]
        solved = [trial for trial in finished if trial["solved"]]
        row: dict[str, Any] = {
            "configuration": label,
            "seeds": len(members),
            "finished": len(finished),
            "failed": sum(trial["status"] == "failed" for trial in members),
            "solved": len(solved),
            "success_rate": len(solved) / len(members),
            "median_steps_to_solve": _median([trial["solved_at_step"] for trial in solved]),
            "median_seconds_to_solve": _median([trial["solved_train_seconds"] for trial in solved]),
        }
        for agent in ("final", "best"):
            stats = mean_ci_iqm([trial[f"{agent}_return"] for trial in finished])
            row.update({f"{agent}_{key}": value for key, value in stats.items()})
        errors = dict.fromkeys(trial["error"] for trial in members if trial["status"] == "failed")
        row["error"] = "; ".join(errors)
        rows.append(row)
    return rows


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def best_configuration(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Highest success rate, then highest interquartile mean of the best agents' scores, then fewest median
    steps to solve; None when no configuration finished a run."""
    ranked = [row for row in rows if row["finished"] > 0]
    if not ranked:
        return None

    def key(row: dict[str, Any]) -> tuple[float, float, float]:
        steps = row["median_steps_to_solve"]
        return (row["success_rate"], row["best_iqm"], -(steps if not math.isnan(steps) else math.inf))

    return max(ranked, key=key)


def sweep_groups(path: Path) -> tuple[dict[str, list[Path]], str]:
    """A sweep's run directories with metrics, grouped by configuration, and a title for their curves."""
    spec = read_spec(path)
    groups: dict[str, list[Path]] = {}
    for trial in spec.trials(path):
        run_dir = Path(trial["run_dir"])
        if (run_dir / "metrics.csv").is_file():
            groups.setdefault(trial["label"], []).append(run_dir)
    if not groups:
        raise DeeprlError(f"no run of sweep {path} has written metrics yet")
    return groups, f"{spec.algo} on {spec.env}: mean over seeds, 95% CI"


def finish_sweep(path: Path, spec: SweepSpec) -> list[dict[str, Any]]:
    """Write trials.csv, sweep.csv, best.yaml, curves.png and report.html from the run directories; the summary
    rows."""
    from deeprl.media import plot_groups

    trials = read_trials(path, spec)
    rows = summarize(trials)
    _write_csv(path / "trials.csv", trials)
    _write_csv(path / "sweep.csv", rows)
    best = best_configuration(rows)
    if best is not None:
        trial = next(trial for trial in spec.trials(path) if trial["label"] == best["configuration"])
        from deeprl.algos import get_algorithm

        config = build_config(
            get_algorithm(spec.algo).Config,
            spec.env,
            spec.preset,
            {key: value for key, value in trial["settings"].items() if key != "seed"},
        )
        header = (
            f"# best of sweep {path}: {best['configuration']} (success {best['solved']}/{best['seeds']}, "
            f"best agents' IQM {best['best_iqm']:.2f}); train it: deeprl train --config FILE --seed N\n"
        )
        atomic_write_text(path / "best.yaml", header + config_to_yaml(config, spec.preset))
    try:
        groups, title = sweep_groups(path)
    except DeeprlError as error:
        warn(f"{error}; no curves to draw")
    else:
        from deeprl.report import REPORT_FILE, report_html

        plot_groups(groups, path / "curves.png", title=title)
        atomic_write_text(path / REPORT_FILE, report_html([path], video=False))
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    atomic_write_text(path, text.getvalue())


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-configuration table as Markdown: it prints readably and pastes into a report."""
    header = (
        "| configuration | solved | steps to solve (median) | s to solve (median) | final agent: mean "
        "[95% CI] · IQM | best agent: mean [95% CI] · IQM |"
    )
    lines = [header, "|---|---:|---:|---:|---|---|"]
    for row in rows:
        steps, seconds = row["median_steps_to_solve"], row["median_seconds_to_solve"]
        solved = f"{row['solved']}/{row['seeds']}" + (f" ({row['failed']} failed)" if row["failed"] else "")
        steps_text = "—" if math.isnan(steps) else f"{steps:,.0f}"
        seconds_text = "—" if math.isnan(seconds) else f"{seconds:.1f}"
        lines.append(
            f"| {row['configuration']} | {solved} | {steps_text} | {seconds_text} | "
            f"{score_text(row, 'final')} | {score_text(row, 'best')} |"
        )
    return "\n".join(lines)


def score_text(row: dict[str, Any], agent: str) -> str:
    """'mean [low, high] · IQM' of one agent's scores ('1,008.9 [997.0, 1,025.2] · 1,008.9')."""
    if math.isnan(row[f"{agent}_mean"]):
        return "—"
    return (
        f"{row[f'{agent}_mean']:,.1f} [{row[f'{agent}_ci_low']:,.1f}, {row[f'{agent}_ci_high']:,.1f}] · "
        f"{row[f'{agent}_iqm']:,.1f}"
    )
