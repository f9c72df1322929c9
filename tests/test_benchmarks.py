"""The benchmark harness scores agents in the environment their run trained on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SEEDS_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seeds.py"


def test_seeds_harness_evaluates_in_the_runs_shaped_env(tmp_path: Path) -> None:
    # tutorial-shaped pays tip height - 1 (at most 1, about -3 hanging down) for up to 1 000 steps; plain
    # Acrobot-v1 pays -1 for at most 500 steps, so no return there falls below -500.
    command = [
        sys.executable, str(SEEDS_SCRIPT), "--env", "Acrobot-v1", "--preset", "tutorial-shaped", "--seeds", "0",
        "--episodes", "2", "--out", str(tmp_path), "--set", "total_steps=1000", "--set", "eval_every=500",
        "--set", "eval_episodes=1", "--set", "final_eval_episodes=1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(rows) == 1 and rows[0]["seed"] == 0
    assert rows[0]["loaded_mean"] < -500 and rows[0]["final_mean"] < -500
    assert "| 0 |" in done.stdout
