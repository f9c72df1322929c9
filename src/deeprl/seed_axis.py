"""A leading seed axis: K seeds' copies of a network stacked into one set of tensors, so that one batched pass
computes all K seeds' forward and backward (`deeprl train ... --seeds 0-9`).

Each seed keeps its own network object, built and initialised exactly as a single-seed run builds it; stacking
copies the K networks' parameters into tensors of shape (K, ...) and points every seed's parameters at its slice
of them. The seed's own code (acting, target-network updates, checks, policy files) then reads and writes the
stack through its slice. The stack runs all K seeds at once on inputs folded seed-major as (K * batch, ...): every
Linear layer a batched product over the seed axis, everything else row-wise as before. Each seed's loss is its own
batch's mean and the losses are summed, so each seed's gradient is its own.

What follows the gradient is done seed by seed, on each seed's slices as tensors of their own: its gradient
clipping, its optimiser step (one optimiser holds every seed's parameters, so it is still one fused kernel) and its
target-network updates. Done on the stacked tensors instead, an elementwise update rounds differently where a
seed's slice straddles the CPU's vector width (a bias of 2 or 300 values), and the seeds drift apart from their
single-seed runs in the last bits. Done so, every seed's numbers equal its single-seed run's, bit for bit, on this
machine's CPU (tests/test_seeds.py, benchmarks/many_seeds.py).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OptimizerState = dict[str, Any]


class SeedStack:
    """K networks of Linear layers (MLPs, dueling heads included) of one architecture as one network whose parameters
    are stacked (`parameters`, name -> (K, ...) tensor); each seed's network's parameters become views of its slice
    (`seed_parameters[k]`, in the network's order), and take their slices of the stacked gradients
    (`share_gradients`) for their own clipping and optimiser step."""

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        if not all(foldable(network) for network in networks):
            raise ValueError("only networks of Linear layers (and parameter-free layers) are stacked")
        self.networks = list(networks)
        # the architecture, its Linear layers folded over the seed axis, holding the stacked parameters: inputs
        # (K * batch, ...), seed-major, give outputs (K * batch, ...)
        self.network = folded(copy.deepcopy(self.networks[0]).to("meta"), len(self.networks))
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
        self.seed_parameters = [list(parameters.values()) for parameters in named]

    def __len__(self) -> int:
        return len(self.networks)

    def values(self) -> list[torch.Tensor]:
        """The stacked parameters, in the networks' parameter order."""
        return list(self.parameters.values())

    def clear_gradients(self) -> None:
        """Before a backward pass: the stacked gradients start from none."""
        for stacked in self.parameters.values():
            stacked.grad = None

    def share_gradients(self) -> None:
        """After a backward pass: each seed's parameters get their slices of the stacked gradients (views)."""
        for position, stacked in enumerate(self.parameters.values()):
            for seed, parameters in enumerate(self.seed_parameters):
                parameters[position].grad = None if stacked.grad is None else stacked.grad[seed]


def foldable(network: nn.Module) -> bool:
    """Whether every layer of `network` with parameters is a Linear one, and none keeps buffers (BatchNorm)."""
    leaves = [module for module in network.modules() if not list(module.children())]
    return not list(network.buffers()) and all(
        isinstance(module, nn.Linear) or not list(module.parameters()) for module in leaves
    )


class FoldedLinear(nn.Module):
    """A Linear layer of K seeds: weight (K, out, in), bias (K, out); inputs (K * batch, in), seed-major. One batched
    product over the seed axis where it gives, bit for bit, what each seed's F.linear gives for that batch size on
    this machine (checked once per size: `batched_product_is_exact`), else a product per seed."""

    def __init__(self, seeds: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(seeds, out_features, in_features, device="meta"))
        self.bias = nn.Parameter(torch.empty(seeds, out_features, device="meta"))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        seeds, out_features, in_features = self.weight.shape
        per_seed = inputs.view(seeds, -1, in_features)
        shape = (seeds, per_seed.shape[1], in_features, out_features, self.weight.dtype, self.weight.device)
        if batched_product_is_exact(*shape):
            return torch.baddbmm(self.bias.unsqueeze(1), per_seed, self.weight.mT).view(-1, out_features)
        return torch.cat([F.linear(*parts) for parts in zip(per_seed, self.weight, self.bias, strict=True)])


@functools.cache
def batched_product_is_exact(
    seeds: int, rows: int, in_features: int, out_features: int, dtype: torch.dtype, device: torch.device
) -> bool:
    """Whether torch.baddbmm over the seed axis gives, bit for bit, each seed's F.linear and its gradients for these
    sizes here (BLAS picks its kernels by size: a one-unit output or a batch of 8 takes other paths on this CPU).
    Probed on random numbers from a generator of its own, which leaves every run's random streams alone."""
    with torch.enable_grad():  # the first call may come inside no_grad (a TD target)
        return _same_numbers(seeds, rows, in_features, out_features, dtype, device)


def _same_numbers(
    seeds: int, rows: int, in_features: int, out_features: int, dtype: torch.dtype, device: torch.device
) -> bool:
    generator = torch.Generator(device=device).manual_seed(0)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    for _ in range(3):
        weight, bias = draw(seeds, out_features, in_features), draw(seeds, out_features)
        inputs, upstream = draw(seeds, rows, in_features), draw(seeds * rows, out_features)
        tensors = [tensor.requires_grad_() for tensor in (weight, bias, inputs)]
        batched = torch.baddbmm(bias.unsqueeze(1), inputs, weight.mT).view(-1, out_features)
        each = torch.cat([F.linear(*parts) for parts in zip(inputs, weight, bias, strict=True)])
        if not torch.equal(batched, each):
            return False
        gradients = torch.autograd.grad(batched, tensors, upstream), torch.autograd.grad(each, tensors, upstream)
        if not all(torch.equal(first, second) for first, second in zip(*gradients, strict=True)):
            return False
    return True


def folded(module: nn.Module, seeds: int) -> nn.Module:
    """`module` with every nn.Linear in it (itself included) replaced by a FoldedLinear of `seeds` seeds (the same
    parameter names)."""
    if isinstance(module, nn.Linear):
        return FoldedLinear(seeds, module.in_features, module.out_features)
    for name, child in module.named_children():
        setattr(module, name, folded(child, seeds))
    return module


def step_seeds(
    optimizer: torch.optim.Optimizer,
    stacks: Sequence[SeedStack],
    losses: torch.Tensor,
    clip_gradients: Callable[[], None] | None = None,
) -> None:
    """One step of an optimiser over every seed's parameters in `stacks` on the seeds' `losses` (one each): the
    gradient of their sum through the stacks, shared out to each seed's parameters (`clip_gradients` then clips each
    seed's own), then each seed's step."""
    for stack in stacks:
        stack.clear_gradients()
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    for stack in stacks:
        stack.share_gradients()
    if clip_gradients is not None:
        clip_gradients()
    optimizer.step()


def joined_optimizer_state(states: Sequence[OptimizerState]) -> OptimizerState:
    """The state of one optimiser over every seed's parameters (seed 0's, then seed 1's, ...) from the K single-seed
    optimisers' states (`state_dict`s of one parameter group each)."""
    count = len(states[0]["param_groups"][0]["params"])
    joined = {
        seed * count + index: entries for seed, state in enumerate(states) for index, entries in state["state"].items()
    }
    groups = copy.deepcopy(states[0]["param_groups"])
    groups[0]["params"] = list(range(len(states) * count))
    return {"state": joined, "param_groups": groups}


def seed_optimizer_state(state: OptimizerState, seed: int, seeds: int) -> OptimizerState:
    """One seed's part of a joined optimiser's state (of `seeds` seeds): what its single-seed optimiser would hold."""
    groups = copy.deepcopy(state["param_groups"])
    count = len(groups[0]["params"]) // seeds
    groups[0]["params"] = list(range(count))
    entries = {index - seed * count: value for index, value in state["state"].items() if index // count == seed}
    return {
        "state": {index: {key: _own(value) for key, value in values.items()} for index, values in entries.items()},
        "param_groups": groups,
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
