"""Run many `deeprl` command lines as real child processes without paying the imports each time.

`CliForker` starts one Python process (`python -m tests.forking_cli`) that imports deeprl, torch and
Gymnasium once (8-10 s on this machine) and then forks a child per command line: the child changes to the case's
folder, points its stdout and stderr at files, runs `deeprl.cli.main(args)` and exits with its code. Each
case is still its own process, with its own exit code, output and files; only the import is shared. The
bad-input tables (dozens of cases that each end within a second of starting) run in a minute instead of
several.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PARALLEL = 2  # children at once
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    args: list[str]
    cwd: Path
    python_path: list[str]  # prepended to sys.path in the child (a module that shadows one, e.g. `ray`)


class CliForker:
    """The pre-imported process, kept for several batches: `run(cases)` forks a child per case (two at a
    time) and returns their results in order. Use as a context manager."""

    def __init__(self, env: dict[str, str]) -> None:
        # started in the checkout's root, so that `-m tests.forking_cli` imports from it whatever the env says
        self.server = subprocess.Popen([sys.executable, "-m", "tests.forking_cli"], env=env, text=True, cwd=REPO,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, cases: list[Case], timeout: float = 600) -> list[subprocess.CompletedProcess]:
        jobs = [{"args": [str(arg) for arg in case.args], "cwd": str(case.cwd), "python_path": case.python_path}
                for case in cases]
        self.server.stdin.write(json.dumps(jobs) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the forking CLI server ended (exit code {self.server.wait(timeout)})")
        return [subprocess.CompletedProcess(["deeprl", *job["args"]], result["code"], result["stdout"],
                                            result["stderr"])
                for job, result in zip(jobs, json.loads(line), strict=True)]

    def __enter__(self) -> CliForker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


def run_cli_cases(cases: list[Case], env: dict[str, str], timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Each case's CompletedProcess (args, returncode, stdout, stderr), in order."""
    with CliForker(env) as forker:
        return forker.run(cases, timeout)


def _child(job: dict, out_path: str, err_path: str) -> None:
    """In the forked child: run one command line; never return."""
    code = 1
    try:
        os.chdir(job["cwd"])
        for stream, path in ((1, out_path), (2, err_path)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(descriptor, stream)
            os.close(descriptor)
        sys.path[:0] = job["python_path"]
        from deeprl.cli import main

        code = main(job["args"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # a traceback, exactly as the real command would print it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    """Read a batch of jobs per stdin line; answer each with a line of results."""
    import deeprl.algos
    import deeprl.api
    import deeprl.cli  # noqa: F401

    with tempfile.TemporaryDirectory() as folder:
        for line in sys.stdin:
            print(json.dumps(_run_batch(json.loads(line), Path(folder))), flush=True)


def _run_batch(jobs: list[dict], folder: Path) -> list[dict]:
    results: list[dict | None] = [None] * len(jobs)
    running: dict[int, tuple[int, str, str]] = {}
    pending = list(range(len(jobs)))
    while pending or running:
        while pending and len(running) < PARALLEL:
            index = pending.pop(0)
            out_path, err_path = str(folder / f"{index}.out"), str(folder / f"{index}.err")
            pid = os.fork()
            if pid == 0:
                _child(jobs[index], out_path, err_path)
            running[pid] = (index, out_path, err_path)
        pid, status = os.wait()
        index, out_path, err_path = running.pop(pid)
        results[index] = {"code": os.waitstatus_to_exitcode(status), "stdout": Path(out_path).read_text(),
                          "stderr": Path(err_path).read_text()}
    return results


if __name__ == "__main__":
    _serve()
