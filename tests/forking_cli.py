"""Run `deeprl` command lines as real child processes without paying the imports each time.

`CliForker` starts one Python process (`python -m tests.forking_cli`) that imports deeprl, torch, Gymnasium and
what a training run loads on its way (TensorBoard, matplotlib, torch._dynamo: 8-15 s on a slow machine) once,
and then forks a child per command line: the child changes to its folder, points its stdout and stderr at
files, runs `deeprl.cli.main(args)` and exits with its code. Each child is still its own process, with its own
pid, exit code, output and files, that SIGSTOP, SIGINT and SIGKILL reach; only the imports are shared.

`start` returns at once with a `ForkedProcess` (pid, poll, wait, send_signal, kill, as `subprocess.Popen`);
`run` runs a batch, two at a time, and returns their `CompletedProcess`es in order.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PARALLEL = 2  # children at once in `run`
REPO = Path(__file__).resolve().parents[1]
# Loaded lazily by a training run (the first optimiser step, checkpoints, TensorBoard, the learning curve, the
# envs' modules) and by watch (GIF and MP4 writers, the text on frames): imported before forking, so that no
# child pays for them (the curve's Figure alone was ~0.3 s of a 0.3-1.5 s child's CPU, measured).
PRELOADED = (
    "torch._dynamo",
    "torch.profiler",
    "torch.utils.serialization",
    "torch.utils.tensorboard",
    "matplotlib.backends.backend_agg",
    "matplotlib.figure",
    "matplotlib.dates",
    "PIL.PngImagePlugin",
    "imageio.v2",
    "imageio.plugins.pillow",
    "imageio.plugins.ffmpeg",
    "pygame.freetype",
    "gymnasium.envs.classic_control",
    "gymnasium.envs.box2d",
    "gymnasium.envs.toy_text",
)


@dataclass
class Case:
    args: list[str]
    cwd: Path
    python_path: list[str] = field(default_factory=list)  # prepended to sys.path in the child (e.g. a `ray` stub)
    env: dict[str, str | None] = field(default_factory=dict)  # set in the child's environment (None: removed)


class ForkedProcess:
    """A child of the forking server, driven like `subprocess.Popen`: its exit code arrives through the server,
    which is its parent and reaps it."""

    def __init__(self, forker: CliForker, pid: int, args: list[str], stdout: Path, stderr: Path) -> None:
        self.forker, self.pid, self.args = forker, pid, args
        self.stdout_path, self.stderr_path = stdout, stderr

    @property
    def returncode(self) -> int | None:
        return self.forker.exit_codes.get(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self.forker.changed:
            if not self.forker.changed.wait_for(lambda: self.returncode is not None or not self.forker.alive, timeout):
                raise subprocess.TimeoutExpired(self.args, timeout)
        if self.returncode is None:
            raise RuntimeError(f"the forking server ended before process {self.pid} did")
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:  # once reaped, the pid may belong to another process
            with contextlib.suppress(ProcessLookupError):  # ended, its exit code on the way
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
        self.wait(timeout=60)

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()


class CliForker:
    """The pre-imported process (tests/conftest.py keeps one per test process); `close()` ends it."""

    def __init__(self, env: dict[str, str]) -> None:
        # started in the checkout's root, so that `-m tests.forking_cli` imports from it whatever the env says
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.forking_cli"],
            env=env,
            text=True,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.changed = threading.Condition()
        self.alive = True
        self.pids: dict[int, int] = {}  # job id -> pid
        self.exit_codes: dict[int, int] = {}  # pid -> exit code (negative: the signal that ended it)
        self.next_id = 0
        self.reader = threading.Thread(target=self._read_replies, daemon=True)
        self.reader.start()
        self.folder = tempfile.TemporaryDirectory(prefix="forked-")

    def _read_replies(self) -> None:
        try:
            for line in self.server.stdout:
                reply = json.loads(line)
                with self.changed:
                    if "code" in reply:
                        self.exit_codes[reply["pid"]] = reply["code"]
                    else:
                        self.pids[reply["id"]] = reply["pid"]
                    self.changed.notify_all()
        finally:
            with self.changed:
                self.alive = False
                self.changed.notify_all()

    def start(
        self,
        args: list[str],
        cwd: Path,
        stdout: Path | None = None,
        stderr: Path | None = None,
        env: dict[str, str | None] | None = None,
        python_path: Sequence[str] = (),
        pause_at: tuple[str, int] | None = None,
        file_size_limit: int | None = None,
        script: Path | None = None,
    ) -> ForkedProcess:
        """Fork `deeprl ARGS` (or `python SCRIPT ARGS`) in `cwd`; stdout and stderr go to the files given (new
        ones in a temporary folder if not). `env` is added to the server's environment (None removes a variable),
        `pause_at` freezes the child halfway through a write (tests/pausing_trainer.py), `file_size_limit` sets
        RLIMIT_FSIZE."""
        with self.changed:
            job_id, self.next_id = self.next_id, self.next_id + 1
        stdout = Path(stdout or Path(self.folder.name) / f"{job_id}.out")
        stderr = Path(stderr or Path(self.folder.name) / f"{job_id}.err")
        for path in (stdout, stderr):
            if path.is_file() or not path.exists():  # empty from the start: readable before the child writes
                path.write_bytes(b"")
        job = {
            "id": job_id,
            "args": [str(arg) for arg in args],
            "cwd": str(cwd),
            "stdout": str(stdout),
            "stderr": str(stderr),
            "env": env or {},
            "python_path": list(python_path),
            "pause_at": pause_at,
            "file_size_limit": file_size_limit,
            "script": script and str(script),
        }
        with self.changed:
            self.server.stdin.write(json.dumps(job) + "\n")
            self.server.stdin.flush()
            if not self.changed.wait_for(lambda: job_id in self.pids or not self.alive, 60):
                raise RuntimeError("the forking server did not answer within 60 s")
            if job_id not in self.pids:
                raise RuntimeError(f"the forking server ended (exit code {self.server.wait(60)})")
            pid = self.pids.pop(job_id)
        shown = ["python", str(script), *job["args"]] if script else ["deeprl", *job["args"]]
        return ForkedProcess(self, pid, shown, stdout, stderr)

    def run(self, cases: list[Case], timeout: float = 600) -> list[subprocess.CompletedProcess]:
        """Each case's CompletedProcess (args, returncode, stdout, stderr), in order, two running at a time."""
        deadline = time.monotonic() + timeout
        results: list[subprocess.CompletedProcess | None] = [None] * len(cases)
        running: dict[int, ForkedProcess] = {}
        pending = list(enumerate(cases))
        try:
            while pending or running:
                while pending and len(running) < PARALLEL:
                    index, case = pending.pop(0)
                    running[index] = self.start(case.args, case.cwd, env=case.env, python_path=case.python_path)
                with self.changed:
                    self.changed.wait_for(
                        lambda: any(child.returncode is not None for child in running.values()) or not self.alive,
                        max(0.0, deadline - time.monotonic()),
                    )
                finished = [index for index, child in running.items() if child.returncode is not None]
                if not finished and not self.alive:
                    raise RuntimeError(f"the forking server ended (exit code {self.server.wait(60)})")
                if not finished:
                    raise subprocess.TimeoutExpired(running[min(running)].args, timeout)
                for index in finished:
                    child = running.pop(index)
                    results[index] = subprocess.CompletedProcess(
                        child.args, child.returncode, child.stdout(), child.stderr()
                    )
        finally:
            for child in running.values():
                child.kill()
        return results

    def close(self) -> None:
        """Ends the server; children still running are killed."""
        if self.server.stdin and not self.server.stdin.closed:
            self.server.stdin.close()
        self.server.wait(timeout=60)
        self.reader.join(timeout=10)
        self.folder.cleanup()


# ------------------------------------------------------------------------------------------- the server


def _child(job: dict) -> None:
    """In the forked child: run one command line, as `python -m deeprl` would; never return."""
    code = 1
    try:
        os.chdir(job["cwd"])
        for stream, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, job["stdout"], os.O_WRONLY),
            (2, job["stderr"], os.O_WRONLY),
        ):
            descriptor = os.open(path, flags, 0o644)
            os.dup2(descriptor, stream)
            os.close(descriptor)
        for name, value in job["env"].items():  # None: not set in the child
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if job["file_size_limit"] is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (job["file_size_limit"], job["file_size_limit"]))
        if job["pause_at"] is not None:
            from tests.pausing_trainer import pause_in_write

            pause_in_write(*job["pause_at"])
        sys.path[:0] = job["python_path"]
        if job["script"] is not None:
            import runpy

            sys.argv = [job["script"], *job["args"]]
            sys.path.insert(0, str(Path(job["script"]).parent))
            runpy.run_path(job["script"], run_name="__main__")
            code = 0
        else:
            from deeprl.cli import main

            sys.argv = ["deeprl", *job["args"]]
            code = main(job["args"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):  # SystemExit("message"): Python prints it, as the exit does
            print(stop.code, file=sys.stderr)
    except BaseException:  # a traceback, exactly as the real command would print it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # as an interpreter's exit does when its output cannot be flushed (a closed pipe)
            code = 120
        os._exit(code)


def _preload() -> None:
    """The command, the API and every algorithm with what they import; not Ray (a sweep imports it on its own, and
    a test hides it from some children)."""
    import deeprl.algos
    import deeprl.api
    import deeprl.cli

    for module in pkgutil.walk_packages(deeprl.algos.__path__, "deeprl.algos."):
        importlib.import_module(module.name)
    for name in PRELOADED:
        importlib.import_module(name)
    from PIL import Image

    Image.init()  # Pillow's image plugins, which it imports on a child's first picture file otherwise


def _reply(channel: int, message: dict) -> None:
    os.write(channel, (json.dumps(message) + "\n").encode())


def _serve() -> None:
    """Fork a child per job line read on stdin; say each child's pid when forked and its exit code when reaped.
    One thread only: a fork copies only the thread that calls it, and nothing here holds a lock meanwhile."""
    channel = os.dup(1)  # the replies' own descriptor: whatever an import prints goes to stderr instead
    os.set_inheritable(channel, False)
    os.dup2(2, 1)
    _preload()
    children: set[int] = set()
    pending = b""
    reading = True
    while reading:
        readable, _, _ = select.select([0], [], [], 0.02)
        if readable:
            data = os.read(0, 1 << 16)
            reading = bool(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                job = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    os.close(channel)
                    _child(job)
                children.add(pid)
                _reply(channel, {"id": job["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.remove(pid)
            _reply(channel, {"pid": pid, "code": os.waitstatus_to_exitcode(status)})
    for pid in children:  # the tests are over: nothing left is needed
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    _serve()
