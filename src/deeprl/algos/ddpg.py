"""DDPG (Lillicrap et al., 2016) and TD3 (Fujimoto et al., 2018): deterministic actor-critics for Box actions.

The actor mu(s) gives actions in [-1, 1] (a tanh output), scaled linearly to the env's bounds on the way out; the
replay stores the [-1, 1] action that was taken. The critic Q(s, a) regresses onto

    y = R + discount * Q_target(s', a'),   a' = mu_target(s')

(R and discount as in DQN: n-step sums, no bootstrap after a true terminal) and the actor climbs Q(s, mu(s)). The
target networks trail the learnt ones by Polyak averaging with weight `tau` after every actor update.

TD3 is three switches of this file, each a few lines below:
- `twin_critics`: two critics learn from the same target, which takes the smaller of the two target values;
- `target_policy_noise`: a' = clip(mu_target(s') + clip(eps, -c, c), -1, 1) with eps ~ N(0, sigma) drawn per sample;
- `policy_delay`: the actor and the targets update after every d-th critic step only.

Exploration adds action noise in [-1, 1] units (Ornstein-Uhlenbeck, one process per env copy restarted at each
episode, or Gaussian; sigma may anneal) and clips to [-1, 1]; until `learning_starts`, actions are uniformly random
(as SB3 does) unless `random_start` is off (the DDPG tutorial acts with the actor from the first step).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from deeprl import offpolicy
from deeprl.buffers import TransitionBatch
from deeprl.config import knob
from deeprl.errors import DeeprlError
from deeprl.exploration import NOISE_KINDS, annealed_sigma, make_noise
from deeprl.loop import load_state_of, state_of
from deeprl.nets import (
    ACTIVATIONS,
    INITS,
    DeterministicActor,
    QCritic,
    SoftUpdate,
    check_finite,
    frozen,
    observation_encoder,
    set_learning_rate,
    standard_normal,
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
METRIC_COLUMNS = ("noise_sigma", "critic_loss", "actor_loss", "q_mean")


@dataclass
class Config(OffPolicyConfig):
    """SB3's DDPG defaults (and the RL Zoo's 400-300 networks)."""

    algo: ClassVar[str] = "ddpg"

    # networks
    hidden_sizes: tuple[int, ...] = knob((400, 300), "hidden layer widths of the actor and the critic", low=1)
    activation: str = knob("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    init: str = knob(
        "default",
        "initial weights: default (PyTorch's) or fan_in (uniform ±1/sqrt(fan-in), output "
        "layers small: the DDPG paper's)",
        choices=INITS,
    )
    critic_action_layer: int = knob(
        0,
        "hidden layer the action joins the critic at: 0 the input (TD3, SAC), 1 the "
        "second layer (the DDPG paper and tutorial)",
        low=0,
    )
    critic_final_init: float = knob(
        3e-3, "fan_in init: the critic's output layer uniform in ±this (the DDPG tutorial: 3e-4)", above=0.0
    )
    # learning
    lr: float = knob(1e-3, "critic learning rate", above=0.0)
    actor_lr: float | None = knob(
        None, "actor learning rate; None: lr (annealed with it when lr_end is set)", above=0.0
    )
    critic_weight_decay: float = knob(0.0, "L2 weight decay of the critic's optimiser (the DDPG paper: 1e-2)", low=0.0)
    tau: float = knob(
        0.005, "Polyak weight of each target update: target += tau * (online - target)", above=0.0, high=1.0
    )
    buffer_size: int = knob(1_000_000, "replay capacity in transitions", low=1)
    batch_size: int = knob(256, "transitions per gradient step", low=1)
    learning_starts: int = knob(100, "env steps before the first gradient step", low=0)
    # exploration
    random_start: bool = knob(
        True, "uniformly random actions until learning_starts; false: actor plus noise from the first step"
    )
    noise: str = knob(
        "gaussian",
        "exploration noise added to the actor's [-1, 1] actions: ou (Ornstein-Uhlenbeck), gaussian or none",
        choices=NOISE_KINDS,
    )
    noise_sigma: float = knob(0.1, "noise scale in [-1, 1] action units", low=0.0)
    noise_sigma_end: float | None = knob(None, "anneal noise_sigma linearly to this; None: constant", low=0.0)
    noise_decay_steps: int | None = knob(None, "steps over which noise_sigma anneals; None: total_steps", low=1)
    noise_theta: float = knob(0.15, "ou: pull towards 0 per unit of time", above=0.0)
    noise_dt: float = knob(1e-2, "ou: time step of the process", above=0.0)
    # TD3's switches
    twin_critics: bool = knob(False, "TD3: two critics; targets take the smaller value")
    policy_delay: int = knob(1, "TD3: critic steps per actor (and target) update", low=1)
    target_policy_noise: float = knob(0.0, "TD3: std of the noise added to each target action ([-1, 1] units)", low=0.0)
    target_noise_clip: float = knob(0.5, "TD3: the target action noise is clipped to ±this", low=0.0)

    def validate(self) -> None:
        super().validate()
        if self.critic_action_layer > len(self.hidden_sizes):
            raise DeeprlError(
                f"critic_action_layer {self.critic_action_layer} needs at least that many hidden "
                f"layers; hidden_sizes is {list(self.hidden_sizes)}"
            )


def check_setup(config: Config, env: gym.Env) -> None:
    """Pictures the CNN can take, and finite action bounds to scale the actor's [-1, 1] to."""
    observation_encoder(env.observation_space)
    check_bounded_actions(config, env)


def check_bounded_actions(config: Any, env: gym.Env) -> None:
    space = env.action_space
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise DeeprlError(
            f"{config.algo} scales its actions to the env's bounds, but {config.env}'s action space "
            f"{space} is unbounded; give its action_space finite low and high (the actor's [-1, 1] "
            f"is scaled to them)"
        )


# TD3's target noise has a generator of its own, seeded from the run's seed (offset: a stream apart from the one that
# initialised the networks), so that each of several seeds in one process draws what its single-seed run draws
TARGET_NOISE_SEED_OFFSET = 1_000_003


def target_actions(
    next_actions: torch.Tensor, noise_std: float, noise_clip: float, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """TD3's target policy smoothing: each sample's action gets its own clipped Gaussian noise, and the sum stays
    within [-1, 1] (the unit range the actor's tanh covers, whatever the env's bounds). The rows are the batches of
    one seed per generator, one after another, each seed's noise drawn from its own generator."""
    if noise_std == 0:
        return next_actions
    noise = (standard_normal(next_actions, generators) * noise_std).clamp(-noise_clip, noise_clip)
    return (next_actions + noise).clamp(-1.0, 1.0)


def critic_targets(
    actor_target: Callable[..., torch.Tensor],
    critics_target: Sequence[Callable[..., torch.Tensor]],
    batch: TransitionBatch,
    config: Config,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """R + discount * min over the target critics of Q'(s', μ'(s') + clipped noise)."""
    next_obs = batch.next_obs.float()
    next_actions = target_actions(
        actor_target(next_obs), config.target_policy_noise, config.target_noise_clip, generators
    )
    next_q = torch.stack([critic(next_obs, next_actions) for critic in critics_target]).min(dim=0).values
    return batch.returns + batch.discounts * next_q


def make_optimizers(
    config: Config, actor_lr: float, actor_parameters: list[torch.Tensor], critic_parameters: list[torch.Tensor]
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """The actor's and the critics' Adam (fused: one kernel for all parameters; small nets are overhead-bound)."""
    return (
        torch.optim.Adam(actor_parameters, lr=actor_lr, fused=True),
        torch.optim.Adam(critic_parameters, lr=config.lr, weight_decay=config.critic_weight_decay, fused=True),
    )


def set_learning_rates(
    critic_optimizer: torch.optim.Optimizer, actor_optimizer: torch.optim.Optimizer, lr: float, actor_ratio: float
) -> None:
    """Anneal both learning rates together, keeping their ratio."""
    set_learning_rate([critic_optimizer], lr)
    set_learning_rate([actor_optimizer], lr * actor_ratio)


class DDPG:
    """The actor, the critic(s), their targets and optimisers, and the exploration noise."""

    def __init__(
        self, config: Config, obs_space: gym.spaces.Box, action_space: gym.spaces.Box, device: torch.device
    ) -> None:
        self.config = config
        obs_dim, self.action_dim = int(np.prod(obs_space.shape)), int(np.prod(action_space.shape))
        network = {
            "kind": "deterministic",
            "obs_dim": obs_dim,
            "action_dim": self.action_dim,
            "hidden_sizes": list(config.hidden_sizes),
            "activation": config.activation,
            "init": config.init,
            "encoder": observation_encoder(obs_space),
        }  # pictures: the actor and each critic have a CNN
        self.actor = DeterministicActor(**{key: value for key, value in network.items() if key != "kind"}).to(device)
        self.critics = torch.nn.ModuleList(
            QCritic(
                obs_dim,
                self.action_dim,
                config.hidden_sizes,
                config.activation,
                config.critic_action_layer,
                config.init,
                config.critic_final_init,
                encoder=network["encoder"],
            )
            for _ in range(2 if config.twin_critics else 1)
        ).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        # the actor's and the critics' targets in one pass
        self.update_targets = SoftUpdate(
            torch.nn.ModuleList([self.actor_target, self.critics_target]),
            torch.nn.ModuleList([self.actor, self.critics]),
            config.tau,
        )
        self.critic_parameters = list(self.critics.parameters())
        self.actor_lr = config.lr if config.actor_lr is None else config.actor_lr
        self.actor_optimizer, self.critic_optimizer = make_optimizers(
            config, self.actor_lr, list(self.actor.parameters()), self.critic_parameters
        )
        self.noise = make_noise(
            config.noise, 1, self.action_dim, config.noise_sigma, config.noise_theta, config.noise_dt, seed=config.seed
        )
        self.agent = ScaledActorAgent(self.actor, network, obs_space, action_space)
        self.critic_updates = 0
        self.target_noise = torch.Generator(device=device).manual_seed(config.seed + TARGET_NOISE_SEED_OFFSET)

    def noise_sigma(self, step: int) -> float:
        config = self.config
        return annealed_sigma(
            config.noise_sigma, config.noise_sigma_end, step, config.noise_decay_steps or config.total_steps
        )

    def explore(self, obs: np.ndarray, step: int, episodes: int, rng: np.random.Generator) -> Exploration:
        if self.config.random_start and step <= self.config.learning_starts:
            actions = rng.uniform(-1.0, 1.0, size=(len(obs), self.action_dim)).astype(np.float32)
            return Exploration(self.agent.to_env(actions), actions, {})
        actions = self.agent.unit_act(obs.astype(np.float32))
        if self.noise is None:
            return Exploration(self.agent.to_env(actions), actions, {})
        self.noise.sigma = self.noise_sigma(step)
        actions = np.clip(actions + self.noise.sample(), -1.0, 1.0)
        return Exploration(self.agent.to_env(actions), actions, {"noise_sigma": self.noise.sigma})

    def learn(self, batch: TransitionBatch, step: int) -> dict[str, float]:
        config = self.config
        obs, actions = batch.obs.float(), batch.actions
        with torch.no_grad():
            target_q = critic_targets(self.actor_target, self.critics_target, batch, config, [self.target_noise])
        q_values = [critic(obs, actions) for critic in self.critics]
        critic_loss = sum(F.mse_loss(q, target_q) for q in q_values)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        self.critic_updates += 1
        metrics = {"critic_loss": critic_loss.item(), "q_mean": q_values[0].mean().item()}

        if self.critic_updates % config.policy_delay == 0:
            with frozen(self.critic_parameters):  # the actor's gradient passes through the critic, leaving it as is
                actor_loss = -self.critics[0](obs, self.actor(obs)).mean()
                self.actor_optimizer.zero_grad(set_to_none=True)
                actor_loss.backward()
            self.actor_optimizer.step()
            self.update_targets()
            metrics["actor_loss"] = actor_loss.item()
        return metrics

    def after_step(self, step: int) -> None:
        pass

    def after_episode(self, episodes: int) -> None:
        if self.noise is not None:  # each episode starts its noise process afresh (one env copy)
            self.noise.reset()

    def set_lr(self, lr: float) -> None:
        set_learning_rates(self.critic_optimizer, self.actor_optimizer, lr, self.actor_lr / self.config.lr)

    def check_finite(self, step: int) -> None:
        check_finite(self.actor, step)
        check_finite(self.critics, step)

    def parts(self) -> dict[str, Any]:
        """What a checkpoint holds of the algorithm, by name."""
        return {
            "actor": self.actor,
            "critics": self.critics,
            "actor_target": self.actor_target,
            "critics_target": self.critics_target,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
            "noise": self.noise,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **state_of(self.parts()),
            "critic_updates": self.critic_updates,
            "target_noise": self.target_noise.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state_of(self.parts(), state)
        self.critic_updates = int(state["critic_updates"])
        if "target_noise" in state:  # (checkpoints of deeprl before it drew target noise from the global generator)
            self.target_noise.set_state(state["target_noise"])


class SeedsDDPG:
    """Several seeds' DDPG/TD3 learners, each with its own networks, replay memory, exploration noise and target
    noise generator, whose forward and backward passes run as one on a leading seed axis (deeprl.seed_axis); each
    seed's optimiser steps and target updates are its own, and its numbers are those of its single-seed run."""

    def __init__(self, learners: list[DDPG]) -> None:
        self.learners = learners
        self.config = learners[0].config
        self.actor = SeedStack([learner.actor for learner in learners])
        self.actor_target = SeedStack([learner.actor_target for learner in learners])
        twins = range(len(learners[0].critics))
        self.critics = [SeedStack([learner.critics[twin] for learner in learners]) for twin in twins]
        self.critics_target = [SeedStack([learner.critics_target[twin] for learner in learners]) for twin in twins]
        self.critic_parameters = [tensor for critic in self.critics for tensor in critic.values()]
        # one optimiser each over every seed's parameters (views of the stacks), each stepped as a tensor of its own
        self.actor_optimizer, self.critic_optimizer = make_optimizers(
            self.config,
            learners[0].actor_lr,
            [parameter for learner in learners for parameter in learner.actor.parameters()],
            [parameter for learner in learners for parameter in learner.critic_parameters],
        )
        for optimizer, name in ((self.actor_optimizer, "actor_optimizer"), (self.critic_optimizer, "critic_optimizer")):
            optimizer.load_state_dict(
                joined_optimizer_state([getattr(learner, name).state_dict() for learner in learners])
            )
        self.critic_updates = learners[0].critic_updates
        for learner in learners:  # acting reads the actor's parameters through NumPy views: they live in the stack now
            learner.agent.numpy_actor = learner.actor.numpy_forward()

    def learn(self, batches: list[TransitionBatch], step: int) -> list[dict[str, float]]:
        """One gradient step of every seed, each on its own batch; each seed's reported values."""
        config, seeds = self.config, len(self.learners)
        batch = TransitionBatch(
            *(fold(batches, name) for name in ("obs", "actions", "returns", "next_obs", "discounts"))
        )
        obs, actions = batch.obs.float(), batch.actions
        critics = [critic.network for critic in self.critics]
        with torch.no_grad():
            generators = [learner.target_noise for learner in self.learners]
            targets = [critic.network for critic in self.critics_target]
            target_q = critic_targets(self.actor_target.network, targets, batch, config, generators)
        q_values = [critic(obs, actions) for critic in critics]
        critic_losses = sum(per_seed_mean(F.mse_loss(q, target_q, reduction="none"), seeds) for q in q_values)
        step_seeds(self.critic_optimizer, self.critics, critic_losses)
        self.critic_updates += 1
        reported = {"critic_loss": critic_losses.tolist(), "q_mean": per_seed_mean(q_values[0], seeds).tolist()}

        if self.critic_updates % config.policy_delay == 0:
            with frozen(self.critic_parameters):
                actor_losses = -per_seed_mean(critics[0](obs, self.actor.network(obs)), seeds)
                step_seeds(self.actor_optimizer, [self.actor], actor_losses)
            for learner in self.learners:
                learner.update_targets()
            reported["actor_loss"] = actor_losses.tolist()
        return [{name: values[seed] for name, values in reported.items()} for seed in range(seeds)]

    def set_lr(self, lr: float) -> None:
        first = self.learners[0]
        set_learning_rates(self.critic_optimizer, self.actor_optimizer, lr, first.actor_lr / self.config.lr)

    def seed_state(self, index: int) -> dict[str, Any]:
        """Seed `index`'s learner state as its single-seed run would checkpoint it."""
        learner = self.learners[index]
        networks = {name: getattr(learner, name) for name in ("actor", "critics", "actor_target", "critics_target")}
        return {
            **{name: detached_copy(network.state_dict()) for name, network in networks.items()},
            "actor_optimizer": seed_optimizer_state(self.actor_optimizer.state_dict(), index, len(self.learners)),
            "critic_optimizer": seed_optimizer_state(self.critic_optimizer.state_dict(), index, len(self.learners)),
            "critic_updates": self.critic_updates,
        }

    def without(self, dropped: list[int]) -> SeedsDDPG | None:
        """The stack of the other seeds (a finished seed leaves it); None when none is left."""
        return remaining(self, dropped)


def seeds_refusal(config: Config, obs_space: gym.Space) -> str | None:
    """Why seeds of these settings cannot step together on a seed axis (None: they can)."""
    if observation_encoder(obs_space) is not None:
        return f"{config.algo} stacks the seeds of MLP networks; CNNs (pictures) are not stacked yet"
    return offpolicy.seeds_refusal(config)


train = offpolicy.train_with(DDPG)
train_seeds = offpolicy.train_seeds_with(DDPG, SeedsDDPG)
