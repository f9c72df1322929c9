"""The one exception type for mistakes a user can fix: the CLI prints it as one line, exit code 2."""

import sys


def warn(message: str) -> None:
    """One line on stderr for something the user should know but that does not stop the run."""
    print(f"deeprl: warning: {message}", file=sys.stderr, flush=True)


class DeeprlError(Exception):
    """Bad input (unknown env, invalid value, unreadable file): reported without a traceback."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; the CLI exits with 130."""
