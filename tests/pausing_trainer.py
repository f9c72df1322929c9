"""A deeprl process that freezes itself in the middle of one file write, for tests to SIGKILL there.

`pause_in_write(PATTERN, N)`, called in a forked trainer before it runs (tests/forking_cli.py, `pause_at`), makes
the N-th atomic write (deeprl.files.atomic_write) of a file whose name matches the glob PATTERN write the first
half of its bytes to the temporary file, then stop its own process with SIGSTOP. A stopped process cannot move
on, so the test that started it knows exactly where it is when it kills it.
"""

from __future__ import annotations

import fnmatch
import io
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

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


def pause_in_write(pattern: str, occurrence: int) -> None:
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
