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
    """Episode returns (faint), their 100-episode moving average, evaluation means and solve checks, per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    single = len(run_dirs) == 1
    for index, run_dir in enumerate(run_dirs):
        run_dir = Path(run_dir)
        rows = read_metrics(run_dir / "metrics.csv")
        train = [row for row in rows if row["kind"] == "train"]
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
        for kind, marker, size, legend in (("eval", "o", 4, "greedy evaluation"),
                                           ("confirm", "x", 7, "check on new episodes")):
            points = [(int(row["step"]), float(row["return"])) for row in rows if row["kind"] == kind]
            if points:
                axes.plot(*zip(*points), marker, color=color, markersize=size, label=legend if single else None)
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


VIDEO_SUFFIXES = (".mp4", ".gif", ".html")


class Animation:
    """A self-contained HTML player of an episode's frames (play/pause, a slider, speed), for notebooks:
    Jupyter shows it inline (`_repr_html_`); `save("out.html")` writes it to a file."""

    def __init__(self, frames: Sequence[np.ndarray], fps: int = 30, returns: Sequence[float] = ()) -> None:
        if not frames:
            raise DeeprlError("an animation needs at least one frame")
        self.frame_count = len(frames)
        self.height, self.width = frames[0].shape[:2]
        self.returns = list(returns)
        self.html = animation_html(frames, fps)

    def _repr_html_(self) -> str:
        return self.html

    def save(self, output: str | Path) -> None:
        atomic_write(Path(output), lambda stream: stream.write(self.html.encode()))


def animation_html(frames: Sequence[np.ndarray], fps: int = 30) -> str:
    """HTML with every frame embedded as a PNG data URI and a small script stepping through them."""
    import base64
    import json
    import uuid

    from PIL import Image

    uris = []
    for frame in frames:
        encoded = io.BytesIO()
        Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(encoded, format="PNG", optimize=False)
        uris.append("data:image/png;base64," + base64.b64encode(encoded.getvalue()).decode("ascii"))
    element = f"deeprl-{uuid.uuid4().hex[:12]}"  # several animations can share one notebook page
    height, width = frames[0].shape[:2]
    return ANIMATION_TEMPLATE.format(
        id=element, width=width, height=height, last=len(uris) - 1, first=uris[0],
        frames=json.dumps(uris), interval=max(1, round(1000 / fps)),
    )


ANIMATION_TEMPLATE = """<div id="{id}" class="deeprl-animation">
<img width="{width}" height="{height}" src="{first}" alt="episode frame"><br>
<button data-action="play">play</button> <button data-action="pause">pause</button>
<input type="range" min="0" max="{last}" value="0" style="width:{width}px">
<span class="frame-number">0</span>/{last}
<script>
(function() {{
  const root = document.getElementById("{id}");
  const frames = {frames};
  const image = root.querySelector("img"), slider = root.querySelector("input");
  const label = root.querySelector(".frame-number");
  let timer = null;
  function show(index) {{ image.src = frames[index]; slider.value = index; label.textContent = index; }}
  function pause() {{ if (timer !== null) {{ clearInterval(timer); timer = null; }} }}
  function play() {{
    pause();
    timer = setInterval(function() {{ show((Number(slider.value) + 1) % frames.length); }}, {interval});
  }}
  root.querySelector('[data-action="play"]').onclick = play;
  root.querySelector('[data-action="pause"]').onclick = pause;
  slider.oninput = function() {{ pause(); show(Number(slider.value)); }};
}})();
</script>
</div>
"""


def animate(
    agent, env: str | Callable[..., gym.Env] | None = None, *, episodes: int = 1, seed: int = 0, every: int = 1,
    fps: int = 30,
) -> Animation:
    """An HTML animation of the agent playing greedily (seed 002 shows every 10th frame: every=10).

    `env` is an env id, a run directory, a function making envs (taking render_mode) or None for the
    env the agent was trained on (wrappers included).
    """
    from deeprl.envs import factory_for

    make = factory_for(env, agent)
    if every < 1 or episodes < 1:
        raise DeeprlError(f"every and episodes must be >= 1 (got every={every}, episodes={episodes})")
    frames, returns = play_frames(agent, make, episodes, seed=seed, every=every)
    return Animation(frames, fps, returns)


def write_video(frames: Sequence[np.ndarray], output: str | Path, fps: int = 30) -> None:
    """An .mp4 (H.264 via imageio-ffmpeg), .gif or .html (an Animation) of the frames, written atomically."""
    import imageio.v2 as imageio

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise DeeprlError(f"video must end in {', '.join(VIDEO_SUFFIXES)} (got '{output.name}')")
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        Animation(frames, fps).save(output)
        return
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
