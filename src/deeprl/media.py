"""Pictures of runs: learning curves from `metrics.csv`, and videos of an agent playing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from deeprl.errors import DeeprlError
from deeprl.files import atomic_write

MOVING_AVERAGE = 100  # episodes, as the tutorials plot it


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    """Rows of a metrics.csv; a partial last line (a crash mid-write) is dropped."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DeeprlError(f"no metrics.csv in {path.parent}") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = list(csv.DictReader(lines))
    return [row for row in rows if None not in row.values() and None not in row]


def moving_average(values: Sequence[float], window: int = MOVING_AVERAGE) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start), as the seeds plot it."""
    values = np.asarray(values, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_runs(
    run_dirs: Sequence[str | Path], output: str | Path, threshold: float | None = None, title: str | None = None
) -> None:
    """Episode returns (faint), their 100-episode moving average, and evaluation means, per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    single = len(run_dirs) == 1
    for index, run_dir in enumerate(run_dirs):
        run_dir = Path(run_dir)
        rows = read_metrics(run_dir / "metrics.csv")
        train = [row for row in rows if row["kind"] == "train"]
        evals = [row for row in rows if row["kind"] == "eval"]
        color = f"C{index}"
        label = run_dir.name
        if train:
            steps = [int(row["step"]) for row in train]
            returns = [float(row["return"]) for row in train]
            if single:
                axes.plot(steps, returns, color=color, alpha=0.25, linewidth=0.8, label="episode return")
            axes.plot(
                steps, moving_average(returns), color=color, linewidth=2,
                label=f"{MOVING_AVERAGE}-episode mean" if single else label,
            )
        if evals:
            axes.plot(
                [int(row["step"]) for row in evals], [float(row["return"]) for row in evals],
                "o", color=color, markersize=4, label="greedy evaluation" if single else None,
            )
    if threshold is not None:
        axes.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"solved ({threshold:g})")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("return")
    axes.set_title(title or (Path(run_dirs[0]).name if single else "runs"))
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write(output, lambda stream: stream.write(buffer.getvalue()))


def play_frames(
    agent, make_env: Callable[..., gym.Env], episodes: int = 1, seed: int = 0, every: int = 1
) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames (every `every`-th) of greedy episodes, and each episode's return."""
    env = make_env(render_mode="rgb_array")
    frames: list[np.ndarray] = []
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            frames.append(env.render())
            total, step, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
                total += float(reward)
                step += 1
                done = terminated or truncated
                if step % every == 0 or done:
                    frames.append(env.render())
            returns.append(total)
    finally:
        env.close()
    return frames, returns


def write_video(frames: Sequence[np.ndarray], output: str | Path, fps: int = 30) -> None:
    """An .mp4 (H.264 via imageio-ffmpeg) or .gif of the frames, written atomically."""
    import imageio.v2 as imageio

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise DeeprlError(f"video must end in .mp4 or .gif (got '{output.name}')")
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.stem}.tmp{suffix}")
    try:
        if suffix == ".mp4":
            writer = imageio.get_writer(temporary, fps=fps, macro_block_size=1, codec="libx264", quality=7)
        else:
            writer = imageio.get_writer(temporary, mode="I", duration=1000 / fps, loop=0)
        with writer:
            for frame in frames:
                writer.append_data(frame)
        temporary.replace(output)
    finally:
        temporary.unlink(missing_ok=True)
