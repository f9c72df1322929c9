"""The one exception type for mistakes a user can fix: the CLI prints it as one line, exit code 2; and the
other lines deeprl prints about a run (warnings; stdout whose reader has gone)."""

import io
import os
import sys


def warn(message: str) -> None:
    """One line on stderr for something the user should know but that does not stop the run."""
    print(f"deeprl: warning: {message}", file=sys.stderr, flush=True)


def discard_stdout() -> None:
    """Send whatever stdout still has to print to /dev/null: its reader has gone (`deeprl train ... | head -1`),
    and neither a later line nor Python's own flush at exit may fail on that."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):  # not a file (a notebook's stream): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


class DeeprlError(Exception):
    """Bad input (unknown env, invalid value, unreadable file): reported without a traceback."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; the CLI exits with 130."""
