"""A leading seed axis: K seeds' copies of a network stacked into one set of tensors, so that one batched update
trains all K (`deeprl train ... --seeds 0-9`).

Each seed keeps its own network object, built and initialised exactly as a single-seed run builds it; stacking
copies the K networks' parameters into tensors of shape (K, ...) and points every seed's parameters at its slice
of them. The seed's own code (acting, target-network updates, checks, policy files) then reads and writes the
stack through its slice. The stack runs all K seeds at once on inputs folded seed-major as (K * batch, ...): every
Linear layer a batched product over the seed axis, everything else (activations, dueling heads, TD targets)
row-wise as before. Each seed's loss is its own batch's mean and the losses are summed, so each seed's gradient is
its own; gradients are clipped seed by seed, and Adam and RMSprop act elementwise. On this machine's CPU the
stacked update gives the same numbers, bit for bit, as K single-seed updates (tests/test_seeds.py).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OptimizerState = dict[str, Any]


class SeedStack:
    """K networks of Linear layers (MLPs, dueling heads included) of one architecture as one network whose parameters
    are stacked (`parameters`, name -> (K, ...) tensor that an optimiser steps); each seed's network's parameters
    become views of its slice."""

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        if not all(foldable(network) for network in networks):
            raise ValueError("only networks of Linear layers (and parameter-free layers) are stacked")
        self.networks = list(networks)
        # the architecture, its Linear layers folded over the seed axis, holding the stacked parameters: inputs
        # (K * batch, ...), seed-major, give outputs (K * batch, ...)
        self.network = copy.deepcopy(self.networks[0]).to("meta")
        fold_linear_layers(self.network, len(self.networks))
        named = [dict(network.named_parameters()) for network in self.networks]
        self.parameters: dict[str, torch.Tensor] = {}
        for name in named[0]:
            stacked = nn.Parameter(
                torch.stack([parameters[name].detach() for parameters in named]),
                requires_grad=named[0][name].requires_grad,
            )
            owner, _, attribute = name.rpartition(".")
            setattr(self.network.get_submodule(owner), attribute, stacked)
            self.parameters[name] = stacked
            for index, parameters in enumerate(named):
                # the same Parameter object (optimisers, target updates and agents hold it), now a view of the stack
                parameters[name].data = stacked.detach()[index]

    def __len__(self) -> int:
        return len(self.networks)

    def values(self) -> list[torch.Tensor]:
        """The stacked parameters, in the networks' parameter order (what a seed's optimiser lists)."""
        return list(self.parameters.values())


def foldable(network: nn.Module) -> bool:
    """Whether every layer of `network` with parameters is a Linear one, and none keeps buffers (BatchNorm)."""
    leaves = [module for module in network.modules() if not list(module.children())]
    return not list(network.buffers()) and all(
        isinstance(module, nn.Linear) or not list(module.parameters()) for module in leaves
    )


class FoldedLinear(nn.Module):
    """A Linear layer of K seeds: weight (K, out, in), bias (K, out); inputs (K * batch, in), seed-major."""

    def __init__(self, seeds: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(seeds, out_features, in_features, device="meta"))
        self.bias = nn.Parameter(torch.empty(seeds, out_features, device="meta"))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        seeds, out_features, in_features = self.weight.shape
        per_seed = inputs.view(seeds, -1, in_features)
        if out_features == 1:  # F.linear takes a matrix-vector path for one output: per seed, to give its numbers
            return torch.cat([F.linear(*parts) for parts in zip(per_seed, self.weight, self.bias, strict=True)])
        # a batched product over the seed axis: the same numbers as each seed's F.linear (tests/test_seeds.py)
        outputs = torch.baddbmm(self.bias.unsqueeze(1), per_seed, self.weight.mT)
        return outputs.view(-1, out_features)


def fold_linear_layers(module: nn.Module, seeds: int) -> None:
    """Replace every nn.Linear inside `module` by a FoldedLinear of `seeds` seeds (same parameter names)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, FoldedLinear(seeds, child.in_features, child.out_features))
        else:
            fold_linear_layers(child, seeds)


def clip_grad_norm_per_seed_(parameters: Sequence[torch.Tensor], max_norm: float) -> None:
    """nets.clip_grad_norm_ for each seed of stacked parameters: each seed's gradients scaled so that their global
    L2 norm is at most `max_norm` (a factor max_norm / (norm + 1e-6), capped at 1), as a single-seed run clips."""
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if not gradients:
        return
    seeds = gradients[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(gradient.reshape(seeds, -1), dim=1) for gradient in gradients], 1)
    factors = torch.clamp(max_norm / (torch.linalg.vector_norm(norms, dim=1) + 1e-6), max=1.0)
    for gradient in gradients:
        gradient.mul_(factors.view(seeds, *([1] * (gradient.dim() - 1))))


# the one entry of Adam's and RMSprop's per-parameter state that seeds stepping together share: their step count
SHARED_STATE = "step"


def stacked_optimizer_state(states: Sequence[OptimizerState]) -> OptimizerState:
    """The state of an optimiser over stacked parameters from the K single-seed optimisers' states (their
    `state_dict`s, the parameters in the same order): each per-parameter tensor (Adam's moments, RMSprop's averages)
    stacked, the step count, equal in seeds that step together, taken from the first."""
    first = states[0]
    stacked = {
        index: {
            key: value if key == SHARED_STATE else torch.stack([state["state"][index][key] for state in states])
            for key, value in entries.items()
        }
        for index, entries in first["state"].items()
    }
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def seed_optimizer_state(state: OptimizerState, seed_index: int) -> OptimizerState:
    """One seed's slice of a stacked optimiser's state: what its single-seed optimiser would hold."""
    return {
        "state": {
            index: {key: _own(value if key == SHARED_STATE else value[seed_index]) for key, value in entries.items()}
            for index, entries in state["state"].items()
        },
        "param_groups": copy.deepcopy(state["param_groups"]),
    }


def remaining(stack: Any, dropped: Sequence[int]) -> Any:
    """A seeds' learner (dqn.SeedsDQN, ...) rebuilt from the learners of the seeds not `dropped`, once each has taken
    back its own state (`stack.seed_state`); None when none is left."""
    kept = [index for index in range(len(stack.learners)) if index not in dropped]
    for index in kept:
        learner = stack.learners[index]
        learner.load_state_dict({**learner.state_dict(), **stack.seed_state(index)})
    return type(stack)([stack.learners[index] for index in kept]) if kept else None


def _own(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


def fold(batches: Sequence[Any], name: str) -> torch.Tensor | None:
    """One field of the seeds' batches, seed-major, as stacked networks take it (None where the batches have none)."""
    parts = [getattr(batch, name) for batch in batches]
    return None if parts[0] is None else torch.cat(parts)


def per_seed_mean(values: torch.Tensor, seeds: int) -> torch.Tensor:
    """Each seed's mean of its rows of folded `values` (K * batch, ...): shape (K,)."""
    return values.reshape(seeds, -1).mean(dim=1)


def detached_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A network's state_dict with its own storage: a seed's slice of a stack saved alone, not the whole stack."""
    return {name: tensor.clone() for name, tensor in state.items()}
