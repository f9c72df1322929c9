"""Reports a person opens in a browser: one self-contained HTML file per run, per set of runs or per sweep, with
its pictures and its video inside it (no network, no files beside it), saying what was trained, how it learned,
how well the agent plays and how to run it again."""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeprl.errors import DeeprlError
from deeprl.files import atomic_write_text
from deeprl.media import PlottedRun, format_value, read_run, varying_settings
from deeprl.version import __version__

REPORT_FILE = "report.html"
# Frames of the agent's video kept in memory before encoding: 256 MiB (Atari frames: ~2 500, MuJoCo 480x480: ~380)
VIDEO_FRAME_BYTES = 256 * 2**20
VIDEO_FPS = 30
VIDEO_MIN_WIDTH = 480  # pixels a video is shown at, at least (Atari's 160-pixel screen three times)
EPISODE_SEED = 10_000  # the episode `deeprl watch` plays by default
METRICS_COLUMNS = {"kind", "step", "return"}
SUMMARY_KEYS = (
    "steps",
    "episodes",
    "updates",
    "train_seconds",
    "eval_seconds",
    "train_steps_per_second",
    "solved",
    "solved_at_step",
    "solved_train_seconds",
    "best_policy_step",
    "final",
    "best",
)
AGENT_KEYS = {"episodes", "mean_return", "std_return", "min_return", "max_return", "mean_length", "seed"}
# Settings that say where and how a run ran, not what it learnt: runs that differ only in them are one
# configuration when several runs are reported together
RUN_ONLY_SETTINGS = ("seed", "device", "torch_threads", "tensorboard", "check_env", "checkpoint_every")


@dataclass
class RunRecord:
    """What a report says of one run directory."""

    run: PlottedRun
    summary: dict[str, Any] | None  # eval.json of a finished run
    status: str  # "finished", "failed", "training" or "stopped"
    note: str  # the status in words (the failure's reason, where an unfinished run stopped)

    @property
    def seed(self) -> Any:
        return self.run.settings.get("seed")

    @property
    def steps_done(self) -> int:
        if self.summary is not None:
            return int(self.summary["steps"])
        steps = [int(row["step"]) for row in self.run.rows]
        return max(steps, default=0)


def read_record(run_dir: str | Path) -> RunRecord:
    """A run directory as a report sees it; a folder that is not a run is refused in one line."""
    from deeprl.run import RunLock, process_alive, run_status
    from deeprl.sweeps import ERROR_FILE

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").is_file() or not (run_dir / "config.yaml").is_file():
        raise DeeprlError(f"{run_dir} is not a run directory (it needs config.yaml and metrics.csv)")
    failed = (run_dir / ERROR_FILE).is_file()
    summary = read_summary(run_dir / "eval.json") if (run_dir / "eval.json").is_file() and not failed else None
    run = read_run(run_dir)
    if run.rows and not set(run.rows[0]) >= METRICS_COLUMNS:
        raise DeeprlError(f"{run_dir / 'metrics.csv'} is not a run's metrics (it needs the columns kind, step, return)")
    if failed:
        return RunRecord(run, None, "failed", (run_dir / ERROR_FILE).read_text().strip())
    if summary is not None:
        return RunRecord(run, summary, "finished", f"finished: {int(summary['steps']):,} steps")
    owner = RunLock.owner_of(run_dir)
    training = owner is not None and process_alive(owner)
    return RunRecord(run, None, "training" if training else "stopped", run_status(run_dir) or "not finished")


def read_summary(path: Path) -> dict[str, Any]:
    """A finished run's eval.json, refused in one line when it is not one (corrupt, cut short, hand-edited)."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DeeprlError(f"{path} is not readable JSON ({error})") from None
    missing = [key for key in SUMMARY_KEYS if not isinstance(summary, dict) or key not in summary]
    agents_whole = isinstance(summary, dict) and all(
        isinstance(summary.get(agent), dict) and set(summary[agent]) >= AGENT_KEYS for agent in ("final", "best")
    )
    if missing or not agents_whole:
        what = f"it lacks {', '.join(missing)}" if missing else "its final or best agent's scores are incomplete"
        raise DeeprlError(f"{path} is not a run's summary: {what}")
    return summary


# ------------------------------------------------------------------------------------------------ HTML pieces


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 1) -> str:
    """A return or a time as a person reads it: '-2.2', '1,000,000', '—' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def duration(seconds: float | None) -> str:
    """'1 h 2 min 21 s', '41.3 s'."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min", f"{rest} s") if part)


def table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """An HTML table of already-escaped cells (a header row unless None); the columns in `numeric` align right."""
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{cell}</th>" for cell in header) + "</tr></thead>\n"
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{cell}</td>' if index in numeric else f"<td>{cell}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>\n{head}<tbody>\n{body}</tbody>\n</table>\n"


def figure_image(figure: Any, alt: str) -> str:
    """A matplotlib figure as an <img> holding its PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from deeprl.media import PLOT_DPI

    buffer = io.BytesIO()
    figure.set_dpi(PLOT_DPI)
    FigureCanvasAgg(figure).print_png(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="figure" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: str) -> str:
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return PAGE_TEMPLATE.format(
        title=escape(title), body=body, footer=escape(f"written by deeprl {__version__} on {written}")
    )


PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1000px; margin: 2em auto;
  padding: 0 1em; color: #1d1d1f; line-height: 1.45; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }}
.subtitle, footer, .caption {{ color: #666; font-size: 0.9em; }}
.status {{ padding: 0.5em 0.8em; border-radius: 4px; margin: 1em 0; }}
.status.finished {{ background: #e8f5e9; }} .status.failed {{ background: #fdecea; }}
.status.training, .status.stopped {{ background: #fff8e1; }}
table {{ border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f5f5f7; }} td.number {{ text-align: right; font-variant-numeric: tabular-nums; }}
img.figure {{ max-width: 100%; height: auto; }}
video {{ max-width: 100%; background: #000; image-rendering: pixelated; }}
pre {{ background: #f5f5f7; padding: 0.6em; overflow-x: auto; }}
details summary {{ cursor: pointer; margin: 0.4em 0; }}
</style>
</head>
<body>
{body}
<footer><p>{footer}</p></footer>
</body>
</html>
"""


# ------------------------------------------------------------------------------------------------ one run


def result_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The finished run's headline numbers: its agents' scores, whether it solved, what training cost."""
    rows = []
    for agent, name in (("final", "final agent"), ("best", f"best agent (step {summary['best_policy_step']:,})")):
        scores = summary[agent]
        rows.append(
            (
                name,
                f"<b>{number(scores['mean_return'])} ± {number(scores['std_return'])}</b> over "
                f"{scores['episodes']} episodes (min {number(scores['min_return'])}, max "
                f"{number(scores['max_return'])}, {number(scores['mean_length'])} steps long; episodes seeded from "
                f"{scores['seed']})",
            )
        )
    threshold = summary.get("solve_threshold")
    line = "" if threshold is None else f"threshold {format_value(float(threshold))}"
    if threshold is None:
        solved = "no solve threshold for this env"
    elif summary["solved"]:
        solved = (
            f"<b>at step {summary['solved_at_step']:,}</b>, after {duration(summary['solved_train_seconds'])} "
            f"of training ({line})"
        )
    else:
        solved = f"not solved ({line})"
    rows.append(("solved", solved))
    rows.append(
        (
            "training",
            f"{summary['steps']:,} steps, {summary['episodes']:,} episodes, {summary['updates']:,} updates in "
            f"{duration(summary['train_seconds'])} ({number(summary['train_steps_per_second'])} steps/s); "
            f"evaluations took {duration(summary['eval_seconds'])} more",
        )
    )
    return rows


def evaluation_rows(run: PlottedRun) -> list[list[str]]:
    """The periodic evaluations and checks on new episodes in metrics.csv, in step order."""
    rows = []
    for row in run.rows:
        if row["kind"] in ("eval", "confirm"):
            spread = row.get("return_std") or ""
            rows.append(
                [
                    f"{int(row['step']):,}",
                    "evaluation" if row["kind"] == "eval" else "check on new episodes",
                    number(float(row["return"]), 2),
                    number(float(spread), 2) if spread else "—",
                    duration(float(row["time_s"])) if row.get("time_s") else "—",
                ]
            )
    return rows


def settings_section(record: RunRecord) -> str:
    """Settings the run changed from its preset, then every setting with what it means."""
    from deeprl.algos import get_algorithm
    from deeprl.config import build_config, config_to_dict, describe_fields

    run = record.run
    try:
        config = build_config(get_algorithm(run.algo).Config, run.env, run.preset or "default")
    except DeeprlError:  # an algorithm or preset this deeprl no longer has: the settings without comparison
        preset_values, meanings = None, {}
    else:
        preset_values = config_to_dict(config)
        meanings = {name: meaning for name, _, _, meaning in describe_fields(config)}
    rows = [
        [f"<code>{escape(name)}</code>", escape(format_value(value)), escape(meanings.get(name, ""))]
        for name, value in run.settings.items()
    ]
    parts = ['<h2 id="settings">Settings</h2>']
    if preset_values is not None:
        changed = [
            [f"<code>{escape(name)}</code>", escape(format_value(preset_values[name])), escape(format_value(value))]
            for name, value in run.settings.items()
            if name in preset_values and name != "env" and preset_values[name] != value
        ]
        preset = escape(run.preset or "default")
        if changed:
            parts.append(f"<p>Changed from preset <code>{preset}</code>:</p>")
            parts.append(table(["setting", "preset", "this run"], changed))
        else:
            parts.append(f"<p>Preset <code>{preset}</code> as it is.</p>")
    parts.append("<details><summary>every setting</summary>")
    parts.append(table(["setting", "value", "meaning"], rows))
    parts.append("</details>")
    return "\n".join(parts)


def video_section(run_dir: Path, every: int, fps: int) -> str:
    """The run's best agent playing one greedy episode, as an H.264 video inside the page."""
    from deeprl.agent import load
    from deeprl.envs import spec_factory
    from deeprl.media import play_frames, write_video

    heading = '<h2 id="play">The agent playing</h2>\n'
    try:
        agent = load(run_dir)  # its best policy, else its final one; none saved yet is said in one line
        make = spec_factory(agent.env_spec)
        frames, returns = play_frames(agent, make, 1, seed=EPISODE_SEED, every=every, max_bytes=VIDEO_FRAME_BYTES)
    except DeeprlError as error:  # no policy yet, an env that cannot draw itself or whose package is missing
        return heading + f"<p>No video: {escape(error)}</p>"
    except Exception as error:  # the env's own drawing code failed: the page still says everything else
        return heading + f"<p>No video: drawing the env failed: {escape(type(error).__name__)}: {escape(error)}</p>"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "episode.mp4"
        write_video(frames, path, fps=fps)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    width = frames[0].shape[1]
    shown_width = width * max(1, VIDEO_MIN_WIDTH // width)  # small game screens drawn larger, whole pixels
    which = "best" if agent.policy_path.name == "best_policy.pt" else "final"
    step = f", from step {agent.policy_step:,}" if isinstance(agent.policy_step, int) else ""
    shown = f"one frame in {every}" if every > 1 else "every frame"
    return heading + (
        f'<video controls muted loop playsinline width="{shown_width}" src="data:video/mp4;base64,{data}"></video>\n'
        f'<p class="caption">The {which} agent{step}, acting greedily in the episode seeded {EPISODE_SEED}: '
        f"return {number(returns[0], 2)}; {len(frames):,} frames, {shown}, at {fps} frames/s "
        f"(<code>deeprl watch {escape(run_dir)} --video out.mp4</code> writes it as a file).</p>"
    )


def run_body(record: RunRecord, video: bool, every: int, fps: int) -> str:
    """The page of one run: status, results, learning curve, diagnostics, evaluations, the agent playing,
    settings, reuse."""
    from deeprl.media import diagnostics_figure, runs_figure

    run = record.run
    title = f"{run.algo} on {run.env} · seed {record.seed}"
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">preset {escape(run.preset or "?")} · run directory <code>{escape(run.path)}</code></p>',
        f'<p class="status {record.status}">{escape(record.note)}</p>',
    ]
    if record.summary is not None:
        parts += ['<h2 id="results">Results</h2>', table(None, result_rows(record.summary))]
    parts += ['<h2 id="curve">Learning curve</h2>', figure_image(runs_figure([run.path]), f"learning curve of {title}")]
    figure = diagnostics_figure(run)
    if figure is not None:
        parts += [
            '<h2 id="diagnostics">Training diagnostics</h2>',
            "<p>What the learner logged as it trained (metrics.csv's own columns), against environment steps.</p>",
            figure_image(figure, f"training diagnostics of {title}"),
        ]
    evaluations = evaluation_rows(run)
    if evaluations:
        parts += [
            '<h2 id="evaluations">Evaluations</h2>',
            "<p>Greedy episodes of the agent of that step (mean and spread over the episodes).</p>",
            table(["step", "kind", "mean return", "std", "training time"], evaluations, numeric=(0, 2, 3, 4)),
        ]
    if video:
        parts.append(video_section(run.path, every, fps))
    parts.append(settings_section(record))
    parts += [
        '<h2 id="again">Run it again, use the agent</h2>',
        "<pre>"
        + escape(
            f"deeprl train --config {run.path / 'config.yaml'}   # the same run again\n"
            f"deeprl eval {run.path} --episodes 20\n"
            f"deeprl watch {run.path} --video episode.mp4\n"
            f"python -c \"import deeprl; agent = deeprl.load('{run.path}')\""
        )
        + "</pre>",
    ]
    files = sorted(path for path in run.path.rglob("*") if path.is_file() and not path.name.startswith("."))
    parts.append("<details><summary>files of the run</summary>")
    parts.append(
        table(
            ["file", "size"],
            [[f"<code>{escape(path.relative_to(run.path))}</code>", size_text(path.stat().st_size)] for path in files],
            numeric=(1,),
        )
    )
    parts.append("</details>")
    return "\n".join(parts)


def size_text(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:,} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


# ------------------------------------------------------------------------------------------------ several runs


def configuration_groups(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs grouped by what they learnt with (algorithm, env, preset and settings, not the seed), each group
    named by what sets it apart from the others."""

    def key(record: RunRecord) -> str:
        settings = {name: value for name, value in record.run.settings.items() if name not in RUN_ONLY_SETTINGS}
        return json.dumps([record.run.algo, record.run.preset, settings], sort_keys=True, default=str)

    keyed: dict[str, list[RunRecord]] = {}
    for record in records:
        keyed.setdefault(key(record), []).append(record)
    firsts = [members[0].run for members in keyed.values()]
    fields = {
        "algo": lambda run: run.algo,
        "env": lambda run: run.env,
        "preset": lambda run: f"preset {run.preset}",
    }
    shown = [name for name, value in fields.items() if len({value(run) for run in firsts}) > 1]
    # settings that differ only with the algorithm, preset or env (their presets) follow from those: not named
    names = [name for name in varying_settings(firsts) if name not in RUN_ONLY_SETTINGS]
    groups: dict[str, list[RunRecord]] = {}
    for run, members in zip(firsts, keyed.values(), strict=True):
        parts = [str(fields[name](run)) for name in shown]
        parts += [f"{name}={format_value(run.settings.get(name))}" for name in names]
        label = " · ".join(parts) or f"{run.algo} on {run.env}"
        while label in groups:  # two configurations that differ only in a setting no label names
            label += "'"
        groups[label] = members
    return groups


def trial_row(label: str, record: RunRecord) -> dict[str, Any]:
    """A run as the sweep summary counts it."""
    from deeprl.sweeps import trial_metrics

    row: dict[str, Any] = {"configuration": label, "seed": record.seed, "status": record.status}
    if record.status == "failed":
        row["error"] = record.note
    if record.summary is not None:
        row.update(trial_metrics(record.summary))
        row["status"] = "finished"
    return row


def several_body(groups: dict[str, list[RunRecord]], title: str) -> str:
    """The page of several runs: per configuration, success over seeds and its agents' scores (mean with a 95%
    bootstrap interval, interquartile mean), the evaluation curves' mean and band, then each run."""
    from deeprl.media import groups_figure, runs_figure
    from deeprl.sweeps import best_configuration, score_text, summarize

    records = [record for members in groups.values() for record in members]
    rows = summarize([trial_row(label, record) for label, members in groups.items() for record in members])
    one_env = len({record.run.env for record in records}) == 1
    best = best_configuration(rows) if len(rows) > 1 and one_env else None  # a ranking across envs means nothing
    seeds = sorted({str(record.seed) for record in records}, key=lambda seed: (len(seed), seed))
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">{len(records)} runs: {len(groups)} configuration{"s" if len(groups) > 1 else ""} '
        f"× seeds {escape(', '.join(seeds))}</p>",
        '<h2 id="summary">Over seeds</h2>',
        "<p>Success is a run that reached its env's solve threshold. Scores are the agents' mean returns on their "
        "final evaluation: the mean over seeds with its 95% bootstrap interval, and the interquartile mean (the "
        "mean of the middle half of the seeds, which one collapsed seed does not drag down).</p>",
    ]
    summary_rows = []
    for row in rows:
        marker = " (best)" if best is not None and row is best else ""
        summary_rows.append(
            [
                escape(row["configuration"]) + marker,
                f"{row['solved']}/{row['seeds']}" + (f" ({row['failed']} failed)" if row["failed"] else ""),
                number(row["median_steps_to_solve"], 0),
                duration(None if math.isnan(row["median_seconds_to_solve"]) else row["median_seconds_to_solve"]),
                score_text(row, "final"),
                score_text(row, "best"),
            ]
        )
    parts.append(
        table(
            [
                "configuration",
                "solved",
                "steps to solve (median)",
                "time to solve (median)",
                "final agent: mean [95% CI] · IQM",
                "best agent: mean [95% CI] · IQM",
            ],
            summary_rows,
            numeric=(1, 2, 3),
        )
    )
    # runs refused before they started have no metrics to draw
    drawn = {label: [record for record in members if record.run.rows] for label, members in groups.items()}
    curves = {label: [record.run.path for record in members] for label, members in drawn.items() if members}
    if any(row["kind"] == "eval" for record in records for row in record.run.rows):
        parts += [
            '<h2 id="curves">Evaluations over training</h2>',
            figure_image(groups_figure(curves, title=title), f"evaluation curves of {title}"),
        ]
    run_rows = []
    for label, members in groups.items():
        for record in members:
            summary = record.summary or {}
            run_rows.append(
                [
                    escape(label),
                    escape(record.seed),
                    escape(record.status if record.status != "failed" else f"failed: {record.note}"),
                    f"{record.steps_done:,}",
                    number(summary.get("final", {}).get("mean_return")),
                    number(summary.get("best", {}).get("mean_return")),
                    number(summary.get("solved_at_step"), 0) if summary.get("solved") else "—",
                    duration(summary.get("train_seconds")),
                    f"<code>{escape(record.run.path)}</code>",
                ]
            )
    parts += [
        '<h2 id="runs">Each run</h2>',
        table(
            [
                "configuration",
                "seed",
                "status",
                "steps",
                "final agent",
                "best agent",
                "solved at step",
                "training time",
                "run directory",
            ],
            run_rows,
            numeric=(1, 3, 4, 5, 6, 7),
        ),
    ]
    for label, members in drawn.items():
        for record in members:
            name = f"{label} · seed {record.seed}"
            parts.append(f"<details><summary>learning curve: {escape(name)}</summary>")
            parts.append(figure_image(runs_figure([record.run.path], title=name), f"learning curve of {name}"))
            parts.append("</details>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ entry points


def default_output(paths: Sequence[str | Path]) -> Path:
    """Beside what it reports on: RUN/report.html, SWEEP/report.html; report.html here for several runs."""
    return Path(paths[0]) / REPORT_FILE if len(paths) == 1 else Path(REPORT_FILE)


@dataclass
class Subject:
    """What a report is about, read and checked: its runs grouped by configuration, and its title."""

    title: str
    groups: dict[str, list[RunRecord]]
    single: bool  # one run directory: a page of its own, with the agent's video


def read_subject(paths: Sequence[str | Path]) -> Subject:
    """One run directory, several, or one sweep directory, read (anything else is refused in one line)."""
    from deeprl.many_seeds import is_seeds_dir, seed_run_dirs
    from deeprl.sweeps import ERROR_FILE, is_sweep_dir, read_spec

    if not paths:
        raise DeeprlError("name a run directory, several, or a sweep directory")
    sweeps = [Path(path) for path in paths if is_sweep_dir(Path(path))]
    if sweeps:
        if len(paths) > 1:
            raise DeeprlError(f"{sweeps[0]} is a sweep directory: report on it alone")
        spec = read_spec(sweeps[0])
        groups: dict[str, list[RunRecord]] = {}
        for trial in spec.trials(sweeps[0]):
            run_dir = Path(trial["run_dir"])
            if (run_dir / "config.yaml").is_file():
                groups.setdefault(trial["label"], []).append(read_record(run_dir))
            elif (run_dir / ERROR_FILE).is_file():  # refused before it started: its reason is all there is
                run = PlottedRun(run_dir, [], spec.algo, spec.preset, {"env": spec.env, **trial["settings"]}, None)
                reason = (run_dir / ERROR_FILE).read_text().strip()
                groups.setdefault(trial["label"], []).append(RunRecord(run, None, "failed", reason))
        if not groups:
            raise DeeprlError(f"no run of sweep {sweeps[0]} has started yet")
        return Subject(f"sweep: {spec.algo} on {spec.env}", groups, single=False)
    seeds_dirs = [Path(path) for path in paths if is_seeds_dir(Path(path))]
    if seeds_dirs:  # a seeds directory's report is its seeds' runs, side by side
        if len(paths) > 1:
            raise DeeprlError(f"{seeds_dirs[0]} is a seeds directory: report on it alone")
        paths = [run_dir for run_dir in seed_run_dirs(seeds_dirs[0]) if (run_dir / "config.yaml").is_file()]
        if not paths:
            raise DeeprlError(f"no seed of {seeds_dirs[0]} has started yet")
    records = [read_record(path) for path in paths]
    if len(records) == 1 and not seeds_dirs:
        (record,) = records
        return Subject(f"{record.run.algo} on {record.run.env} · seed {record.seed}", {"": records}, single=True)
    envs = list(dict.fromkeys(str(record.run.env) for record in records))
    algos = list(dict.fromkeys(str(record.run.algo) for record in records))
    return Subject(f"{' / '.join(algos)} on {' / '.join(envs)}", configuration_groups(records), single=False)


def render(subject: Subject, video: bool = True, every: int = 1, fps: int = VIDEO_FPS) -> str:
    if subject.single:
        (record,) = subject.groups[""]
        return page(subject.title, run_body(record, video, every, fps))
    return page(subject.title, several_body(subject.groups, subject.title))


def report_html(paths: Sequence[str | Path], *, video: bool = True, every: int = 1, fps: int = VIDEO_FPS) -> str:
    """The report's HTML: of one run (with a video of its agent when `video`), of several runs, or of a sweep."""
    return render(read_subject(paths), video, every, fps)


def write_report(
    paths: str | Path | Sequence[str | Path],
    output: str | Path | None = None,
    *,
    video: bool = True,
    every: int = 1,
    fps: int = VIDEO_FPS,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the report of a run directory, several or a sweep directory (see report_html) to `output` (default:
    default_output) atomically; its path. `deeprl.write_report("runs/dqn-CartPole-v1-s0-...")`."""
    from deeprl.files import check_writable

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if output is not None and Path(output).suffix.lower() not in (".html", ".htm"):
        raise DeeprlError(f"a report is an HTML file: name it with .html (got '{output}')")
    if every < 1 or fps < 1:
        raise DeeprlError(f"every and fps must be >= 1 (got every={every}, fps={fps})")
    subject = read_subject(paths)  # before the output's folder is made: a wrong path leaves nothing behind
    output = Path(output) if output is not None else default_output(paths)
    check_writable(output, "report")
    if on_progress is not None and video and subject.single:
        on_progress("playing an episode for the report's video ...")
    atomic_write_text(output, render(subject, video, every, fps))
    return output
