"""The loop skeleton (deeprl.loop.drive) with a trainer of the test's own: where it evaluates and checkpoints, what a
checkpoint holds, and that a run continued from one goes on exactly as the uninterrupted run; and the run's
checkpointed record (RunRecord)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from deeprl.algos.reinforce import Config
from deeprl.checkpoint import load_latest_checkpoint
from deeprl.envs import env_options, spec_factory
from deeprl.experience import EnvRunner
from deeprl.loop import drive
from deeprl.nets import ActorCritic
from deeprl.policies import PolicyAgent, policy_network
from deeprl.run import Run, RunRecord, prepare_run_dir

STATE_EVERY = 3  # the test's trainer can save its state whole at every third step only


class RandomStepper:
    """Steps one CartPole copy with actions from draws of the driver's generator, keeping every draw; its state
    is whole at every third step."""

    def __init__(self, config: Config, runner: EnvRunner, rng: np.random.Generator) -> None:
        self.runner, self.rng = runner, rng
        network = policy_network(runner.observation_space, runner.action_space, config, "none")
        self.agent = PolicyAgent(ActorCritic(**network), runner.observation_space, runner.action_space, network)
        self.draws: list[float] = []

    def advance(self, step: int) -> int:
        step += 1
        self.draws.append(float(self.rng.random()))
        transitions = self.runner.step(np.array([int(self.draws[-1] < 0.5)]), step)
        self.runner.report(transitions)
        return step

    def can_checkpoint(self, step: int) -> bool:
        return step % STATE_EVERY == 0

    def next_checkpoint(self, step: int) -> int:
        return step + STATE_EVERY

    def check_finite(self, step: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"draws": list(self.draws)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws = list(state["draws"])


def train(path: Path, config: Config, checkpoint: dict[str, Any] | None = None) -> RandomStepper:
    make_env = spec_factory(env_options(config), None)
    if checkpoint is None:
        prepare_run_dir(path)
    run = Run(
        path,
        config,
        (),
        make_env,
        None,
        show_progress=False,
        resume_state=None if checkpoint is None else checkpoint["run"],
    )
    trainers: list[RandomStepper] = []

    def build(runner: EnvRunner, rng: np.random.Generator) -> RandomStepper:
        trainers.append(RandomStepper(config, runner, rng))
        return trainers[0]

    try:
        drive(config, make_env, run, None if checkpoint is None else checkpoint["algo"], 1, build)
    finally:
        run.close()
    return trainers[0]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv") as metrics:
        return [{key: value for key, value in row.items() if key != "time_s"} for row in csv.DictReader(metrics)]


def test_the_driver_checkpoints_where_the_trainer_can_and_a_resumed_run_goes_on_exactly(tmp_path):
    config = Config(
        total_steps=10, eval_every=5, eval_episodes=1, final_eval_episodes=1, checkpoint_every=6, tensorboard=False
    )
    whole = train(tmp_path / "whole", config)
    assert len(whole.draws) == 10
    assert [int(row["step"]) for row in rows(tmp_path / "whole") if row["kind"] == "eval"] == [5, 10]
    # due at 6 (checkpoint_every), and at 9: the last whole state before the budget's end (the next would be 12)
    manifests = sorted((tmp_path / "whole" / "checkpoints").glob("step-*.json"))
    assert [int(manifest.stem.split("-")[1]) for manifest in manifests] == [6, 9]
    checkpoint = load_latest_checkpoint(tmp_path / "whole", config.algo, config.env)
    assert set(checkpoint["algo"]) == {"draws", "step", "runner", "rng"}
    assert checkpoint["algo"]["step"] == 9 and checkpoint["algo"]["draws"] == whole.draws[:9]

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    for name in ("metrics.csv", "config.yaml"):
        (resumed_dir / name).write_bytes((tmp_path / "whole" / name).read_bytes())
    resumed = train(resumed_dir, config, checkpoint)
    # the process generator, the env copy and the trainer's own state come back: the tenth draw is the same
    assert resumed.draws == whole.draws
    assert rows(resumed_dir) == rows(tmp_path / "whole")


def test_a_run_record_round_trips_and_reads_a_checkpoint_from_before_updates_were_counted():
    record = RunRecord(
        step=600,
        metrics_bytes=1234,
        train_seconds=2.5,
        eval_seconds=0.5,
        best_mean=20.0,
        best_step=500,
        last_eval_step=500,
        next_checkpoint=1000,
        updates=7,
    )
    record.recent_returns.extend([10.0, 30.0])
    state = record.to_dict()
    assert state["recent_returns"] == [10.0, 30.0]  # plain data: checkpoints load with weights_only=True
    assert RunRecord.from_dict(state, next_checkpoint=0) == record
    older = {key: value for key, value in state.items() if key not in ("updates", "next_checkpoint")}
    restored = RunRecord.from_dict(older, next_checkpoint=400)
    assert (restored.updates, restored.next_checkpoint, restored.best_mean) == (0, 400, 20.0)
    assert RunRecord.from_dict({}, next_checkpoint=400).best_mean == -math.inf
