"""The README's examples run as written: every `python` block, and every `deeprl …` line of "Using it".

Budgets come from DEEPRL_MAX_STEPS (deeprl caps every run at that many steps and says so), so the code a reader
copies is exactly the code that runs here. Placeholders such as `runs/dqn-CartPole-v1-s3-...` and `runs/A` are
replaced by the run directories the earlier lines made.
"""

from __future__ import annotations

import re
import shlex
import signal
from pathlib import Path

import pytest

from tests.conftest import run_deeprl, start_deeprl, wait_for

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
STEP_CAP = "500"
STEP_CAP_ENV = {"DEEPRL_MAX_STEPS": STEP_CAP}

# A user's own env package, as the "your own env class" line imagines it: a corridor to walk to the right.
WAREHOUSE = """
import gymnasium as gym
import numpy as np


class Warehouse(gym.Env):
    def __init__(self, length: int = 5) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position / self.length], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if action == 1 else -1))
        arrived = self.position == self.length
        return self._obs(), 1.0 if arrived else -0.1, arrived, False, {}
"""


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def using_it_lines() -> list[str]:
    section = README.split("## Using it", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("deeprl ")]


def test_readme_python_blocks_run_as_written(tmp_path):
    blocks = code_blocks("python")
    assert blocks, "the README has no python example"
    for index, code in enumerate(blocks):
        script = tmp_path / f"block_{index}.py"
        script.write_text(code)
        result = run_deeprl(cwd=tmp_path, script=script, env=STEP_CAP_ENV)
        assert result.returncode == 0, f"README python block {index} failed:\n{result.stderr}"
        assert f"DEEPRL_MAX_STEPS={STEP_CAP} caps this run" in result.stderr


@pytest.mark.resume  # its first line is stopped with Ctrl-C, and resumed
def test_readme_using_it_lines_run(tmp_path):
    lines = using_it_lines()
    assert len(lines) >= 10
    package = tmp_path / "my_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "envs.py").write_text(WAREHOUSE)
    runs = tmp_path / "runs"

    def run_named(prefix: str) -> Path:
        """The first run directory (by time) a placeholder `runs/PREFIX-...` stands for."""
        found = sorted(runs.glob(f"{prefix}-*"))
        assert found, f"no run directory matches {prefix}-..."
        return found[0]

    def substituted(line: str) -> str:
        line = re.sub(r"runs/(\S+?)-\.\.\.", lambda match: str(run_named(match.group(1)).relative_to(tmp_path)), line)
        for placeholder, prefix in (("runs/A", "dqn-CartPole-v1-s3"), ("runs/B", "dqn-Acrobot-v1-tutorial-s0")):
            if placeholder in line:
                line = line.replace(placeholder, str(run_named(prefix).relative_to(tmp_path)))
        return line

    first, *rest = lines
    # The first line's run is interrupted (Ctrl-C) once it has evaluated, so that the `resume` line has a run
    # to continue; the lines after it use the resumed, finished run.
    # as `python -m deeprl` would, the working directory comes first on the import path (for my_pkg)
    trainer = start_deeprl(
        shlex.split(first)[1:], tmp_path, env={"DEEPRL_MAX_STEPS": "2000"}, python_path=[str(tmp_path)]
    )
    wait_for(
        lambda: trainer.stdout().startswith("step ") and "\n" in trainer.stdout(),
        "the first evaluation's progress line",
        trainer,
    )
    trainer.send_signal(signal.SIGINT)
    trainer.wait(timeout=120)
    errors = trainer.stderr()
    assert trainer.returncode == 130, errors
    assert "continue with: deeprl resume" in errors

    for line in rest:
        command = substituted(line)
        result = run_deeprl(*shlex.split(command)[1:], cwd=tmp_path, env=STEP_CAP_ENV, python_path=[str(tmp_path)])
        assert result.returncode == 0, f"`{command}` failed:\n{result.stderr}"
        if command.startswith("deeprl train"):
            assert "run directory: runs/" in result.stdout
    assert (tmp_path / "cartpole.mp4").stat().st_size > 0
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert (run_named("dqn-CartPole-v1-s3") / "eval.json").is_file()  # resumed and finished
    names = sorted(path.name.rsplit("-s", 1)[0] for path in runs.iterdir())
    assert "dqn-Acrobot-v1-tutorial-shaped" in names and "dqn-CartPole-v0-pixels" in names
    assert "dqn-my_pkg.envs_Warehouse" in names and "dqn-FrozenLake-v1" in names
    (seeds_dir,) = runs.glob("dqn-CartPole-v1-seeds0-2-*")
    assert all((seeds_dir / f"seed-{seed}" / "eval.json").is_file() for seed in range(3))


@pytest.mark.parametrize("flag", ["--steps", "--set"])
def test_the_step_cap_is_said_and_recorded(tmp_path, flag):
    args = ["--steps", "900"] if flag == "--steps" else ["--set", "total_steps=900"]
    result = run_deeprl(
        "train",
        "dqn",
        "CartPole-v1",
        *args,
        "--quiet",
        "--run-dir",
        "run",
        "--set",
        "eval_episodes=2",
        "--set",
        "final_eval_episodes=2",
        cwd=tmp_path,
        env=STEP_CAP_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.strip() == f"deeprl: warning: DEEPRL_MAX_STEPS={STEP_CAP} caps this run at {STEP_CAP} "
        "steps (its settings ask for 900)"
    )
    assert f"total_steps: {STEP_CAP}\n" in (tmp_path / "run" / "config.yaml").read_text()
