"""The trainer shared by the off-policy learners (DQN, DDPG, TD3, SAC), on the loop skeleton of deeprl.loop: act,
step, store, sample, update.

Every env step the algorithm picks an action for the current observation (exploring: epsilon-greedy, action noise,
a sampled policy), the transition goes into a replay memory (Discrete actions as indices 0..n-1, Box actions as the
float vectors the algorithm stored: for DDPG/SAC its own [-1, 1] units), and from `learning_starts` on, every
`train_freq` steps (or episodes) the algorithm takes `gradient_steps` gradient steps on uniformly sampled batches.
Each algorithm file holds what differs: its networks, how it explores, its loss, and its target-network schedule.

Evaluations fire on step boundaries; checkpoints come at episode ends and hold the replay memory (unless
`checkpoint_replay` is off), so a resumed run continues exactly where it stopped.

With an env that masks actions (deeprl.action_masks; DQN, the one off-policy learner of Discrete actions), the
algorithm explores under the current state's mask and the replay memory keeps each transition's next-state mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, Protocol

import gymnasium as gym
import numpy as np
import torch

from deeprl.buffers import ReplayBuffer, TransitionBatch
from deeprl.config import RunConfig, knob
from deeprl.errors import DeeprlError, warn
from deeprl.experience import EnvRunner, Transitions
from deeprl.exploration import annealed
from deeprl.loop import TrainFunction, seeds_training_function, training_function
from deeprl.observations import observation_dtype
from deeprl.run import Run

IMAGE_RANK = 3  # (channels, height, width) observations are stored once, not again as next_obs


@dataclass
class OffPolicyConfig(RunConfig):
    """The knobs every off-policy learner shares; each algorithm's Config sets its own defaults."""

    gamma: float = knob(0.99, "discount factor", low=0.0, high=1.0)
    n_step: int = knob(1, "steps summed in the TD target before bootstrapping", low=1)
    lr: float = knob(1e-3, "learning rate", above=0.0)
    lr_end: float | None = knob(None, "anneal lr linearly to this by total_steps; None: constant", low=0.0)
    buffer_size: int = knob(100_000, "replay capacity in transitions", low=1)
    checkpoint_replay: bool = knob(
        True,
        "checkpoints hold the replay memory (resume is exact); false keeps them "
        "small, and a resumed run refills the memory for learning_starts steps",
    )
    batch_size: int = knob(64, "transitions per gradient step", low=1)
    learning_starts: int = knob(1_000, "env steps before the first gradient step", low=0)
    train_freq: int = knob(1, "env steps (or episodes) between rounds of gradient steps", low=1)
    train_freq_unit: str = knob("steps", "unit of train_freq", choices=("steps", "episodes"))
    gradient_steps: int = knob(1, "gradient steps per round", low=1)

    def validate(self) -> None:
        super().validate()
        if self.batch_size > self.buffer_size:
            raise DeeprlError(f"batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})")


class Exploration(NamedTuple):
    """What an off-policy algorithm does at a step of training."""

    env_actions: np.ndarray  # one per copy, as the env takes them
    stored_actions: np.ndarray  # one per copy, as the replay memory keeps them (indices 0..n-1, [-1, 1] units)
    episode_values: dict[str, float]  # columns of the episode's row (epsilon, the noise's scale), or none


class Collected(NamedTuple):
    """A training step's exploring actions and the env's answer to them."""

    actions: Exploration
    transitions: Transitions


class OffPolicyAlgorithm(Protocol):
    """What the loop needs from an algorithm (DQN, DDPG/TD3, SAC)."""

    agent: Any  # acts greedily / deterministically: evaluations and policy files use it

    def explore(self, obs: np.ndarray, step: int, episodes: int, rng: np.random.Generator) -> Exploration:
        """The exploring actions for a batch of one observation per env copy (with an env that masks actions, called
        with `action_masks` too: one mask per copy)."""

    def learn(self, batch: TransitionBatch, step: int) -> dict[str, float]:
        """One gradient step (soft target updates that go with it included); the losses it reports."""

    def after_step(self, step: int) -> None:
        """Called after every env step (once any gradient round of that step is done)."""

    def after_episode(self, episodes: int) -> None:
        """Called when an episode has ended and been reported; `episodes` counts the episodes so far."""

    def set_lr(self, lr: float) -> None: ...

    def check_finite(self, step: int) -> None:
        """Stop the run with one line when a network holds NaN or inf."""

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and exploration state; its keys sit beside the loop's in the checkpoint."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# build(config, observation_space, action_space, device) -> the algorithm, its networks freshly initialised (its class)
Build = Callable[[Any, gym.Space, gym.Space, torch.device], OffPolicyAlgorithm]


def replay_for(
    config: OffPolicyConfig,
    obs_space: gym.Space,
    action_space: gym.Space,
    mask_width: int | None = None,
    frame_channels: int | None = None,
) -> ReplayBuffer:
    """A replay memory for these spaces: Discrete actions as int64 indices, Box actions as float32 vectors;
    pictures keep their dtype (uint8 screens stay bytes) and are stored once, not again as next_obs (so are the byte
    rows of a Dict or Tuple holding pictures: deeprl.observations), and a stack of frames (`frame_channels` a frame,
    as the env declares: deeprl's Atari frame stack) stores each frame once; with `mask_width`, each transition's
    next-state action mask."""
    discrete = isinstance(action_space, gym.spaces.Discrete)
    picture = len(obs_space.shape) == IMAGE_RANK
    pictures_inside = getattr(obs_space, "network_encoder", None) is not None
    return ReplayBuffer(
        config.buffer_size,
        obs_space.shape,
        observation_dtype(obs_space),
        action_shape=() if discrete else action_space.shape,
        action_dtype=np.int64 if discrete else np.float32,
        shared_next_obs=picture or pictures_inside,
        mask_width=mask_width,
        frame_channels=frame_channels if picture and obs_space.shape[0] % (frame_channels or 1) == 0 else None,
    )


def episode_means(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Each reported value's mean over the gradient steps of an episode (some values, like TD3's delayed actor
    loss, come from only some of the steps)."""
    names = dict.fromkeys(name for values in metrics for name in values)
    return {name: float(np.mean([values[name] for values in metrics if name in values])) for name in names}


class OffPolicyTrainer:
    """The off-policy family as the loop skeleton (deeprl.loop) drives it: one env step per `advance`, stored in the
    replay memory, and the algorithm's gradient rounds on its schedule."""

    def __init__(
        self,
        config: OffPolicyConfig,
        runner: EnvRunner,
        run: Run,
        rng: np.random.Generator,
        device: torch.device,
        build: Build,
    ) -> None:
        self.config, self.runner, self.run, self.rng, self.device = config, runner, run, rng, device
        self.algorithm = build(config, runner.observation_space, runner.action_space, device)
        self.agent = self.algorithm.agent
        masks = runner.action_masks
        self.replay = replay_for(
            config,
            runner.observation_space,
            runner.action_space,
            None if masks is None else masks.shape[1],
            runner.frame_channels,
        )
        self.train_every_step = config.train_freq_unit == "steps"
        self.learning_starts = config.learning_starts
        self.episode_metrics: list[dict[str, float]] = []  # the gradient steps of the episode in progress
        self.episode_ended = False

    def advance(self, step: int) -> int:
        """One env step: act, store, and a round of gradient steps when one is due."""
        config = self.config
        step += 1
        collected = self.collect(step)
        if config.lr_end is not None:
            self.algorithm.set_lr(annealed(config.lr, config.lr_end, step / config.total_steps))
        if self.round_due(step):
            self.gradient_round(step)
        self.end_step(step, collected)
        return step

    def collect(self, step: int) -> Collected:
        """Act in the env at training step `step` and store the transition."""
        runner, algorithm = self.runner, self.algorithm
        obs, masks = runner.obs, runner.action_masks
        if masks is None:
            actions = algorithm.explore(obs, step, runner.episodes, self.rng)
        else:  # only an algorithm of Discrete actions meets masks (the runner refuses them for other spaces)
            actions = algorithm.explore(obs, step, runner.episodes, self.rng, action_masks=masks)
        transitions = runner.step(actions.env_actions, step)
        self.replay.add(
            obs[0],
            actions.stored_actions[0],
            float(transitions.rewards[0]),
            transitions.next_obs[0],
            bool(transitions.terminated[0]),
            bool(transitions.truncated[0]),
            None if masks is None else transitions.next_action_masks[0],
        )
        return Collected(actions, transitions)

    def round_due(self, step: int) -> bool:
        """Whether a round of gradient steps counted in env steps comes at `step`, with enough in the memory."""
        config = self.config
        return (
            step > self.learning_starts
            and self.train_every_step
            and step % config.train_freq == 0
            and len(self.replay) >= config.batch_size
        )

    def end_step(self, step: int, collected: Collected) -> None:
        """What follows a step's gradient round: the algorithm's step hook, and an ended episode's round (counted
        in episodes), report and hook."""
        config, runner, algorithm = self.config, self.runner, self.algorithm
        actions, transitions = collected
        algorithm.after_step(step)
        # a checkpoint may come where learning's episode ends; the episode-counted schedules, the reports and the
        # algorithm's episode hooks count the env's episodes: whole games, where a lost life ends only learning's
        self.episode_ended = bool(transitions.terminated[0] or transitions.truncated[0])
        if transitions.ended:
            if (
                step > self.learning_starts
                and not self.train_every_step
                and runner.episodes % config.train_freq == 0
                and len(self.replay) >= config.batch_size
            ):
                self.gradient_round(step)
            runner.report(transitions, **actions.episode_values, **episode_means(self.episode_metrics))
            algorithm.after_episode(runner.episodes)
            self.episode_metrics = []

    def gradient_round(self, step: int) -> None:
        for _ in range(self.config.gradient_steps):
            self.record_update(step, self.algorithm.learn(self.sample(), step))

    def sample(self) -> TransitionBatch:
        config = self.config
        return self.replay.sample(config.batch_size, self.rng, config.n_step, config.gamma, self.device)

    def record_update(self, step: int, metrics: dict[str, float]) -> None:
        """Count a gradient step and keep its reported values for the episode's row; a non-finite one stops the run."""
        self.run.count_update()
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise DeeprlError(f"the {name} became {value} at step {step}; try a lower lr")
        self.episode_metrics.append(metrics)

    def can_checkpoint(self, step: int) -> bool:
        # at episode ends, and at the budget's end, where `resume --steps N` continues a finished run
        return self.episode_ended or step == self.config.total_steps

    def next_checkpoint(self, step: int) -> None:
        return None

    def check_finite(self, step: int) -> None:
        self.algorithm.check_finite(step)

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.algorithm.state_dict(),
            "replay": self.replay.state_dict() if self.config.checkpoint_replay else None,
            "episode_metrics": self.episode_metrics,  # the episode in progress's (at the budget's end)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.algorithm.load_state_dict(state)
        self.episode_metrics = list(state.get("episode_metrics", []))
        if state["replay"] is not None:
            if self.replay.frame_stacks and "frame_stacks" not in state["replay"]:
                raise DeeprlError(
                    f"the checkpoint at step {state['step']} holds whole observations in its replay memory, and this "
                    "deeprl stores each frame of a frame stack once: resume it with the deeprl that made it"
                )
            self.replay.load_state_dict(state["replay"])
        else:  # an empty memory: gather learning_starts fresh steps again before learning from it
            self.learning_starts = state["step"] + self.config.learning_starts
            warn(
                f"the checkpoint at step {state['step']} holds no replay memory (checkpoint_replay: false); "
                f"it refills until step {self.learning_starts}, so this run will differ from an uninterrupted one"
            )


def train_with(algorithm: Build) -> TrainFunction:
    """The `train` of an off-policy algorithm module: `algorithm` (its class) on the off-policy trainer."""
    return training_function(partial(OffPolicyTrainer, build=algorithm))


class SeedsAlgorithm(Protocol):
    """Several seeds' algorithms whose gradient steps run as one (for DQN: dqn.SeedsDQN)."""

    def learn(self, batches: list[TransitionBatch], step: int) -> list[dict[str, float]]:
        """One gradient step of every seed, each on its own batch; each seed's reported values."""

    def set_lr(self, lr: float) -> None: ...

    def seed_state(self, position: int) -> dict[str, Any]:
        """The state of the seed at `position` that differs from what its own algorithm object holds."""

    def without(self, positions: list[int]) -> SeedsAlgorithm | None:
        """The other seeds' stack; None when none is left."""


class OffPolicySeeds:
    """Off-policy trainers of several seeds stepping together: each seed acts, stores and samples as in its
    single-seed run (its own env, replay memory and generator); their gradient steps run as one."""

    def __init__(self, trainers: list[OffPolicyTrainer], stack: Callable[[list[Any]], SeedsAlgorithm]) -> None:
        self.trainers = trainers
        self.algorithms: SeedsAlgorithm | None = stack([trainer.algorithm for trainer in trainers])
        self.config = trainers[0].config

    def advance(self, step: int) -> int:
        config, trainers = self.config, self.trainers
        step += 1
        collected = [trainer.collect(step) for trainer in trainers]
        if config.lr_end is not None:
            self.algorithms.set_lr(annealed(config.lr, config.lr_end, step / config.total_steps))
        if trainers[0].round_due(step):  # the seeds' memories fill alike: the same steps learn in every seed
            for _ in range(config.gradient_steps):
                reported = self.algorithms.learn([trainer.sample() for trainer in trainers], step)
                for trainer, metrics in zip(trainers, reported, strict=True):
                    trainer.record_update(step, metrics)
        for trainer, step_collected in zip(trainers, collected, strict=True):
            trainer.end_step(step, step_collected)
        return step

    def can_checkpoint(self, step: int) -> bool:
        return True  # mid-episode too: the seeds' episodes end at steps of their own, and runners save their envs

    def seed_state(self, position: int) -> dict[str, Any]:
        return {**self.trainers[position].state_dict(), **self.algorithms.seed_state(position)}

    def drop(self, positions: list[int]) -> None:
        self.algorithms = self.algorithms.without(positions)
        self.trainers = [trainer for position, trainer in enumerate(self.trainers) if position not in positions]


def seeds_refusal(config: OffPolicyConfig) -> str | None:
    """Why the seeds of these settings cannot step together (None: they can)."""
    if config.train_freq_unit == "episodes":
        return "train_freq counts episodes, which end at different steps in each seed"
    return None


def train_seeds_with(algorithm: Build, stack: Callable[[list[Any]], SeedsAlgorithm]) -> Callable[..., list[Any]]:
    """The `train_seeds` of an off-policy algorithm module: its seeds' trainers with their gradient steps stacked by
    `stack` (deeprl.seed_axis)."""
    return seeds_training_function(partial(OffPolicyTrainer, build=algorithm), partial(OffPolicySeeds, stack=stack))
