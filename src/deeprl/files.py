"""Atomic file writing: write a temporary file beside the target, then rename it into place, so a crash
never leaves a half-written model, config or plot."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from deeprl.errors import DeeprlError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def file_in_the_way(folder: Path) -> Path | None:
    """The existing file (not a folder) that `folder` or one of its parents would have to be, if any."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def check_writable(path: str | Path, what: str) -> None:
    """Refuse an output file that cannot be written (a read-only or virtual file system, a file where a folder
    should be) before any work is done: one line naming the path and the reason, nothing left behind."""
    path = Path(path)
    if path.is_dir():
        raise DeeprlError(f"cannot write {what} {path}: it is a directory")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise DeeprlError(f"cannot write {what} {path}: {blocker} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or error
        raise DeeprlError(f"cannot write {what} {path}: its folder cannot be created ({reason})") from None
    try:
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise DeeprlError(f"cannot write {what} {path}: {error.strerror or error}") from None


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give them the usual mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode()))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda stream: torch.save(obj, stream))
