"""SAC (Haarnoja et al., 2018): soft actor-critic for Box actions, with automatic entropy tuning.

The actor is a squashed Gaussian: u ~ N(mean(s), std(s)) (log std clamped), a = tanh(u) in [-1, 1], scaled linearly
to the env's bounds only as it leaves for the env; replay keeps a, and everything below works in these [-1, 1] units.
log pi(a|s) is the density of a: the Gaussian's, corrected for the tanh (deeprl.nets.squashed_log_prob). So the
entropy and its target mean the same on any Box: the same task with its actions in other units learns the same.
Twin critics regress onto the soft target

    y = R + discount * ( min_i Q_target_i(s', a') - alpha * log pi(a'|s') ),   a' ~ pi(.|s')

the actor minimises alpha * log pi(a|s) - min_i Q_i(s, a) with a ~ pi(.|s) reparameterised, and alpha (the
entropy's weight) is tuned so that the policy's entropy stays near `target_entropy` (-dim(A) by default):
its loss is -log(alpha) * (log pi(a|s) + target_entropy). The critics' targets trail them by Polyak averaging.
Until `learning_starts`, actions are uniformly random (as SB3 does).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from deeprl import offpolicy
from deeprl.algos.ddpg import check_setup  # noqa: F401 - the same checks: pictures the CNN takes, bounded actions
from deeprl.buffers import TransitionBatch
from deeprl.config import knob
from deeprl.errors import DeeprlError
from deeprl.loop import load_state_of, state_of
from deeprl.nets import (
    ACTIVATIONS,
    QCritic,
    SoftUpdate,
    SquashedGaussianActor,
    check_finite,
    frozen,
    observation_encoder,
    set_learning_rate,
)
from deeprl.observations import OBSERVATION_SPACES  # noqa: F401 - any space, encoded (observations.py)
from deeprl.offpolicy import Exploration, OffPolicyConfig
from deeprl.policies import ScaledActorAgent
from deeprl.seed_axis import (
    SeedStack,
    detached_copy,
    fold,
    joined_optimizer_state,
    per_seed_mean,
    remaining,
    seed_optimizer_state,
    step_seeds,
)

ACTION_SPACES = (gym.spaces.Box,)
METRIC_COLUMNS = ("critic_loss", "actor_loss", "alpha", "entropy", "q_mean")


@dataclass
class Config(OffPolicyConfig):
    """SB3's SAC defaults."""

    algo: ClassVar[str] = "sac"

    # networks
    hidden_sizes: tuple[int, ...] = knob((256, 256), "hidden layer widths of the actor and the critics", low=1)
    activation: str = knob("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    log_std_min: float = knob(-20.0, "the actor's log std is clamped to at least this")
    log_std_max: float = knob(2.0, "the actor's log std is clamped to at most this")
    # learning
    lr: float = knob(3e-4, "learning rate of the actor, the critics and alpha", above=0.0)
    tau: float = knob(
        0.005, "Polyak weight of each target update: target += tau * (online - target)", above=0.0, high=1.0
    )
    target_update_interval: int = knob(1, "gradient steps between target updates", low=1)
    buffer_size: int = knob(1_000_000, "replay capacity in transitions", low=1)
    batch_size: int = knob(256, "transitions per gradient step", low=1)
    learning_starts: int = knob(100, "env steps of uniformly random actions before the first gradient step", low=0)
    # entropy
    alpha: float | None = knob(
        None, "a fixed entropy weight; None: tuned automatically towards target_entropy", above=0.0
    )
    alpha_init: float = knob(1.0, "automatic tuning: alpha's initial value", above=0.0)
    target_entropy: float | None = knob(
        None, "automatic tuning: the entropy to keep, of the [-1, 1] action; None: -dim(action space)"
    )

    def validate(self) -> None:
        super().validate()
        if self.log_std_min >= self.log_std_max:
            raise DeeprlError(f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")


# SAC's action samples have a generator of their own, seeded from the run's seed (offset: a stream apart from the
# networks' initialisation), so that each of several seeds in one process draws what its single-seed run draws
SAMPLING_SEED_OFFSET = 2_000_003


def critic_target(
    actor: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    critics_target: Sequence[Callable[..., torch.Tensor]],
    batch: TransitionBatch,
    alpha: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator],
) -> torch.Tensor:
    """y = R + discount * (min_i Q_target_i(s', a') - alpha * log pi(a'|s')), a' sampled from the actor; `alpha` a
    scalar or one per row."""
    next_actions, next_log_probs = actor(batch.next_obs, generator=generator)
    next_q = torch.stack([critic(batch.next_obs, next_actions) for critic in critics_target]).min(0).values
    return batch.returns + batch.discounts * (next_q - alpha * next_log_probs)


def actor_objective(
    actor: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    critics: Sequence[Callable[..., torch.Tensor]],
    obs: torch.Tensor,
    alpha: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha * log pi(a|s) - min_i Q_i(s, a) for each row (the actor's loss is its mean), a sampled from the actor
    with gradients through it; and the log-densities."""
    actions, log_probs = actor(obs, generator=generator)
    q_new = torch.stack([critic(obs, actions) for critic in critics]).min(0).values
    return alpha * log_probs - q_new, log_probs


def make_optimizers(
    config: Config, actor: list[torch.Tensor], critics: list[torch.Tensor], log_alphas: list[torch.Tensor]
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """The actor's and the critics' Adam (fused), and alpha's where it is tuned (None where it is fixed)."""
    return (
        torch.optim.Adam(actor, lr=config.lr, fused=True),
        torch.optim.Adam(critics, lr=config.lr, fused=True),
        torch.optim.Adam(log_alphas, lr=config.lr) if config.alpha is None else None,
    )


class SAC:
    """The squashed-Gaussian actor, twin critics and their targets, alpha, and their optimisers."""

    def __init__(
        self, config: Config, obs_space: gym.spaces.Box, action_space: gym.spaces.Box, device: torch.device
    ) -> None:
        self.config = config
        obs_dim, self.action_dim = int(np.prod(obs_space.shape)), int(np.prod(action_space.shape))
        network = {
            "kind": "squashed_gaussian",
            "obs_dim": obs_dim,
            "action_dim": self.action_dim,
            "hidden_sizes": list(config.hidden_sizes),
            "activation": config.activation,
            "log_std_min": config.log_std_min,
            "log_std_max": config.log_std_max,
            "encoder": observation_encoder(obs_space),
        }  # pictures: the actor and each critic have a CNN
        self.actor = SquashedGaussianActor(**{key: value for key, value in network.items() if key != "kind"}).to(device)
        self.critics = torch.nn.ModuleList(
            QCritic(obs_dim, self.action_dim, config.hidden_sizes, config.activation, encoder=network["encoder"])
            for _ in range(2)
        ).to(device)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.update_targets = SoftUpdate(self.critics_target, self.critics, config.tau)
        self.critic_parameters = list(self.critics.parameters())
        self.target_entropy = -float(self.action_dim) if config.target_entropy is None else config.target_entropy
        self.log_alpha = torch.tensor(
            math.log(config.alpha or config.alpha_init), device=device, requires_grad=config.alpha is None
        )
        self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer = make_optimizers(
            config, list(self.actor.parameters()), self.critic_parameters, [self.log_alpha]
        )
        self.agent = ScaledActorAgent(self.actor, network, obs_space, action_space)
        self.gradient_steps = 0
        self.sampling = torch.Generator(device=device).manual_seed(config.seed + SAMPLING_SEED_OFFSET)

    def explore(self, obs: np.ndarray, step: int, episodes: int, rng: np.random.Generator) -> Exploration:
        if step <= self.config.learning_starts:
            actions = rng.uniform(-1.0, 1.0, size=(len(obs), self.action_dim)).astype(np.float32)
        else:
            actions = self.agent.unit_act(obs.astype(np.float32), deterministic=False, generator=self.sampling)
        return Exploration(self.agent.to_env(actions), actions, {})

    def learn(self, batch: TransitionBatch, step: int) -> dict[str, float]:
        config = self.config
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            target_q = critic_target(self.actor, self.critics_target, batch, alpha, self.sampling)
        q_values = [critic(batch.obs, batch.actions) for critic in self.critics]
        critic_loss = sum(F.mse_loss(q, target_q) for q in q_values)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        # the actor's step differentiates through the critics without changing them
        with frozen(self.critic_parameters):
            objective, log_probs = actor_objective(self.actor, self.critics, batch.obs, alpha, self.sampling)
            actor_loss = objective.mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
        self.actor_optimizer.step()

        if self.alpha_optimizer is not None:
            alpha_loss = -(self.log_alpha * (log_probs.detach() + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
        self.gradient_steps += 1
        if self.gradient_steps % config.target_update_interval == 0:
            self.update_targets()
        return {
            "critic_loss": critic_loss.item(),
            "actor_loss": actor_loss.item(),
            "alpha": alpha.item(),
            "entropy": -log_probs.mean().item(),
            "q_mean": q_values[0].mean().item(),
        }

    def after_step(self, step: int) -> None:
        pass

    def after_episode(self, episodes: int) -> None:
        pass

    def set_lr(self, lr: float) -> None:
        set_learning_rate(filter(None, [self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer]), lr)

    def check_finite(self, step: int) -> None:
        check_finite(self.actor, step)
        check_finite(self.critics, step)

    def parts(self) -> dict[str, Any]:
        """What a checkpoint holds of the algorithm, by name (log alpha aside: a tensor, not a module)."""
        return {
            "actor": self.actor,
            "critics": self.critics,
            "critics_target": self.critics_target,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
            "alpha_optimizer": self.alpha_optimizer,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **state_of(self.parts()),
            "log_alpha": self.log_alpha.detach().clone(),
            "gradient_steps": self.gradient_steps,
            "sampling": self.sampling.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state_of(self.parts(), state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.gradient_steps = int(state["gradient_steps"])
        if "sampling" in state:  # (checkpoints of deeprl before it sampled from the global generator)
            self.sampling.set_state(state["sampling"])


class SeedsSAC:
    """Several seeds' SAC learners, each with its own networks, alpha, replay memory and sampling generator, whose
    forward and backward passes run as one on a leading seed axis (deeprl.seed_axis); each seed's optimiser steps
    and target updates are its own, and its numbers are those of its single-seed run."""

    def __init__(self, learners: list[SAC]) -> None:
        self.learners = learners
        self.config = learners[0].config
        self.actor = SeedStack([learner.actor for learner in learners])
        self.critics = [SeedStack([learner.critics[twin] for learner in learners]) for twin in range(2)]
        self.critics_target = [SeedStack([learner.critics_target[twin] for learner in learners]) for twin in range(2)]
        self.critic_parameters = [tensor for critic in self.critics for tensor in critic.values()]
        # one optimiser each over every seed's parameters (views of the stacks; each seed's own log alpha)
        self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer = make_optimizers(
            self.config,
            [parameter for learner in learners for parameter in learner.actor.parameters()],
            [parameter for learner in learners for parameter in learner.critic_parameters],
            [learner.log_alpha for learner in learners],
        )
        for name in ("actor_optimizer", "critic_optimizer", "alpha_optimizer"):
            if getattr(self, name) is not None:
                states = [getattr(learner, name).state_dict() for learner in learners]
                getattr(self, name).load_state_dict(joined_optimizer_state(states))
        self.gradient_steps = learners[0].gradient_steps
        for learner in learners:  # acting reads the actor's parameters through NumPy views: they live in the stack now
            learner.agent.numpy_actor = learner.actor.numpy_forward()

    def learn(self, batches: list[TransitionBatch], step: int) -> list[dict[str, float]]:
        """One gradient step of every seed, each on its own batch; each seed's reported values."""
        config, seeds = self.config, len(self.learners)
        batch = TransitionBatch(
            *(fold(batches, name) for name in ("obs", "actions", "returns", "next_obs", "discounts"))
        )
        log_alpha = torch.stack([learner.log_alpha for learner in self.learners])
        alpha = torch.stack([learner.log_alpha.exp() for learner in self.learners]).detach()  # each as its run does
        alpha_rows = alpha.repeat_interleave(len(batch.obs) // seeds)  # each seed's alpha on each of its rows
        generators = [learner.sampling for learner in self.learners]
        actor, critics = self.actor.network, [critic.network for critic in self.critics]
        with torch.no_grad():
            targets = [critic.network for critic in self.critics_target]
            target_q = critic_target(actor, targets, batch, alpha_rows, generators)
        q_values = [critic(batch.obs, batch.actions) for critic in critics]
        critic_losses = sum(per_seed_mean(F.mse_loss(q, target_q, reduction="none"), seeds) for q in q_values)
        step_seeds(self.critic_optimizer, self.critics, critic_losses)

        with frozen(self.critic_parameters):
            objective, log_probs = actor_objective(actor, critics, batch.obs, alpha_rows, generators)
            actor_losses = per_seed_mean(objective, seeds)
            step_seeds(self.actor_optimizer, [self.actor], actor_losses)

        per_seed_log_probs = log_probs.detach().view(seeds, -1)
        if self.alpha_optimizer is not None:
            target_entropy = self.learners[0].target_entropy
            alpha_losses = -(log_alpha.view(seeds, 1) * (per_seed_log_probs + target_entropy)).mean(dim=1)
            step_seeds(self.alpha_optimizer, [], alpha_losses)
        self.gradient_steps += 1
        if self.gradient_steps % config.target_update_interval == 0:
            for learner in self.learners:
                learner.update_targets()
        reported = {
            "critic_loss": critic_losses.tolist(),
            "actor_loss": actor_losses.tolist(),
            "alpha": alpha.tolist(),
            "entropy": (-per_seed_log_probs.mean(dim=1)).tolist(),
            "q_mean": per_seed_mean(q_values[0], seeds).tolist(),
        }
        return [{name: values[seed] for name, values in reported.items()} for seed in range(seeds)]

    def set_lr(self, lr: float) -> None:
        set_learning_rate(filter(None, [self.actor_optimizer, self.critic_optimizer, self.alpha_optimizer]), lr)

    def seed_state(self, index: int) -> dict[str, Any]:
        """Seed `index`'s learner state as its single-seed run would checkpoint it."""
        learner = self.learners[index]
        optimizers = ("actor_optimizer", "critic_optimizer", "alpha_optimizer")
        return {
            **{
                name: detached_copy(getattr(learner, name).state_dict())
                for name in ("actor", "critics", "critics_target")
            },
            **{
                name: None
                if getattr(self, name) is None
                else seed_optimizer_state(getattr(self, name).state_dict(), index, len(self.learners))
                for name in optimizers
            },
            "gradient_steps": self.gradient_steps,
        }

    def without(self, dropped: list[int]) -> SeedsSAC | None:
        """The stack of the other seeds (a finished seed leaves it); None when none is left."""
        return remaining(self, dropped)


def seeds_refusal(config: Config, obs_space: gym.Space) -> str | None:
    """Why seeds of these settings cannot step together on a seed axis (None: they can)."""
    if observation_encoder(obs_space) is not None:
        return "sac stacks the seeds of MLP networks; CNNs (pictures) are not stacked yet"
    return offpolicy.seeds_refusal(config)


train = offpolicy.train_with(SAC)
train_seeds = offpolicy.train_seeds_with(SAC, SeedsSAC)
