"""Deep Q-Networks for discrete actions.

Q(s, a) is learnt by regressing onto the TD target

    y = R + discount * Q_target(s', a*)

where R is the (n-step) discounted reward, `discount` is gamma**m for a window of m steps (0 when the
window ended in a true terminal state: a time-limit truncation still bootstraps), and
a* = argmax_a Q_target(s', a) for classic DQN or argmax_a Q(s', a) for Double DQN. With an env that masks actions
(deeprl.action_masks), a* ranges over the actions valid in s' (its mask is stored with the transition), and acting,
greedy or random, picks among the valid actions only.
Variants are switches: `double_q`, `dueling`, `n_step`, and the epsilon / target-update / loss /
optimiser choices the seed tutorials use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
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
from deeprl.exploration import EPSILON_SCHEDULES, EpsilonSchedule
from deeprl.nets import (
    ACTIVATIONS,
    QNetwork,
    SoftUpdate,
    check_finite,
    clip_grad_norm_,
    observation_encoder,
    set_learning_rate,
)
from deeprl.observations import OBSERVATION_SPACES, EncodedSpace  # noqa: F401 - OBSERVATION_SPACES: any space, encoded
from deeprl.offpolicy import Exploration, OffPolicyConfig
from deeprl.policies import QAgent
from deeprl.seed_axis import (
    SeedStack,
    detached_copy,
    fold,
    joined_optimizer_state,
    per_seed_mean,
    remaining,
    seed_optimizer_state,
)

ACTION_SPACES = (gym.spaces.Discrete,)
METRIC_COLUMNS = ("epsilon", "loss")


@dataclass
class Config(OffPolicyConfig):
    algo: ClassVar[str] = "dqn"

    # network
    hidden_sizes: tuple[int, ...] = knob((256, 256), "hidden layer widths of the Q-network MLP", low=1)
    activation: str = knob("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    dueling: bool = knob(False, "dueling head: Q = V + A - mean(A)")
    conv_channels: tuple[int, ...] = knob(
        (),
        "CNN channels per layer for image observations; (): the Nature CNN for uint8 pictures, none for the rest",
        low=1,
    )
    conv_kernels: tuple[int, ...] = knob((5, 5, 5), "CNN kernel size per layer", low=1)
    conv_strides: tuple[int, ...] = knob((2, 2, 2), "CNN stride per layer", low=1)
    batch_norm: bool = knob(True, "BatchNorm after each convolution (as the pixel CartPole tutorial does)")
    # learning (the replay, batch and training-frequency knobs are OffPolicyConfig's)
    double_q: bool = knob(True, "Double DQN: the online net picks a*, the target net values it")
    optimizer: str = knob("adam", "adam or rmsprop", choices=("adam", "rmsprop"))
    loss: str = knob("huber", "huber (smooth L1) or mse on the TD error", choices=("huber", "mse"))
    max_grad_norm: float | None = knob(10.0, "clip the gradient's global norm; None: no clipping", above=0.0)
    grad_clip_value: float | None = knob(
        None, "clamp each gradient element to ±value (pixel CartPole tutorial: 1)", above=0.0
    )
    target_update_interval: int = knob(500, "steps (or episodes) between target-network updates", low=1)
    target_update_unit: str = knob(
        "steps", "unit of target_update_interval (the Acrobot lecture: episodes)", choices=("steps", "episodes")
    )
    tau: float = knob(1.0, "target update weight: 1 copies, <1 blends (soft update)", above=0.0, high=1.0)
    # exploration
    epsilon_schedule: str = knob("linear", "linear, exponential, episodic or constant", choices=EPSILON_SCHEDULES)
    epsilon_start: float = knob(1.0, "initial probability of a random action", low=0.0, high=1.0)
    epsilon_end: float = knob(0.05, "final probability of a random action", low=0.0, high=1.0)
    epsilon_decay_steps: int = knob(10_000, "linear: steps to reach the end; exponential: e-folding", low=1)
    epsilon_decay_factor: float = knob(0.995, "episodic: epsilon multiplier per episode", above=0.0, high=1.0)

    def validate(self) -> None:
        super().validate()
        layers = len(self.conv_channels)
        if layers and (len(self.conv_kernels) < layers or len(self.conv_strides) < layers):
            raise DeeprlError(
                f"conv_kernels and conv_strides need a value for each of the {layers} conv_channels layers"
            )


def td_target(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
    next_action_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = R + discount * Q_target(s', a*); a* from the online net when given (Double DQN), among the actions
    `next_action_masks` leaves valid in s' when given (a terminal s' has all valid: its value counts for nothing)."""
    if next_action_masks is not None:
        next_q_target = next_q_target.masked_fill(~next_action_masks, -torch.inf)
        if next_q_online is not None:
            next_q_online = next_q_online.masked_fill(~next_action_masks, -torch.inf)
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best_actions = next_q_online.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best_actions).squeeze(1)
    return returns + discounts * next_value


def q_learning_loss(
    q_net: Callable[[torch.Tensor], torch.Tensor],
    target_net: Callable[[torch.Tensor], torch.Tensor],
    batch: TransitionBatch,
    double_q: bool,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The loss between Q(s, a) of the actions taken and their TD targets, over a replayed batch."""
    q_taken = q_net(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_q_online = q_net(batch.next_obs) if double_q else None
        target_q = td_target(
            batch.returns, batch.discounts, target_net(batch.next_obs), next_q_online, batch.next_action_masks
        )
    return loss_fn(q_taken, target_q)


def check_setup(config: Config, env: gym.Env) -> None:
    """Refuse settings that do not fit this env before anything is written."""
    image_encoder(config, env.observation_space)


def image_encoder(config: Config, obs_space: gym.spaces.Box) -> dict[str, Any] | None:
    """The Q-network's CNN (see nets.observation_encoder): the conv_* settings' when conv_channels is set (the
    observations must then be pictures, bytes or floats), else the Nature CNN for uint8 pictures; None for vectors."""
    if not config.conv_channels:
        return observation_encoder(obs_space)
    if isinstance(obs_space, EncodedSpace):  # any space but a Box, encoded as one row (deeprl.observations)
        raise DeeprlError(
            f"conv_channels sets the CNN of a whole-observation picture, but {config.env} gives {obs_space.source}, "
            "which deeprl's encoder reads (a Nature CNN for each picture of 36x36 or more inside it, the rest as a "
            "vector): drop conv_channels (conv_channels=[])"
        )
    if len(obs_space.shape) not in (2, 3):
        raise DeeprlError(
            f"conv_channels needs image observations (channels, height, width), but {config.env} gives "
            f"shape {obs_space.shape}; set observation=screen_difference or screen_frames, or conv_channels=[]"
        )
    layers = len(config.conv_channels)
    return observation_encoder(
        obs_space,
        {
            "channels": config.conv_channels,
            "kernels": config.conv_kernels[:layers],
            "strides": config.conv_strides[:layers],
            "batch_norm": config.batch_norm,
            "features": None,
        },
    )


def make_optimizer(config: Config, parameters: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The Q-network's optimiser: Adam fused (one kernel for all parameters: small nets are bound by per-op
    overhead), or RMSprop."""
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, fused=True)
    return torch.optim.RMSprop(parameters, lr=config.lr, foreach=True)


class DQN:
    """The online and target Q-networks, their optimiser and epsilon-greedy acting: the Q-learning step and when to
    take it, as the shared off-policy loop (deeprl.offpolicy) drives them."""

    def __init__(
        self, config: Config, obs_space: gym.spaces.Box, action_space: gym.spaces.Discrete, device: torch.device
    ) -> None:
        self.config = config
        self.network = {
            "obs_dim": int(np.prod(obs_space.shape)),
            "n_actions": int(action_space.n),
            "hidden_sizes": list(config.hidden_sizes),
            "activation": config.activation,
            "dueling": config.dueling,
            "encoder": image_encoder(config, obs_space),
        }
        self.q_net = QNetwork(**self.network).to(device).eval()
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.update_target = SoftUpdate(self.target_net, self.q_net, config.tau)
        self.parameters = list(self.q_net.parameters())
        self.optimizer = make_optimizer(config, self.parameters)
        self.loss_fn = F.smooth_l1_loss if config.loss == "huber" else F.mse_loss
        # Switching modes walks every submodule in Python on every update: only BatchNorm nets need it.
        self.switches_mode = any(
            isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in self.q_net.modules()
        )
        self.agent = QAgent(self.q_net, obs_space, action_space, self.network, epsilon=config.epsilon_end)
        self.epsilon = EpsilonSchedule(
            config.epsilon_schedule,
            config.epsilon_start,
            config.epsilon_end,
            config.epsilon_decay_steps,
            config.epsilon_decay_factor,
        )
        self.n_actions = int(action_space.n)
        self.first_action = int(action_space.start)  # the replay stores 0..n-1; the env may number from `start`

    def explore(
        self,
        obs: np.ndarray,
        step: int,
        episodes: int,
        rng: np.random.Generator,
        action_masks: np.ndarray | None = None,
    ) -> Exploration:
        epsilon = self.epsilon.value(step, episodes)
        mask = None if action_masks is None else action_masks[0]
        if rng.random() < epsilon:
            # a random valid action (a mask's draw differs from the unmasked one, which keeps its random stream)
            action = int(rng.integers(self.n_actions) if mask is None else rng.choice(np.flatnonzero(mask)))
        else:
            action = self.agent.act(obs[0], action_mask=mask) - self.first_action
        return Exploration(np.array([action + self.first_action]), np.array([action]), {"epsilon": epsilon})

    def learn(self, batch: TransitionBatch, step: int) -> dict[str, float]:
        """One gradient step on the TD error of a replayed batch."""
        config = self.config
        if self.switches_mode:
            # BatchNorm: predictions and targets both normalise with batch statistics. Targets from running
            # statistics disagree with batch-normalised predictions, and on CartPole pictures the Huber loss
            # then grew to 26-90 instead of staying below 2 (docs/tutorials/cartpole-pixels.md).
            self.q_net.train()
            self.target_net.train()
        loss = q_learning_loss(self.q_net, self.target_net, batch, config.double_q, self.loss_fn)
        if self.switches_mode:  # acting uses the running statistics
            self.q_net.eval()
            self.target_net.eval()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.clip_gradients()
        self.optimizer.step()
        return {"loss": loss.item()}

    def clip_gradients(self) -> None:
        """Clamp each gradient element and clip the gradient's norm, as the settings ask."""
        config = self.config
        if config.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.parameters, config.grad_clip_value, foreach=True)
        if config.max_grad_norm is not None:
            clip_grad_norm_(self.parameters, config.max_grad_norm)

    def after_step(self, step: int) -> None:
        if self.config.target_update_unit == "steps" and step % self.config.target_update_interval == 0:
            self.update_target()

    def after_episode(self, episodes: int) -> None:
        if self.config.target_update_unit == "episodes" and episodes % self.config.target_update_interval == 0:
            self.update_target()

    def set_lr(self, lr: float) -> None:
        set_learning_rate([self.optimizer], lr)

    def check_finite(self, step: int) -> None:
        check_finite(self.q_net, step)

    def state_dict(self) -> dict[str, Any]:
        return {
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_net.load_state_dict(state["q_net"])
        self.target_net.load_state_dict(state["target_net"])
        self.optimizer.load_state_dict(state["optimizer"])


class SeedsDQN:
    """Several seeds' DQN learners, each with its own networks, replay memory and exploration, whose forward and
    backward passes run as one on a leading seed axis (deeprl.seed_axis): every seed's loss on its own batch, summed;
    each seed's gradient clipped and stepped as its own; each seed's numbers are those of its single-seed run."""

    def __init__(self, learners: list[DQN]) -> None:
        self.learners = learners
        self.config = config = learners[0].config
        self.online = SeedStack([learner.q_net for learner in learners])
        self.target = SeedStack([learner.target_net for learner in learners])
        # one optimiser over every seed's parameters (views of the stack), each stepped as a tensor of its own
        self.optimizer = make_optimizer(config, [parameter for learner in learners for parameter in learner.parameters])
        self.optimizer.load_state_dict(joined_optimizer_state([learner.optimizer.state_dict() for learner in learners]))
        for learner in learners:  # acting reads the parameters through NumPy views: they live in the stack now
            learner.agent.numpy_q_values = learner.q_net.numpy_forward()

    def learn(self, batches: list[TransitionBatch], step: int) -> list[dict[str, float]]:
        """One gradient step of every seed, each on its own batch; each seed's reported losses."""
        config = self.config
        # the seeds' batches one after another (seed-major), each seed's loss its own batch's mean
        fields = ("obs", "actions", "returns", "next_obs", "discounts", "next_action_masks")
        seeds, loss_fn = len(self.learners), self.learners[0].loss_fn
        losses = q_learning_loss(
            self.online.network,
            self.target.network,
            TransitionBatch(*(fold(batches, name) for name in fields)),
            config.double_q,
            lambda q, y: per_seed_mean(loss_fn(q, y, reduction="none"), seeds),
        )
        self.online.clear_gradients()
        losses.sum().backward()
        self.online.share_gradients()
        for learner in self.learners:
            learner.clip_gradients()
        self.optimizer.step()
        return [{"loss": loss} for loss in losses.tolist()]

    def set_lr(self, lr: float) -> None:
        set_learning_rate([self.optimizer], lr)

    def seed_state(self, index: int) -> dict[str, Any]:
        """Seed `index`'s learner state as its single-seed run would checkpoint it."""
        learner = self.learners[index]
        return {
            "q_net": detached_copy(learner.q_net.state_dict()),
            "target_net": detached_copy(learner.target_net.state_dict()),
            "optimizer": seed_optimizer_state(self.optimizer.state_dict(), index, len(self.learners)),
        }

    def without(self, dropped: list[int]) -> SeedsDQN | None:
        """The stack of the other seeds (a finished seed leaves it); None when none is left."""
        return remaining(self, dropped)


def seeds_refusal(config: Config, obs_space: gym.Space) -> str | None:
    """Why seeds of these settings cannot step together on a seed axis (None: they can)."""
    if image_encoder(config, obs_space) is not None:
        return "DQN stacks the seeds of MLP Q-networks; a CNN's (pictures) are not stacked yet"
    return offpolicy.seeds_refusal(config)


train = offpolicy.train_with(DQN)
train_seeds = offpolicy.train_seeds_with(DQN, SeedsDQN)
