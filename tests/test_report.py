"""Reports of real runs: the HTML read back (its tables against eval.json and metrics.csv, its picture and video
decoded), opened in a real browser, for one run, several runs and a sweep directory."""

from __future__ import annotations

import base64
import csv
import html.parser
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import imageio.v2 as imageio
import pytest
import yaml
from PIL import Image

import deeprl
from deeprl.errors import DeeprlError
from deeprl.report import read_record, report_html
from deeprl.sweeps import SWEEP_FILE, SweepSpec, spec_to_yaml
from tests.conftest import run_deeprl

SETTINGS = dict(
    steps=600,
    hidden_sizes=(32, 32),
    learning_starts=100,
    eval_every=300,
    eval_episodes=2,
    final_eval_episodes=3,
    tensorboard=False,
    progress=False,
)
OTHER_LR = 3e-4
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DATA_URI = re.compile(r'src="data:([a-z]+/[a-z0-9]+);base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """DQN on CartPole-v1: seeds 0 and 1 with the preset's learning rate, seed 0 with another."""
    root = tmp_path_factory.mktemp("report")
    made = {}
    for name, seed, extra in (("a0", 0, {}), ("a1", 1, {}), ("b0", 0, {"lr": OTHER_LR})):
        made[name] = deeprl.train("dqn", "CartPole-v1", seed=seed, run_dir=root / name, **SETTINGS, **extra).run_dir
    return made


class Page(html.parser.HTMLParser):
    """A report's text by section (h1, then each h2 id): its tables as rows of cell text, and its captions."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.title = ""
        self.sections: dict[str, list[list[list[str]]]] = {}
        self.section = "top"
        self.cell: list[str] | None = None
        self.row: list[str] | None = None
        self.heading: str | None = None
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.links.append(values[name])
        if tag == "h2":
            self.section = values.get("id") or "?"
        elif tag in ("h1", "title"):
            self.heading = tag
        elif tag == "table":
            self.sections.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.sections[self.section][-1].append(self.row)
            self.row = None
        elif tag in ("h1", "title"):
            self.heading = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.heading == "h1":
            self.title += data

    def table(self, section: str, index: int = 0) -> list[list[str]]:
        return self.sections[section][index]


def embedded(text: str, kind: str) -> list[bytes]:
    """The bytes of every data URI of that media type in the page."""
    return [base64.b64decode(data) for media, data in DATA_URI.findall(text) if media == kind]


def video_frames(data: bytes, folder: Path) -> list:
    """The frames of an embedded MP4, decoded by FFmpeg (which reads files)."""
    path = folder / "embedded.mp4"
    path.write_bytes(data)
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return list(reader.iter_data())


def metrics_rows(run_dir: Path, kind: str) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as stream:
        return [row for row in csv.DictReader(stream) if row["kind"] == kind]


# ------------------------------------------------------------------------------------------------ one run


@pytest.fixture(scope="module")
def run_report(runs, tmp_path_factory) -> tuple[Path, str, subprocess.CompletedProcess]:
    """`deeprl report RUN --every 4` on a copy of run a0 (the report goes into the run directory)."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    shutil.copytree(runs["a0"], run_dir)
    result = run_deeprl("report", run_dir, "--every", 4, cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir, (run_dir / "report.html").read_text(), result


def test_a_run_report_says_what_the_run_did(run_report):
    run_dir, text, result = run_report
    assert result.stdout.strip().endswith(f"report: {run_dir / 'report.html'} (open it in a browser)")
    summary = json.loads((run_dir / "eval.json").read_text())
    page = Page(text)
    assert page.title == "dqn on CartPole-v1 · seed 0"
    results = dict(page.table("results"))
    final = summary["final"]
    assert results["final agent"].startswith(f"{final['mean_return']:.1f} ± {final['std_return']:.1f} over 3 episodes")
    assert results["solved"] == "not solved (threshold 475)"  # CartPole-v1's registered line, 600 steps in
    assert results["training"].startswith(f"600 steps, {summary['episodes']} episodes, {summary['updates']} updates")
    # every evaluation metrics.csv holds, in order, with its mean
    evaluations = page.table("evaluations")[1:]
    expected = metrics_rows(run_dir, "eval")
    assert [row[0] for row in evaluations] == [f"{int(row['step']):,}" for row in expected] == ["300", "600"]
    assert [row[2] for row in evaluations] == [f"{float(row['return']):.2f}" for row in expected]
    # the settings: what differs from the preset, then all of them with their meaning
    changed = {row[0]: row[1:] for row in page.table("settings", 0)[1:]}
    assert changed["total_steps"][1] == "600" and changed["learning_starts"][1] == "100"
    every = {row[0]: row[1:] for row in page.table("settings", 1)[1:]}
    assert every["gamma"][1] == "discount factor"
    # the learning curve and the diagnostics are real pictures, and nothing in the page comes from elsewhere
    curve, diagnostics = (Image.open(io.BytesIO(data)) for data in embedded(text, "image/png"))
    assert curve.size == (900, 500)
    assert diagnostics.size == (900, 240)  # one row of small plots: DQN's epsilon and loss
    assert all(link.startswith("data:") for link in page.links), page.links


def test_the_report_video_is_the_agents_episode(run_report, tmp_path):
    run_dir, text, _ = run_report
    (video,) = embedded(text, "video/mp4")
    frames = video_frames(video, tmp_path)
    agent = deeprl.load(run_dir)
    (length,) = deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=10_000).lengths
    (episode_return,) = deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=10_000).returns
    # the reset frame, every 4th step, and the last
    assert len(frames) == 1 + int(length) // 4 + (1 if length % 4 else 0)
    assert frames[0].shape == (400, 600, 3)
    assert frames[0].max() > 200 and frames[0].min() < 60  # the white background and the dark cart
    assert f"return {episode_return:.2f}; {len(frames)} frames, one frame in 4, at 30 frames/s" in text


def browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no browser to open the report in: `bash scripts/install-browser.sh` installs Chromium")


PROBE = """<!DOCTYPE html><html><body><pre id="probe">waiting</pre><iframe src="{page}"></iframe><script>
const frame = document.querySelector("iframe");
frame.onload = async function() {{
  const page = frame.contentDocument;
  const images = Array.from(page.images).map(image => [image.naturalWidth, image.naturalHeight]);
  const videos = await Promise.all(Array.from(page.querySelectorAll("video")).map(video => new Promise(done => {{
    const seen = () => done([video.duration, video.videoWidth, video.videoHeight]);
    if (video.readyState >= 1) seen(); else video.onloadedmetadata = seen;
    video.onerror = () => done(["error", video.error.code]);
  }})));
  document.getElementById("probe").textContent = JSON.stringify({{title: page.title, images, videos}});
}};
</script></body></html>
"""


def test_a_browser_shows_the_reports_picture_and_plays_its_video(run_report, tmp_path):
    """Chromium, headless, opens the page: the picture decodes at its size and the video is a playable clip
    as long as its frames at 30 per second."""
    run_dir, text, _ = run_report
    probe = run_dir / "probe.html"
    probe.write_text(PROBE.format(page="report.html"))
    result = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=20000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="probe">([^<]*)</pre>', result.stdout)
    assert found is not None, result.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["title"] == "dqn on CartPole-v1 · seed 0"
    assert seen["images"] == [[900, 500], [900, 240]]
    (video,) = embedded(text, "video/mp4")
    frame_count = len(video_frames(video, tmp_path))
    ((seconds, width, height),) = seen["videos"]
    assert (width, height) == (600, 400)
    assert seconds == pytest.approx(frame_count / 30, abs=0.05)


def test_an_unfinished_run_is_reported_as_stopped_with_what_it_has(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["a0"], run_dir)
    (run_dir / "eval.json").unlink()
    page = Page(report_html([run_dir], video=False))
    assert "results" not in page.sections  # no final evaluation yet
    assert len(page.table("evaluations")) == 3
    assert f"deeprl resume {run_dir}" in report_html([run_dir], video=False)


def test_the_api_writes_the_report_where_asked(runs, tmp_path):
    output = deeprl.write_report(runs["a1"], tmp_path / "pages" / "a1.html", video=False)
    assert output == tmp_path / "pages" / "a1.html"
    text = output.read_text()
    assert Page(text).title == "dqn on CartPole-v1 · seed 1"
    assert "<video" not in text and not (runs["a1"] / "report.html").exists()


def test_a_summary_that_is_not_one_is_refused_in_one_line(runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["a0"], run_dir)
    (run_dir / "eval.json").write_text('{"steps": 600}')
    with pytest.raises(DeeprlError, match=r"eval.json is not a run's summary: it lacks episodes, updates"):
        read_record(run_dir)
    (run_dir / "eval.json").write_text("{")
    with pytest.raises(DeeprlError, match=r"eval.json is not readable JSON"):
        read_record(run_dir)
    (run_dir / "eval.json").unlink()
    (run_dir / "metrics.csv").write_text("when,what\n1,2\n")
    with pytest.raises(DeeprlError, match=r"metrics.csv is not a run's metrics"):
        read_record(run_dir)


# ------------------------------------------------------------------------------------------------ several runs


def final_returns(*run_dirs: Path, agent: str = "final") -> list[float]:
    return [json.loads((run_dir / "eval.json").read_text())[agent]["mean_return"] for run_dir in run_dirs]


def preset_lr_label(run_dir: Path) -> str:
    return f"lr={yaml.safe_load((run_dir / 'config.yaml').read_text())['lr']:g}"


def expected_labels(runs: dict[str, Path]) -> list[str]:
    """The two configurations' names, the best marked: none solves in 600 steps, so the best is the one whose
    best agents score the higher interquartile mean (of two seeds: their mean)."""
    preset_best = sum(final_returns(runs["a0"], runs["a1"], agent="best")) / 2
    (other_best,) = final_returns(runs["b0"], agent="best")
    winner = 0 if preset_best >= other_best else 1
    labels = [preset_lr_label(runs["a0"]), f"lr={OTHER_LR:g}"]
    return [label + (" (best)" if index == winner else "") for index, label in enumerate(labels)]


def test_several_runs_are_grouped_by_configuration_over_their_seeds(runs, tmp_path):
    result = run_deeprl("report", runs["a0"], runs["a1"], runs["b0"], "-o", "all.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "all.html").read_text()
    page = Page(text)
    assert page.title == "dqn on CartPole-v1"
    summary = {row[0]: row[1:] for row in page.table("summary")[1:]}
    # named by the one setting that differs; the preset's own learning rate first
    assert list(summary) == expected_labels(runs)
    summary = {key.removesuffix(" (best)"): value for key, value in summary.items()}
    preset = preset_lr_label(runs["a0"])
    first, second = final_returns(runs["a0"], runs["a1"])
    # two seeds: the mean, a bootstrap interval from the lower to the higher (each seed drawn twice in a quarter of
    # the resamples), the interquartile mean of two is their mean
    low, high = sorted((first, second))
    mean = (first + second) / 2
    assert summary[preset][0] == "0/2"
    assert summary[preset][3] == f"{mean:,.1f} [{low:,.1f}, {high:,.1f}] · {mean:,.1f}"
    (alone,) = final_returns(runs["b0"])
    assert summary[f"lr={OTHER_LR:g}"][3] == f"{alone:,.1f} [{alone:,.1f}, {alone:,.1f}] · {alone:,.1f}"
    each = page.table("runs")[1:]
    assert [(row[0], row[1], row[2], row[3]) for row in each] == [
        (preset, "0", "finished", "600"),
        (preset, "1", "finished", "600"),
        (f"lr={OTHER_LR:g}", "0", "finished", "600"),
    ]
    # the curves over seeds, then each run's own curve
    pictures = [Image.open(io.BytesIO(data)).size for data in embedded(text, "image/png")]
    assert pictures == [(900, 500)] * 4
    assert "<video" not in text


def test_a_sweep_directory_is_reported_by_its_configurations(runs, tmp_path):
    """A sweep's layout (sweep.yaml, runs/LABEL-sSEED) holding these runs: one run failed after starting, and a
    configuration refused before any of its runs started (only its reason in its run directories)."""
    sweep_dir = tmp_path / "sweep"
    preset_lr = yaml.safe_load((runs["a0"] / "config.yaml").read_text())["lr"]
    spec = SweepSpec(algo="dqn", env="CartPole-v1", seeds=[0, 1], grid={"lr": [preset_lr, OTHER_LR, -1.0]})
    trials = spec.trials(sweep_dir)
    for trial, source in zip(trials, [runs["a0"], runs["a1"], runs["b0"], runs["a1"]], strict=False):
        shutil.copytree(source, trial["run_dir"])
    (Path(trials[3]["run_dir"]) / "eval.json").unlink()
    (Path(trials[3]["run_dir"]) / "error.txt").write_text("the run's process died 3 times\n")
    for trial in trials[4:]:
        Path(trial["run_dir"]).mkdir(parents=True)
        (Path(trial["run_dir"]) / "error.txt").write_text("lr must be > 0.0 (got -1.0)\n")
    (sweep_dir / SWEEP_FILE).write_text(spec_to_yaml(spec))
    result = run_deeprl("report", sweep_dir, "--no-video", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (sweep_dir / "report.html").read_text()
    page = Page(text)
    assert page.title == "sweep: dqn on CartPole-v1"
    summary = {row[0]: row[1:] for row in page.table("summary")[1:]}
    assert list(summary)[:2] == expected_labels(runs) and list(summary)[2] == "lr=-1"
    (alone,) = final_returns(runs["b0"])
    summary = {key.removesuffix(" (best)"): value for key, value in summary.items()}
    assert summary[f"lr={OTHER_LR:g}"][0] == "0/2 (1 failed)"
    assert summary[f"lr={OTHER_LR:g}"][3].startswith(f"{alone:,.1f} [")
    assert summary["lr=-1"] == ["0/2 (2 failed)", "—", "—", "—", "—"]
    statuses = [row[2] for row in page.table("runs")[1:]]
    assert (
        statuses
        == ["finished"] * 3 + ["failed: the run's process died 3 times"] + ["failed: lr must be > 0.0 (got -1.0)"] * 2
    )
    # the curves over seeds, and a curve for each run that has metrics: the four that started
    assert len(embedded(text, "image/png")) == 1 + 4


def test_frames_stop_being_kept_at_their_memory_limit_while_the_episode_plays_on(runs):
    from deeprl.envs import spec_factory
    from deeprl.media import play_frames

    agent = deeprl.load(runs["a0"])
    frame_bytes = 400 * 600 * 3  # CartPole's picture
    frames, returns = play_frames(agent, spec_factory(agent.env_spec), seed=10_000, max_bytes=5 * frame_bytes + 1)
    assert len(frames) == 5
    assert returns == list(deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=10_000).returns)


def test_a_run_whose_env_cannot_draw_itself_is_reported_without_its_video(tmp_path):
    run_dir = deeprl.train(
        "dqn", "tests.custom_envs:UndrawnCorridor", run_dir=tmp_path / "run", **{**SETTINGS, "max_episode_steps": 50}
    ).run_dir
    result = run_deeprl("report", run_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (run_dir / "report.html").read_text()
    assert "<p>No video: " in text and "<video" not in text
    assert Page(text).table("results")  # the rest of the page stands


def test_the_diagnostics_are_the_columns_the_learner_logged(runs):
    """DQN logs epsilon and its loss at each episode's end: both drawn, against those steps, with those values."""
    from deeprl.media import diagnostics, diagnostics_figure, read_run

    run = read_run(runs["a0"])
    series = diagnostics(run)
    assert list(series) == ["epsilon", "loss"]
    rows = [row for row in metrics_rows(runs["a0"], "train") if row["loss"]]
    steps, losses = series["loss"]
    assert steps.tolist() == [int(row["step"]) for row in rows]
    assert losses.tolist() == [float(row["loss"]) for row in rows]
    figure = diagnostics_figure(run)
    drawn = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in drawn] == ["epsilon", "loss"]
    assert drawn[1].lines[0].get_ydata().tolist() == losses.tolist()
