"""Pictures of runs: learning curves from `metrics.csv`, and videos of an agent playing."""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from deeprl.action_masks import act_in
from deeprl.config_file import read_config_record
from deeprl.errors import DeeprlError
from deeprl.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MOVING_AVERAGE = 100  # episodes, as the tutorials plot it
PLOT_DPI = 100
MAX_LABEL_SETTINGS = 3  # differing settings a legend label names before "+N more"
UNKNOWN_PRESET = "preset ?"
POINT_STYLES = (("eval", "o", 4), ("confirm", "x", 7))  # metrics kind, marker, size
POINT_LEGEND = {"eval": "greedy evaluation", "confirm": "check on new episodes"}
# The file types a plot can be written as (what matplotlib writes), by suffix
IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg", ".eps": "eps"}
# Keys `--group-by` takes besides the settings in config.yaml: what names a run
RUN_KEYS = ("algo", "env", "preset", "seed")
# The legend sits beside the axes, never on the data (it hid evaluation points in a seven-run comparison)
LEGEND_PLACE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": 8}


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


@dataclass
class PlottedRun:
    """What a curve needs from a run directory: its metrics, what configured it and its solve line."""

    path: Path
    rows: list[dict[str, str]]
    algo: str | None
    preset: str | None
    settings: dict[str, Any]
    threshold: float | None

    @property
    def env(self) -> str | None:
        return self.settings.get("env")


def read_run(run_dir: str | Path, threshold: float | None = None) -> PlottedRun:
    """A run directory's metrics and config (a directory with only metrics.csv plots too, unlabelled)."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    algo, settings, preset = None, {}, None
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        algo, preset, settings = read_config_record(config_path)  # older runs lack the preset: None
    if threshold is None:
        threshold = run_threshold(run_dir, settings)
    return PlottedRun(run_dir, rows, algo, preset, settings, threshold)


def run_threshold(run_dir: Path, settings: dict[str, Any]) -> float | None:
    """The run's solve line: as its eval.json recorded it, else as configured, else the env's own."""
    try:
        recorded = json.loads((run_dir / "eval.json").read_text()).get("solve_threshold")
    except (OSError, ValueError, AttributeError):  # none yet, or unreadable: the line is drawn from the config
        recorded = None
    if isinstance(recorded, (int, float)):
        return float(recorded)
    if settings.get("solve_threshold") is not None:
        return float(settings["solve_threshold"])
    return env_threshold(settings.get("env"))


def env_threshold(env_id: Any) -> float | None:
    """The registered env's reward_threshold; None for custom "pkg.module:Class" ids and unknown ids."""
    # a "module:Class" id would be imported by gym.spec: plotting must not run a user's module
    if not isinstance(env_id, str) or ":" in env_id:
        return None
    try:
        threshold = gym.spec(env_id).reward_threshold
    except gym.error.Error:
        return None
    return None if threshold is None else float(threshold)


def format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def identity(run: PlottedRun) -> dict[str, str | None]:
    """The fields a plot names runs by before their settings (the env names subplots, not labels)."""
    seed = run.settings.get("seed")
    return {
        "algo": run.algo,
        "preset": f"preset {run.preset}" if run.preset else (UNKNOWN_PRESET if run.algo else None),
        "seed": None if seed is None else f"seed {seed}",
    }


def varying_settings(runs: Sequence[PlottedRun]) -> list[str]:
    """Settings that differ between runs of the same algorithm, preset and env: those that
    differ only across algorithms, presets or envs follow from them, so they would crowd the labels."""
    groups: dict[tuple[Any, ...], list[PlottedRun]] = {}
    for run in runs:
        groups.setdefault((run.algo, run.preset, run.env), []).append(run)
    names = dict.fromkeys(name for run in runs for name in run.settings if name not in ("env", "seed"))
    return [
        name
        for name in names
        if any(
            all(name in run.settings for run in group) and len({repr(run.settings[name]) for run in group}) > 1
            for group in groups.values()
        )
    ]


def run_labels(runs: Sequence[PlottedRun]) -> list[str]:
    """One label per run naming what differs between the runs; runs of one env that differ in nothing else add
    their directory's name. Runs of different envs may share a label: they are drawn in different subplots."""
    identities = [identity(run) for run in runs]
    fields = [field for field in ("algo", "preset", "seed") if len({ids[field] for ids in identities}) > 1]
    settings = varying_settings(runs)

    def label(index: int, shown: int) -> str:
        run = runs[index]
        parts = [identities[index][field] or f"{field} ?" for field in fields]
        parts += [f"{name}={format_value(run.settings.get(name))}" for name in settings[:shown]]
        if shown < len(settings):
            parts.append(f"+{len(settings) - shown} more")
        return " · ".join(parts)

    def clashes(labels: list[str]) -> set[int]:
        seen: dict[tuple[Any, str], list[int]] = {}
        for index, text in enumerate(labels):
            seen.setdefault((runs[index].env, text), []).append(index)
        return {index for indices in seen.values() if len(indices) > 1 for index in indices}

    # name more settings only when the first few leave two runs of one env with the same label
    for shown in range(min(MAX_LABEL_SETTINGS, len(settings)), len(settings) + 1):
        labels = [label(index, shown) for index in range(len(runs))]
        if not clashes(labels):
            return labels
    clashing = clashes(labels)
    return [
        " · ".join(filter(None, (text, runs[index].path.name))) if index in clashing else text
        for index, text in enumerate(labels)
    ]


def common_title(runs: Sequence[PlottedRun], one_env: bool, note: str = "") -> str:
    """What every run shares: 'dqn on CartPole-v1 · preset tutorial · seed 0' (the default preset, which a
    plain run uses, goes unsaid), then `note`."""

    def shared(values: list[Any]) -> Any:
        return values[0] if len(set(values)) == 1 else None

    algo, preset, seed = (
        shared(values)
        for values in (
            [run.algo for run in runs],
            [run.preset for run in runs],
            [run.settings.get("seed") for run in runs],
        )
    )
    env = shared([run.env for run in runs]) if one_env else None
    parts = [
        " on ".join(part for part in (algo, env) if part),
        f"preset {preset}" if preset not in (None, "default") else "",
        "" if seed is None else f"seed {seed}",
        note,
    ]
    return " · ".join(part for part in parts if part)


def per_step(steps: Sequence[int], values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Episodes that end on the same step (env copies stepped together) as one point: the step, the mean, the
    lowest and highest of their values, and the index of the last of them (steps never decrease)."""
    steps = np.asarray(steps)
    unique, first, counts = np.unique(steps, return_index=True, return_counts=True)
    means = np.add.reduceat(values, first) / counts
    return unique, means, np.minimum.reduceat(values, first), np.maximum.reduceat(values, first), first + counts - 1


def point_marker(count: int) -> str:
    """A line of one point draws nothing: give it a dot."""
    return "o" if count == 1 else ""


def runs_figure(
    run_dirs: Sequence[str | Path], threshold: float | None = None, title: str | None = None, note: str = ""
) -> Figure:
    """Episode returns, their 100-episode moving average, evaluation means, solve checks and solve lines:
    one subplot per env, runs labelled by what differs between them, what they share in the title (and
    `note`). An explicit `threshold` replaces every run's own solve line; an explicit `title` the title."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    runs = [read_run(run_dir, threshold) for run_dir in run_dirs]
    labels = run_labels(runs)
    colors = {text: f"C{index}" for index, text in enumerate(dict.fromkeys(labels))}
    envs = list(dict.fromkeys(run.env for run in runs))
    figure = Figure(figsize=(9, 5) if len(envs) == 1 else (9, 1 + 3.5 * len(envs)), layout="constrained")
    heading = title if title is not None else common_title(runs, len(envs) == 1, note)
    for env, axes in zip(envs, figure.subplots(len(envs), 1, squeeze=False)[:, 0], strict=True):
        members = [index for index, run in enumerate(runs) if run.env == env]
        alone = len(members) == 1
        handles: list[Any] = []
        markers_used: set[str] = set()
        for index in members:
            run, color = runs[index], colors[labels[index]]
            train = [row for row in run.rows if row["kind"] == "train"]
            if train:
                returns = np.array([float(row["return"]) for row in train])
                # env copies stepped together end episodes on one step: one point each, not a vertical line
                steps, means, lowest, highest, last = per_step([int(row["step"]) for row in train], returns)
                marker = point_marker(len(steps))
                if alone:
                    handles += axes.plot(
                        steps,
                        means,
                        color=color,
                        alpha=0.25,
                        linewidth=0.8,
                        marker=marker,
                        label="episode return" if len(last) == len(returns) else "episode return (mean per step)",
                    )
                    if len(last) < len(returns):
                        handles.append(
                            axes.fill_between(
                                steps, lowest, highest, color=color, alpha=0.1, linewidth=0, label="range per step"
                            )
                        )
                handles += axes.plot(
                    steps,
                    moving_average(returns)[last],
                    color=color,
                    linewidth=2,
                    marker=marker,
                    label=labels[index] or f"{MOVING_AVERAGE}-episode mean",
                )
            for kind, marker, size in POINT_STYLES:
                points = [(int(row["step"]), float(row["return"])) for row in run.rows if row["kind"] == kind]
                if points:
                    axes.plot(*zip(*points), marker, color=color, markersize=size)
                    markers_used.add(kind)
        # one legend entry per marker style; the dots' colours tie them to their runs' lines
        marker_color = colors[labels[members[0]]] if alone else "gray"
        handles += [
            Line2D(
                [], [], linestyle="none", marker=marker, markersize=size, color=marker_color, label=POINT_LEGEND[kind]
            )
            for kind, marker, size in POINT_STYLES
            if kind in markers_used
        ]
        lines = dict.fromkeys(runs[index].threshold for index in members if runs[index].threshold is not None)
        for line in lines:
            owners = [index for index in members if runs[index].threshold == line]
            # a line shared by every run is gray; one that only some runs aim at takes their colour
            color = "gray" if len(owners) == len(members) else colors[labels[owners[0]]]
            handles.append(axes.axhline(line, color=color, linestyle="--", linewidth=1, label=f"solved ({line:g})"))
        axes.set_ylabel("return" if alone else f"return ({MOVING_AVERAGE}-episode mean)")
        axes.grid(alpha=0.3)
        if handles:
            axes.legend(handles=handles, **LEGEND_PLACE)
        if len(envs) == 1:
            axes.set_xlabel("environment steps")
            axes.set_title(heading)
        else:
            axes.set_title(env or "unknown env")
    if len(envs) > 1:
        figure.supxlabel("environment steps")
        if heading:
            figure.suptitle(heading)
    return figure


# metrics.csv columns that are no training diagnostic: what names a row, the returns, the clock
RESULT_COLUMNS = ("kind", "step", "episode", "return", "return_std", "length", "time_s")
DIAGNOSTIC_KINDS = ("train", "update")  # episode ends (DQN's epsilon and loss) and updates (PPO's losses, KL, ...)


def diagnostics(run: PlottedRun) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every training diagnostic the run logged (losses, entropy, KL, epsilon, learning rate, ...): its steps and
    values, in the order of metrics.csv's columns; columns never filled are left out."""
    names = [name for name in (run.rows[0] if run.rows else {}) if name not in RESULT_COLUMNS]
    series = {}
    for name in names:
        points = [
            (int(row["step"]), float(row[name])) for row in run.rows if row["kind"] in DIAGNOSTIC_KINDS and row[name]
        ]
        if points:
            steps, values = zip(*points, strict=True)
            series[name] = (np.array(steps), np.array(values))
    return series


def diagnostics_figure(run: PlottedRun, columns: int = 3) -> Figure | None:
    """One small plot per training diagnostic against environment steps; None when the run logged none."""
    from matplotlib.figure import Figure

    series = diagnostics(run)
    if not series:
        return None
    rows = -(-len(series) // columns)
    figure = Figure(figsize=(9, 2.4 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, (name, (steps, values)) in zip(grid.flat, series.items(), strict=False):
        axes.plot(steps, values, linewidth=0.8, marker=point_marker(len(steps)))
        axes.set_title(name, fontsize=9)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    for axes in grid.flat[len(series) :]:
        axes.set_visible(False)
    figure.supxlabel("environment steps", fontsize=9)
    return figure


def plot_runs(
    run_dirs: Sequence[str | Path],
    output: str | Path,
    *,
    threshold: float | None = None,
    title: str | None = None,
    note: str = "",
) -> None:
    """runs_figure written to `output` (its suffix names the format), atomically."""
    save_figure(runs_figure(run_dirs, threshold=threshold, title=title, note=note), output)


def image_format(output: str | Path) -> str:
    """The format `output`'s suffix names ('png', 'svg', ...); a suffix matplotlib cannot write is refused."""
    suffix = Path(output).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise DeeprlError(
            f"a plot is written as {', '.join(IMAGE_FORMATS)}: name the file with one of them (got '{output}')"
        )
    return IMAGE_FORMATS[suffix]


def save_figure(figure: Figure, output: str | Path) -> None:
    """The figure in the format `output`'s suffix names, written atomically."""
    image_type = image_format(output)
    buffer = io.BytesIO()
    if image_type == "png":
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        # savefig's bytes, drawn once: savefig lays a constrained-layout figure out in a draw of its own first, a
        # sixth of every run's plotting time; Agg's own draw lays it out on the way
        figure.set_dpi(PLOT_DPI)
        FigureCanvasAgg(figure).print_png(buffer)
    else:
        figure.savefig(buffer, format=image_type, dpi=PLOT_DPI)
    atomic_write(output, lambda stream: stream.write(buffer.getvalue()))


# x axes of grouped curves: the metrics.csv column and the axis label (time_s: training seconds, evaluation
# excluded, as run.py writes it)
CURVE_AXES = {"steps": ("step", "environment steps"), "time": ("time_s", "training wall-clock (s)")}
BAND_RESAMPLES = 2_000


def eval_curve(run: PlottedRun, x: str = "steps") -> tuple[np.ndarray, np.ndarray]:
    """A run's periodic evaluations: x (steps or training seconds) and mean return."""
    column = CURVE_AXES[x][0]
    rows = [row for row in run.rows if row["kind"] == "eval"]
    return (np.array([float(row[column]) for row in rows]), np.array([float(row["return"]) for row in rows]))


def mean_band(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Mean over runs and its 95% bootstrap band, on every x where some run evaluated, from the point where
    all have. Between evaluations a run counts its latest; a run that ended (solved and stopped, or shorter)
    keeps its last evaluation."""
    from deeprl.stats import bootstrap_ci

    start = max(xs[0] for xs, _ in curves)
    grid = np.unique(np.concatenate([xs[xs >= start] for xs, _ in curves]))
    values = np.stack([ys[np.searchsorted(xs, grid, side="right") - 1] for xs, ys in curves])
    low, high = bootstrap_ci(values, resamples=BAND_RESAMPLES)
    return grid, values.mean(axis=0), low, high


def group_runs(run_dirs: Sequence[str | Path], key: str) -> dict[str, list[Path]]:
    """Runs grouped by one setting's value, or by algo, env, preset or seed: {"lr=0.001": [...], ...}. A key
    that no run has is refused; a run without it (another algorithm's setting) goes to "key=?"."""
    runs = [read_run(run_dir) for run_dir in run_dirs]
    named = {"algo": lambda run: run.algo, "preset": lambda run: run.preset}
    if key not in RUN_KEYS and not any(key in run.settings for run in runs):
        known = sorted({*RUN_KEYS, *(name for run in runs for name in run.settings)})
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DeeprlError(
            f"unknown --group-by key '{key}': no run has it{hint} (algo, env, preset, seed, or a "
            "setting in the runs' config.yaml)"
        )
    groups: dict[str, list[Path]] = {}
    for run in runs:
        value = named[key](run) if key in named else run.settings.get(key)
        groups.setdefault(f"{key}={'?' if value is None else format_value(value)}", []).append(run.path)
    return groups


def groups_figure(groups: dict[str, Sequence[str | Path]], x: str = "steps", title: str | None = None) -> Figure:
    """Per group, the mean evaluation curve over its runs with a shaded 95% confidence band; the solve line
    the runs share, dashed."""
    from matplotlib.figure import Figure

    if x not in CURVE_AXES:
        raise DeeprlError(f"x axis must be one of {', '.join(CURVE_AXES)} (got '{x}')")
    figure = Figure(figsize=(9, 5), layout="constrained")
    axes = figure.subplots()
    thresholds = set()
    for index, (label, run_dirs) in enumerate(groups.items()):
        runs = [read_run(run_dir) for run_dir in run_dirs]
        thresholds.update(run.threshold for run in runs if run.threshold is not None)
        curves = [curve for curve in (eval_curve(run, x) for run in runs) if curve[0].size]
        if not curves:
            continue
        grid, mean, low, high = mean_band(curves)
        color = f"C{index}"
        axes.plot(
            grid,
            mean,
            color=color,
            linewidth=2,
            marker=point_marker(len(grid)),
            label=f"{label} ({len(curves)} run{'s' if len(curves) > 1 else ''})",
        )
        if len(grid) == 1:  # a band of one point draws nothing: its interval as an error bar
            axes.errorbar(grid, mean, yerr=[mean - low, high - mean], color=color, capsize=4, linestyle="none")
        else:
            axes.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
    for line in sorted(thresholds):
        axes.axhline(line, color="gray", linestyle="--", linewidth=1, label=f"solved ({line:g})")
    axes.set_xlabel(CURVE_AXES[x][1])
    axes.set_ylabel("evaluation return: mean over runs, 95% CI")
    axes.grid(alpha=0.3)
    axes.legend(**LEGEND_PLACE)
    if title:
        axes.set_title(title)
    return figure


def plot_groups(
    groups: dict[str, Sequence[str | Path]], output: str | Path, *, x: str = "steps", title: str | None = None
) -> None:
    """groups_figure written to `output` (its suffix names the format), atomically."""
    save_figure(groups_figure(groups, x=x, title=title), output)


def play_frames(
    agent,
    make_env: Callable[..., gym.Env],
    episodes: int = 1,
    seed: int = 0,
    every: int = 1,
    max_bytes: int | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames (every `every`-th) of greedy episodes, and each episode's return. With `max_bytes`, frames
    stop being kept once they fill that much memory; the episodes still play to their end for their returns."""
    choose_headless_opengl()
    env = make_env(render_mode="rgb_array")
    frames: list[np.ndarray] = []
    returns = []
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            if hasattr(agent, "reset"):  # a recurrent agent's state starts afresh with the episode
                agent.reset()
            frames.append(checked_frame(env, env.render()))
            limit = None if max_bytes is None else max(1, max_bytes // frames[0].nbytes)
            total, step, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(act_in(agent, env, obs, info))  # under any mask
                total += float(reward)
                step += 1
                done = terminated or truncated
                if (step % every == 0 or done) and (limit is None or len(frames) < limit):
                    frames.append(env.render())
            returns.append(total)
    finally:
        env.close()
    return frames, returns


def choose_headless_opengl() -> None:
    """MuJoCo draws through OpenGL, by default in a GLFW window, which a Linux machine without a display cannot
    open (a crash deep in mujoco): there, unless the user chose a backend, draw through EGL, which needs no window
    (Gymnasium reads MUJOCO_GL when it makes the renderer)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "egl"


def checked_frame(env: gym.Env, frame: Any) -> np.ndarray:
    """A picture from env.render() in rgb_array mode, or one line saying what the env returned instead."""
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    what = f"an array of shape {frame.shape}" if isinstance(frame, np.ndarray) else repr(frame)[:40]
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    raise DeeprlError(
        f"env {name}'s render() returned {what}, not a picture: made with render_mode='rgb_array', "
        "it must return the frame as a (height, width, 3) array"
    )


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
        id=element,
        width=width,
        height=height,
        last=len(uris) - 1,
        first=uris[0],
        frames=json.dumps(uris),
        interval=max(1, round(1000 / fps)),
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
    agent,
    env: str | Callable[..., gym.Env] | None = None,
    *,
    episodes: int = 1,
    seed: int = 0,
    every: int = 1,
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
