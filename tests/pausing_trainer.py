"""`python -m deeprl ARGS...` that freezes itself in the middle of one file write, for tests to SIGKILL there.

    python tests/pausing_trainer.py PATTERN N ARGS...

The N-th atomic write (deeprl.files.atomic_write) of a file whose name matches the glob PATTERN writes the
first half of its bytes to the temporary file, then stops its own process with SIGSTOP. A stopped process
cannot move on, so the test that started it knows exactly where it is when it kills it.
"""

from __future__ import annotations

import fnmatch
import io
import os
import runpy
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import deeprl.api
import deeprl.cli
import deeprl.files

real_atomic_write = deeprl.files.atomic_write


def half_then_stop(write: Callable[[IO[bytes]], None]) -> Callable[[IO[bytes]], None]:
    def write_half(stream: IO[bytes]) -> None:
        buffer = io.BytesIO()
        write(buffer)
        data = buffer.getvalue()
        stream.write(data[: len(data) // 2])
        stream.flush()  # the half is in the file, not only in this process's buffer
        os.kill(os.getpid(), signal.SIGSTOP)
        stream.write(data[len(data) // 2 :])

    return write_half


def main() -> None:
    pattern, occurrence, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    matches = 0

    def pausing_atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
        nonlocal matches
        if fnmatch.fnmatch(Path(path).name, pattern):
            matches += 1
            if matches == occurrence:
                write = half_then_stop(write)
        real_atomic_write(path, write)

    # Every deeprl module imported so far that holds its own reference; modules imported later get the
    # pausing one from deeprl.files, and its other writers call atomic_write through deeprl.files.
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "deeprl" and getattr(module, "atomic_write", None) is real_atomic_write:
            module.atomic_write = pausing_atomic_write
    sys.argv = ["deeprl", *args]
    runpy.run_module("deeprl", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
