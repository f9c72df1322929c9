"""Deep Q-Networks for discrete actions.

Q(s, a) is learnt by regressing onto the TD target

    y = R + discount * Q_target(s', a*)

where R is the (n-step) discounted reward, `discount` is gamma**m for a window of m steps (0 when the
window ended in a true terminal state: a time-limit truncation still bootstraps), and
a* = argmax_a Q_target(s', a) for classic DQN or argmax_a Q(s', a) for Double DQN.
Variants are switches: `double_q`, `dueling`, `n_step`, and the epsilon / target-update / loss /
optimiser choices the seed tutorials use.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from deeprl.agent import as_batch, observation_dtype
from deeprl.buffers import ReplayBuffer, TransitionBatch
from deeprl.checkpoint import process_rng_states, restore_process_rng_states
from deeprl.config import RunConfig, knob
from deeprl.envs import seed_everything, space_from_dict, space_to_dict
from deeprl.errors import DeeprlError, warn
from deeprl.experience import EnvRunner
from deeprl.exploration import EPSILON_SCHEDULES, EpsilonSchedule
from deeprl.nets import ACTIVATIONS, QNetwork, check_finite
from deeprl.run import Run

OBSERVATION_SPACES = (gym.spaces.Box,)
IMAGE_RANK = 3  # (channels, height, width) observations can go through a CNN
ACTION_SPACES = (gym.spaces.Discrete,)
METRIC_COLUMNS = ("epsilon", "loss")


@dataclass
class Config(RunConfig):
    algo: ClassVar[str] = "dqn"

    # network
    hidden_sizes: tuple[int, ...] = knob((256, 256), "hidden layer widths of the Q-network MLP", low=1)
    activation: str = knob("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    dueling: bool = knob(False, "dueling head: Q = V + A - mean(A)")
    conv_channels: tuple[int, ...] = knob((), "CNN channels per layer for image observations; (): no CNN", low=1)
    conv_kernels: tuple[int, ...] = knob((5, 5, 5), "CNN kernel size per layer", low=1)
    conv_strides: tuple[int, ...] = knob((2, 2, 2), "CNN stride per layer", low=1)
    batch_norm: bool = knob(True, "BatchNorm after each convolution (as the pixel CartPole tutorial does)")
    # learning
    double_q: bool = knob(True, "Double DQN: the online net picks a*, the target net values it")
    n_step: int = knob(1, "steps summed in the TD target before bootstrapping", low=1)
    gamma: float = knob(0.99, "discount factor", low=0.0, high=1.0)
    lr: float = knob(1e-3, "learning rate", above=0.0)
    lr_end: float | None = knob(None, "anneal lr linearly to this by total_steps; None: constant", low=0.0)
    optimizer: str = knob("adam", "adam or rmsprop", choices=("adam", "rmsprop"))
    loss: str = knob("huber", "huber (smooth L1) or mse on the TD error", choices=("huber", "mse"))
    max_grad_norm: float | None = knob(10.0, "clip the gradient's global norm; None: no clipping", above=0.0)
    grad_clip_value: float | None = knob(None, "clamp each gradient element to ±value (pixel CartPole tutorial: 1)",
                                         above=0.0)
    buffer_size: int = knob(100_000, "replay capacity in transitions", low=1)
    checkpoint_replay: bool = knob(True, "checkpoints hold the replay memory (resume is exact); false keeps them "
                                   "small, and a resumed run refills the memory for learning_starts steps")
    batch_size: int = knob(64, "transitions per gradient step", low=1)
    learning_starts: int = knob(1_000, "env steps before the first gradient step", low=0)
    train_freq: int = knob(1, "env steps (or episodes) between rounds of gradient steps", low=1)
    train_freq_unit: str = knob("steps", "unit of train_freq (the Acrobot lecture trains once per episode)",
                                choices=("steps", "episodes"))
    gradient_steps: int = knob(1, "gradient steps per round", low=1)
    target_update_interval: int = knob(500, "steps (or episodes) between target-network updates", low=1)
    target_update_unit: str = knob("steps", "unit of target_update_interval", choices=("steps", "episodes"))
    tau: float = knob(1.0, "target update weight: 1 copies, <1 blends (soft update)", above=0.0, high=1.0)
    # exploration
    epsilon_schedule: str = knob("linear", "linear, exponential, episodic or constant", choices=EPSILON_SCHEDULES)
    epsilon_start: float = knob(1.0, "initial probability of a random action", low=0.0, high=1.0)
    epsilon_end: float = knob(0.05, "final probability of a random action", low=0.0, high=1.0)
    epsilon_decay_steps: int = knob(10_000, "linear: steps to reach the end; exponential: e-folding", low=1)
    epsilon_decay_factor: float = knob(0.995, "episodic: epsilon multiplier per episode", above=0.0, high=1.0)

    def validate(self) -> None:
        super().validate()
        if self.batch_size > self.buffer_size:
            raise DeeprlError(
                f"batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})"
            )
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
) -> torch.Tensor:
    """y = R + discount * Q_target(s', a*); a* from the online net when given (Double DQN)."""
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best_actions = next_q_online.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best_actions).squeeze(1)
    return returns + discounts * next_value


class QAgent:
    """Acts greedily on Q-values (epsilon-greedy when not deterministic); what `deeprl.load` returns."""

    def __init__(
        self,
        q_net: QNetwork,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete,
        network: dict[str, Any],
        epsilon: float = 0.0,
    ) -> None:
        self.q_net = q_net
        self.observation_space = observation_space
        self.action_space = action_space
        self.network = network
        self.epsilon = epsilon  # used only when acting with deterministic=False
        self.device = next(q_net.parameters()).device
        self.numpy_q_values = q_net.numpy_forward()  # fast path for acting on the CPU
        self.rng = np.random.default_rng()
        self.run_dir: Path | None = None  # the run it belongs to: set by deeprl.train and deeprl.load
        self.summary: dict[str, Any] | None = None

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        batch, single = as_batch(obs, self.observation_space)
        if self.numpy_q_values is not None:
            actions = self.numpy_q_values(batch.reshape(len(batch), -1)).argmax(axis=1)
        else:
            with torch.inference_mode():
                actions = self.q_net(torch.from_numpy(batch).to(self.device)).argmax(dim=1).cpu().numpy()
        if not deterministic:
            explore = self.rng.random(len(actions)) < self.epsilon
            actions = np.where(explore, self.rng.integers(self.action_space.n, size=len(actions)), actions)
        actions = actions + self.action_space.start
        return int(actions[0]) if single else actions

    def policy_data(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        meta = {
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
            "network": self.network,
            "epsilon": self.epsilon,
        }
        return meta, {name: tensor.detach().cpu() for name, tensor in self.q_net.state_dict().items()}


def load_policy(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> QAgent:
    q_net = QNetwork(**meta["network"])
    q_net.load_state_dict(tensors)
    q_net.eval()
    return QAgent(
        q_net, space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"]),
        meta["network"], epsilon=meta.get("epsilon", 0.0),
    )


class DQNLearner:
    """The online and target Q-networks, the optimiser, and one gradient step."""

    def __init__(self, config: Config, network: dict[str, Any], device: torch.device) -> None:
        self.config = config
        self.q_net = QNetwork(**network).to(device).eval()
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        optimizers = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
        self.parameters = list(self.q_net.parameters())
        self.target_parameters = list(self.target_net.parameters())
        # Fused Adam runs one kernel for all parameters: small nets are bound by per-op overhead.
        options = {"fused": True} if config.optimizer == "adam" else {"foreach": True}
        self.optimizer = optimizers[config.optimizer](self.parameters, lr=config.lr, **options)
        self.loss_fn = F.smooth_l1_loss if config.loss == "huber" else F.mse_loss
        # Switching modes walks every submodule (~9% of an MLP update here): only BatchNorm nets need it.
        self.switches_mode = any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
                                 for module in self.q_net.modules())

    def update(self, batch: TransitionBatch) -> float:
        config = self.config
        if self.switches_mode:
            # BatchNorm: predictions and targets both normalise with batch statistics. Targets from running
            # statistics disagree with batch-normalised predictions, and on CartPole pictures the Huber loss
            # then grew to 26-90 instead of staying below 2 (docs/tutorials/cartpole-pixels.md).
            self.q_net.train()
            self.target_net.train()
        q_taken = self.q_net(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_q_online = self.q_net(batch.next_obs) if config.double_q else None
            target_q = td_target(batch.returns, batch.discounts, self.target_net(batch.next_obs), next_q_online)
        if self.switches_mode:  # acting uses the running statistics
            self.q_net.eval()
            self.target_net.eval()
        loss = self.loss_fn(q_taken, target_q)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.parameters, config.grad_clip_value, foreach=True)
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters, config.max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.item()

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def update_target(self) -> None:
        """Polyak-average the target towards the online net (tau = 1: a plain copy)."""
        torch._foreach_lerp_(self.target_parameters, self.parameters, self.config.tau)
        for target, online in zip(self.target_net.buffers(), self.q_net.buffers()):
            target.copy_(online)


def check_setup(config: Config, env: gym.Env) -> None:
    """Refuse settings that do not fit this env before anything is written."""
    image_encoder(config, env.observation_space)


def image_encoder(config: Config, obs_space: gym.spaces.Box) -> dict[str, Any] | None:
    """ConvEncoder arguments when the config asks for a CNN; the observations must then be images."""
    if not config.conv_channels:
        return None
    if len(obs_space.shape) != IMAGE_RANK:
        raise DeeprlError(
            f"conv_channels needs image observations (channels, height, width), but {config.env} gives "
            f"shape {obs_space.shape}; set observation=screen_difference or screen_frames, or conv_channels=[]"
        )
    layers = len(config.conv_channels)
    return {
        "in_shape": list(obs_space.shape),
        "channels": list(config.conv_channels),
        "kernels": list(config.conv_kernels[:layers]),
        "strides": list(config.conv_strides[:layers]),
        "batch_norm": config.batch_norm,
    }


def train(
    config: Config, make_env: Callable[..., gym.Env], run: Run, device: torch.device,
    resume: dict[str, Any] | None = None,
) -> QAgent:
    """Train from scratch, or continue from a checkpoint's `resume` state exactly where it stopped."""
    rng = seed_everything(config.seed)
    runner = EnvRunner(make_env, 1, config.seed, run)
    obs_space, action_space = runner.observation_space, runner.action_space
    network = {
        "obs_dim": int(np.prod(obs_space.shape)),
        "n_actions": int(action_space.n),
        "hidden_sizes": list(config.hidden_sizes),
        "activation": config.activation,
        "dueling": config.dueling,
        "encoder": image_encoder(config, obs_space),
    }
    learner = DQNLearner(config, network, device)
    agent = QAgent(learner.q_net, obs_space, action_space, network, epsilon=config.epsilon_end)
    # Pictures keep their dtype (uint8 screens stay bytes) and are stored once, not again as next_obs.
    is_image = len(obs_space.shape) == IMAGE_RANK
    replay = ReplayBuffer(
        config.buffer_size, obs_space.shape, observation_dtype(obs_space), shared_next_obs=is_image,
    )
    epsilon = EpsilonSchedule(
        config.epsilon_schedule, config.epsilon_start, config.epsilon_end,
        config.epsilon_decay_steps, config.epsilon_decay_factor,
    )
    first_action = int(action_space.start)  # replay stores indices 0..n-1; the env may number from `start`
    train_every_step = config.train_freq_unit == "steps"
    target_every_step = config.target_update_unit == "steps"

    def gradient_round() -> None:
        if len(replay) < config.batch_size:
            return
        for _ in range(config.gradient_steps):
            batch = replay.sample(config.batch_size, rng, config.n_step, config.gamma, device)
            loss = learner.update(batch)
            if not math.isfinite(loss):
                raise DeeprlError(f"the loss became {loss} at step {step}; try a lower lr or a loss of huber")
            episode_losses.append(loss)

    def training_state() -> dict[str, Any]:
        return {
            "q_net": learner.q_net.state_dict(),
            "target_net": learner.target_net.state_dict(),
            "optimizer": learner.optimizer.state_dict(),
            "replay": replay.state_dict() if config.checkpoint_replay else None,
            "step": step,
            "runner": runner.state_dict(),
            "rng": process_rng_states(rng),
        }

    episode_losses: list[float] = []
    first_step = 1
    learning_starts = config.learning_starts
    if resume is not None:
        learner.q_net.load_state_dict(resume["q_net"])
        learner.target_net.load_state_dict(resume["target_net"])
        learner.optimizer.load_state_dict(resume["optimizer"])
        restore_process_rng_states(resume["rng"], rng)
        runner.load_state_dict(resume["runner"])
        first_step = resume["step"] + 1
        if resume["replay"] is not None:
            replay.load_state_dict(resume["replay"])
        else:  # an empty memory: gather learning_starts fresh steps again before learning from it
            learning_starts = resume["step"] + config.learning_starts
            warn(f"the checkpoint at step {resume['step']} holds no replay memory (checkpoint_replay: false); "
                 f"it refills until step {learning_starts}, so this run will differ from an uninterrupted one")
    step = first_step - 1
    try:
        for step in range(first_step, config.total_steps + 1):
            exploration = epsilon.value(step, runner.episodes)
            explore = rng.random() < exploration
            obs = runner.obs[0]
            action = int(rng.integers(action_space.n)) if explore else agent.act(obs) - first_action
            result = runner.step(np.array([action + first_action]), step)
            terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
            replay.add(obs, action, float(result.rewards[0]), result.next_obs[0], terminated, truncated)

            learning = step > learning_starts
            if config.lr_end is not None:
                learner.set_lr(config.lr + (config.lr_end - config.lr) * step / config.total_steps)
            if learning and train_every_step and step % config.train_freq == 0:
                gradient_round()
            if target_every_step and step % config.target_update_interval == 0:
                learner.update_target()

            episode_ended = terminated or truncated
            if episode_ended:
                if learning and not train_every_step and runner.episodes % config.train_freq == 0:
                    gradient_round()
                runner.report(result, epsilon=exploration,
                              loss=float(np.mean(episode_losses)) if episode_losses else None)
                if not target_every_step and runner.episodes % config.target_update_interval == 0:
                    learner.update_target()
                episode_losses = []

            if run.evaluate_due(step - 1, step):
                check_finite(learner.q_net, step)
                if run.evaluate(step, runner.episodes, agent):
                    break
            if episode_ended and run.checkpoint_due(step):
                check_finite(learner.q_net, step)
                run.checkpoint(step, training_state(), agent)
        agent.summary = run.finish(step, runner.episodes, agent)
    finally:
        runner.close()
    return agent
