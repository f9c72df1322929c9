"""The one exception type for mistakes a user can fix: the CLI prints it as one line, exit code 2."""


class DeeprlError(Exception):
    """Bad input (unknown env, invalid value, unreadable file): reported without a traceback."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; the CLI exits with 130."""
