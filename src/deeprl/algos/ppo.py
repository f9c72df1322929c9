"""PPO: proximal policy optimisation with the clipped surrogate objective (Schulman et al., 2017), in the order it
runs. deeprl.onpolicy steps the env copies (n_steps x n_envs steps per rollout) and stores, per step, the observation
the network saw, the raw (unclipped) action it sampled, the reward and the bootstrap value of a time-limit cut; with a
full rollout, `update` below

1. collect: scores the log-probability log pi_old(a|s) and the value V_old(s) of every stored step (`score_rollout`;
   a policy that acted in torch, a CNN, scored each step as it acted),
2. GAE: turns rewards and values into advantages A and returns (`gae`),
3. epochs: learns from the rollout for n_epochs passes of shuffled minibatches (`minibatch_epochs`), stopping early
   once the approximate KL to the collecting policy passes `target_kl`,
4. loss: with r = pi(a|s) / pi_old(a|s),

    policy_loss = -mean( min(r * A, clip(r, 1 - eps, 1 + eps) * A) )

so a step gains nothing from moving r beyond 1 ± eps in the direction the advantage favours. The value loss is the
mean squared error to the returns; with `clip_range_vf` the new value may move at most that far from the old one
unless the unclipped error is larger (the pessimistic maximum of the two, as OpenAI's baselines). The loss is
policy_loss + value_coef * value_loss - entropy_coef * entropy.

A2C (deeprl.algos.a2c) is steps 1 and 2 and one full-batch gradient step of the plain policy gradient.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from deeprl import onpolicy
from deeprl.buffers import RolloutBatch, RolloutBuffer
from deeprl.config import knob
from deeprl.exploration import annealed
from deeprl.nets import ActorCritic
from deeprl.onpolicy import OnPolicyConfig, UpdateContext, normalized_advantages

OBSERVATION_SPACES = onpolicy.OBSERVATION_SPACES
ACTION_SPACES = onpolicy.ACTION_SPACES
# the minibatch means, in the order minibatch_epochs stacks them (averaged over every minibatch it evaluated)
MINIBATCH_MEANS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
METRIC_COLUMNS = (*MINIBATCH_MEANS, "explained_variance", "lr", "epochs")
check_setup = onpolicy.check_setup


@dataclass
class Config(OnPolicyConfig):
    """SB3's PPO defaults (CleanRL's differ in n_envs 4, n_steps 128, batch 4 minibatches, ent 0.01, lr 2.5e-4
    annealed)."""

    algo: ClassVar[str] = "ppo"

    n_epochs: int = knob(10, "passes over each rollout", low=1)
    batch_size: int = knob(64, "samples per minibatch", low=1)
    clip_range: float = knob(
        0.2, "eps: how far the probability ratio may move before the objective stops rewarding it", above=0.0
    )
    clip_range_end: float | None = knob(
        None, "anneal clip_range linearly to this by total_steps; None: constant", low=0.0
    )
    clip_range_vf: float | None = knob(
        None,
        "how far a value may move from the collecting one before the loss stops rewarding it; None: no value clipping",
        above=0.0,
    )
    target_kl: float | None = knob(
        None,
        "stop the rollout's epochs at the first minibatch whose approximate KL to "
        "the collecting policy exceeds this (its step not taken); None: all n_epochs",
        above=0.0,
    )
    sequence_length: int | None = knob(
        None,
        "recurrent policies: the steps of a training sequence (each copy's rollout cut into pieces); "
        "None: min(n_steps, batch_size)",
        low=1,
    )


def update(
    context: UpdateContext,
    rollouts: list[RolloutBuffer],
    last_values: list[np.ndarray],
    progress: float,
    step: int,
) -> list[dict[str, float]]:
    """Learn from a full rollout (each seed's, when seeds step together: `context` is then a SeedsContext);
    `last_values` are V of the observations after each rollout's last step. A metrics row a seed."""
    config: Config = context.config
    scored_with_advantages(context, rollouts, last_values)
    return minibatch_epochs(context, rollouts, annealed(config.clip_range, config.clip_range_end, progress), step)


def scored_with_advantages(
    context: UpdateContext, rollouts: list[RolloutBuffer], last_values: list[np.ndarray]
) -> None:
    """Steps 1 and 2 for each seed's rollout (A2C's too): scores from its collecting policy, then GAE."""
    config = context.config
    for policy, rollout, values in zip(context.policies, rollouts, last_values, strict=True):
        if not rollout.scored:  # a policy that acted in torch (a CNN) scored each step as it acted
            score_rollout(policy, rollout, context.device)
        rollout.advantages[...], rollout.returns[...] = gae(rollout, values, config.gamma, config.gae_lambda)


# ---------------------------------------------------- 1. collect: what the collecting policy gave each stored step


def score_rollout(policy: ActorCritic, rollout: RolloutBuffer, device: torch.device) -> None:
    """log pi_old(a|s) and V_old(s) of every stored step, in one batched forward pass at the rollout's end.

    The collecting policy did not change while the rollout was collected, so this is what per-step scoring would
    give, at the cost of one pass instead of a torch call per step (acting samples in NumPy: PolicyAgent.raw_act).
    It is also the very computation the epochs repeat (ActorCritic.evaluate_actions), so the first minibatch's
    ratios are 1 up to the rounding of a different batch size."""
    # the whole rollout as one batch in storage order (a recurrent rollout's: every copy's steps as one sequence)
    (whole,) = rollout.minibatches(rollout.n_steps * rollout.n_envs, None, device)
    with torch.inference_mode():
        log_probs, _, values = policy.evaluate_actions(whole.obs, whole.actions, whole.action_masks)
    rollout.log_probs[...] = log_probs.reshape(rollout.n_steps, rollout.n_envs).cpu().numpy()
    rollout.values[...] = values.reshape(rollout.n_steps, rollout.n_envs).cpu().numpy()


# ---------------------------------------------------------------------------------------------------------- 2. GAE


def gae(rollout: RolloutBuffer, last_values: np.ndarray, gamma: float, gae_lambda: float) -> tuple[np.ndarray, ...]:
    """GAE(lambda) (advantages, returns = advantages + values) of a full, scored rollout, arrays (n_steps, n_envs):

        delta_t = r_t + gamma * V(s_t+1) - V(s_t),    A_t = delta_t + gamma * lambda * A_t+1

    with no future after a true terminal (it wins over a time-limit cut on the same step), V(final observation)
    after a cut, and no A_t+1 across an episode's end. `last_values` is V of the observations that follow the
    last step. gae_lambda 1 gives n-step returns bootstrapped at the rollout's end, 0 the one-step TD errors."""
    done = rollout.terminated | rollout.truncated
    advantages = np.zeros_like(rollout.values)
    advantage = np.zeros(rollout.n_envs, dtype=np.float32)
    next_values = np.asarray(last_values, dtype=np.float32)
    for t in range(rollout.n_steps - 1, -1, -1):
        bootstrap = np.where(rollout.truncated[t], rollout.truncated_values[t], next_values)
        bootstrap = np.where(rollout.terminated[t], 0.0, bootstrap)
        delta = rollout.rewards[t] + gamma * bootstrap - rollout.values[t]
        advantage = delta + gamma * gae_lambda * ~done[t] * advantage
        advantages[t] = advantage
        next_values = rollout.values[t]
    return advantages, advantages + rollout.values


# ------------------------------------------------------------------------------------------------------- 3. epochs


def minibatch_epochs(
    context: UpdateContext, rollouts: list[RolloutBuffer], clip_range: float, step: int
) -> list[dict[str, float]]:
    """n_epochs passes of minibatch steps over each seed's scored rollout (each seed draws its minibatch orders from
    its own generator; seeds stepping together take their k-th minibatches' steps as one). With `target_kl` (one
    seed: its seeds do not stack), the first minibatch whose approximate KL to the collecting policy exceeds it ends
    the update before its own step (checked per minibatch: an epoch of 32 minibatches can move far). A seed's row
    holds the means over every minibatch evaluated (the stopping one too, so approx_kl shows what stopped it) and
    `epochs`, the passes made: gradient steps / minibatches per epoch, n_epochs unless stopped early."""
    config: Config = context.config
    # summed on the device, a row a seed: no sync per minibatch
    sums = torch.zeros(len(rollouts), len(MINIBATCH_MEANS), device=context.device)
    minibatches = gradient_steps = 0

    def every_epoch(rollout: RolloutBuffer, rng: np.random.Generator) -> Iterator[RolloutBatch]:
        """Every epoch's minibatches in a row (each epoch draws its order when it starts)."""
        for _ in range(config.n_epochs):
            yield from rollout.minibatches(config.batch_size, rng, context.device)

    # the seeds' k-th minibatches side by side
    batches = zip(*map(every_epoch, rollouts, context.rngs), strict=True)
    for seed_batches in batches:
        losses, kl = [], None
        for seed, (scores, batch) in enumerate(zip(context.evaluate(seed_batches), seed_batches, strict=True)):
            log_probs, entropy, values = scores
            advantages = normalized_advantages(batch.advantages) if config.normalize_advantages else batch.advantages
            policy_loss, clip_fraction = clipped_surrogate(log_probs, batch.old_log_probs, advantages, clip_range)
            value_loss = value_loss_of(values, batch.old_values, batch.returns, config.clip_range_vf)
            entropy = entropy.mean()
            with torch.no_grad():
                kl = approx_kl(log_probs, batch.old_log_probs)
                sums[seed] += torch.stack([policy_loss, value_loss, entropy, kl, clip_fraction])
            losses.append(policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy)
        minibatches += 1
        if config.target_kl is not None and kl.item() > config.target_kl:
            break
        context.gradient_step(losses, step)
        gradient_steps += 1
    per_epoch = -(-rollouts[0].n_steps * rollouts[0].n_envs // config.batch_size)
    return [
        {**dict(zip(MINIBATCH_MEANS, row.tolist(), strict=True)), "epochs": gradient_steps / per_epoch}
        for row in sums / minibatches
    ]


# --------------------------------------------------------------------------------------------------------- 4. loss


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


train = onpolicy.train_with(update)
train_seeds = onpolicy.train_seeds_with(update)
seeds_refusal = onpolicy.seeds_refusal
