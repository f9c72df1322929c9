"""Network building blocks shared by the algorithms."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

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


class QNetwork(nn.Module):
    """Q(s, ·) for every discrete action; with `dueling`, Q = V(s) + A(s, a) - mean_a A(s, a)."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        dueling: bool = False,
    ) -> None:
        super().__init__()
        self.dueling = dueling
        if dueling:
            self.trunk = mlp([obs_dim, *hidden_sizes], activation, activate_last=True)
            features = hidden_sizes[-1] if hidden_sizes else obs_dim
            self.value_head = nn.Linear(features, 1)
            self.advantage_head = nn.Linear(features, n_actions)
        else:
            self.body = mlp([obs_dim, *hidden_sizes, n_actions], activation)

    def numpy_forward(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Q-values of a (batch, obs_dim) float32 array in NumPy, or None if this net cannot do that."""
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
        obs = obs.flatten(start_dim=1)
        if not self.dueling:
            return self.body(obs)
        features = self.trunk(obs)
        advantage = self.advantage_head(features)
        return self.value_head(features) + advantage - advantage.mean(dim=1, keepdim=True)
