"""What several test files share: the environment of deeprl's subprocesses, the pre-imported process that forks
them, and the start-kill-resume harness of the exact-resume tests.

Command lines run as real child processes forked from one process per test worker that has imported deeprl
already (tests/forking_cli.py): each has its own pid, exit code, output and files, and signals reach it, but
none pays the 8-15 s of importing torch and Gymnasium.

Exact resume: a `deeprl train` process is killed and resumed, and must end with the same weights (bit for bit),
the same metrics.csv and eval.json (wall-clock aside) and the same TensorBoard scalars as an uninterrupted run.
Every kill is placed by an event, never by a delay: the trainer is frozen with SIGSTOP once what the test waits
for has happened (a checkpoint's manifest appeared, metrics.csv grew past the newest checkpoint), or freezes
itself in the middle of writing a file (tests/pausing_trainer.py), and only then SIGKILLed.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.forking_cli import CliForker, ForkedProcess
from tests.tensorboard_events import tensorboard_scalars

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def subprocess_env() -> dict[str, str]:
    """The environment of a deeprl subprocess: this checkout's src/ first on the import path, so it runs the code
    under test whatever is installed, and the checkout itself, so `tests.custom_envs:...` imports from any
    folder; no display (pygame draws off-screen)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")]))
    env["SDL_VIDEODRIVER"] = "dummy"
    env["SDL_AUDIODRIVER"] = "dummy"
    env.pop("DISPLAY", None)
    return env


_forker: CliForker | None = None


def forker() -> CliForker:
    """This test process's forking server, started on first use and ended with the session."""
    global _forker
    if _forker is None or not _forker.alive:
        _forker = CliForker(subprocess_env())
    return _forker


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _forker is not None:
        _forker.close()


# Rough seconds of a test by its slow mark (measured: Ray sweeps 20-26 s, learning runs 3-19 s, kill-and-resume
# 2-12 s; other tests mostly well under a second), for sharing the slow tests out before any run timed them.
SLOW_SECONDS = {"ray": 20.0, "learning": 8.0, "resume": 4.0}


def expected_seconds(item: pytest.Item) -> float:
    return max((seconds for mark, seconds in SLOW_SECONDS.items() if item.get_closest_marker(mark)), default=0.0)


def xdist_shares(count: int, workers: int) -> list[int]:
    """How many of `count` tests pytest-xdist's work-stealing scheduler first hands each of `workers` workers: a
    contiguous run of the collection each, in order (WorkStealingScheduling.check_schedule)."""
    shares = []
    for index in range(workers):
        shares.append(count // (workers - index))
        count -= shares[-1]
    return shares


def shares_fixtures(item: pytest.Item) -> bool:
    """Whether the test uses a fixture of this project made once per module or session (a reference run, a batch
    of bad inputs): its file's tests are best run by one worker, which makes it once."""
    return any(
        definitions[-1].scope != "function" and definitions[-1].baseid
        for definitions in item._fixtureinfo.name2fixturedefs.values()
    )


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: the shares are of the tests that run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers (every worker collects, and must order, the same way), the order that makes each worker's
    first share of the collection (see xdist_shares) start with an even part of the slow tests, longest first,
    then tests that share a module's fixture, then the others. A file's slow tests stay together, and so do a
    file's tests that share a fixture, so that one worker makes it once (pytest makes a module's fixture again
    when that module's tests come back after another's); a worker that runs out takes tests from the end of
    another's share, which are short and share nothing. A run without workers keeps the files' order."""
    if not hasattr(config, "workerinput"):
        return
    shares = xdist_shares(len(items), config.workerinput["workercount"])
    slow_files: dict[str, list[pytest.Item]] = {}
    sharing_files: dict[str, list[pytest.Item]] = {}
    others: list[pytest.Item] = []
    for item in items:
        file = item.nodeid.split("::")[0]
        if expected_seconds(item):
            slow_files.setdefault(file, []).append(item)
        elif shares_fixtures(item):
            sharing_files.setdefault(file, []).append(item)
        else:
            others.append(item)
    parts: list[list[pytest.Item]] = [[] for _ in shares]
    # longest-processing-time first: each file's slow tests to the share with the fewest seconds so far
    seconds = [0.0 for _ in shares]
    for tests in sorted(slow_files.values(), key=lambda tests: -sum(map(expected_seconds, tests))):
        emptiest = min(range(len(shares)), key=seconds.__getitem__)
        parts[emptiest] += tests
        seconds[emptiest] += sum(map(expected_seconds, tests))
    for tests in sorted(sharing_files.values(), key=len, reverse=True):  # each to the share with the most room
        roomiest = max(range(len(shares)), key=lambda index: shares[index] - len(parts[index]))
        parts[roomiest] += tests
    ordered: list[pytest.Item] = []
    for share, part in zip(shares, parts):
        room = max(0, share - len(part))
        ordered += part + others[:room]
        del others[:room]
    items[:] = ordered + others


def start_deeprl(args: list[Any], cwd: Path, **options: Any) -> ForkedProcess:
    """`deeprl ARGS` as a forked process, without waiting; `options` as CliForker.start's (stdout, stderr, env,
    python_path, pause_at, file_size_limit, script)."""
    return forker().start([str(arg) for arg in args], cwd, **options)


def run_deeprl(*args: Any, cwd: Path, timeout: float = 300, **options: Any) -> subprocess.CompletedProcess:
    """`deeprl ARGS` run to its end as a forked process: its exit code, stdout and stderr."""
    process = start_deeprl(list(args), cwd, **options)
    try:
        process.wait(timeout)
    finally:
        if process.returncode is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, process.stdout(), process.stderr())


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `directory` with its size and modification time."""
    found = {}
    for root, folders, files in os.walk(directory):
        for name in folders + files:
            path = Path(root) / name
            stat = path.stat()
            found[str(path.relative_to(directory))] = (stat.st_size, stat.st_mtime_ns)
    return found


def rows_without_time(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return [{key: value for key, value in row.items() if key != "time_s"} for row in csv.DictReader(stream)]


def wait_for(
    condition: Callable[[], bool], what: str, process: ForkedProcess | None = None, timeout: float = 180
) -> None:
    """Poll until `condition()` holds; fail if `process` ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None:
            assert process.poll() is None, f"the process ended before {what}: {process.stderr()[-2000:]}"
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.02)


# ------------------------------------------------------------------------------- the start-kill-resume harness


class Trainer:
    """A forked `deeprl train` process (frozen halfway through a write when `pause_at` is given), its stderr in a
    file beside the run directory."""

    def __init__(
        self,
        run_dir: Path,
        args: list[str],
        pause_at: tuple[str, int] | None = None,
        algo: str = "dqn",
        env: str = "CartPole-v1",
    ) -> None:
        self.run_dir, self.algo, self.env = run_dir, algo, env
        self.log = run_dir.with_name(run_dir.name + ".stderr")
        self.process = start_deeprl(
            ["train", algo, env, "--run-dir", run_dir, *args],
            run_dir.parent,
            stdout=Path(os.devnull),
            stderr=self.log,
            pause_at=pause_at,
        )

    def state(self) -> str:
        """The process state letter from /proc: R running, S sleeping, T stopped, Z exited."""
        return Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        wait_for(condition, what, self.process)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.wait_for(lambda: self.state() == "T", "it stopped")

    def kill(self) -> None:
        self.process.kill()

    def stderr(self) -> str:
        return self.log.read_text()


def train_in_background(algo: str, env: str, run_dir: Path, args: list[str]) -> ForkedProcess:
    """An uninterrupted run to compare a resumed one with."""
    return start_deeprl(["train", algo, env, "--run-dir", run_dir, *args], run_dir.parent, stdout=Path(os.devnull))


def finished(process: ForkedProcess, timeout: float = 300) -> None:
    assert process.wait(timeout) == 0, process.stderr()[-2000:]


# a short seeded PPO run of 2 env copies to kill and resume: a checkpoint every 256 of its 768 steps, evaluations and
# TensorBoard on, small networks (the Dict-with-picture resume tests run it, with and without normalisation)
SHORT_PPO_RUN = [
    "--seed",
    "0",
    "--steps",
    "768",
    "--quiet",
    "--set",
    "hidden_sizes=32",
    "--set",
    "n_envs=2",
    "--set",
    "n_steps=64",
    "--set",
    "batch_size=32",
    "--set",
    "n_epochs=2",
    "--set",
    "checkpoint_every=256",
    "--set",
    "eval_every=384",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`uninterrupted(algo, env, args)`: the run directory of an uninterrupted `deeprl train` to compare resumed
    runs with, made once per module and (algo, env, args), when a test first asks for it."""
    made: dict[tuple[str, str, tuple[str, ...]], Path] = {}

    def run(algo: str, env: str, args: list[str]) -> Path:
        key = (algo, env, tuple(args))
        if key not in made:
            run_dir = tmp_path_factory.mktemp(f"uninterrupted-{algo}") / "run"
            finished(train_in_background(algo, env, run_dir, args))
            made[key] = run_dir
        return made[key]

    return run


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    return run_deeprl("resume", run_dir, "--quiet", cwd=run_dir.parent)


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step-*.json"))


def newest_step(run_dir: Path) -> int:
    found = checkpoints(run_dir)
    return int(found[-1].stem.split("-")[1]) if found else -1


def metrics_size(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    return path.stat().st_size if path.is_file() else 0


def stop_after_checkpoint(trainer: Trainer, step: int) -> None:
    """Freeze the trainer once a checkpoint at `step` or later is complete (its manifest is written last)."""
    trainer.wait_for(lambda: newest_step(trainer.run_dir) >= step, f"a checkpoint at step {step} or later")
    trainer.freeze()


def stop_with_rows_past_checkpoint(trainer: Trainer, step: int) -> dict[str, Any]:
    """Freeze the trainer when metrics.csv holds rows written after its newest checkpoint (at `step` or later),
    which a resumed run must drop and write again; the newest checkpoint's run state."""
    from deeprl.checkpoint import load_latest_checkpoint  # deeprl's modules load when a test needs them

    stop_after_checkpoint(trainer, step)
    while True:  # checked while frozen: the files cannot change under the check
        state = load_latest_checkpoint(trainer.run_dir, trainer.algo, trainer.env)["run"]
        size = metrics_size(trainer.run_dir)
        if size > state["metrics_bytes"]:
            return state
        trainer.process.send_signal(signal.SIGCONT)
        trainer.wait_for(lambda old=size: metrics_size(trainer.run_dir) > old, "a row after the checkpoint")
        trainer.freeze()


def stop_in_write(trainer: Trainer) -> None:
    """Wait until the pausing trainer has stopped itself halfway through the write it was told to pause."""
    trainer.wait_for(lambda: trainer.state() == "T", "the paused write")


def metrics_without_time(run_dir: Path) -> list[str]:
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0].endswith(",time_s")
    return [line.rsplit(",", 1)[0] for line in lines]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def final_evaluation_replayed(run_dir: Path, policy: str, env: str, episodes: int) -> list[float]:
    """The returns a run's policy file earns on the run's final-evaluation episodes (eval.json's seeds), loaded
    afresh: equal to eval.json's when the file holds the policy that was scored."""
    import deeprl
    from deeprl.run import FINAL_EVAL_SEED

    seed = json.loads((run_dir / "eval.json").read_text())["seed"]
    replayed = deeprl.evaluate(
        deeprl.load(run_dir / policy), env, episodes=episodes, seed=FINAL_EVAL_SEED + 1000 * seed
    )
    return replayed.returns.tolist()


def summary_without_timing(run_dir: Path) -> dict[str, Any]:
    from deeprl.run import TIMING_KEYS

    summary = json.loads((run_dir / "eval.json").read_text())
    return {key: value for key, value in summary.items() if key not in (*TIMING_KEYS, "solved_train_seconds")}


def assert_same_run(
    run_dir: Path, reference: Path, tags: tuple[str, ...] = ("train/return", "train/loss", "eval/return")
) -> None:
    assert metrics_without_time(run_dir) == metrics_without_time(reference)
    for name in ("policy.pt", "best_policy.pt"):
        expected, actual = weights(reference / name), weights(run_dir / name)
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
    assert summary_without_timing(run_dir) == summary_without_timing(reference)
    # TensorBoard as it shows the runs: a resumed run's purge hides what the killed process wrote after its
    # checkpoint; every (tag, step, value), the checkpoint step's included, must be the uninterrupted run's.
    scalars, expected_scalars = tensorboard_scalars(run_dir), tensorboard_scalars(reference)
    assert set(tags) <= set(expected_scalars)
    assert scalars.keys() == expected_scalars.keys()
    for tag, expected_points in expected_scalars.items():
        assert scalars[tag] == expected_points, tag


def assert_resumes_identically(run_dir: Path, reference: Path, **same_run: Any) -> subprocess.CompletedProcess:
    assert not (run_dir / "eval.json").exists()
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference, **same_run)
    assert len(checkpoints(run_dir)) <= 2  # only the newest two are kept
    return result


def kill_and_resume(
    tmp_path: Path,
    reference: Path,
    args: list[str],
    step: int,
    algo: str = "dqn",
    env: str = "CartPole-v1",
    **same_run: Any,
) -> dict[str, Any]:
    """Kill a trainer with rows written past its checkpoint at `step` or later, resume it, and compare the
    finished run with `reference`; the run state of the checkpoint it resumed from."""
    trainer = Trainer(tmp_path / "run", args, algo=algo, env=env)
    state = stop_with_rows_past_checkpoint(trainer, step)
    trainer.kill()
    assert state["step"] >= step
    assert_resumes_identically(trainer.run_dir, reference, **same_run)
    return state
