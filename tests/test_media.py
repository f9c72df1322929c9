"""Learning curves of real runs, read back through matplotlib; videos and HTML animations of a trained agent:
real files, decoded back and counted."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import imageio.v2 as imageio
import pytest
import yaml
from PIL import Image

import deeprl
from deeprl.errors import DeeprlError
from deeprl.media import MOVING_AVERAGE, env_threshold, plot_runs, runs_figure
from tests.conftest import PNG_SIGNATURE, run_deeprl

FRAME_LIST = re.compile(r"const frames = (\[.*?\]);")
EVERY = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("media") / "run"
    agent = deeprl.train(
        "dqn",
        "CartPole-v1",
        seed=3,
        steps=600,
        run_dir=run_dir,
        hidden_sizes=(32, 32),
        learning_starts=100,
        eval_every=300,
        eval_episodes=2,
        final_eval_episodes=2,
        tensorboard=False,
    )
    return agent, run_dir


def expected_frames(agent, seed: int, episodes: int = 1) -> int:
    """The reset frame, every EVERY-th step, and the last step when it is not a multiple of EVERY."""
    lengths = deeprl.evaluate(agent, "CartPole-v1", episodes=episodes, seed=seed).lengths
    return sum(1 + int(n) // EVERY + (1 if n % EVERY else 0) for n in lengths)


def html_frames(html: str) -> list[Image.Image]:
    """The frames the page's player steps through, decoded from their PNG data URIs."""
    uris = json.loads(FRAME_LIST.search(html).group(1))
    prefix = "data:image/png;base64,"
    assert all(uri.startswith(prefix) for uri in uris)
    return [Image.open(io.BytesIO(base64.b64decode(uri.removeprefix(prefix)))) for uri in uris]


def test_watch_writes_an_mp4_that_decodes(trained, tmp_path):
    _, run_dir = trained
    result = run_deeprl("watch", run_dir, "--video", "out.mp4", "--every", EVERY, "--seed", "50", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with imageio.get_reader(tmp_path / "out.mp4", format="FFMPEG") as reader:
        frames = [frame for frame in reader.iter_data()]
    assert len(frames) == expected_frames(deeprl.load(run_dir), seed=50)
    assert frames[0].shape == (400, 600, 3)
    # a real picture: the white background and the dark cart are both there after compression
    assert frames[0].max() > 200 and frames[0].min() < 60


def test_watch_writes_an_html_animation(trained, tmp_path):
    _, run_dir = trained
    result = run_deeprl(
        "watch", run_dir, "--video", "out.html", "--every", EVERY, "--episodes", "2", "--seed", "60", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out.html").read_text()
    frames = html_frames(html)
    count = expected_frames(deeprl.load(run_dir), seed=60, episodes=2)
    assert len(frames) == count
    assert f"({count} frames, 600x400)" in result.stdout
    assert all(frame.size == (600, 400) and frame.mode == "RGB" for frame in frames)
    assert f'max="{count - 1}"' in html  # the slider spans every frame


def test_animate_api_matches_the_agents_episode(trained, tmp_path):
    agent, _ = trained
    animation = deeprl.animate(agent, every=EVERY, seed=70)
    assert animation.frame_count == expected_frames(agent, seed=70)
    assert (animation.width, animation.height) == (600, 400)
    assert animation._repr_html_() == animation.html  # what a notebook shows
    assert len(html_frames(animation.html)) == animation.frame_count
    # the first frame is the reset state of episode seed 70, as Gymnasium draws it
    env = deeprl.make_env("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=70)
    first = html_frames(animation.html)[0]
    assert first.tobytes() == Image.fromarray(env.render()).tobytes()
    animation.save(tmp_path / "episode.html")
    assert (tmp_path / "episode.html").read_text() == animation.html
    assert animation.returns == [
        float(expected) for expected in deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=70).returns
    ]


def test_animate_rejects_bad_arguments(trained):
    agent, _ = trained
    with pytest.raises(DeeprlError, match="every and episodes must be >= 1"):
        deeprl.animate(agent, every=0)


# ------------------------------------------------------------------------------------------ learning curves

TINY = dict(
    steps=300,
    learning_starts=100,
    eval_every=100,
    eval_episodes=2,
    final_eval_episodes=2,
    tensorboard=False,
    progress=False,
)
MEAN = f"{MOVING_AVERAGE}-episode mean"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two CartPole runs (seed 0 with the preset's lr, seed 1 with lr 0.0005) and one Acrobot run."""
    root = tmp_path_factory.mktemp("curves")
    deeprl.train("dqn", "CartPole-v1", seed=0, run_dir=root / "cartpole-0", **TINY)
    deeprl.train("dqn", "CartPole-v1", seed=1, lr=0.0005, run_dir=root / "cartpole-1", **TINY)
    deeprl.train("dqn", "Acrobot-v1", seed=0, max_episode_steps=100, run_dir=root / "acrobot-0", **TINY)
    return root / "cartpole-0", root / "cartpole-1", root / "acrobot-0"


def config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def copy_run(run_dir: Path, target: Path, **changes) -> Path:
    """The run's config, metrics and summary in `target`, with config.yaml edited (a value of ... drops the key)."""
    target.mkdir(parents=True)
    for name in ("metrics.csv", "eval.json"):
        shutil.copy(run_dir / name, target / name)
    settings = {**config(run_dir), **changes}
    (target / "config.yaml").write_text(
        yaml.safe_dump({k: v for k, v in settings.items() if v is not ...}, sort_keys=False)
    )
    return target


def legend(axes) -> list[str]:
    return [text.get_text() for text in axes.get_legend().get_texts()]


def solved_lines(axes) -> list[float]:
    return [line.get_ydata()[0] for line in axes.get_lines() if line.get_label().startswith("solved")]


def curve_color(axes, label: str):
    return next(line.get_color() for line in axes.get_lines() if line.get_label() == label)


def test_comparison_of_two_envs_labels_runs_by_what_differs(runs, tmp_path):
    cartpole_0, _, acrobot = runs
    figure = runs_figure(runs)
    assert [axes.get_title() for axes in figure.axes] == ["CartPole-v1", "Acrobot-v1"]
    assert config(cartpole_0)["preset"] == "default"
    assert figure.get_suptitle() == "dqn"  # the shared algorithm, not "runs"; the default preset goes unsaid
    assert figure.get_supxlabel() == "environment steps"
    cartpole, acrobot_axes = figure.axes
    preset_lr = config(cartpole_0)["lr"]
    assert legend(cartpole) == [f"seed 0 · lr={preset_lr:g}", "seed 1 · lr=0.0005", "greedy evaluation", "solved (475)"]
    # the Acrobot run is alone in its subplot: its episodes are drawn faintly beside its mean, as for one run
    assert legend(acrobot_axes) == [
        "episode return",
        f"seed 0 · lr={config(acrobot)['lr']:g}",
        "greedy evaluation",
        "solved (-100)",
    ]
    assert solved_lines(cartpole) == [475.0]
    assert solved_lines(acrobot_axes) == [-100.0]
    # evaluation dots take their run's colour; the legend's marker is a gray stand-in for all of them
    dots = [line for line in cartpole.get_lines() if line.get_marker() == "o" and line.get_linestyle() == "None"]
    assert [line.get_color() for line in dots] == [curve_color(cartpole, text) for text in legend(cartpole)[:2]]
    assert [len(line.get_xdata()) for line in dots] == [3, 3]
    assert cartpole.get_legend().legend_handles[2].get_color() == "gray"
    # what the command line calls: the same picture, written as a PNG
    plot_runs(runs, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(tmp_path / "compare.png") as image:
        assert image.size == (900, 800)
    assert [path.name for path in tmp_path.iterdir()] == ["compare.png"]  # no temporary file left


def test_one_run_as_a_finished_run_draws_it(runs):
    cartpole_0, _, _ = runs
    (axes,) = runs_figure([cartpole_0]).axes
    assert axes.get_title() == "dqn on CartPole-v1 · seed 0"
    assert legend(axes) == ["episode return", MEAN, "greedy evaluation", "solved (475)"]
    # Run.finish passes its own threshold and title; they win over the recorded ones
    (axes,) = runs_figure([cartpole_0], threshold=400, title="dqn on CartPole-v1 (seed 0)").axes
    assert axes.get_title() == "dqn on CartPole-v1 (seed 0)"
    assert solved_lines(axes) == [400.0]


def test_runs_without_an_evaluation_or_any_episode_plot(runs, tmp_path):
    cartpole_0, _, _ = runs
    interrupted = copy_run(cartpole_0, tmp_path / "interrupted", solve_threshold=300.0)
    (interrupted / "eval.json").unlink()
    just_started = copy_run(cartpole_0, tmp_path / "just-started", seed=1)
    (just_started / "eval.json").unlink()
    header = (cartpole_0 / "metrics.csv").read_text().splitlines(keepends=True)[0]
    (just_started / "metrics.csv").write_text(header)
    plot_runs([interrupted, just_started], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG_SIGNATURE
    (axes,) = runs_figure([interrupted, just_started]).axes
    # without eval.json the configured line is drawn (in its run's colour), else the env's own (shared: gray)
    assert legend(axes) == ["seed 0 · solve_threshold=300", "greedy evaluation", "solved (300)", "solved (475)"]
    assert solved_lines(axes) == [300.0, 475.0]
    assert [line.get_color() for line in axes.get_lines() if line.get_label().startswith("solved")] == ["C0", "C1"]
    (axes,) = runs_figure([just_started]).axes
    assert legend(axes) == ["solved (475)"]
    assert [line.get_label() for line in axes.get_lines()] == ["solved (475)"]


def test_runs_identical_in_every_setting_are_told_apart_by_directory(runs, tmp_path):
    cartpole_0, _, _ = runs
    first, second = copy_run(cartpole_0, tmp_path / "first"), copy_run(cartpole_0, tmp_path / "second")
    (axes,) = runs_figure([first, second]).axes
    assert legend(axes)[:2] == ["first", "second"]
    assert axes.get_title() == "dqn on CartPole-v1 · seed 0"
    (axes,) = runs_figure([first, second, copy_run(cartpole_0, tmp_path / "third", seed=1)]).axes
    assert legend(axes)[:3] == ["seed 0 · first", "seed 0 · second", "seed 1"]


def test_labels_name_a_few_settings_then_count_the_rest(runs, tmp_path):
    cartpole_0, _, _ = runs
    changed = dict(gamma=0.9, n_step=1, lr=0.01, batch_size=32, tau=0.5)  # in config order
    base = copy_run(cartpole_0, tmp_path / "base")
    many = copy_run(cartpole_0, tmp_path / "many", **changed)
    labels = legend(runs_figure([base, many]).axes[0])[:2]
    assert labels[1] == "gamma=0.9 · n_step=1 · lr=0.01 · +2 more"
    # a run differing from another only in a setting the short labels leave out: every setting is named
    last_only = copy_run(cartpole_0, tmp_path / "last-only", **{**changed, "tau": 1.0})
    labels = legend(runs_figure([base, many, last_only]).axes[0])[:3]
    assert labels[1:] == [
        "gamma=0.9 · n_step=1 · lr=0.01 · batch_size=32 · tau=0.5",
        "gamma=0.9 · n_step=1 · lr=0.01 · batch_size=32 · tau=1",
    ]


def test_settings_that_follow_from_the_preset_stay_out_of_labels(runs, tmp_path):
    cartpole_0, _, _ = runs
    default = copy_run(cartpole_0, tmp_path / "default", preset="default")
    tutorial = copy_run(cartpole_0, tmp_path / "tutorial", preset="tutorial", lr=0.0001, batch_size=64)
    old = copy_run(cartpole_0, tmp_path / "old", preset=...)  # written before runs recorded their preset
    (axes,) = runs_figure([default, tutorial, old]).axes
    assert legend(axes)[:3] == ["preset default", "preset tutorial", "preset ?"]
    assert axes.get_title() == "dqn on CartPole-v1 · seed 0"
    (axes,) = runs_figure([tutorial, copy_run(tutorial, tmp_path / "tutorial-2", seed=2, lr=0.0002)]).axes
    assert legend(axes)[:2] == ["seed 0 · lr=0.0001", "seed 2 · lr=0.0002"]
    assert axes.get_title() == "dqn on CartPole-v1 · preset tutorial"
    (axes,) = runs_figure([tutorial], note="interrupted at step 300").axes
    assert axes.get_title() == "dqn on CartPole-v1 · preset tutorial · seed 0 · interrupted at step 300"
    # runs of different algorithms, the same preset and seed: what they share, and no preset named as an algorithm
    ppo = copy_run(default, tmp_path / "ppo", algo="ppo")
    (axes,) = runs_figure([default, ppo]).axes
    assert axes.get_title() == "CartPole-v1 · seed 0"
    assert legend(axes)[:2] == ["dqn", "ppo"]


def test_envs_without_a_registered_threshold_have_no_solve_line(runs, tmp_path):
    cartpole_0, _, _ = runs
    assert env_threshold("CartPole-v1") == 475.0
    assert env_threshold("my_pkg.envs:Warehouse") is None  # never imported to find out
    assert env_threshold("NoSuchEnv-v9") is None
    custom = copy_run(cartpole_0, tmp_path / "custom", env="my_pkg.envs:Warehouse")
    unknown = copy_run(cartpole_0, tmp_path / "unknown", env="NoSuchEnv-v9", seed=1)
    for run_dir in (custom, unknown):
        (run_dir / "eval.json").unlink()
    figure = runs_figure([custom, unknown])
    assert [axes.get_title() for axes in figure.axes] == ["my_pkg.envs:Warehouse", "NoSuchEnv-v9"]
    assert [solved_lines(axes) for axes in figure.axes] == [[], []]


def legend_beside_axes(figure) -> list[bool]:
    """Per subplot, whether its legend lies wholly right of the axes' drawing area and inside the picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lays the figure out as it is saved
    renderer = canvas.get_renderer()
    width = figure.bbox.width
    placed = []
    for axes in figure.axes:
        box, area = axes.get_legend().get_window_extent(renderer), axes.get_window_extent(renderer)
        placed.append(box.x0 >= area.x1 and box.x1 <= width)
    return placed


def test_legends_sit_beside_the_data(runs, tmp_path):
    cartpole_0, cartpole_1, _ = runs
    assert legend_beside_axes(runs_figure(runs)) == [True, True]
    assert legend_beside_axes(runs_figure([cartpole_0])) == [True]
    from deeprl.media import groups_figure

    assert legend_beside_axes(groups_figure({"lr=a": [cartpole_0], "lr=b": [cartpole_1]})) == [True]


def write_metrics(path: Path, rows: list[str], **settings) -> Path:
    """A run directory reduced to what a plot reads: config.yaml and metrics rows."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(
        yaml.safe_dump(
            {"algo": "a2c", "preset": "default", "env": "Pendulum-v1", "seed": 0, **settings}, sort_keys=False
        )
    )
    (path / "metrics.csv").write_text("kind,step,episode,return,return_std,length,time_s\n" + "\n".join(rows) + "\n")
    return path


def test_episodes_ending_on_one_step_are_one_point(tmp_path):
    """Eight env copies of fixed-length episodes end theirs together: each step is one point (the episodes'
    mean, their range shaded), never a vertical line, and the moving average is taken after the step's last."""
    returns = {200: [-1800, -1600, -1700, -1500], 400: [-1200, -1400, -1000, -1300]}
    rows = [
        f"train,{step},{episode},{value},,200,0.1"
        for step, values in returns.items()
        for episode, value in enumerate(values)
    ]
    (axes,) = runs_figure([write_metrics(tmp_path / "vector", [*rows, "eval,400,8,-900,0,200,0.2"])]).axes
    episodes = next(line for line in axes.get_lines() if line.get_label().startswith("episode return"))
    mean = next(line for line in axes.get_lines() if line.get_label() == MEAN)
    assert episodes.get_label() == "episode return (mean per step)"
    assert list(episodes.get_xdata()) == [200, 400] and list(mean.get_xdata()) == [200, 400]
    assert list(episodes.get_ydata()) == [-1650.0, -1225.0]
    assert list(mean.get_ydata()) == [-1650.0, (-6600 - 4900) / 8]  # all 4, then all 8 episodes
    (band,) = axes.collections
    assert band.get_label() == "range per step"
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == (-1800.0, -1000.0)
    assert "range per step" in legend(axes)


def test_a_single_point_is_drawn_with_a_marker(tmp_path):
    from deeprl.media import groups_figure

    one = write_metrics(tmp_path / "one", ["train,200,0,-1500,,200,0.1", "eval,200,1,-1400,0,200,0.1"], lr=0.1)
    many = [
        write_metrics(
            tmp_path / f"many-{seed}",
            [f"eval,{step},1,{-1000 + 100 * seed},0,200,0.1" for step in (200, 400)],
            seed=seed,
            lr=0.2,
        )
        for seed in range(2)
    ]
    (axes,) = groups_figure({"lr=0.1": [one], "lr=0.2": many}).axes
    single, pair = (line for line in axes.get_lines() if line.get_label().startswith("lr="))
    assert single.get_label() == "lr=0.1 (1 run)" and single.get_marker() == "o"
    assert pair.get_label() == "lr=0.2 (2 runs)" and pair.get_marker() in ("", "None", None)
    (axes,) = runs_figure([one]).axes
    assert {
        line.get_label(): line.get_marker()
        for line in axes.get_lines()
        if len(line.get_xdata()) == 1 and line.get_linestyle() != "None"
    } == {"episode return": "o", MEAN: "o"}


@pytest.mark.parametrize(
    ("suffix", "signature"),
    [
        (".png", PNG_SIGNATURE),
        (".svg", b"<?xml"),
        (".pdf", b"%PDF"),
        (".jpg", b"\xff\xd8\xff"),
        (".JPEG", b"\xff\xd8\xff"),
        (".eps", b"%!PS"),
    ],
)
def test_a_plot_is_written_in_the_format_its_name_says(runs, tmp_path, suffix, signature):
    cartpole_0, _, _ = runs
    output = tmp_path / f"curve{suffix}"
    plot_runs([cartpole_0], output)
    assert output.read_bytes().startswith(signature)


def test_a_png_plot_is_drawn_once_into_savefigs_bytes(runs, tmp_path):
    """Every run writes curve.png: it is drawn once (savefig draws a constrained layout twice), byte for byte
    what savefig writes."""
    from deeprl.media import save_figure

    figure, draws = runs_figure(runs), []
    figure.canvas.mpl_connect("draw_event", draws.append)
    save_figure(figure, tmp_path / "curve.png")
    assert len(draws) == 1
    expected = io.BytesIO()
    runs_figure(runs).savefig(expected, format="png", dpi=100)
    assert (tmp_path / "curve.png").read_bytes() == expected.getvalue()


def test_a_plot_name_matplotlib_cannot_write_is_refused(runs, tmp_path):
    cartpole_0, _, _ = runs
    for name in ("curve.gif", "curve", "curve.png.txt"):
        with pytest.raises(DeeprlError, match=r"a plot is written as \.png, \.svg, \.pdf, \.jpg, \.jpeg, \.eps"):
            plot_runs([cartpole_0], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_group_by_takes_run_level_keys_and_refuses_unknown_ones(runs, tmp_path):
    from deeprl.media import group_runs

    cartpole_0, _, _ = runs
    ppo = copy_run(cartpole_0, tmp_path / "ppo", algo="ppo")
    assert {label: [path.name for path in paths] for label, paths in group_runs([cartpole_0, ppo], "algo").items()} == {
        "algo=dqn": ["cartpole-0"],
        "algo=ppo": ["ppo"],
    }
    assert list(group_runs(runs, "env")) == ["env=CartPole-v1", "env=Acrobot-v1"]
    assert list(group_runs(runs, "seed")) == ["seed=0", "seed=1"]
    assert list(group_runs(runs, "preset")) == ["preset=default"]
    with pytest.raises(DeeprlError) as caught:
        group_runs(runs, "lrr")
    assert str(caught.value) == (
        "unknown --group-by key 'lrr': no run has it; did you mean 'lr'? (algo, env, preset, "
        "seed, or a setting in the runs' config.yaml)"
    )
