"""Greedy evaluation: several episodes stepped in lock-step so the agent acts on a batch at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.action_masks import checked_masks, current_mask
from deeprl.agent import Agent
from deeprl.envs import factory_for
from deeprl.errors import DeeprlError


@dataclass
class EvalResult:
    returns: np.ndarray
    lengths: np.ndarray
    seed: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": len(self.returns),
            "mean_return": self.mean,
            "std_return": self.std,
            "min_return": float(np.min(self.returns)),
            "max_return": float(np.max(self.returns)),
            "mean_length": float(np.mean(self.lengths)),
            "seed": self.seed,
            "returns": [float(r) for r in self.returns],
        }


def check_agent_fits(agent: Agent, make_env: Callable[[], gym.Env], env_id: str) -> None:
    """Refuse an env whose observation or action space differs from the agent's."""
    env = make_env()
    try:
        if env.observation_space.shape != agent.observation_space.shape or env.action_space != agent.action_space:
            raise DeeprlError(
                f"the agent acts in {agent.action_space} on observations of shape {agent.observation_space.shape}; "
                f"{env_id} has {env.action_space} and {env.observation_space.shape}"
            )
    finally:
        env.close()


def evaluate(
    agent: Agent,
    env: str | Callable[[], gym.Env] | None = None,
    episodes: int = 20,
    seed: int = 0,
    *,
    deterministic: bool = True,
    max_episode_steps: int | None = None,
    parallel: int = 16,
    step_cap: int = 100_000,
) -> EvalResult:
    """Play `episodes` episodes; episode i starts from `reset(seed=seed + i)`, whatever the batching.

    `env` is an env id, a run directory (its env, wrappers included), a function making envs, or None:
    the env a loaded agent was trained on.

    An episode still running after `step_cap` steps (an env without a time limit whose greedy policy never
    ends it) stops the evaluation with an error instead of hanging.
    """
    if episodes < 1:
        raise DeeprlError(f"episodes must be >= 1 (got {episodes})")
    make = factory_for(env, agent, max_episode_steps=max_episode_steps)
    envs = [make() for _ in range(min(parallel, episodes))]
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    observations: list[Any] = [None] * len(envs)
    infos: list[dict[str, Any]] = [{} for _ in envs]  # each slot's latest, where an env may give its action mask
    episode_of_slot = [-1] * len(envs)
    next_episode = 0
    # a recurrent agent (deeprl.recurrent) keeps a state per slot: each episode starts it afresh, and the agent acts
    # on every slot each step (a finished slot's action goes unused), so that row i stays slot i
    stateful = hasattr(agent, "reset")
    if stateful:
        agent.reset()

    def start_next(slot: int) -> None:
        nonlocal next_episode
        if next_episode >= episodes:
            episode_of_slot[slot] = -1
            return
        observations[slot], infos[slot] = envs[slot].reset(seed=seed + next_episode)
        if stateful:
            agent.reset([slot])
        episode_of_slot[slot] = next_episode
        next_episode += 1

    def action_masks_of(slots: Any) -> np.ndarray | None:
        """The masks of the states `slots` are in (deeprl.action_masks), None where the env gives none; a finished
        slot's action goes unused, so any mask serves it."""
        given = [current_mask(envs[slot], infos[slot]) if episode_of_slot[slot] >= 0 else None for slot in slots]
        if all(mask is None for mask in given):
            return None
        rows = [
            None if mask is None else checked_masks(mask, agent.action_space, 1, "the env's action mask")[0]
            for mask in given
        ]
        width = next(row for row in rows if row is not None).shape
        return np.stack([np.ones(width, dtype=np.bool_) if row is None else row for row in rows])

    for slot in range(len(envs)):
        start_next(slot)
    try:
        while True:
            active = [slot for slot, episode in enumerate(episode_of_slot) if episode >= 0]
            if not active:
                break
            acting = range(len(envs)) if stateful else active
            batch = [observations[slot] for slot in acting]
            # arrays are stacked; an env's own Dict or Tuple observations (an env function giving them unencoded) go
            # to the agent as a list, which its encoder takes as a batch
            batch = np.stack(batch) if isinstance(batch[0], np.ndarray) else batch
            masks = action_masks_of(acting)
            if masks is None:
                actions = agent.act(batch, deterministic=deterministic)
            else:
                actions = agent.act(batch, deterministic=deterministic, action_mask=masks)
            actions = actions[active] if stateful else actions
            for slot, action in zip(active, actions):
                observations[slot], reward, terminated, truncated, infos[slot] = envs[slot].step(action)
                episode = episode_of_slot[slot]
                returns[episode] += float(reward)
                lengths[episode] += 1
                if lengths[episode] >= step_cap and not (terminated or truncated):
                    raise DeeprlError(
                        f"an evaluation episode has not ended after {step_cap} steps; "
                        "give the env a limit with --set max_episode_steps=N"
                    )
                if terminated or truncated:
                    start_next(slot)
    finally:
        for instance in envs:
            instance.close()
    return EvalResult(returns=returns, lengths=lengths, seed=seed)
