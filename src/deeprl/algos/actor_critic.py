"""The actor-critic family: a policy (the actor) pushed by a learnt critic instead of whole-episode returns.

After every `n_steps` steps of each env copy, the actor's loss is -log pi(a|s) * weight, with the weight from
the critic (`critic`):

- `q`: Q(s, a). The critic learns Q by a SARSA-style target y = r + gamma * sum_a' pi(a'|s') Q(s', a')
  (the next action's value averaged over the policy: expected SARSA).
- `advantage`: Q(s, a) - V(s). V learns y = r + gamma * V(s'), and so does Q, since Q(s, a) = E[r + gamma V(s')].
  Q is written V(s) + A(s, a) with V held fixed there, so the head learns A and the weight is A(s, a). The head
  starts near 0: learnt as a network of its own from an arbitrary start, Q of an action the policy seldom tried
  stayed below V, the policy tried it less and less, and runs collapsed onto one action.
- `td`: the TD error delta = r + gamma * V(s') - V(s), an estimate of the advantage from V alone.

`multi_step` replaces the one-step targets with the discounted rewards to the end of the rollout, bootstrapped
there (n-step returns); `actor_lr` gives the actor a learning rate of its own, slower than its critics'.

With `all_actions` (Q critics) the actor's loss is -sum_a pi(a|s) Q(s, a) instead: the same gradient in expectation
over the policy's actions, without the noise of weighing one sampled action by a value that is mostly the state's.

Targets do not bootstrap after a true terminal state; a copy cut by a time limit bootstraps from its final
observation (the step's next_obs). Weights and targets are held fixed (detached) in the actor's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeprl.action_heads import ACTION_SPACES  # noqa: F401 - every action space a policy head takes
from deeprl.config import RunConfig, knob
from deeprl.errors import DeeprlError
from deeprl.experience import EnvRunner, Transitions
from deeprl.loop import load_state_of, state_of, training_function
from deeprl.nets import (
    ACTIVATIONS,
    ActorCritic,
    check_finite,
    encoded,
    gradient_step,
    mlp,
    observation_encoder,
    orthogonal_init_,
)
from deeprl.observations import OBSERVATION_SPACES, observation_dtype  # noqa: F401 - any space, encoded (observations.py)
from deeprl.onpolicy import normalized_advantages
from deeprl.policies import PolicyAgent, load_policy_agent, policy_network
from deeprl.run import Run

METRIC_COLUMNS = ("policy_loss", "value_loss", "entropy")
CRITICS = ("q", "advantage", "td")
MASKS = ("action_masks", "next_action_masks")  # of the Transitions of an env that masks actions
load_policy = load_policy_agent


@dataclass
class Config(RunConfig):
    algo: ClassVar[str] = "actor-critic"

    critic: str = knob(
        "td",
        "what weighs the actor's log-probabilities: q (Q(s,a)), advantage (Q - V) or td (the TD error)",
        choices=CRITICS,
    )
    hidden_sizes: tuple[int, ...] = knob((64, 64), "hidden layer widths of the actor (and critic) MLP", low=1)
    activation: str = knob("tanh", "hidden activation", choices=tuple(ACTIVATIONS))
    shared_trunk: bool = knob(False, "actor and critic heads on one trunk (the tutorial) or separate networks")
    orthogonal_init: bool = knob(True, "orthogonal initial weights (false: PyTorch's defaults, as the tutorial)")
    n_steps: int = knob(5, "steps per env copy between updates", low=1)
    n_envs: int = knob(1, "env copies stepped together", low=1)
    gamma: float = knob(0.99, "discount factor", low=0.0, high=1.0)
    lr: float = knob(7e-4, "learning rate (the critics', and the actor's unless actor_lr is set)", above=0.0)
    actor_lr: float | None = knob(
        None,
        "the actor's own learning rate: a slower actor lets the critics keep up with its policy; None: lr",
        above=0.0,
    )
    reward_scale: float = knob(1.0, "rewards are multiplied by this before learning (the tutorial: 0.01)", above=0.0)
    value_loss: str = knob("mse", "critic loss: mse or smooth_l1 (Huber, the tutorial's)", choices=("mse", "smooth_l1"))
    value_coef: float = knob(0.5, "weight of the critic's loss", above=0.0)
    entropy_coef: float = knob(0.0, "weight of the policy's entropy bonus", low=0.0)
    max_grad_norm: float | None = knob(0.5, "clip the gradient's global norm; None: no clipping", above=0.0)
    multi_step: bool = knob(
        False,
        "critics learn from the discounted rewards to the end of each rollout "
        "(n-step returns, bootstrapped there) instead of one-step TD targets",
    )
    normalize_advantages: bool = knob(
        False, "standardise the actor's weights within each update (the sampled form only)"
    )
    all_actions: bool = knob(
        False,
        "q and advantage critics: the actor's loss -sum_a pi(a|s) Q(s, a) over every "
        "action instead of the sampled one's (the same gradient in expectation, without the "
        "sampling noise that swamps Q's small differences between actions)",
    )


def check_setup(config: Config, env: gym.Env) -> None:
    """Pictures the CNN can take; Q critics value each discrete action: they need a Discrete action space."""
    observation_encoder(env.observation_space)
    if config.critic in ("q", "advantage") and not isinstance(env.action_space, gym.spaces.Discrete):
        raise DeeprlError(
            f"critic={config.critic} learns Q(s, a) for each discrete action; {config.env} has "
            f"{env.action_space}: use critic=td"
        )


class QHead(nn.Module):
    """Q(s, .) for every discrete action: a head on the actor's trunk, or a network of its own (reading pictures
    through the actor's CNN, shared)."""

    def __init__(self, policy: ActorCritic | None, obs_dim: int, n_actions: int, config: Config) -> None:
        """`policy` may be None for a head of its own on vector observations (nothing of the actor's to share)."""
        super().__init__()
        self.encoder = None if policy is None else policy.encoder
        self.policy_trunk = policy.trunk if config.shared_trunk else None
        sizes = list(config.hidden_sizes)
        if self.policy_trunk is None:
            self.net = mlp([obs_dim, *sizes, n_actions], config.activation)
        else:
            self.net = nn.Linear(sizes[-1] if sizes else obs_dim, n_actions)
        if config.critic == "advantage":  # the head is A(s, .): start it near 0, no action favoured
            orthogonal_init_(self.net if self.policy_trunk is not None else self.net[-1], 0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        inputs = encoded(self.encoder, obs)
        return self.net(inputs if self.policy_trunk is None else self.policy_trunk(inputs))


def critic_targets(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    n_steps: int,
    multi_step: bool,
) -> torch.Tensor:
    """The critics' targets y for a rollout flattened step by step (`n_steps` steps of equally many copies);
    `next_values` is the critic's value of each step's next observation.

    One-step: y_t = r_t + gamma * value(s_t+1), with no bootstrap after a true terminal. Multi-step: y_t =
    r_t + gamma * y_t+1 down the rollout, bootstrapping from value(s_t+1) only where the rollout ends or a time
    limit cut the episode (the next stored step belongs to a new episode then).
    """
    continues = 1.0 - terminated.float()
    if not multi_step:
        return rewards + gamma * continues * next_values
    rewards, continues, next_values = (x.view(n_steps, -1) for x in (rewards, continues, next_values))
    truncated = truncated.view(n_steps, -1)
    targets = torch.empty_like(rewards)
    following = next_values[-1]
    for t in range(n_steps - 1, -1, -1):
        bootstrap = torch.where(truncated[t], next_values[t], following) * continues[t]
        following = targets[t] = rewards[t] + gamma * bootstrap
    return targets.view(-1)


class ActorCriticTrainer:
    """The actor-critics as the loop skeleton (deeprl.loop) drives them: a rollout of n_steps steps of every copy
    per `advance` (shorter where the budget ends), and one update on it."""

    def __init__(
        self, config: Config, runner: EnvRunner, run: Run, rng: np.random.Generator, device: torch.device
    ) -> None:
        self.config, self.runner, self.run, self.rng, self.device = config, runner, run, rng, device
        obs_space, action_space = runner.observation_space, runner.action_space
        self.uses_value, self.uses_q = config.critic in ("td", "advantage"), config.critic in ("q", "advantage")
        value = ("shared" if config.shared_trunk else "separate") if self.uses_value else "none"
        network = policy_network(obs_space, action_space, config, value)
        self.policy = policy = ActorCritic(**network).to(device)
        self.q_head = QHead(policy, policy.input_dim, int(action_space.n), config).to(device) if self.uses_q else None
        self.agent = PolicyAgent(policy, obs_space, action_space, network)
        self.obs_dtype = observation_dtype(obs_space)  # pictures stay bytes
        self.parameters = list(
            {id(p): p for module in (policy, self.q_head) if module is not None for p in module.parameters()}.values()
        )  # a shared trunk is listed once
        groups: list[dict[str, Any]] = [{"params": self.parameters}]
        if config.actor_lr is not None:  # the actor's own parameters: its head, and its trunk unless shared
            actor_modules = [policy.policy_head] if config.shared_trunk else [policy.policy_head, policy.trunk]
            actor_ids = {id(p) for module in actor_modules for p in module.parameters()}
            if policy.log_std is not None:
                actor_ids.add(id(policy.log_std))
            groups = [
                {"params": [p for p in self.parameters if id(p) in actor_ids], "lr": config.actor_lr},
                {"params": [p for p in self.parameters if id(p) not in actor_ids]},
            ]
        self.optimizer = torch.optim.Adam(groups, lr=config.lr)
        self.value_loss_fn = F.smooth_l1_loss if config.value_loss == "smooth_l1" else F.mse_loss

    def advance(self, step: int) -> int:
        """A rollout of n_steps steps of every copy (cut at the budget's end), then the update on it."""
        config, runner, agent = self.config, self.runner, self.agent
        rollout, raw_actions = [], []
        for _ in range(config.n_steps):
            step += config.n_envs
            obs = runner.obs.astype(self.obs_dtype, copy=False)
            raw = agent.raw_act(obs, deterministic=False, rng=self.rng, action_masks=runner.action_masks)
            transitions = runner.step(agent.to_env(raw), step)
            runner.report(transitions)
            rollout.append(transitions)
            raw_actions.append(raw)
            if step >= config.total_steps:
                break
        self.update(rollout, raw_actions, step)
        return step

    def update(self, rollout: list[Transitions], raw_actions: list[np.ndarray], step: int) -> None:
        config, device, policy, q_head = self.config, self.device, self.policy, self.q_head
        uses_value, uses_q = self.uses_value, self.uses_q

        def stacked(name: str) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([getattr(transitions, name) for transitions in rollout])).to(device)

        obs, next_obs = stacked("obs").float(), stacked("next_obs").float()
        actions = torch.from_numpy(np.concatenate(raw_actions)).to(device)
        rewards = stacked("rewards").float() * config.reward_scale
        terminated, truncated = stacked("terminated"), stacked("truncated")
        # an env that masks actions: each step scored under the mask it acted with, the next under the next state's
        masks, next_masks = (stacked(name) if rollout[0].action_masks is not None else None for name in MASKS)
        distribution, values = policy(obs, masks)
        log_probs, entropy = distribution.log_prob(actions), distribution.entropy()
        with torch.no_grad():
            next_distribution, next_values = policy(next_obs, next_masks)
            # Q's target bootstraps from the policy's average over Q(s', .), unless V is learnt too:
            # Q(s, a) = E[r + gamma V(s')], and V learns from every step whatever the action
            next_q = next_values if uses_value else (next_distribution.probs * q_head(next_obs)).sum(dim=1)
            targets = critic_targets(
                rewards, terminated, truncated, next_q, config.gamma, len(rollout), config.multi_step
            )
        critic_loss = torch.zeros((), device=device)
        if uses_q:
            q_all = q_head(obs)
            if uses_value:  # Q = V + A with V held fixed here: the head learns A(s, a), the mean of y - V(s)
                q_all = q_all + values.detach().unsqueeze(1)
            q_taken = q_all.gather(1, actions.long().unsqueeze(1)).squeeze(1)
            critic_loss = critic_loss + self.value_loss_fn(q_taken, targets)
        if uses_value:
            critic_loss = critic_loss + self.value_loss_fn(values, targets)
        if config.critic == "q":
            weights = q_taken.detach()
        elif config.critic == "advantage":
            weights = (q_taken - values).detach()
        else:
            weights = (targets - values).detach()
        if config.normalize_advantages:
            weights = normalized_advantages(weights)
        if config.all_actions and uses_q:  # sum_a grad pi(a|s) = 0: V(s) would add nothing, so Q alone serves
            policy_loss = -(distribution.probs * q_all.detach()).sum(dim=1).mean()
        else:
            policy_loss = -(log_probs * weights).mean()
        loss = policy_loss - config.entropy_coef * entropy.mean() + config.value_coef * critic_loss
        gradient_step(
            self.optimizer, self.parameters, loss, config.max_grad_norm, step, "try a lower lr or reward_scale"
        )
        self.run.log_update(
            step,
            self.runner.episodes,
            policy_loss=policy_loss.item(),
            value_loss=critic_loss.item(),
            entropy=entropy.mean().item(),
        )

    def can_checkpoint(self, step: int) -> bool:
        return True  # between rollouts: nothing is pending

    def next_checkpoint(self, step: int) -> None:
        return None

    def check_finite(self, step: int) -> None:
        check_finite(self.policy, step)

    def parts(self) -> dict[str, Any]:
        """What a checkpoint holds of the trainer, by name."""
        return {"policy": self.policy, "q_head": self.q_head, "optimizer": self.optimizer}

    def state_dict(self) -> dict[str, Any]:
        return state_of(self.parts())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state_of(self.parts(), state)


train = training_function(ActorCriticTrainer)
