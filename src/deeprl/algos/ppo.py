"""PPO: proximal policy optimisation with the clipped surrogate objective (Schulman et al., 2017).

Each rollout (n_steps x n_envs steps, GAE(lambda) advantages A; see deeprl.onpolicy) is learnt from for n_epochs
passes of shuffled minibatches. With r = pi(a|s) / pi_old(a|s), the ratio of the current policy's probability of
the stored (raw, unclipped) action to the collecting policy's,

    policy_loss = -mean( min(r * A, clip(r, 1 - eps, 1 + eps) * A) )

so a step gains nothing from moving r beyond 1 ± eps in the direction the advantage favours. The value loss is the
mean squared error to the returns; with `clip_range_vf` the new value may move at most that far from the old one
unless the unclipped error is larger (the pessimistic maximum of the two, as OpenAI's baselines). The loss is
policy_loss + value_coef * value_loss - entropy_coef * entropy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import torch

from deeprl import onpolicy
from deeprl.buffers import RolloutBuffer
from deeprl.config import knob
from deeprl.exploration import annealed
from deeprl.onpolicy import OnPolicyConfig, UpdateContext, normalized_advantages
from deeprl.policies import PolicyAgent
from deeprl.run import Run

OBSERVATION_SPACES = onpolicy.OBSERVATION_SPACES
ACTION_SPACES = onpolicy.ACTION_SPACES
METRIC_COLUMNS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance", "lr")
# the update's own columns, in the order it stacks them: summed over the minibatches, then averaged
SUMMED = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
check_setup = onpolicy.check_setup


@dataclass
class Config(OnPolicyConfig):
    """SB3's PPO defaults (CleanRL's differ in n_envs 4, n_steps 128, batch 4 minibatches, ent 0.01, lr 2.5e-4
    annealed)."""

    algo: ClassVar[str] = "ppo"

    n_epochs: int = knob(10, "passes over each rollout", low=1)
    batch_size: int = knob(64, "samples per minibatch", low=1)
    clip_range: float = knob(0.2, "eps: how far the probability ratio may move before the objective stops rewarding "
                             "it", above=0.0)
    clip_range_end: float | None = knob(None, "anneal clip_range linearly to this by total_steps; None: constant",
                                        low=0.0)
    clip_range_vf: float | None = knob(None, "how far a value may move from the collecting one before the loss stops "
                                       "rewarding it; None: no value clipping", above=0.0)


def clipped_surrogate(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the clipped surrogate loss, the fraction of samples whose ratio lies beyond 1 ± clip_range)."""
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range) * advantages
    clip_fraction = ((ratio - 1).abs() > clip_range).float().mean()
    return -torch.min(unclipped, clipped).mean(), clip_fraction


def value_loss_of(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range_vf: float | None
) -> torch.Tensor:
    """Mean squared error to the returns; with `clip_range_vf`, the larger of the errors of the new value and of
    the new value kept within clip_range_vf of the old one."""
    errors = (values - returns) ** 2
    if clip_range_vf is None:
        return errors.mean()
    kept_close = old_values + torch.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    return torch.max(errors, (kept_close - returns) ** 2).mean()


def approx_kl(log_probs: torch.Tensor, old_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(pi_old || pi) estimated from samples of pi_old as mean((r - 1) - log r): unbiased and never negative."""
    log_ratio = log_probs - old_log_probs
    return (torch.exp(log_ratio) - 1 - log_ratio).mean()


def update(context: UpdateContext, rollout: RolloutBuffer, progress: float, step: int) -> dict[str, float]:
    """n_epochs passes of minibatch steps over the rollout; the row holds the means over every minibatch."""
    config: Config = context.config
    clip_range = annealed(config.clip_range, config.clip_range_end, progress)
    sums = torch.zeros(len(SUMMED), device=context.device)  # summed on the device: no sync per minibatch
    minibatches = 0
    for _ in range(config.n_epochs):
        for batch in rollout.minibatches(config.batch_size, context.rng, context.device):
            log_probs, entropy, values = context.policy.evaluate_actions(batch.obs, batch.actions)
            advantages = normalized_advantages(batch.advantages) if config.normalize_advantages else batch.advantages
            policy_loss, clip_fraction = clipped_surrogate(log_probs, batch.old_log_probs, advantages, clip_range)
            value_loss = value_loss_of(values, batch.old_values, batch.returns, config.clip_range_vf)
            entropy = entropy.mean()
            context.gradient_step(policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy, step)
            with torch.no_grad():
                kl = approx_kl(log_probs, batch.old_log_probs)
                sums += torch.stack([policy_loss, value_loss, entropy, kl, clip_fraction])
            minibatches += 1
    return dict(zip(SUMMED, (sums / minibatches).tolist(), strict=True))


def train(
    config: Config, make_env: Callable[..., gym.Env], run: Run, device: torch.device,
    resume: dict[str, Any] | None = None,
) -> PolicyAgent:
    """Train from scratch, or continue from a checkpoint's `resume` state exactly where it stopped."""
    return onpolicy.train(config, make_env, run, device, resume, update)
