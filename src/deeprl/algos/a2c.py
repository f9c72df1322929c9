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
from deeprl.algos.ppo import gae, score_rollout
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
    context: UpdateContext, rollout: RolloutBuffer, last_values: np.ndarray, progress: float, step: int
) -> dict[str, float]:
    """One gradient step on the whole rollout; `last_values` is V of the observations after its last step."""
    config: Config = context.config
    if not rollout.scored:  # a policy that acted in torch (a CNN) scored each step as it acted
        score_rollout(context.policy, rollout, context.device)
    rollout.advantages[...], rollout.returns[...] = gae(rollout, last_values, config.gamma, config.gae_lambda)
    (batch,) = rollout.minibatches(config.n_steps * config.n_envs, context.rng, context.device)
    log_probs, entropy, values = context.policy.evaluate_actions(batch.obs, batch.actions, batch.action_masks)
    advantages = normalized_advantages(batch.advantages) if config.normalize_advantages else batch.advantages
    policy_loss = -(advantages * log_probs).mean()
    value_loss = ((values - batch.returns) ** 2).mean()
    entropy = entropy.mean()
    context.gradient_step(policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy, step)
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}


train = onpolicy.train_with(update)
