"""Full training checkpoints: everything a run needs to continue exactly as if never interrupted.

A checkpoint is two files in `RUN/checkpoints/`: `step-N.pt` (a `torch.save` of plain data: tensors,
numbers, strings, RNG states; it loads with `weights_only=True`) and `step-N.json`, its manifest (format,
deeprl version, algorithm, env, step, and the SHA-256 of the .pt file). Both are written atomically, the
manifest last, so a checkpoint without a manifest or whose hash does not match is incomplete or damaged
and the previous one is used instead. The newest `KEEP` checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeprl.errors import DeeprlError, warn
from deeprl.files import atomic_write, atomic_write_json
from deeprl.version import __version__

CHECKPOINT_FORMAT = "deeprl-checkpoint"
# The layout of the saved state; 2: envs rebuilt by replaying their episodes (EnvRunner). Older ones cannot resume.
CHECKPOINT_LAYOUT = 2
KEEP = 2


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], algo: str, env: str) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    folder = checkpoint_dir(run_dir)
    path = folder / f"step-{step:012d}.pt"
    atomic_write(path, lambda stream: stream.write(data))
    atomic_write_json(
        path.with_suffix(".json"),
        {
            "format": CHECKPOINT_FORMAT,
            "deeprl_version": __version__,
            "algo": algo,
            "env": env,
            "step": step,
            "layout": CHECKPOINT_LAYOUT,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        },
    )
    for old in sorted(folder.glob("step-*.json"))[:-KEEP]:
        old.unlink(missing_ok=True)
        old.with_suffix(".pt").unlink(missing_ok=True)
    return path


def load_latest_checkpoint(run_dir: Path, algo: str, env: str, at_most: int | None = None) -> dict[str, Any]:
    """The newest intact checkpoint's state (of a step up to `at_most`, where given). Skipping a damaged newer one
    is reported in one line; when none is usable the error (one line) says why the newest was refused."""
    manifests = sorted(checkpoint_dir(run_dir).glob("step-*.json"), reverse=True)
    if at_most is not None:
        manifests = [path for path in manifests if int(path.stem.removeprefix("step-")) <= at_most]
    problems = []
    for manifest_path in manifests:
        state = _check(manifest_path, algo, env)
        if isinstance(state, str):
            problems.append(state)
            continue
        if problems:
            warn(f"{'; '.join(problems)}; resuming from {manifest_path.with_suffix('.pt').name}")
        return state
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise DeeprlError(f"{run_dir} has no intact checkpoint to resume from{detail}")


def _check(manifest_path: Path, algo: str, env: str) -> dict[str, Any] | str:
    """The checkpoint's state, or a one-line reason it cannot be used."""
    name = manifest_path.with_suffix(".pt").name
    try:
        manifest = json.loads(manifest_path.read_text())
        data = manifest_path.with_suffix(".pt").read_bytes()
    except (OSError, ValueError) as error:
        return f"checkpoint {name} is unreadable ({type(error).__name__})"
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        return f"{manifest_path.name} is not a deeprl checkpoint manifest"
    if manifest.get("algo") != algo or manifest.get("env") != env:
        return f"checkpoint {name} belongs to {manifest.get('algo')} on {manifest.get('env')}, not {algo} on {env}"
    if manifest.get("layout", 1) != CHECKPOINT_LAYOUT:
        layout = manifest.get("layout", 1)
        return f"checkpoint {name} comes from an older deeprl (layout {layout}) and cannot be resumed by this one"
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        return f"checkpoint {name} is corrupt or truncated (checksum mismatch)"
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # weights-only loading runs no code; any failure means unusable
        return f"checkpoint {name} cannot be loaded ({type(error).__name__})"


# ------------------------------------------------------------------------------------------- RNG states


def process_rng_states(rng: np.random.Generator) -> dict[str, Any]:
    """The training loop's random states as plain data (NumPy arrays are not weights-only): its NumPy Generator,
    Python's `random` and torch's. The envs' own generators are kept by `EnvRunner.state_dict`."""
    return {
        "generator": rng.bit_generator.state,
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }


def restore_process_rng_states(states: dict[str, Any], rng: np.random.Generator) -> None:
    rng.bit_generator.state = states["generator"]
    random.setstate(_as_tuple(states["python"]))
    torch.set_rng_state(states["torch"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(item) for item in value) if isinstance(value, (list, tuple)) else value
