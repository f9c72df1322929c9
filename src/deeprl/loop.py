"""The skeleton every family's training follows: seed, env copies, resume, then advance, evaluate and checkpoint
on schedule until the budget ends, and finish.

A family (the off-policy learners, the rollout learners A2C and PPO, REINFORCE, the actor-critics) supplies a
`Trainer`: how training advances past a step (one env step, one step of a rollout, a whole rollout), where its state
can be saved whole (an episode's end, a rollout's boundary), and that state. The driver owns only what every family
shares: the step count, the process's random generators and the env copies; networks, optimisers, buffers and any
state a policy carries (a recurrent one's included) belong to the trainer and its state_dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from deeprl.agent import Agent
from deeprl.checkpoint import process_rng_states, restore_process_rng_states
from deeprl.config import RunConfig
from deeprl.envs import seed_everything
from deeprl.errors import Interrupted
from deeprl.experience import EnvRunner
from deeprl.run import Run


class Trainer(Protocol):
    """What the driver needs of a family's training."""

    agent: Agent  # acts for evaluations and policy files

    def advance(self, step: int) -> int:
        """Collect the experience after `step` (and learn from it when due); the step reached."""

    def can_checkpoint(self, step: int) -> bool:
        """Whether nothing half-done is pending at `step`, so the state saved there is whole."""

    def next_checkpoint(self, step: int) -> int | None:
        """The step of the next point where a checkpoint can be taken, where it is known ahead (a rollout's
        boundary); None where any later step may be one (an episode's end, the budget's)."""

    def check_finite(self, step: int) -> None:
        """Stop the run with one line when a network holds NaN or inf."""

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, buffers and schedules; its keys sit beside the driver's in the checkpoint."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state` (the checkpoint's whole algorithm entry, the driver's keys included)."""


def state_of(parts: dict[str, Any]) -> dict[str, Any]:
    """Each named part's state_dict (networks, optimisers, noise); a part that is None stays None."""
    return {name: None if part is None else part.state_dict() for name, part in parts.items()}


def load_state_of(parts: dict[str, Any], state: dict[str, Any]) -> None:
    """The inverse of `state_of`: each named part loads its state from `state`."""
    for name, part in parts.items():
        if part is not None:
            part.load_state_dict(state[name])


# build(runner, rng) -> the family's trainer, its networks freshly initialised
Build = Callable[[EnvRunner, np.random.Generator], Trainer]
# make_trainer(config, runner, run, rng, device) -> a family's trainer for one run (its class, or a partial of it)
MakeTrainer = Callable[[Any, EnvRunner, Run, np.random.Generator, torch.device], Trainer]
# train(config, make_env, run, device, resume=None) -> the trained agent: what every algorithm module exposes
TrainFunction = Callable[..., Any]


def drive(
    config: RunConfig,
    make_env: Callable[..., gym.Env],
    run: Run,
    resume: dict[str, Any] | None,
    n_envs: int,
    build: Build,
) -> Any:
    """Train from scratch, or continue from a checkpoint's `resume` state exactly where it stopped; the agent."""
    rng = seed_everything(config.seed)
    runner = EnvRunner(make_env, n_envs, config.seed, run, config.vector)
    try:
        trainer = build(runner, rng)
        step = 0
        if resume is not None:
            trainer.load_state_dict(resume)
            restore_process_rng_states(resume["rng"], rng)
            runner.load_state_dict(resume["runner"])
            step = resume["step"]
        while step < config.total_steps:
            previous_step, step = step, trainer.advance(step)
            if run.evaluate_due(previous_step, step):
                trainer.check_finite(step)
                if run.evaluate(step, runner.episodes, trainer.agent):
                    break
            if trainer.can_checkpoint(step) and run.checkpoint_due(step, trainer.next_checkpoint(step)):
                trainer.check_finite(step)
                state = {
                    **trainer.state_dict(),
                    "step": step,
                    "runner": runner.state_dict(),
                    "rng": process_rng_states(rng),
                }
                run.checkpoint(step, state, trainer.agent)
        trainer.agent.summary = run.finish(step, runner.episodes, trainer.agent)
    finally:
        runner.close()
    return trainer.agent


class SeedsTrainer(Protocol):
    """Several seeds' trainers that advance together, step for step (a leading seed axis: deeprl.seed_axis)."""

    trainers: list[Trainer]  # the seeds still training, in order

    def advance(self, step: int) -> int:
        """Every seed's experience after `step` (and its learning when due); the step reached."""

    def can_checkpoint(self, step: int) -> bool:
        """Whether every seed can checkpoint at `step` (the seeds reach such points together)."""

    def seed_state(self, position: int) -> dict[str, Any]:
        """The state of `trainers[position]` as its single-seed run would checkpoint it."""

    def drop(self, positions: list[int]) -> None:
        """Take these trainers out (their runs have finished)."""


# stack(trainers) -> the seeds' trainers advancing together
Stack = Callable[[list[Trainer]], SeedsTrainer]


def drive_seeds(
    configs: list[RunConfig],
    make_envs: list[Callable[..., gym.Env]],
    runs: list[Run],
    resumes: list[dict[str, Any] | None],
    n_envs: int,
    build: Callable[[int, EnvRunner, np.random.Generator], Trainer],
    stack: Stack,
    announce: Callable[[int, list[int]], None],
) -> list[Any]:
    """`drive` for several seeds at once, step for step: each seed is seeded, built and resumed as its single-seed
    run is (resumes all from one step), evaluated and checkpointed in its own run directory at the same steps, and
    leaves the stack when its run stops (solved); `announce(step, evaluated)` follows each round of evaluations.
    The seeds' agents, in order."""
    runners: list[EnvRunner] = []
    rngs: list[np.random.Generator] = []
    try:
        trainers = []
        for index, (config, make_env, run, resume) in enumerate(zip(configs, make_envs, runs, resumes, strict=True)):
            rng = seed_everything(config.seed)  # each seed's networks initialised as its single-seed run's
            runner = EnvRunner(make_env, n_envs, config.seed, run, config.vector)
            runners.append(runner)
            trainer = build(index, runner, rng)
            if resume is not None:
                trainer.load_state_dict(resume)
                restore_process_rng_states(resume["rng"], rng)
                runner.load_state_dict(resume["runner"])
            rngs.append(rng)
            trainers.append(trainer)
        step = 0 if resumes[0] is None else resumes[0]["step"]
        seeds = stack(trainers)
        active = list(range(len(trainers)))  # seed indices, in the order of seeds.trainers
        total = configs[0].total_steps
        while active and step < total:
            previous_step, step = step, seeds.advance(step)
            stopped = []
            if runs[active[0]].evaluate_due(previous_step, step):
                for position, index in enumerate(active):
                    trainers[index].check_finite(step)
                    if runs[index].evaluate(step, runners[index].episodes, trainers[index].agent):
                        stopped.append(position)
                announce(step, active)
            stop_requested = any(runs[index].stop_requested for index in active)
            if seeds.can_checkpoint(step) and (
                stop_requested or runs[active[0]].checkpoint_due(step, trainers[active[0]].next_checkpoint(step))
            ):
                _checkpoint_seeds(seeds, step, active, runs, runners, rngs, stop_requested)
            for position in stopped:
                index = active[position]
                trainers[index].agent.summary = runs[index].finish(step, runners[index].episodes, trainers[index].agent)
            if stopped:
                seeds.drop(stopped)
                active = [index for position, index in enumerate(active) if position not in stopped]
        for index in active:
            trainers[index].agent.summary = runs[index].finish(step, runners[index].episodes, trainers[index].agent)
    finally:
        for runner in runners:
            runner.close()
    return [trainer.agent for trainer in trainers]


def _checkpoint_seeds(
    seeds: SeedsTrainer,
    step: int,
    active: list[int],
    runs: list[Run],
    runners: list[EnvRunner],
    rngs: list[np.random.Generator],
    stop_requested: bool,
) -> None:
    """Every training seed's checkpoint at `step` (each seed checks its networks first); on a stop request, each
    run's policy and curve as well, and then one Interrupted for them all."""
    interrupted = None
    for position, index in enumerate(active):
        trainer, run = seeds.trainers[position], runs[index]
        trainer.check_finite(step)
        run.stop_requested = stop_requested
        state = {
            **seeds.seed_state(position),
            "step": step,
            "runner": runners[index].state_dict(),
            "rng": process_rng_states(rngs[index]),
        }
        try:
            run.checkpoint(step, state, trainer.agent)
        except Interrupted as stop:
            interrupted = stop
    if interrupted is not None:
        raise interrupted


def training_function(make_trainer: MakeTrainer) -> TrainFunction:
    """An algorithm module's `train`: its family's trainer on the driver, with the config's `n_envs` env copies (one
    for the off-policy learners, which have no such setting)."""

    def train(
        config: RunConfig,
        make_env: Callable[..., gym.Env],
        run: Run,
        device: torch.device,
        resume: dict[str, Any] | None = None,
    ) -> Any:
        """Train from scratch, or continue from a checkpoint's `resume` state exactly where it stopped."""
        n_envs = getattr(config, "n_envs", 1)
        return drive(
            config, make_env, run, resume, n_envs, lambda runner, rng: make_trainer(config, runner, run, rng, device)
        )

    return train


def seeds_training_function(make_trainer: MakeTrainer, stack: Stack) -> Callable[..., list[Any]]:
    """An algorithm module's `train_seeds`: several seeds' runs of its family's trainer in one process, advanced
    together by `stack` (their updates on a seed axis); each seed's arguments as `train`'s, in lists."""

    def train_seeds(
        configs: list[RunConfig],
        make_envs: list[Callable[..., gym.Env]],
        runs: list[Run],
        device: torch.device,
        resumes: list[dict[str, Any] | None],
        announce: Callable[[int, list[int]], None],
    ) -> list[Any]:
        def build(index: int, runner: EnvRunner, rng: np.random.Generator) -> Trainer:
            return make_trainer(configs[index], runner, runs[index], rng, device)

        n_envs = getattr(configs[0], "n_envs", 1)
        return drive_seeds(configs, make_envs, runs, resumes, n_envs, build, stack, announce)

    return train_seeds
