"""When a run counts as solved and stops: the solving line, stop_on_solve, and the check on new episodes.

Real DQN runs on CartPole-v1, seed 0, with a constant learning rate (so a run's length does not change its
steps) and 5-episode greedy evaluations every 1 000 steps. Float rounding in torch differs between CPUs, so
the exact returns do too: the tests read what each run wrote and check the rules against it. The line is the
first of LINES at which some crossing is refused by new episodes. On the machine these tests were written on
the first line, 300, serves: evaluations 57.6, 288.6, 313.2, 275.8 and 301.2 at steps 1 000-5 000; the
crossing at 3 000 is refused (5 new episodes: 274.8), the one at 5 000 confirmed (315.4). Ranked by the
periodic evaluation alone, step 3 000's agent would be kept as the best; ranked by all its ten episodes
(294.0 against 308.3), step 5 000's is.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

import deeprl
from deeprl.cli import main
from deeprl.media import plot_runs, runs_figure
from deeprl.run import CONFIRM_EVAL_SEED, PERIODIC_EVAL_SEED

pytestmark = pytest.mark.learning  # 20 000-step runs that stop once solved

LINES = (300, 260, 220, 340, 180)
CHECK_EPISODES = 5
SETTINGS = {
    "seed": 0,
    "lr_end": None,
    "eval_every": 1000,
    "eval_episodes": 5,
    "final_eval_episodes": 3,
    "tensorboard": False,
}


def rows(run_dir: Path, kind: str) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as metrics:
        return [row for row in csv.DictReader(metrics) if row["kind"] == kind]


def means(run_dir: Path, kind: str) -> dict[int, float]:
    return {int(row["step"]): float(row["return"]) for row in rows(run_dir, kind)}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())


def train_command(run_dir: Path, line: float) -> list[str]:
    """`deeprl train` with a solving line checked on new episodes, stopping once solved (SETTINGS as --set)."""
    settings = [f"--set={key}={'null' if value is None else value}" for key, value in SETTINGS.items() if key != "seed"]
    return [
        "train",
        "dqn",
        "CartPole-v1",
        "--seed",
        str(SETTINGS["seed"]),
        "--steps",
        "20000",
        "--run-dir",
        str(run_dir),
        "--set=stop_on_solve=true",
        f"--set=solve_confirm_episodes={CHECK_EPISODES}",
        f"--set=solve_threshold={line}",
        *settings,
    ]


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> tuple[Path, float]:
    """A run that stops at a confirmed crossing after at least one crossing that new episodes refused, made with
    the command line in this process (its stdout is kept beside the run directory, in `progress.txt`)."""
    for line in LINES:
        run_dir = tmp_path_factory.mktemp(f"line-{line}") / "run"
        stdout, stderr = io.StringIO(), io.StringIO()  # not terminals: progress lines, as in a log file
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(train_command(run_dir, line))
        assert code == 0, stderr.getvalue()
        (run_dir.parent / "progress.txt").write_text(stdout.getvalue())
        if summary(run_dir)["solved"] and min(means(run_dir, "confirm").values()) < line:
            return run_dir, line
    pytest.fail(f"no line of {LINES} had a crossing refused by new episodes")


def test_a_crossing_counts_only_when_new_episodes_reach_the_line_too(checked):
    run_dir, line = checked
    evaluations, checks = means(run_dir, "eval"), means(run_dir, "confirm")
    assert sorted(checks) == [step for step, mean in evaluations.items() if mean >= line]  # checked: crossings only
    solved_at = summary(run_dir)["solved_at_step"]
    assert solved_at == min(step for step in checks if checks[step] >= line)
    assert solved_at == max(evaluations) == summary(run_dir)["steps"]  # stopped there
    refused = [step for step in checks if checks[step] < line]
    assert refused and max(refused) < solved_at


def test_a_checked_agent_is_ranked_by_all_its_episodes(checked):
    run_dir, _ = checked
    evaluations, checks = means(run_dir, "eval"), means(run_dir, "confirm")
    scores = {step: (mean + checks[step]) / 2 if step in checks else mean for step, mean in evaluations.items()}
    assert summary(run_dir)["best_policy_step"] == max(scores, key=scores.get)


def test_the_check_plays_new_episodes(checked):
    run_dir, _ = checked
    best_step = summary(run_dir)["best_policy_step"]  # a checked crossing: it outscores every evaluation below
    agent = deeprl.load(run_dir / "best_policy.pt")
    periodic = deeprl.evaluate(agent, run_dir, episodes=5, seed=PERIODIC_EVAL_SEED)
    check = deeprl.evaluate(agent, run_dir, episodes=CHECK_EPISODES, seed=CONFIRM_EVAL_SEED + best_step)
    assert periodic.mean == pytest.approx(means(run_dir, "eval")[best_step], abs=1e-3)
    assert check.mean == pytest.approx(means(run_dir, "confirm")[best_step], abs=1e-3)


def test_without_the_check_the_first_crossing_solves_and_training_is_the_same(checked, tmp_path):
    checked_dir, line = checked
    run_dir = tmp_path / "run"
    checks = means(checked_dir, "confirm")
    # up to the evaluation after the last refused check: past a check, then stopped (nothing anneals over the budget)
    steps = min(step for step in means(checked_dir, "eval") if step > max(s for s in checks if checks[s] < line))
    deeprl.train(
        "dqn", "CartPole-v1", steps=steps, run_dir=run_dir, stop_on_solve=False, solve_threshold=line, **SETTINGS
    )
    evaluations = means(run_dir, "eval")
    assert evaluations == {step: mean for step, mean in means(checked_dir, "eval").items() if step <= steps}
    assert rows(run_dir, "confirm") == []
    assert summary(run_dir)["solved_at_step"] == min(step for step, mean in evaluations.items() if mean >= line)
    without_time = [{key: value for key, value in row.items() if key != "time_s"} for row in rows(run_dir, "train")]
    expected = [
        {key: value for key, value in row.items() if key != "time_s"}
        for row in rows(checked_dir, "train")
        if int(row["step"]) <= steps
    ]
    assert without_time == expected  # the checks played their episodes without touching training


def drawn(run_dir: Path) -> tuple[dict[str, list[tuple[float, float]]], list[str], list[float]]:
    """What the run's curve shows: its points by marker, its legend, and its horizontal lines' heights."""
    (axes,) = runs_figure([run_dir]).axes
    points = {
        line.get_marker(): [(float(x), float(y)) for x, y in zip(line.get_xdata(), line.get_ydata())]
        for line in axes.get_lines()
        if line.get_linestyle() == "None"
    }
    levels = [float(line.get_ydata()[0]) for line in axes.get_lines() if line.get_linestyle() == "--"]
    return points, [text.get_text() for text in axes.get_legend().get_texts()], levels


def test_the_curve_marks_the_checks(checked, tmp_path):
    run_dir, line = checked
    points, legend, levels = drawn(run_dir)
    assert points == {"o": sorted(means(run_dir, "eval").items()), "x": sorted(means(run_dir, "confirm").items())}
    assert {"greedy evaluation", "check on new episodes", f"solved ({line:g})"} <= set(legend)
    assert levels == [line]  # the run's own solving line, as eval.json recorded it

    plain = tmp_path / "plain"  # the same run without checks draws no crosses
    plain.mkdir()
    for name in ("config.yaml", "eval.json"):
        (plain / name).write_text((run_dir / name).read_text())
    text = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
    (plain / "metrics.csv").write_text("".join(row for row in text if not row.startswith("confirm,")))
    points, legend, _ = drawn(plain)
    assert points == {"o": sorted(means(run_dir, "eval").items())}
    assert "check on new episodes" not in legend
    plot_runs([run_dir], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_line_reports_each_check(checked):
    run_dir, line = checked
    stdout = (run_dir.parent / "progress.txt").read_text()
    progress = [text for text in stdout.splitlines() if text.startswith("step ")]
    evaluations, checks = means(run_dir, "eval"), means(run_dir, "confirm")
    assert len(progress) == len(evaluations)
    solved_at = summary(run_dir)["solved_at_step"]
    for text, (step, mean) in zip(progress, evaluations.items()):
        assert text.startswith(f"step {step:>8}") and f"eval {mean:8.2f}" in text
        if step not in checks:
            assert text.endswith("steps/s")
        else:
            verdict = "solved" if step == solved_at else "not confirmed"
            assert text.endswith(f"| new episodes {checks[step]:.2f} | {verdict}")
    assert f"solved (eval mean >= {line}) at step {solved_at}" in stdout
