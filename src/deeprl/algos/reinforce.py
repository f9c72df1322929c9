"""REINFORCE: Monte-Carlo policy gradient.

After whole episodes, the policy's log-probability of each action taken is pushed up in proportion to what
followed it:

    loss = -sum_t log pi(a_t | s_t) * (G_t - b(s_t)),    G_t = r_t + gamma * G_{t+1}

G_t is computed backwards from the episode's end (0 after a true terminal; the learnt value of the final
observation when a time limit cut the episode and a value baseline exists). The baseline b is nothing (the
tutorial), a running mean of the returns, or a learnt value V(s) regressed onto G_t. `normalize_returns`
standardises the weights G_t - b within each update, which keeps the step size steady as returns grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from deeprl.action_heads import ACTION_SPACES  # noqa: F401 - every action space a policy head takes
from deeprl.buffers import discounted_returns
from deeprl.config import RunConfig, knob
from deeprl.experience import EnvRunner
from deeprl.loop import load_state_of, state_of, training_function
from deeprl.nets import ACTIVATIONS, ActorCritic, check_finite, gradient_step, observation_encoder
from deeprl.observations import OBSERVATION_SPACES, observation_dtype  # noqa: F401 - any space, encoded (observations.py)
from deeprl.onpolicy import normalized_advantages
from deeprl.policies import PolicyAgent, load_policy_agent, policy_network
from deeprl.run import Run

METRIC_COLUMNS = ("policy_loss", "value_loss", "entropy", "baseline")
BASELINES = ("none", "mean", "value")
load_policy = load_policy_agent


@dataclass
class Config(RunConfig):
    algo: ClassVar[str] = "reinforce"

    hidden_sizes: tuple[int, ...] = knob((64, 64), "hidden layer widths of the policy (and value) MLP", low=1)
    activation: str = knob("tanh", "hidden activation", choices=tuple(ACTIVATIONS))
    orthogonal_init: bool = knob(True, "orthogonal initial weights (false: PyTorch's defaults, as the tutorial)")
    gamma: float = knob(0.99, "discount factor", low=0.0, high=1.0)
    lr: float = knob(1e-3, "learning rate of the policy", above=0.0)
    baseline: str = knob(
        "value", "subtracted from the returns: none, mean (running mean), value (learnt V(s))", choices=BASELINES
    )
    value_lr: float = knob(1e-3, "learning rate of the value baseline", above=0.0)
    baseline_decay: float = knob(0.99, "mean baseline: weight of the old mean at each update", low=0.0, high=1.0)
    normalize_returns: bool = knob(True, "standardise the weights G - b within each update")
    loss_reduction: str = knob(
        "mean", "mean over the update's steps, or sum (the tutorial's per-episode sum)", choices=("mean", "sum")
    )
    episodes_per_update: int = knob(1, "whole episodes gathered before each update", low=1)
    n_envs: int = knob(1, "env copies stepped together", low=1)
    entropy_coef: float = knob(0.0, "weight of the policy's entropy bonus", low=0.0)
    max_grad_norm: float | None = knob(None, "clip the gradient's global norm; None: no clipping", above=0.0)


def check_setup(config: Config, env: gym.Env) -> None:
    """Pictures the CNN can take (nothing else of REINFORCE depends on the env beyond its spaces)."""
    observation_encoder(env.observation_space)


@dataclass
class Episode:
    """The steps of one episode in progress: what the update needs of it."""

    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    action_masks: list[np.ndarray] = field(default_factory=list)  # an env that masks actions: each step's mask

    def state(self) -> dict[str, Any]:
        return {
            "obs": [o.tolist() for o in self.obs],
            "actions": [a.tolist() for a in self.actions],
            "rewards": self.rewards,
            "action_masks": [m.tolist() for m in self.action_masks],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], obs_dtype: np.dtype, action_dtype: np.dtype) -> Episode:
        return cls(
            [np.asarray(o, dtype=obs_dtype) for o in state["obs"]],
            [np.asarray(a, dtype=action_dtype) for a in state["actions"]],
            list(state["rewards"]),
            [np.asarray(m, dtype=np.bool_) for m in state.get("action_masks", [])],
        )


class ReinforceTrainer:
    """REINFORCE as the loop skeleton (deeprl.loop) drives it: one step of every copy per `advance`, and an update
    once `episodes_per_update` episodes have ended."""

    def __init__(
        self, config: Config, runner: EnvRunner, run: Run, rng: np.random.Generator, device: torch.device
    ) -> None:
        self.config, self.runner, self.run, self.rng, self.device = config, runner, run, rng, device
        obs_space, action_space = runner.observation_space, runner.action_space
        network = policy_network(obs_space, action_space, config, "separate" if config.baseline == "value" else "none")
        self.policy = ActorCritic(**network).to(device)
        self.agent = PolicyAgent(self.policy, obs_space, action_space, network)
        value_parameters = [p for name, p in self.policy.named_parameters() if name.startswith("value_")]
        policy_parameters = [p for name, p in self.policy.named_parameters() if not name.startswith("value_")]
        groups = [{"params": policy_parameters, "lr": config.lr}]
        if value_parameters:
            groups.append({"params": value_parameters, "lr": config.value_lr})
        self.optimizer = torch.optim.Adam(groups)
        self.parameters = list(self.policy.parameters())
        self.obs_dtype = observation_dtype(obs_space)  # pictures stay bytes
        self.action_dtype = self.policy.head.raw_dtype
        self.running = [Episode() for _ in range(config.n_envs)]  # each copy's episode in progress
        self.finished: list[tuple[Episode, np.ndarray]] = []  # whole episodes and their returns, awaiting the update
        self.baseline_mean = 0.0

    def advance(self, step: int) -> int:
        """One step of every copy; the update once enough episodes have ended."""
        runner = self.runner
        step += self.config.n_envs
        obs = runner.obs.astype(self.obs_dtype, copy=False)
        masks = runner.action_masks
        raw_actions = self.agent.raw_act(obs, deterministic=False, rng=self.rng, action_masks=masks)
        transitions = runner.step(self.agent.to_env(raw_actions), step)
        for index, episode in enumerate(self.running):
            episode.obs.append(obs[index])
            episode.actions.append(raw_actions[index])
            if masks is not None:  # the update scores each action under the mask it was drawn with
                episode.action_masks.append(masks[index])
            episode.rewards.append(float(transitions.rewards[index]))
            if transitions.terminated[index] or transitions.truncated[index]:
                returns = self.returns_of(episode, bool(transitions.terminated[index]), transitions.next_obs[index])
                self.finished.append((episode, returns))
                self.running[index] = Episode()
        runner.report(transitions)
        if len(self.finished) >= self.config.episodes_per_update:
            self.update(step)
            self.finished = []
        return step

    def returns_of(self, episode: Episode, terminated: bool, final_obs: np.ndarray) -> np.ndarray:
        """The episode's returns G_t; a time-limit cut bootstraps with the learnt value of its final observation."""
        bootstrap = 0.0
        if not terminated and self.config.baseline == "value":
            with torch.inference_mode():
                bootstrap = self.policy.value(torch.from_numpy(final_obs[None]).to(self.device)).item()
        return discounted_returns(np.asarray(episode.rewards, dtype=np.float32), self.config.gamma, bootstrap)

    def update(self, step: int) -> None:
        config, device, finished = self.config, self.device, self.finished
        obs = torch.from_numpy(np.concatenate([np.stack(episode.obs) for episode, _ in finished])).to(device)
        actions = torch.from_numpy(np.concatenate([np.stack(episode.actions) for episode, _ in finished]))
        returns = torch.from_numpy(np.concatenate([episode_returns for _, episode_returns in finished])).to(device)
        masks = None
        if self.runner.action_masks is not None:
            masks = torch.from_numpy(np.concatenate([np.stack(episode.action_masks) for episode, _ in finished]))
            masks = masks.to(device)
        log_probs, entropy, values = self.policy.evaluate_actions(obs, actions.to(device), masks)
        value_loss = torch.zeros((), device=device)
        if config.baseline == "value":
            weights = returns - values.detach()
            value_loss = F.mse_loss(values, returns)
        elif config.baseline == "mean":
            weights = returns - self.baseline_mean
            self.baseline_mean = (
                config.baseline_decay * self.baseline_mean + (1 - config.baseline_decay) * returns.mean().item()
            )
        else:
            weights = returns
        if config.normalize_returns:
            weights = normalized_advantages(weights)
        per_step = -log_probs * weights
        policy_loss = per_step.sum() if config.loss_reduction == "sum" else per_step.mean()
        loss = policy_loss - config.entropy_coef * entropy.mean() + value_loss
        gradient_step(self.optimizer, self.parameters, loss, config.max_grad_norm, step)
        self.run.log_update(
            step,
            self.runner.episodes,
            policy_loss=policy_loss.item(),
            value_loss=value_loss.item(),
            entropy=entropy.mean().item(),
            baseline=self.baseline_mean if config.baseline == "mean" else None,
        )

    def can_checkpoint(self, step: int) -> bool:
        return not self.finished  # whole episodes are learnt from before a checkpoint

    def next_checkpoint(self, step: int) -> None:
        return None

    def check_finite(self, step: int) -> None:
        check_finite(self.policy, step)

    def state_dict(self) -> dict[str, Any]:
        return {
            **state_of({"policy": self.policy, "optimizer": self.optimizer}),
            "baseline_mean": self.baseline_mean,
            "running": [episode.state() for episode in self.running],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state_of({"policy": self.policy, "optimizer": self.optimizer}, state)
        self.running = [Episode.from_state(episode, self.obs_dtype, self.action_dtype) for episode in state["running"]]
        self.baseline_mean = state["baseline_mean"]


train = training_function(ReinforceTrainer)
