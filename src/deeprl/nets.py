"""Network building blocks shared by the algorithms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def mlp(sizes: Sequence[int], activation: str = "relu", activate_last: bool = False) -> nn.Sequential:
    """Linear layers through `sizes` ([in, hidden..., out]) with `activation` between them."""
    layers: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(size_in, size_out))
        if activate_last or index < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


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

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.flatten(start_dim=1)
        if not self.dueling:
            return self.body(obs)
        features = self.trunk(obs)
        advantage = self.advantage_head(features)
        return self.value_head(features) + advantage - advantage.mean(dim=1, keepdim=True)
