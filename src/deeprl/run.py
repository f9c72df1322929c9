"""The run directory and the bookkeeping every training loop shares.

The loop skeleton (deeprl.loop) calls `evaluate` every `eval_every` steps, `checkpoint` where due and `finish` at
the end; the env copies report each episode (`end_episode`) and the trainers each update (`log_update`). `Run`
writes metrics.csv and TensorBoard scalars, shows progress, keeps the best-evaluated policy, notices when the task
is solved, and at the end writes the final policy, eval.json and curve.png. What of it a checkpoint carries is one
`RunRecord`.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from deeprl.agent import BEST_POLICY, FINAL_POLICY, Agent, load, save_policy
from deeprl.checkpoint import checkpoint_dir, save_checkpoint
from deeprl.config import RunConfig, config_to_yaml
from deeprl.envs import env_options
from deeprl.errors import DeeprlError, Interrupted, discard_stdout
from deeprl.evaluation import EvalResult, evaluate
from deeprl.files import atomic_write, atomic_write_json, atomic_write_text, check_writable, file_in_the_way
from deeprl.media import plot_runs

BASE_COLUMNS = ("kind", "step", "episode", "return", "return_std", "length")
TIME_COLUMN = "time_s"  # training wall-clock, evaluation excluded; the only column that varies between reruns
# eval.json's wall-clock measurements: the only entries that vary between reruns of a seeded run
TIMING_KEYS = ("train_seconds", "eval_seconds", "train_steps_per_second", "steps_per_second", "eval_fraction")

# Evaluation episodes get seeds far from the training env's, and the final evaluation fresh ones again.
PERIODIC_EVAL_SEED = 1_000_000
FINAL_EVAL_SEED = 2_000_000
# Each solve confirmation plays episodes never played before: its seeds move on with the step.
CONFIRM_EVAL_SEED = 1_000_000_000


def default_run_dir(algo: str, env: str, seed: int, preset: str | None = None) -> Path:
    """runs/ALGO-ENV[-PRESET]-sSEED-TIME; the preset is named unless it is `default`."""
    named = [algo, env] + ([preset] if preset not in (None, "default") else [])
    safe = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in named)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{safe}-s{seed}-{stamp}"
    copy = 1
    while path.exists():  # a second run of the same seed within the same second
        copy += 1
        path = Path("runs") / f"{safe}-s{seed}-{stamp}-{copy}"
    return path


def someone_watching() -> bool:
    """Whether progress output has a reader: stderr is a terminal, or the code runs in a notebook."""
    if sys.stderr.isatty():
        return True
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    return get_ipython is not None and get_ipython() is not None and "IPKernelApp" in get_ipython().config


def prepare_run_dir(path: Path) -> Path:
    """Create an empty, writable run directory; refuse one that already holds a run."""
    if path.exists() and not path.is_dir():
        raise DeeprlError(f"run directory {path} is an existing file (choose another --run-dir)")
    if path.exists() and any(path.iterdir()):
        raise DeeprlError(f"run directory {path} already exists and is not empty (choose another --run-dir)")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise DeeprlError(f"cannot create run directory {path}: {blocker} is a file, not a folder")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DeeprlError(f"cannot create run directory {path}: {error.strerror or error}") from None
    try:
        check_writable(path / "config.yaml", "into run directory")
    except DeeprlError:
        if created:
            path.rmdir()
        raise
    return path


def run_status(path: Path) -> str | None:
    """None for a finished run (or no run); otherwise what is happening to it, in words."""
    if not (path / "config.yaml").is_file() or (path / "eval.json").is_file():
        return None
    owner = RunLock.owner_of(path)
    if owner is not None and process_alive(owner):
        return f"run {path} is still training (process {owner})"
    manifests = sorted((path / "checkpoints").glob("step-*.json"))
    at_step = f" at step {int(manifests[-1].stem.split('-')[1])}" if manifests else ""
    return f"run {path} stopped{at_step} before finishing (`deeprl resume {path}` continues it)"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Progress:
    """A progress bar where someone watches (a terminal, or a notebook's widget through tqdm.auto); a plain
    line per evaluation otherwise (logs, CI)."""

    def __init__(self, total_steps: int, enabled: bool, initial: int = 0) -> None:
        self.enabled = enabled
        self.bar = None
        if enabled and someone_watching():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5)

    def advance(self, steps: int, recent_mean: float) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix_str(f"mean return (100 ep) {recent_mean:.1f}", refresh=False)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:  # the reader went away (`... | head -1`): the run goes on without it
            discard_stdout()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class RunLock:
    """`RUN/.lock` holds the PID of the process training in RUN; a lock left by a dead process is taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        # The PID is written to a file of our own first and linked into place, so the lock never exists
        # empty: a second process reading a half-made lock would take it for stale and train in RUN too.
        claim = run_dir / f".lock.{os.getpid()}"
        claim.write_text(f"{os.getpid()}\n")
        try:
            for _ in range(2):
                try:
                    os.link(claim, self.path)
                except FileExistsError:
                    owner = self._owner()
                    if owner is not None and owner != os.getpid() and process_alive(owner):
                        raise DeeprlError(
                            f"run directory {run_dir} is in use by process {owner} "
                            f"(remove {self.path} if it is not deeprl)"
                        ) from None
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                return
            raise DeeprlError(f"cannot lock run directory {run_dir}")
        finally:
            claim.unlink(missing_ok=True)

    def _owner(self) -> int | None:
        return self.owner_of(self.path.parent)

    @staticmethod
    def owner_of(run_dir: Path) -> int | None:
        """The PID in RUN/.lock, if any."""
        try:
            return int((run_dir / ".lock").read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class RunRecord:
    """What a run's bookkeeping carries from checkpoint to checkpoint (a checkpoint's "run" entry, plain data), so
    that a resumed run goes on with the same metrics file, best policy, solve record, timings and schedule."""

    # as of the newest checkpoint (None before the first): its step, metrics.csv's length then (the rows after it
    # are redone on resume) and the training time so far
    step: int | None = None
    metrics_bytes: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0  # wall-clock spent evaluating so far
    recent_returns: deque[float] = field(default_factory=lambda: deque(maxlen=100))  # the last 100 episodes'
    best_mean: float = -math.inf  # the best evaluation's score, and its step
    best_step: int | None = None
    solved_step: int | None = None  # where an evaluation (confirmed) first reached the threshold, and when
    solved_time: float | None = None
    last_eval_step: int | None = None
    next_checkpoint: int = 0
    # learning updates so far: a rollout's (A2C, PPO, actor-critics) or episodes' (REINFORCE) update, or one
    # gradient step of the off-policy learners
    updates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **{item.name: getattr(self, item.name) for item in fields(self)},
            "recent_returns": list(self.recent_returns),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any], next_checkpoint: int) -> RunRecord:
        """The record a checkpoint holds; an entry it lacks (an older deeprl's) takes its first value (the first
        checkpoint's step: `next_checkpoint`)."""
        record = cls(next_checkpoint=next_checkpoint)
        for item in fields(record):
            if item.name in state:
                setattr(record, item.name, state[item.name])
        record.recent_returns = deque(record.recent_returns, maxlen=100)
        return record


class Run:
    """One training run's directory and bookkeeping; `resume_state` continues one from a checkpoint."""

    def __init__(
        self,
        path: Path,
        config: RunConfig,
        extra_columns: Sequence[str],
        make_eval_env: Callable[..., gym.Env],
        threshold: float | None,
        preset: str | None = None,
        show_progress: bool = True,
        resume_state: dict[str, Any] | None = None,
        on_evaluation: Callable[[dict[str, Any]], None] | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.path = path
        self.on_evaluation = on_evaluation
        self.lock = RunLock(path)
        self.config = config
        self.make_eval_env = make_eval_env
        self.threshold = threshold
        self.env_spec = env_options(config)
        self.columns = (*BASE_COLUMNS, *extra_columns, TIME_COLUMN)
        self.record = RunRecord.from_dict(resume_state or {}, next_checkpoint=config.checkpoint_every)
        metrics_path = path / "metrics.csv"
        if resume_state is None:
            atomic_write_text(path / "config.yaml", config_to_yaml(config, preset))
            metrics_path.write_text(",".join(self.columns) + "\n")
        else:  # drop the rows written after the checkpoint (and a partial last line): they will be redone
            with open(metrics_path, "r+b") as metrics:
                metrics.truncate(self.record.metrics_bytes)
            # a process killed while writing a file atomically leaves its temporary file (a checkpoint's can
            # be 0.6 GB); this run holds the lock now, so no one else is writing them
            for folder in (path, checkpoint_dir(path)):
                for temporary in folder.glob(".*.tmp"):
                    temporary.unlink(missing_ok=True)
            _restore_best_policy(path / BEST_POLICY, resume_state)
        # Open for the whole run, line-buffered: a crash loses at most the row being written.
        self.metrics = open(metrics_path, "a", buffering=1)  # noqa: SIM115
        self.tensorboard = None
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # A resumed run writes again what came after its checkpoint's step: purge_step hides those
            # events (everything up to and including the checkpoint's step was flushed with it).
            purge_step = None if self.record.step is None else self.record.step + 1
            self.tensorboard = SummaryWriter(log_dir=str(path / "tensorboard"), purge_step=purge_step)
        self.progress = Progress(config.total_steps, show_progress, initial=self.record.step or 0)
        self.started = time.perf_counter() - self.record.train_seconds - self.record.eval_seconds
        self.stop_requested = False
        self.previous_handlers: dict[int, Any] = {}
        self.announces = True  # a line per evaluation (several seeds in one process: one line for them all)
        self.last_evaluation: EvalResult | None = None
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # a second signal: stop now, the last checkpoint stays
            raise KeyboardInterrupt
        self.stop_requested = True
        self.progress.message(f"{signal.Signals(signum).name}: checkpointing at the end of this episode")

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)
        self.previous_handlers = {}

    def checkpoint_due(self, step: int, next_point: int | None = None) -> bool:
        """Whether the loop should checkpoint at `step`, a point where it can: every checkpoint_every steps, on a
        stop request, and at the last point before the budget ends (`step` reaches it, or the loop's `next_point`
        lies beyond it), from where `resume --steps N` continues the finished run."""
        every = self.config.checkpoint_every
        total = self.config.total_steps
        last_point = step >= total if next_point is None else next_point > total
        return self.stop_requested or (every > 0 and (step >= self.record.next_checkpoint or last_point))

    def checkpoint(self, step: int, algo_state: dict[str, Any], agent: Agent) -> None:
        """Save the whole training state; after a stop request, also the current policy and the curve (so
        eval, watch and plot work on the interrupted run), then end the run (it can be resumed)."""
        every = self.config.checkpoint_every
        if every > 0:
            self.record.next_checkpoint = (step // every + 1) * every
        self.metrics.flush()
        if self.tensorboard is not None:
            self.tensorboard.flush()
        record = self.record
        record.step, record.metrics_bytes, record.train_seconds = step, self.metrics.tell(), self.train_seconds()
        run_state = {**record.to_dict(), "best_policy": _file_bytes(self.path / BEST_POLICY)}
        save_checkpoint(self.path, step, {"run": run_state, "algo": algo_state}, self.config.algo, self.config.env)
        if self.stop_requested:
            self.close()
            save_policy(self.path / FINAL_POLICY, self.config.algo, agent, self.env_spec, step)
            self._plot(f"interrupted at step {step}")
            raise Interrupted(f"interrupted at step {step}; checkpoint saved; continue with: deeprl resume {self.path}")

    def close(self) -> None:
        self.lock.release()
        self._restore_signal_handlers()
        self.progress.close()
        if not self.metrics.closed:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def train_seconds(self) -> float:
        """Wall-clock spent training so far, evaluation time excluded."""
        return time.perf_counter() - self.started - self.record.eval_seconds

    def timing(self, step: int) -> dict[str, float]:
        """Where the wall-clock went: training steps/s, overall steps/s, and the share spent evaluating."""
        train_seconds = max(self.train_seconds(), 1e-9)
        eval_seconds = self.record.eval_seconds
        wall_seconds = train_seconds + eval_seconds
        return {
            "train_seconds": round(train_seconds, 3),
            "eval_seconds": round(eval_seconds, 3),
            "train_steps_per_second": round(step / train_seconds, 1),
            "steps_per_second": round(step / wall_seconds, 1),
            "eval_fraction": round(eval_seconds / wall_seconds, 4),
        }

    def _write_row(self, values: dict[str, Any]) -> None:
        values[TIME_COLUMN] = round(self.train_seconds(), 3)
        self.metrics.write(",".join(_format(values.get(column)) for column in self.columns) + "\n")
        if self.tensorboard is not None:
            for key, value in values.items():
                if key not in ("kind", "step", "episode", TIME_COLUMN) and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(f"{values['kind']}/{key}", value, values["step"])

    def end_episode(self, step: int, episode: int, episodic_return: float, length: int, **extra: Any) -> None:
        self.record.recent_returns.append(episodic_return)
        self._write_row(
            {"kind": "train", "step": step, "episode": episode, "return": episodic_return, "length": length, **extra}
        )
        self.progress.advance(length, float(np.mean(self.record.recent_returns)))

    def log_update(self, step: int, episode: int, **values: Any) -> None:
        """A metrics row (and TensorBoard scalars) for one learning update: losses, entropy and the like."""
        self.record.updates += 1
        self._write_row({"kind": "update", "step": step, "episode": episode, **values})

    def count_update(self) -> None:
        """One learning update that writes no row of its own (an off-policy gradient step)."""
        self.record.updates += 1

    def evaluate_due(self, previous_step: int, step: int) -> bool:
        """Whether the steps after `previous_step` up to `step` crossed a multiple of eval_every (a vectorised
        rollout advances many steps at once)."""
        every = self.config.eval_every
        return step // every > previous_step // every

    def evaluate(self, step: int, episode: int, agent: Agent) -> bool:
        """Greedy evaluation; keeps the best policy; True when training should stop (solved)."""
        started = time.perf_counter()
        result = evaluate(
            agent,
            self.make_eval_env,
            self.config.eval_episodes,
            seed=PERIODIC_EVAL_SEED + 1000 * self.config.seed,
        )
        record = self.record
        reached = self.threshold is not None and result.mean >= self.threshold and record.solved_step is None
        confirmation = self._confirm_solve(step, agent) if reached else None
        record.last_eval_step = step
        self.last_evaluation = result
        # the better estimate ranks the policy: the confirming episodes count too
        score = result.mean if confirmation is None else float(np.mean([*result.returns, *confirmation.returns]))
        self._keep_if_best(step, agent, score)
        record.eval_seconds += time.perf_counter() - started
        self._write_eval_row("eval", step, episode, result)
        if confirmation is not None:
            self._write_eval_row("confirm", step, episode, confirmation)
        newly_solved = reached and (confirmation is None or confirmation.mean >= self.threshold)
        if newly_solved:
            record.solved_step, record.solved_time = step, self.train_seconds()
        timing = self.timing(step)
        self._log_timing(step, timing)
        self._announce(
            step,
            episode,
            result,
            confirmation,
            timing,
            " | solved" if newly_solved else " | not confirmed" if reached else "",
        )
        if self.on_evaluation is not None:
            self.on_evaluation(self._evaluation_report(step, episode, result))
        return newly_solved and self.config.stop_on_solve

    def _confirm_solve(self, step: int, agent: Agent) -> EvalResult | None:
        """Episodes never played before, where an evaluation first reaches the threshold (None: no confirmation
        asked). The periodic evaluation replays the same episodes each time, so the policy picked at its first
        crossing is partly picked for those episodes; new ones tell whether it holds."""
        if self.config.solve_confirm_episodes <= 0:
            return None
        return evaluate(
            agent,
            self.make_eval_env,
            self.config.solve_confirm_episodes,
            seed=CONFIRM_EVAL_SEED + 10_000_000 * self.config.seed + step,
        )

    def _keep_if_best(self, step: int, agent: Agent, score: float) -> None:
        """Save the policy as the best one when its evaluation scores above every earlier one."""
        if score > self.record.best_mean:
            self.record.best_mean, self.record.best_step = score, step
            save_policy(self.path / BEST_POLICY, self.config.algo, agent, self.env_spec, step)

    def _log_timing(self, step: int, timing: dict[str, float]) -> None:
        """Where the wall-clock went, as TensorBoard scalars."""
        if self.tensorboard is not None:
            for key in ("train_steps_per_second", "steps_per_second", "eval_fraction"):
                self.tensorboard.add_scalar(f"time/{key}", timing[key], step)

    def _announce(
        self,
        step: int,
        episode: int,
        result: EvalResult,
        confirmation: EvalResult | None,
        timing: dict[str, float],
        outcome: str,
    ) -> None:
        """One progress line per evaluation."""
        if not self.announces:
            return
        recent_returns = self.record.recent_returns
        recent = float(np.mean(recent_returns)) if recent_returns else float("nan")
        self.progress.message(
            f"step {step:>8} | episodes {episode:>6} | mean return (last 100) {recent:8.2f} | "
            f"eval {result.mean:8.2f} ± {result.std:6.2f} | {timing_text(timing)}"
            + ("" if confirmation is None else f" | new episodes {confirmation.mean:.2f}")
            + outcome
        )

    def _evaluation_report(self, step: int, episode: int, result: EvalResult) -> dict[str, Any]:
        """What `on_evaluation` is told after an evaluation."""
        record = self.record
        return {
            "seed": self.config.seed,  # several seeds in one process report to one callback
            "step": step,
            "episode": episode,
            "eval_return": result.mean,
            "eval_return_std": result.std,
            "best_return": record.best_mean,
            "solved": record.solved_step is not None,
            "solved_at_step": record.solved_step,
            "train_seconds": round(self.train_seconds(), 3),
            "checkpoint_step": record.step,
        }

    def _write_eval_row(self, kind: str, step: int, episode: int, result: EvalResult) -> None:
        self._write_row(
            {
                "kind": kind,
                "step": step,
                "episode": episode,
                "return": result.mean,
                "return_std": result.std,
                "length": float(np.mean(result.lengths)),
            }
        )

    def finish(self, step: int, episode: int, agent: Agent) -> dict[str, Any]:
        """Save the final policy, evaluate final and best on fresh seeds, write eval.json and curve.png."""
        if self.record.last_eval_step != step:  # the final policy competes for "best" like every evaluated one
            self.evaluate(step, episode, agent)
        timing = self.timing(step)
        self.close()
        save_policy(self.path / FINAL_POLICY, self.config.algo, agent, self.env_spec, step)
        seed = FINAL_EVAL_SEED + 1000 * self.config.seed
        episodes = self.config.final_eval_episodes
        final = evaluate(agent, self.make_eval_env, episodes, seed=seed)
        # the best policy is the final one when the last evaluation ranked highest: same weights, same episodes
        best = (
            final
            if self.record.best_step == step
            else evaluate(load(self.path / BEST_POLICY), self.make_eval_env, episodes, seed=seed)
        )
        summary = {
            "algo": self.config.algo,
            "env": self.config.env,
            "seed": self.config.seed,
            "steps": step,
            "episodes": episode,
            "updates": self.record.updates,
            **timing,
            "solve_threshold": self.threshold,
            "solved": self.record.solved_step is not None,
            "solved_at_step": self.record.solved_step,
            "solved_train_seconds": None if self.record.solved_time is None else round(self.record.solved_time, 3),
            "best_policy_step": self.record.best_step,
            "best": best.to_dict(),
            "final": final.to_dict(),
        }
        atomic_write_json(self.path / "eval.json", summary)
        self._plot()
        return summary

    def _plot(self, note: str = "") -> None:
        plot_runs([self.path], self.path / "curve.png", threshold=self.threshold, note=note)


def _file_bytes(path: Path) -> torch.Tensor | None:
    """A file's bytes as a tensor (a checkpoint loads with weights_only=True), None when it does not exist."""
    return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8) if path.is_file() else None


def _restore_best_policy(path: Path, state: dict[str, Any]) -> None:
    """Put back the best policy a checkpoint saw: one evaluated after the checkpoint (before a crash, or by the
    finishing evaluation of a run continued to a larger budget) is not part of the resumed run's record."""
    if "best_policy" not in state:  # a checkpoint from before best policies were kept in them
        return
    data = state["best_policy"]
    if data is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, lambda stream: stream.write(data.numpy().tobytes()))


def timing_text(timing: dict[str, float]) -> str:
    """'4100 training steps/s, evaluating 83% of the time: 690 steps/s'."""
    return (
        f"{timing['train_steps_per_second']:.0f} training steps/s, evaluating "
        f"{100 * timing['eval_fraction']:.0f}% of the time: {timing['steps_per_second']:.0f} steps/s"
    )
