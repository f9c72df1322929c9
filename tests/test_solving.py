"""When a run counts as solved and stops: the solving line, stop_on_solve, and the second check on new episodes.

Real DQN runs on CartPole-v1, seed 0, with a constant learning rate (so a run's length does not change its
steps), 5-episode evaluations every 1 000 steps and a line at 260. Their greedy evaluations are 57.6, 288.6
and 313.2 at steps 1 000-3 000: the line is first reached at 2 000, where 5 new episodes give only 247.2, and
again at 3 000, where new episodes give 274.8.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deeprl
from deeprl.media import plot_runs
from deeprl.run import CONFIRM_EVAL_SEED, PERIODIC_EVAL_SEED

SETTINGS = {
    "seed": 0, "lr_end": None, "eval_every": 1000, "eval_episodes": 5, "solve_threshold": 260,
    "final_eval_episodes": 3, "tensorboard": False,
}


def rows(run_dir: Path, kind: str) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as metrics:
        return [row for row in csv.DictReader(metrics) if row["kind"] == kind]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("confirmed") / "run"
    deeprl.train("dqn", "CartPole-v1", steps=20_000, run_dir=run_dir, stop_on_solve=True,
                 solve_confirm_episodes=5, **SETTINGS)
    return run_dir


def test_without_a_second_check_the_first_crossing_solves_and_stops(tmp_path):
    run_dir = tmp_path / "run"
    deeprl.train("dqn", "CartPole-v1", steps=20_000, run_dir=run_dir, stop_on_solve=True, **SETTINGS)
    assert [float(row["return"]) for row in rows(run_dir, "eval")] == [57.6, 288.6]
    assert rows(run_dir, "confirm") == []
    result = summary(run_dir)
    assert result["solved"] and result["solved_at_step"] == 2000 and result["steps"] == 2000


def test_a_crossing_that_new_episodes_do_not_confirm_does_not_solve(confirmed):
    evaluations = [(int(row["step"]), float(row["return"])) for row in rows(confirmed, "eval")]
    assert evaluations == [(1000, 57.6), (2000, 288.6), (3000, 313.2)]
    confirmations = [(int(row["step"]), float(row["return"])) for row in rows(confirmed, "confirm")]
    assert confirmations == [(2000, 247.2), (3000, 274.8)]
    result = summary(confirmed)
    assert result["solved"] and result["solved_at_step"] == 3000 and result["steps"] == 3000


def test_a_checked_policy_is_ranked_by_all_its_episodes(tmp_path):
    """A line at 300. Step 3 000's 313.2 reaches it, but 5 new episodes give 274.8: 294.0 over all ten.
    Step 5 000's 301.2 reaches it and new episodes give 315.4: 308.3 over all ten. Ranked by the periodic
    evaluation alone, step 3 000's agent would be kept as the best; ranked by all its episodes, it is not."""
    run_dir = tmp_path / "run"
    deeprl.train("dqn", "CartPole-v1", steps=20_000, run_dir=run_dir, stop_on_solve=True,
                 solve_confirm_episodes=5, **{**SETTINGS, "solve_threshold": 300})
    evaluations = [(int(row["step"]), float(row["return"])) for row in rows(run_dir, "eval")]
    assert evaluations == [(1000, 57.6), (2000, 288.6), (3000, 313.2), (4000, 275.8), (5000, 301.2)]
    confirmations = [(int(row["step"]), float(row["return"])) for row in rows(run_dir, "confirm")]
    assert confirmations == [(3000, 274.8), (5000, 315.4)]
    result = summary(run_dir)
    assert result["solved_at_step"] == 5000 and result["best_policy_step"] == 5000


def test_the_second_check_plays_new_episodes(confirmed):
    agent = deeprl.load(confirmed / "best_policy.pt")  # step 3 000's agent: its evaluation, 313.2, is the best
    again = deeprl.evaluate(agent, confirmed, episodes=5, seed=CONFIRM_EVAL_SEED + 3000)
    assert again.mean == pytest.approx(274.8)
    assert deeprl.evaluate(agent, confirmed, episodes=5, seed=PERIODIC_EVAL_SEED).mean == pytest.approx(313.2)


def test_the_second_check_does_not_change_training(confirmed, tmp_path):
    """Without stopping, a run with no second check trains exactly as the checked run did."""
    run_dir = tmp_path / "run"
    deeprl.train("dqn", "CartPole-v1", steps=3000, run_dir=run_dir, stop_on_solve=False, **SETTINGS)
    without_time = [{key: value for key, value in row.items() if key != "time_s"} for row in rows(run_dir, "train")]
    expected = [{key: value for key, value in row.items() if key != "time_s"} for row in rows(confirmed, "train")]
    assert without_time == expected
    assert summary(run_dir)["solved_at_step"] == 2000


def test_the_curve_marks_the_checks(confirmed, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    lines = (confirmed / "metrics.csv").read_text().splitlines(keepends=True)
    (plain / "metrics.csv").write_text("".join(line for line in lines if not line.startswith("confirm,")))
    plot_runs([confirmed], tmp_path / "checked.png", title="t")
    plot_runs([plain], tmp_path / "plain.png", title="t")
    assert (tmp_path / "checked.png").read_bytes() != (tmp_path / "plain.png").read_bytes()


def test_the_command_line_reports_each_check(tmp_path):
    settings = [f"--set={key}={'null' if value is None else value}" for key, value in SETTINGS.items() if key != "seed"]
    result = subprocess.run(
        [sys.executable, "-m", "deeprl", "train", "dqn", "CartPole-v1", "--seed", "0", "--steps", "20000",
         "--run-dir", str(tmp_path / "run"), "--set=stop_on_solve=true", "--set=solve_confirm_episodes=5", *settings],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert len(lines) == 3
    assert lines[0].endswith("steps/s") and "eval    57.60" in lines[0]
    assert "eval   288.60" in lines[1] and lines[1].endswith("| new episodes 247.20 | not confirmed")
    assert "eval   313.20" in lines[2] and lines[2].endswith("| new episodes 274.80 | solved")
    assert "solved (eval mean >= 260) at step 3000" in result.stdout
