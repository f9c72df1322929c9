"""Network building blocks shared by the algorithms."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from deeprl.errors import DeeprlError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
NUMPY_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.ReLU: lambda x: np.maximum(x, 0.0),
    nn.Tanh: np.tanh,
    nn.ELU: lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


def mlp(sizes: Sequence[int], activation: str = "relu", activate_last: bool = False) -> nn.Sequential:
    """Linear layers through `sizes` ([in, hidden..., out]) with `activation` between them."""
    layers: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(size_in, size_out))
        if activate_last or index < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def numpy_sequential(layers: nn.Sequential) -> Callable[[np.ndarray], np.ndarray] | None:
    """The forward pass of a CPU float32 MLP in NumPy, reading the live parameters through shared-memory
    views (in-place optimiser steps show up at once). Acting on one observation costs ~10x less than
    through torch's dispatcher. None when a layer is not a Linear or a known activation."""
    steps: list[Callable[[np.ndarray], np.ndarray]] = []
    for layer in layers:
        if isinstance(layer, nn.Linear) and layer.weight.device.type == "cpu" and layer.weight.dtype == torch.float32:
            weight_t, bias = layer.weight.detach().numpy().T, layer.bias.detach().numpy()
            steps.append(lambda x, w=weight_t, b=bias: x @ w + b)
        elif type(layer) in NUMPY_ACTIVATIONS:
            steps.append(NUMPY_ACTIVATIONS[type(layer)])
        else:
            return None

    def forward(x: np.ndarray) -> np.ndarray:
        for step in steps:
            x = step(x)
        return x

    return forward


def check_finite(module: nn.Module, step: int) -> None:
    """Stop training when a parameter became NaN or inf (before it is checkpointed or evaluated), so the
    last good checkpoint stays the newest one."""
    for name, parameter in module.named_parameters():
        if not torch.isfinite(parameter).all():
            raise DeeprlError(
                f"parameter {name} became non-finite by step {step}; the last good checkpoint is kept "
                "(try a lower lr, or max_grad_norm)"
            )


class ConvEncoder(nn.Module):
    """Image features: (conv -> [BatchNorm] -> ReLU) per layer, flattened (seed 000: 16/32/32 channels,
    5x5 kernels, stride 2, BatchNorm). uint8 pictures are scaled to [0, 1] here, so replay can keep
    them as bytes."""

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_shape[0]
        for width, kernel, stride in zip(channels, kernels, strides, strict=True):
            layers.append(nn.Conv2d(previous, width, kernel, stride))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            previous = width
        self.layers = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():  # in eval mode, so measuring the output size leaves BatchNorm's statistics alone
            self.out_dim = int(self.layers.eval()(torch.zeros(1, *in_shape)).shape[1])
        self.layers.train()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return self.layers(images)


class QNetwork(nn.Module):
    """Q(s, ·) for every discrete action; with `dueling`, Q = V(s) + A(s, a) - mean_a A(s, a).

    `encoder` (ConvEncoder arguments) puts a CNN before the MLP for image observations; `obs_dim` is
    then ignored. Networks with BatchNorm act in eval mode (running statistics); the learner switches
    the online and target nets to train mode for a gradient step, so predictions and targets both use
    the batch's statistics.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        dueling: bool = False,
        encoder: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.dueling = dueling
        self.encoder = ConvEncoder(**encoder) if encoder else None
        if self.encoder is not None:
            obs_dim = self.encoder.out_dim
        if dueling:
            self.trunk = mlp([obs_dim, *hidden_sizes], activation, activate_last=True)
            features = hidden_sizes[-1] if hidden_sizes else obs_dim
            self.value_head = nn.Linear(features, 1)
            self.advantage_head = nn.Linear(features, n_actions)
        else:
            self.body = mlp([obs_dim, *hidden_sizes, n_actions], activation)

    def numpy_forward(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Q-values of a (batch, obs_dim) float32 array in NumPy, or None if this net cannot do that."""
        if self.encoder is not None:
            return None
        if not self.dueling:
            return numpy_sequential(self.body)
        trunk = numpy_sequential(self.trunk)
        value = numpy_sequential(nn.Sequential(self.value_head))
        advantage = numpy_sequential(nn.Sequential(self.advantage_head))
        if trunk is None or value is None or advantage is None:
            return None

        def forward(x: np.ndarray) -> np.ndarray:
            features = trunk(x)
            advantages = advantage(features)
            return value(features) + advantages - advantages.mean(axis=1, keepdims=True)

        return forward

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = self.encoder(obs) if self.encoder is not None else obs.flatten(start_dim=1)
        if not self.dueling:
            return self.body(obs)
        features = self.trunk(obs)
        advantage = self.advantage_head(features)
        return self.value_head(features) + advantage - advantage.mean(dim=1, keepdim=True)


def orthogonal_init_(module: nn.Module, gain: float) -> None:
    """Orthogonal weights scaled by `gain` and zero biases for every Linear layer in `module`."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)


class ActorCritic(nn.Module):
    """A stochastic policy (Categorical logits for Discrete actions, a Gaussian with a state-independent
    learnable `log_std` for Box actions) with an optional state-value head.

    `action` is {"type": "Discrete", "n": N} or {"type": "Box", "dim": D}. `value` is "separate" (its own
    MLP of the same widths), "shared" (a head on the policy's trunk) or "none" (no learned baseline).
    Every argument is JSON-able, so a policy file rebuilds the network from them. Actions are returned
    raw, never clipped: log-probabilities must be those of the sample the policy drew.
    """

    VALUE_KINDS = ("separate", "shared", "none")

    def __init__(
        self,
        obs_dim: int,
        action: dict[str, Any],
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        value: str = "separate",
        log_std_init: float = 0.0,
        orthogonal_init: bool = True,
    ) -> None:
        super().__init__()
        if action.get("type") == "Discrete":
            self.discrete, action_dim = True, int(action["n"])
        elif action.get("type") == "Box":
            self.discrete, action_dim = False, int(action["dim"])
        else:
            raise ValueError(f'action must be {{"type": "Discrete", "n": N}} or {{"type": "Box", "dim": D}}, '
                             f"not {action!r}")
        if value not in self.VALUE_KINDS:
            raise ValueError(f"value must be one of {', '.join(self.VALUE_KINDS)}, not {value!r}")
        features = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.trunk = mlp([obs_dim, *hidden_sizes], activation, activate_last=True)
        self.policy_head = nn.Linear(features, action_dim)
        self.log_std = None if self.discrete else nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        self.value_trunk = (
            mlp([obs_dim, *hidden_sizes], activation, activate_last=True) if value == "separate" else None
        )
        self.value_head = None if value == "none" else nn.Linear(features, 1)
        if orthogonal_init:  # the usual PPO choice: sqrt(2) for hidden layers, near-uniform initial policy, unit value
            orthogonal_init_(self.trunk, np.sqrt(2))
            orthogonal_init_(self.policy_head, 0.01)
            if self.value_trunk is not None:
                orthogonal_init_(self.value_trunk, np.sqrt(2))
            if self.value_head is not None:
                orthogonal_init_(self.value_head, 1.0)

    def _distribution_of(self, policy_out: torch.Tensor) -> Distribution:
        if self.discrete:
            return Categorical(logits=policy_out)
        # Independent makes log_prob and entropy sum over the action dimensions
        return Independent(Normal(policy_out, self.log_std.exp()), 1)

    def _value_of(self, obs: torch.Tensor, policy_features: torch.Tensor) -> torch.Tensor | None:
        if self.value_head is None:
            return None
        features = policy_features if self.value_trunk is None else self.value_trunk(obs)
        return self.value_head(features).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[Distribution, torch.Tensor | None]:
        """The action distribution and the state values (batch,), or None without a value head; a shared
        trunk runs once for both."""
        features = self.trunk(obs)
        return self._distribution_of(self.policy_head(features)), self._value_of(obs, features)

    def distribution(self, obs: torch.Tensor) -> Distribution:
        return self._distribution_of(self.policy_head(self.trunk(obs)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) of shape (batch,)."""
        if self.value_head is None:
            raise ValueError("this ActorCritic was built with value='none' and has no value head")
        features = self.trunk(obs) if self.value_trunk is None else self.value_trunk(obs)
        return self.value_head(features).squeeze(-1)

    def act(
        self, obs: torch.Tensor, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(raw actions, their log-probabilities, values or None); deterministic acts on the mode (the
        most likely action, or the Gaussian's mean). Call it under torch.inference_mode when acting."""
        distribution, values = self(obs)
        actions = distribution.mode if deterministic else distribution.sample()
        return actions, distribution.log_prob(actions), values

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(log-probabilities of `actions`, entropies, values or None) under the current parameters."""
        distribution, values = self(obs)
        return distribution.log_prob(actions), distribution.entropy(), values

    def numpy_policy(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Logits (Discrete) or means (Box) of a (batch, obs_dim) float32 array in NumPy, or None if this
        net cannot do that."""
        return numpy_sequential(nn.Sequential(*self.trunk, self.policy_head))
