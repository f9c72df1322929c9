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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from deeprl.agent import observation_dtype
from deeprl.buffers import discounted_returns
from deeprl.checkpoint import process_rng_states, restore_process_rng_states
from deeprl.config import RunConfig, knob
from deeprl.envs import seed_everything
from deeprl.experience import EnvRunner
from deeprl.nets import ACTIVATIONS, ActorCritic, check_finite, gradient_step, observation_encoder
from deeprl.policies import PolicyAgent, load_policy_agent, policy_network
from deeprl.run import Run

OBSERVATION_SPACES = (gym.spaces.Box,)
ACTION_SPACES = (gym.spaces.Discrete, gym.spaces.Box)
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
    baseline: str = knob("value", "subtracted from the returns: none, mean (running mean), value (learnt V(s))",
                         choices=BASELINES)
    value_lr: float = knob(1e-3, "learning rate of the value baseline", above=0.0)
    baseline_decay: float = knob(0.99, "mean baseline: weight of the old mean at each update", low=0.0, high=1.0)
    normalize_returns: bool = knob(True, "standardise the weights G - b within each update")
    loss_reduction: str = knob("mean", "mean over the update's steps, or sum (the tutorial's per-episode sum)",
                               choices=("mean", "sum"))
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

    def state(self) -> dict[str, Any]:
        return {"obs": [o.tolist() for o in self.obs], "actions": [a.tolist() for a in self.actions],
                "rewards": self.rewards}

    @classmethod
    def from_state(cls, state: dict[str, Any], obs_dtype: np.dtype, action_dtype: np.dtype) -> Episode:
        return cls([np.asarray(o, dtype=obs_dtype) for o in state["obs"]],
                   [np.asarray(a, dtype=action_dtype) for a in state["actions"]], list(state["rewards"]))


def train(
    config: Config, make_env: Callable[..., gym.Env], run: Run, device: torch.device,
    resume: dict[str, Any] | None = None,
) -> PolicyAgent:
    """Train from scratch, or continue from a checkpoint's `resume` state exactly where it stopped."""
    rng = seed_everything(config.seed)
    runner = EnvRunner(make_env, config.n_envs, config.seed, run)
    obs_space, action_space = runner.observation_space, runner.action_space
    network = policy_network(obs_space, action_space, config, "separate" if config.baseline == "value" else "none")
    policy = ActorCritic(**network).to(device)
    agent = PolicyAgent(policy, obs_space, action_space, network)
    value_parameters = [p for name, p in policy.named_parameters() if name.startswith("value_")]
    policy_parameters = [p for name, p in policy.named_parameters() if not name.startswith("value_")]
    groups = [{"params": policy_parameters, "lr": config.lr}]
    if value_parameters:
        groups.append({"params": value_parameters, "lr": config.value_lr})
    optimizer = torch.optim.Adam(groups)
    parameters = list(policy.parameters())
    obs_dtype = observation_dtype(obs_space)  # pictures stay bytes
    action_dtype = np.dtype(np.int64 if agent.discrete else np.float32)

    running = [Episode() for _ in range(config.n_envs)]  # each copy's episode in progress
    finished: list[tuple[Episode, np.ndarray]] = []  # whole episodes and their returns, awaiting the update
    baseline_mean = 0.0
    step = 0
    if resume is not None:
        policy.load_state_dict(resume["policy"])
        optimizer.load_state_dict(resume["optimizer"])
        restore_process_rng_states(resume["rng"], rng)
        runner.load_state_dict(resume["runner"])
        running = [Episode.from_state(state, obs_dtype, action_dtype) for state in resume["running"]]
        baseline_mean, step = resume["baseline_mean"], resume["step"]

    def update() -> None:
        nonlocal baseline_mean
        obs = torch.from_numpy(np.concatenate([np.stack(episode.obs) for episode, _ in finished])).to(device)
        actions = torch.from_numpy(np.concatenate([np.stack(episode.actions) for episode, _ in finished]))
        returns = torch.from_numpy(np.concatenate([episode_returns for _, episode_returns in finished])).to(device)
        log_probs, entropy, values = policy.evaluate_actions(obs, actions.to(device))
        value_loss = torch.zeros((), device=device)
        if config.baseline == "value":
            weights = returns - values.detach()
            value_loss = F.mse_loss(values, returns)
        elif config.baseline == "mean":
            weights = returns - baseline_mean
            baseline_mean = config.baseline_decay * baseline_mean + (1 - config.baseline_decay) * returns.mean().item()
        else:
            weights = returns
        if config.normalize_returns and len(weights) > 1:
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)
        per_step = -log_probs * weights
        policy_loss = per_step.sum() if config.loss_reduction == "sum" else per_step.mean()
        loss = policy_loss - config.entropy_coef * entropy.mean() + value_loss
        gradient_step(optimizer, parameters, loss, config.max_grad_norm, step)
        run.log_update(step, runner.episodes, policy_loss=policy_loss.item(), value_loss=value_loss.item(),
                       entropy=entropy.mean().item(), baseline=baseline_mean if config.baseline == "mean" else None)

    def end_of_episode(episode: Episode, terminated: bool, final_obs: np.ndarray) -> np.ndarray:
        """The episode's returns G_t; a time-limit cut bootstraps with the learnt value of its final observation."""
        bootstrap = 0.0
        if not terminated and config.baseline == "value":
            with torch.inference_mode():
                bootstrap = policy.value(torch.from_numpy(final_obs[None]).to(device)).item()
        return discounted_returns(np.asarray(episode.rewards, dtype=np.float32), config.gamma, bootstrap)

    try:
        while step < config.total_steps:
            previous_step, step = step, step + config.n_envs
            obs = runner.obs.astype(obs_dtype, copy=False)
            raw_actions = agent.raw_act(obs, deterministic=False, rng=rng)
            result = runner.step(agent.to_env(raw_actions), step)
            for index, episode in enumerate(running):
                episode.obs.append(obs[index])
                episode.actions.append(raw_actions[index])
                episode.rewards.append(float(result.rewards[index]))
                if result.terminated[index] or result.truncated[index]:
                    returns = end_of_episode(episode, bool(result.terminated[index]), result.next_obs[index])
                    finished.append((episode, returns))
                    running[index] = Episode()
            runner.report(result)
            if len(finished) >= config.episodes_per_update:
                update()
                finished = []
            if run.evaluate_due(previous_step, step):
                check_finite(policy, step)
                if run.evaluate(step, runner.episodes, agent):
                    break
            if not finished and run.checkpoint_due(step):  # whole episodes are learnt from before a checkpoint
                check_finite(policy, step)
                run.checkpoint(step, {
                    "policy": policy.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": process_rng_states(rng),
                    "runner": runner.state_dict(),
                    "running": [episode.state() for episode in running],
                    "baseline_mean": baseline_mean,
                    "step": step,
                }, agent)
        agent.summary = run.finish(step, runner.episodes, agent)
    finally:
        runner.close()
    return agent
