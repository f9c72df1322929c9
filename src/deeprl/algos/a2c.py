"""A2C: synchronous advantage actor-critic (the synchronous form of Mnih et al.'s A3C, 2016).

Each short rollout of n_steps x n_envs steps (see deeprl.onpolicy), scored and given GAE advantages as PPO's
(deeprl.algos.ppo), gives one gradient step on the whole batch:

    loss = -mean( A * log pi(a|s) ) + value_coef * mean( (V(s) - R)^2 ) - entropy_coef * entropy

with R the n-step returns bootstrapped from the value after the rollout (gae_lambda 1; lower values give GAE) and
A = R - V(s). Many env copies stepped together make the batch diverse enough for on-policy steps this small.

The optimiser is RMSprop (alpha 0.99, eps 1e-5), as SB3's A2C and the A3C paper use: the RL Zoo's tuned A2C
settings (lr 7e-4 and the like) were found with it. `--set optimizer=adam` switches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from deeprl import onpolicy
from deeprl.algos.ppo import scored_with_advantages
from deeprl.buffers import RolloutBuffer
from deeprl.config import knob
from deeprl.onpolicy import OnPolicyConfig, UpdateContext, normalized_advantages

OBSERVATION_SPACES = onpolicy.OBSERVATION_SPACES
ACTION_SPACES = onpolicy.ACTION_SPACES
METRIC_COLUMNS = ("policy_loss", "value_loss", "entropy", "explained_variance", "lr")
check_setup = onpolicy.check_setup


@dataclass
class Config(OnPolicyConfig):
    """SB3's A2C defaults, but 8 env copies (the RL Zoo's A2C settings use 8 or 16; one gives 5-sample batches)."""

    algo: ClassVar[str] = "a2c"

    n_envs: int = knob(8, "env copies stepped together", low=1)
    n_steps: int = knob(5, "steps of every copy per rollout (one gradient step per rollout)", low=1)
    gae_lambda: float = knob(
        1.0, "GAE lambda: 1 gives n-step returns to the rollout's end, 0 one-step TD", low=0.0, high=1.0
    )
    lr: float = knob(7e-4, "learning rate", above=0.0)
    optimizer: str = knob("rmsprop", "rmsprop (SB3's and the paper's) or adam", choices=("adam", "rmsprop"))
    normalize_advantages: bool = knob(False, "standardise the advantages within each rollout")


def update(
    context: UpdateContext,
    rollouts: list[RolloutBuffer],
    last_values: list[np.ndarray],
    progress: float,
    step: int,
) -> list[dict[str, float]]:
    """One gradient step on the whole rollout (each seed's on its own, when seeds step together); `last_values` are
    V of the observations after each rollout's last step. A metrics row a seed."""
    config: Config = context.config
    scored_with_advantages(context, rollouts, last_values)
    batches = [
        next(rollout.minibatches(config.n_steps * config.n_envs, rng, context.device))
        for rollout, rng in zip(rollouts, context.rngs, strict=True)
    ]
    losses, rows = [], []
    for (log_probs, entropy, values), batch in zip(context.evaluate(batches), batches, strict=True):
        advantages = normalized_advantages(batch.advantages) if config.normalize_advantages else batch.advantages
        policy_loss = -(advantages * log_probs).mean()
        value_loss = ((values - batch.returns) ** 2).mean()
        entropy = entropy.mean()
        losses.append(policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy)
        rows.append({"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy})
    context.gradient_step(losses, step)
    return [{name: value.item() for name, value in row.items()} for row in rows]


train = onpolicy.train_with(update)
train_seeds = onpolicy.train_seeds_with(update)
seeds_refusal = onpolicy.seeds_refusal
