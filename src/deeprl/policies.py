"""The agents deeprl's algorithms return and `deeprl.load` rebuilds, one kind each: a Q-network acting greedily
(`QAgent`: DQN), a policy network (`PolicyAgent`: the policy-gradient family; its head built from the action space:
deeprl.action_heads) that acts on observations as the env returns them, normalising them first with the statistics it
carries when it was trained on normalised observations, and an actor in [-1, 1] (`ScaledActorAgent`: DDPG, TD3, SAC).
Every continuous-action agent works in [-1, 1] units and scales to the env's Box only where its actions leave for
the env (`scale_action`), so the units the env gives its actions in change nothing it learns. The Q and policy agents
act under an action mask where one is given (`act(obs, action_mask=...)`: deeprl.action_masks).

A policy file names its agent's kind (`policy_file_data`), and `AGENT_LOADERS` rebuilds each kind from the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from deeprl.action_heads import GaussianHead, action_description
from deeprl.action_masks import checked_masks
from deeprl.envs import space_from_dict, space_to_dict
from deeprl.nets import ActorCritic, DeterministicActor, QNetwork, SquashedGaussianActor, observation_encoder
from deeprl.normalization import ObservationNormalizer
from deeprl.observations import as_batch


def scale_action(unit_actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Actions in [-1, 1] (a tanh output) -> the Box [low, high], per dimension (bounds must be finite)."""
    return low + (unit_actions + 1.0) * (high - low) / 2.0


def unscale_action(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The inverse of `scale_action`: actions in the Box [low, high] -> [-1, 1]."""
    return 2.0 * (actions - low) / (high - low) - 1.0


def policy_file_data(
    kind: str,
    network_module: nn.Module,
    observation_space: gym.Space,
    action_space: gym.Space,
    network: dict[str, Any],
    **details: Any,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """What a policy file holds of an agent: (description, the network's weights on the CPU). The JSON-able
    description names the agent's kind (a key of AGENT_LOADERS), the spaces it acts in, the network's constructor
    arguments and the kind's own `details`."""
    meta = {
        "agent": kind,
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
        "network": network,
        **details,
    }
    return meta, {name: tensor.detach().cpu() for name, tensor in network_module.state_dict().items()}


class QAgent:
    """Acts greedily on Q-values (epsilon-greedy when not deterministic) among the actions `action_mask` leaves
    valid (all without a mask): DQN's agent."""

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

    def act(self, obs: Any, deterministic: bool = True, action_mask: Any = None) -> Any:
        batch, single = as_batch(obs, self.observation_space)
        masks = checked_masks(action_mask, self.action_space, len(batch), "action_mask")
        actions = self.greedy(batch, masks)
        if not deterministic:
            explore = self.rng.random(len(actions)) < self.epsilon
            actions = np.where(explore, self.random_actions(len(actions), masks, self.rng), actions)
        actions = actions + self.action_space.start
        return int(actions[0]) if single else actions

    def greedy(self, batch: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The valid action of highest Q-value (indices from 0) for each observation of `batch`."""
        if self.numpy_q_values is not None:
            q_values = self.numpy_q_values(batch.reshape(len(batch), -1))
            return (q_values if masks is None else np.where(masks, q_values, -np.inf)).argmax(axis=1)
        with torch.inference_mode():
            q_values = self.q_net(torch.from_numpy(batch).to(self.device))
            if masks is not None:
                q_values = q_values.masked_fill(~torch.from_numpy(masks).to(self.device), -torch.inf)
            return q_values.argmax(dim=1).cpu().numpy()

    def random_actions(self, count: int, masks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """`count` actions drawn uniformly among the valid ones (indices from 0)."""
        if masks is None:
            return rng.integers(self.action_space.n, size=count)
        return np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])

    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> tuple[Any, None]:
        """(action, None), as Stable-Baselines3's `model.predict` returns (see Agent.predict; `action_masks` as
        sb3-contrib's MaskablePPO names it)."""
        return self.act(obs, deterministic, action_mask=action_masks), None

    def policy_data(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return policy_file_data(
            "q", self.q_net, self.observation_space, self.action_space, self.network, epsilon=self.epsilon
        )


def load_q_agent(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> QAgent:
    q_net = QNetwork(**meta["network"])
    q_net.load_state_dict(tensors)
    q_net.eval()
    return QAgent(
        q_net,
        space_from_dict(meta["observation_space"]),
        space_from_dict(meta["action_space"]),
        meta["network"],
        epsilon=meta.get("epsilon", 0.0),
    )


def policy_network(
    obs_space: gym.Space, action_space: gym.Space, config: Any, value: str, log_std_init: float = 0.0
) -> dict[str, Any]:
    """ActorCritic's arguments for a run's spaces and its config's network settings (JSON-able: a policy file
    rebuilds the network from them); `value` is its value head: separate, shared or none. Pictures go through a
    CNN (`observation_encoder`)."""
    return {
        "obs_dim": int(np.prod(obs_space.shape)),
        "encoder": observation_encoder(obs_space),
        "action": action_description(action_space),
        "hidden_sizes": list(config.hidden_sizes),
        "activation": config.activation,
        "value": value,
        "log_std_init": log_std_init,
        "orthogonal_init": config.orthogonal_init,
    }


class PolicyAgent:
    """Acts with a policy network: the mode when deterministic (the most likely action of each dimension for
    Discrete, MultiDiscrete and MultiBinary actions, the mean for Box), a sample otherwise, among the actions an
    `action_mask` leaves valid (Discrete and MultiDiscrete). A Box action is the Gaussian's sample u in [-1, 1] units:
    only here, where it leaves for the env, is it clipped to [-1, 1] and scaled to the Box (`action_units` "unit"); the
    learner keeps the raw samples it computed log-probabilities for. Dimensions without finite bounds on both sides
    have nothing to scale to: their samples are only clipped to whatever bound they have. `action_units` "env" is how
    policies learnt before unit actions: samples in the env's units, clipped to the Box as they are.

    With `obs_normalizer` the network sees normalised observations; the agent holds the live statistics, so a
    policy file saved at any step carries the statistics of that step."""

    def __init__(
        self,
        policy: ActorCritic,
        observation_space: gym.Space,
        action_space: gym.Space,
        network: dict[str, Any],
        obs_normalizer: ObservationNormalizer | None = None,
        action_units: str = "unit",
    ) -> None:
        self.policy = policy
        self.obs_normalizer = obs_normalizer
        self.observation_space = observation_space
        self.action_space = action_space
        self.network = network
        self.device = next(policy.parameters()).device
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.action_units = action_units
        if isinstance(policy.head, GaussianHead):
            self.bounded = np.isfinite(action_space.low) & np.isfinite(action_space.high)
            # unbounded dimensions scale [-1, 1] to itself: their samples are taken from the clipped branch anyway
            self.scale_low = np.where(self.bounded, action_space.low, -1.0).astype(action_space.dtype)
            self.scale_high = np.where(self.bounded, action_space.high, 1.0).astype(action_space.dtype)
            self.all_bounded = bool(self.bounded.all())
            # a Box of [-1, 1] takes the clipped sample as it is: scaling is the identity there, save that (u + 1) - 1
            # would round away u's low bits (and change what on-policy runs on such envs learnt before, bit for bit)
            self.unit_box = bool(np.all(action_space.low == -1.0) and np.all(action_space.high == 1.0))
        self.follow_parameters()
        self.rng = np.random.default_rng()
        self.run_dir: Path | None = None  # the run it belongs to: set by deeprl.train and deeprl.load
        self.summary: dict[str, Any] | None = None

    def follow_parameters(self) -> None:
        """Take NumPy views of the policy's live parameters (in-place optimiser steps show up at once): the fast path
        for acting on the CPU, and the log std it samples with. Again whenever the parameters move to other storage
        (seeds stacked on a seed axis: deeprl.seed_axis)."""
        policy = self.policy
        self.numpy_policy = policy.numpy_policy()
        self.numpy_log_std = (
            None if policy.log_std is None or self.numpy_policy is None else (policy.log_std.detach().numpy())
        )

    def network_input(self, obs: np.ndarray) -> np.ndarray:
        """A batch of observations as the env returns them -> as the network takes them."""
        return obs if self.obs_normalizer is None else self.obs_normalizer(obs)

    def raw_act(
        self,
        obs: np.ndarray,
        deterministic: bool,
        rng: np.random.Generator | None = None,
        action_masks: np.ndarray | None = None,
    ) -> np.ndarray:
        """Actions for a batch of network inputs (see `network_input`) as the network gives them (indices from 0,
        bits as 0.0/1.0, unclipped Gaussian samples), under `action_masks` ((batch, mask_width) booleans) if given.
        Samples are drawn from `rng` (the agent's own when None): in NumPy, ~10x cheaper than torch for one
        observation.

        The policy's one NumPy seam: the head's outputs from the same network's weights (ActorCritic.numpy_policy)
        sampled by the head (deeprl.action_heads: inverse CDF of the softmax for categoricals). Learners score the raw
        actions it returns with ActorCritic.evaluate_actions in torch; nets without a NumPy form (a CNN) act through
        torch here."""
        return self.scored_raw_act(obs, deterministic, rng, action_masks)[0]

    def scored_raw_act(
        self,
        obs: np.ndarray,
        deterministic: bool,
        rng: np.random.Generator | None = None,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """`raw_act`'s actions, with their log-probabilities and the values of `obs` where the network acted in torch
        (a CNN: its forward pass gives them at no extra cost, and a learner need not score the actions again); None
        and None from the NumPy path, which computes neither."""
        if self.numpy_policy is None:
            mask = None if action_masks is None else torch.from_numpy(action_masks).to(self.device)
            with torch.inference_mode():
                actions, log_probs, values = self.policy.act(torch.from_numpy(obs).to(self.device), deterministic, mask)
            return (
                actions.cpu().numpy(),
                log_probs.cpu().numpy(),
                None if values is None else values.cpu().numpy(),
            )
        output = self.numpy_policy(obs.reshape(len(obs), -1))
        rng = self.rng if rng is None else rng
        return self.policy.head.sample(output, self.numpy_log_std, rng, deterministic, action_masks), None, None

    def to_env(self, raw_actions: np.ndarray) -> np.ndarray:
        """Network actions as the env takes them: Discrete and MultiDiscrete shifted by the space's start, MultiBinary
        as the space's integers, Box clipped to [-1, 1] and scaled to the bounds (see the class)."""
        space = self.action_space
        if self.discrete:
            return raw_actions + space.start
        if isinstance(space, gym.spaces.MultiDiscrete):
            return (raw_actions.reshape(len(raw_actions), *space.shape) + space.start).astype(space.dtype)
        if isinstance(space, gym.spaces.MultiBinary):
            return raw_actions.reshape(len(raw_actions), *space.shape).astype(space.dtype)
        shaped = raw_actions.reshape(len(raw_actions), *self.action_space.shape)
        if self.action_units == "env" or self.unit_box:
            return np.clip(shaped, self.action_space.low, self.action_space.high)
        scaled = scale_action(np.clip(shaped, -1.0, 1.0), self.scale_low, self.scale_high)
        if self.all_bounded:
            return scaled
        return np.where(self.bounded, scaled, np.clip(shaped, self.action_space.low, self.action_space.high))

    def act(self, obs: Any, deterministic: bool = True, action_mask: Any = None) -> Any:
        batch, single = as_batch(obs, self.observation_space)
        masks = checked_masks(action_mask, self.action_space, len(batch), "action_mask")
        actions = self.to_env(self.raw_act(self.network_input(batch), deterministic, action_masks=masks))
        if single:
            return int(actions[0]) if self.discrete else actions[0]
        return actions

    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> tuple[Any, None]:
        """(action, None), as Stable-Baselines3's `model.predict` returns (see Agent.predict; `action_masks` as
        sb3-contrib's MaskablePPO names it)."""
        return self.act(obs, deterministic, action_mask=action_masks), None

    def policy_data(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        details: dict[str, Any] = {"action_units": self.action_units}
        if self.obs_normalizer is not None:
            details["obs_normalization"] = self.obs_normalizer.state_dict()
        return policy_file_data(
            "policy", self.policy, self.observation_space, self.action_space, self.network, **details
        )


def policy_agent_parts(
    meta: dict[str, Any], tensors: dict[str, torch.Tensor], network_class: type[nn.Module]
) -> tuple[nn.Module, gym.Space, gym.Space, dict[str, Any], ObservationNormalizer | None]:
    """A policy agent's first arguments, from its file: (the network, weights loaded, in eval mode; the observation
    and action spaces; the network's arguments; the observation statistics it carries, if any)."""
    policy = network_class(**meta["network"])
    policy.load_state_dict(tensors)
    policy.eval()
    normalization = meta.get("obs_normalization")
    normalizer = None if normalization is None else ObservationNormalizer.from_state_dict(normalization)
    observation_space, action_space = space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
    return policy, observation_space, action_space, meta["network"], normalizer


def load_policy_agent(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> PolicyAgent:
    action_units = meta.get("action_units", "env")  # a file saved without it was learnt in the env's units
    return PolicyAgent(*policy_agent_parts(meta, tensors, ActorCritic), action_units=action_units)


ACTORS: dict[str, type[nn.Module]] = {"deterministic": DeterministicActor, "squashed_gaussian": SquashedGaussianActor}


class ScaledActorAgent:
    """Acts with an actor whose actions lie in [-1, 1] (DDPG/TD3's tanh actor, SAC's squashed Gaussian), scaled to
    the env's Box bounds. Deterministic acting is the actor's mean action (NumPy fast path on the CPU);
    `deterministic=False` samples where the actor is stochastic (SAC) and is the mean otherwise (DDPG's exploration
    noise belongs to training, not to the agent)."""

    def __init__(
        self, actor: nn.Module, network: dict[str, Any], observation_space: gym.Space, action_space: gym.spaces.Box
    ) -> None:
        self.actor = actor
        self.network = network  # {"kind": one of ACTORS, **the actor's constructor arguments}
        self.observation_space = observation_space
        self.action_space = action_space
        # in the Box's own dtype: a float64 Box gets every bit of the actor's float32 action, offset or not
        self.low, self.high = action_space.low, action_space.high
        self.device = next(actor.parameters()).device
        self.numpy_actor = actor.numpy_forward()
        self.run_dir: Path | None = None  # the run it belongs to: set by deeprl.train and deeprl.load
        self.summary: dict[str, Any] | None = None

    def unit_act(
        self, obs: np.ndarray, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """Actions in [-1, 1] for a batch of observations, shape (batch, action_dim), float32; a stochastic actor's
        sample drawn from `generator` (torch's global one when None)."""
        if deterministic and self.numpy_actor is not None:
            return self.numpy_actor(obs.reshape(len(obs), -1)).astype(np.float32)
        stochastic = self.network["kind"] == "squashed_gaussian"
        with torch.inference_mode():
            output = self.actor(
                torch.from_numpy(obs).float().to(self.device),
                **({"deterministic": deterministic, "generator": generator} if stochastic else {}),
            )
        actions = output[0] if isinstance(output, tuple) else output
        return actions.cpu().numpy().astype(np.float32)

    def to_env(self, unit_actions: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] -> the env's bounds and shape."""
        scaled = scale_action(unit_actions, self.low.reshape(-1), self.high.reshape(-1))
        return scaled.reshape(len(unit_actions), *self.action_space.shape).astype(self.action_space.dtype)

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        batch, single = as_batch(obs, self.observation_space)
        actions = self.to_env(self.unit_act(batch, deterministic))
        return actions[0] if single else actions

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
        """(action, None), as Stable-Baselines3's `model.predict` returns (see Agent.predict)."""
        return self.act(obs, deterministic), None

    def policy_data(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return policy_file_data("scaled_actor", self.actor, self.observation_space, self.action_space, self.network)


def build_actor(network: dict[str, Any]) -> nn.Module:
    """The actor a ScaledActorAgent's `network` description stands for, freshly initialised."""
    arguments = {key: value for key, value in network.items() if key != "kind"}
    return ACTORS[network["kind"]](**arguments)


def load_scaled_actor_agent(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> ScaledActorAgent:
    actor = build_actor(meta["network"])
    actor.load_state_dict(tensors)
    actor.eval()
    return ScaledActorAgent(
        actor, meta["network"], space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
    )


def load_recurrent_agent(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    from deeprl.recurrent import load_recurrent_agent  # deeprl.recurrent builds its agent on PolicyAgent

    return load_recurrent_agent(meta, tensors)


AGENT_LOADERS: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor]], Any]] = {
    "q": load_q_agent,
    "policy": load_policy_agent,
    "scaled_actor": load_scaled_actor_agent,
    "recurrent_policy": load_recurrent_agent,
}
