"""Network building blocks shared by the algorithms."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution

from deeprl.action_heads import action_head
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


# The Nature DQN's CNN (Mnih et al., 2015), what SB3's CnnPolicy uses for pictures: three convolutions, then
# a linear layer of 512 ReLU features.
NATURE_CNN: dict[str, Any] = {
    "channels": [32, 64, 64],
    "kernels": [8, 4, 3],
    "strides": [4, 2, 1],
    "features": 512,
    "batch_norm": False,
}


def is_picture_space(space: gym.Space) -> bool:
    """A Box of uint8 pixels in 0..255, of height x width (grayscale) or with a channel dimension first or last:
    what a camera or an env's `render()` gives."""
    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) in (2, 3)
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
    )


def picture_layout(shape: Sequence[int]) -> str:
    """HW, HWC or CHW: the channels are the smaller of the first and last dimensions (a few colours or stacked
    frames against a height and width of tens of pixels), the last one on a tie (Gymnasium's pictures are HWC)."""
    if len(shape) == 2:
        return "HW"
    return "HWC" if shape[-1] <= shape[0] else "CHW"


def channels_first_shape(shape: Sequence[int], layout: str) -> tuple[int, int, int]:
    """(channels, height, width) of a picture of `shape` in `layout`."""
    if layout == "HW":
        return (1, shape[0], shape[1])
    if layout == "HWC":
        return (shape[2], shape[0], shape[1])
    return (shape[0], shape[1], shape[2])


def smallest_picture(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """The smallest height (and width) that every convolution fits: each layer's input must span its kernel."""
    size = 1
    for kernel, stride in zip(reversed(kernels), reversed(strides), strict=True):
        size = (size - 1) * stride + kernel
    return size


def observation_encoder(space: gym.Space, cnn: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """How a network reads observations of `space`: ConvEncoder's arguments (JSON-able: a policy file rebuilds the
    CNN from them) for pictures (see `is_picture_space`; the Nature CNN unless `cnn` gives channels, kernels,
    strides, batch_norm and features), or for any 2- or 3-dimensional Box when `cnn` is given; MultiInputEncoder's
    arguments for an encoded Dict or Tuple holding pictures (the space's `network_encoder`: deeprl.observations);
    None for the rest, which networks read flattened. A picture smaller than the CNN takes is refused in one line."""
    multi_input = getattr(space, "network_encoder", None)
    if multi_input is not None and cnn is None:
        return copy.deepcopy(multi_input)
    if cnn is None:
        if not is_picture_space(space):
            return None
        cnn = NATURE_CNN
    shape = tuple(int(size) for size in space.shape)
    if len(shape) not in (2, 3):
        raise DeeprlError(
            f"a CNN reads pictures (height, width, with channels first or last), not observations of shape {shape}"
        )
    layout = picture_layout(shape)
    _, height, width = channels_first_shape(shape, layout)
    smallest = smallest_picture(cnn["kernels"], cnn["strides"])
    if min(height, width) < smallest:
        raise DeeprlError(
            f"observations of shape {shape} are {height}x{width} pictures ({layout}), smaller than the CNN takes "
            f"(kernels {list(cnn['kernels'])}, strides {list(cnn['strides'])}: at least {smallest}x{smallest}); "
            f"enlarge them, e.g. with gymnasium.wrappers.ResizeObservation"
        )
    return {
        "in_shape": list(shape),
        "layout": layout,
        "channels": list(cnn["channels"]),
        "kernels": list(cnn["kernels"]),
        "strides": list(cnn["strides"]),
        "batch_norm": bool(cnn["batch_norm"]),
        "features": cnn["features"],
        "scale_bytes": is_picture_space(space),
    }


class ConvEncoder(nn.Module):
    """Image features: (conv -> [BatchNorm] -> ReLU) per layer, flattened, then optionally a linear layer of
    `features` ReLU units (seed 000: 16/32/32 channels, 5x5 kernels, stride 2, BatchNorm, no linear layer; the
    Nature CNN: NATURE_CNN). `in_shape` is the observation's shape in `layout` (CHW, HWC or HW); the network
    transposes it to CHW itself. Pixels in 0..255 (uint8 observations, or `scale_bytes`) are scaled to [0, 1]
    here, so replay and rollouts keep them as bytes and they travel to the device as bytes."""

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int],
        kernels: Sequence[int],
        strides: Sequence[int],
        batch_norm: bool = True,
        layout: str = "CHW",
        features: int | None = None,
        scale_bytes: bool = False,
    ) -> None:
        super().__init__()
        self.layout, self.scale_bytes = layout, scale_bytes
        chw_shape = channels_first_shape(in_shape, layout)
        layers: list[nn.Module] = []
        previous = chw_shape[0]
        for width, kernel, stride in zip(channels, kernels, strides, strict=True):
            layers.append(nn.Conv2d(previous, width, kernel, stride))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            previous = width
        self.layers = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():  # in eval mode, so measuring the output size leaves BatchNorm's statistics alone
            self.out_dim = int(self.layers.eval()(torch.zeros(1, *chw_shape)).shape[1])
        self.layers.train()
        if features is not None:
            self.layers.extend([nn.Linear(self.out_dim, features), nn.ReLU()])
            self.out_dim = features
        # Channels last (NHWC in memory) for the kernels and the pictures: oneDNN's CPU convolutions train 1.3-1.5x
        # faster on it (the Nature CNN's update of 32 or 256 frame stacks, measured). What a layer computes is the
        # same; the features come out flattened in (C, H, W) order whatever the memory holds.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.layout == "HWC":
            images = images.permute(0, 3, 1, 2)  # already channels last in memory
        elif self.layout == "HW":
            images = images.unsqueeze(1)
        if self.scale_bytes or images.dtype == torch.uint8:
            # one pass to floats laid out channels last, scaled in place (the copy is this call's own)
            images = images.to(torch.float32, memory_format=torch.channels_last, copy=True).div_(255.0)
        else:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.layers(images)


class MultiInputEncoder(nn.Module):
    """Features of a Dict or Tuple observation holding pictures, which deeprl.observations packs as one row of bytes:
    first the float32 vector of its other entries (`vector_size` values, 4 bytes each), then each picture's bytes
    from its `offset` on. One Box of bytes keeps replay, rollouts and checkpoints as for any observation, with the
    pictures stored as uint8. The vector's bytes are read back as float32 bit for bit, each picture goes through
    its own CNN (`pictures`' "encoder": ConvEncoder's arguments, pixels scaled to [0, 1] there), and the features are
    concatenated: the vector's values first, then each CNN's features."""

    def __init__(self, vector_size: int, pictures: Sequence[dict[str, Any]]) -> None:
        super().__init__()
        self.vector_bytes = vector_size * 4
        self.cnns = nn.ModuleList(ConvEncoder(**picture["encoder"]) for picture in pictures)
        self.slices = [
            (picture["offset"], int(np.prod(picture["encoder"]["in_shape"])), tuple(picture["encoder"]["in_shape"]))
            for picture in pictures
        ]
        self.out_dim = vector_size + sum(cnn.out_dim for cnn in self.cnns)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dtype != torch.uint8:  # callers that cast observations to float: whole numbers 0..255, cast back exactly
            obs = obs.to(torch.uint8)
        features = []
        if self.vector_bytes:  # a fresh contiguous copy starts at offset 0, as a view as float32 needs
            vector = obs[:, : self.vector_bytes].clone(memory_format=torch.contiguous_format)
            features.append(vector.view(torch.float32))
        for (offset, size, shape), cnn in zip(self.slices, self.cnns):
            features.append(cnn(obs[:, offset : offset + size].reshape(len(obs), *shape)))
        return torch.cat(features, dim=1)


def encoder_from(description: dict[str, Any] | None) -> nn.Module | None:
    """The network an `observation_encoder` description stands for (a CNN, or a MultiInputEncoder for pictures
    beside other entries), or None (observations are read flattened)."""
    if description is None:
        return None
    return MultiInputEncoder(**description) if "pictures" in description else ConvEncoder(**description)


def encoded(encoder: nn.Module | None, obs: torch.Tensor) -> torch.Tensor:
    """What a network's MLP reads: the CNN's features, or the observations flattened (integer ones as floats)."""
    if encoder is not None:
        return encoder(obs)
    flat = obs.flatten(start_dim=1)
    return flat if flat.is_floating_point() else flat.float()


class QNetwork(nn.Module):
    """Q(s, ·) for every discrete action; with `dueling`, Q = V(s) + A(s, a) - mean_a A(s, a).

    `encoder` (ConvEncoder arguments, see `observation_encoder`) puts a CNN before the MLP for pictures; `obs_dim`
    is then ignored. Networks with BatchNorm act in eval mode (running statistics); the learner switches
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
        self.encoder = encoder_from(encoder)
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
        obs = encoded(self.encoder, obs)
        if not self.dueling:
            return self.body(obs)
        features = self.trunk(obs)
        advantage = self.advantage_head(features)
        return self.value_head(features) + advantage - advantage.mean(dim=1, keepdim=True)


def orthogonal_init_(module: nn.Module, gain: float) -> None:
    """Orthogonal weights scaled by `gain` and zero biases for every Linear and Conv2d layer in `module` (a kernel
    as the matrix of its output channels by their inputs; one kept channels last is drawn contiguous, copied in)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d):
            with torch.no_grad():
                layer.weight.copy_(
                    nn.init.orthogonal_(torch.empty_like(layer.weight, memory_format=torch.contiguous_format), gain)
                )
            nn.init.zeros_(layer.bias)


class ActorCritic(nn.Module):
    """A stochastic policy with an optional state-value head. Its head is built from the action space (a categorical
    for Discrete actions, one per dimension for MultiDiscrete, Bernoullis for MultiBinary, a Gaussian with a
    state-independent learnable `log_std` for Box: deeprl.action_heads), and takes an optional action mask (a boolean
    per action, (batch, mask_width), for Discrete and MultiDiscrete): masked actions are never drawn or scored.

    `action` is an `action_description` (e.g. {"type": "Discrete", "n": N}). `value` is "separate" (its own MLP of
    the same widths), "shared" (a head on the policy's trunk) or "none" (no learned baseline).
    Every argument is JSON-able, so a policy file rebuilds the network from them. Actions are returned
    raw, never clipped: log-probabilities must be those of the sample the policy drew. With `encoder` (see
    `observation_encoder`) one CNN reads pictures for both the policy and the value trunks (SB3's default).
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
        encoder: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder_from(encoder)
        if self.encoder is not None:
            obs_dim = self.encoder.out_dim
        self.input_dim = obs_dim  # the width the trunks read
        self.head = action_head(action)
        if value not in self.VALUE_KINDS:
            raise ValueError(f"value must be one of {', '.join(self.VALUE_KINDS)}, not {value!r}")
        features = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.trunk = mlp([obs_dim, *hidden_sizes], activation, activate_last=True)
        self.policy_head = nn.Linear(features, self.head.width)
        self.log_std = (
            nn.Parameter(torch.full((self.head.width,), float(log_std_init))) if action["type"] == "Box" else None
        )
        self.value_trunk = (
            mlp([obs_dim, *hidden_sizes], activation, activate_last=True) if value == "separate" else None
        )
        self.value_head = None if value == "none" else nn.Linear(features, 1)
        if orthogonal_init:  # the usual PPO choice: sqrt(2) for hidden layers, near-uniform initial policy, unit value
            if self.encoder is not None:  # the CNN's layers are hidden layers too (SB3's and CleanRL's CNN policies)
                orthogonal_init_(self.encoder, np.sqrt(2))
            orthogonal_init_(self.trunk, np.sqrt(2))
            orthogonal_init_(self.policy_head, 0.01)
            if self.value_trunk is not None:
                orthogonal_init_(self.value_trunk, np.sqrt(2))
            if self.value_head is not None:
                orthogonal_init_(self.value_head, 1.0)

    def _distribution_of(self, policy_out: torch.Tensor, action_mask: torch.Tensor | None) -> Distribution:
        return self.head.distribution(policy_out, self.log_std, action_mask)

    def _value_of(self, inputs: torch.Tensor, policy_features: torch.Tensor) -> torch.Tensor | None:
        if self.value_head is None:
            return None
        features = policy_features if self.value_trunk is None else self.value_trunk(inputs)
        return self.value_head(features).squeeze(-1)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """What the trunks read: the CNN's features of pictures, or the observations as float vectors."""
        return encoded(self.encoder, obs)

    def forward(
        self, obs: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[Distribution, torch.Tensor | None]:
        """The action distribution (under `action_mask`, if given) and the state values (batch,), or None without a
        value head; a shared trunk (and the CNN) runs once for both."""
        inputs = self.encode(obs)
        features = self.trunk(inputs)
        return self._distribution_of(self.policy_head(features), action_mask), self._value_of(inputs, features)

    def distribution(self, obs: torch.Tensor, action_mask: torch.Tensor | None = None) -> Distribution:
        return self._distribution_of(self.policy_head(self.trunk(self.encode(obs))), action_mask)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) of shape (batch,)."""
        if self.value_head is None:
            raise ValueError("this ActorCritic was built with value='none' and has no value head")
        inputs = self.encode(obs)
        features = self.trunk(inputs) if self.value_trunk is None else self.value_trunk(inputs)
        return self.value_head(features).squeeze(-1)

    def act(
        self, obs: torch.Tensor, deterministic: bool, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(raw actions, their log-probabilities, values or None); deterministic acts on the mode (the most likely
        action of each dimension, or the Gaussian's mean). Call it under torch.inference_mode when acting."""
        distribution, values = self(obs, action_mask)
        actions = distribution.mode if deterministic else distribution.sample()
        return actions, distribution.log_prob(actions), values

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(log-probabilities of `actions`, entropies, values or None) under the current parameters and
        `action_mask` (the mask each action was taken under), without distribution objects (the head's
        log_prob_entropy: as torch.distributions computes them, to the bit)."""
        policy_out, values = self.outputs(obs)
        log_probs, entropies = self.head.log_prob_entropy(policy_out, self.log_std, actions, action_mask)
        return log_probs, entropies, values

    def outputs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the policy head's outputs, the values or None): what the head turns into scores of actions. Seeds
        stacked on a seed axis compute these for all seeds at once and score each seed's part with its own log std
        (deeprl.onpolicy.SeedsContext)."""
        inputs = self.encode(obs)
        features = self.trunk(inputs)
        return self.policy_head(features), self._value_of(inputs, features)

    def numpy_policy(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The policy head's outputs (logits, or the Gaussian's means) of a (batch, obs_dim) float32 array in NumPy,
        or None if this net cannot do that (a CNN)."""
        if self.encoder is not None:
            return None
        return numpy_sequential(nn.Sequential(*self.trunk, self.policy_head))


# ------------------------------------------------------------------------------- continuous control (DDPG/TD3/SAC)

INITS = ("default", "fan_in")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")


def fan_in_init_(module: nn.Module, final_layer_bound: float = 3e-3) -> None:
    """The DDPG paper's initialisation: every Linear layer's weight and bias uniform in ±1/sqrt(fan_in), except
    the last Linear of `module` (the output layer), uniform in ±`final_layer_bound`, so initial actions and
    Q-values are near zero."""
    layers = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
    for index, layer in enumerate(layers):
        bound = final_layer_bound if index == len(layers) - 1 else 1.0 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.weight, -bound, bound)
        nn.init.uniform_(layer.bias, -bound, bound)


class DeterministicActor(nn.Module):
    """μ(s) in [-1, 1] per action dimension (a tanh output; `deeprl.policies.scale_action` maps it to the Box).
    `init` is "default" (PyTorch's) or "fan_in" (`fan_in_init_`, the DDPG paper's)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        init: str = "default",
        encoder: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_init(init)
        self.encoder = encoder_from(encoder)  # pictures: a CNN of its own (see observation_encoder)
        if self.encoder is not None:
            obs_dim = self.encoder.out_dim
        # tanh as a layer of the Sequential, so numpy_sequential covers the whole forward pass
        self.body = nn.Sequential(*mlp([obs_dim, *hidden_sizes, action_dim], activation), nn.Tanh())
        if init == "fan_in":
            fan_in_init_(self.body)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(encoded(self.encoder, obs))

    def numpy_forward(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Actions in [-1, 1] of a (batch, obs_dim) float32 array in NumPy, or None if this net cannot do that."""
        return None if self.encoder is not None else numpy_sequential(self.body)


class QCritic(nn.Module):
    """Q(s, a) of shape (batch,) for continuous actions.

    `action_layer` is where the action joins: 0 concatenates it with the observation at the input (TD3, SAC); 1
    passes the observation through the first hidden layer alone and concatenates the action to its output (the
    DDPG paper). `init` is "default" or "fan_in" (see `fan_in_init_`; the output layer then within
    ±final_layer_bound)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        action_layer: int = 0,
        init: str = "default",
        final_layer_bound: float = 3e-3,
        encoder: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_init(init)
        self.encoder = encoder_from(encoder)  # pictures: a CNN of its own (see observation_encoder)
        if self.encoder is not None:
            obs_dim = self.encoder.out_dim
        if not 0 <= action_layer <= len(hidden_sizes):
            raise ValueError(
                f"action_layer {action_layer} needs at least that many hidden layers, "
                f"not hidden_sizes {list(hidden_sizes)}"
            )
        # the layers before the action joins (none, an identity, when action_layer is 0), then those after;
        # registered in this order, so the output layer is the last Linear (what fan_in_init_ takes as final)
        self.obs_layers = mlp([obs_dim, *hidden_sizes[:action_layer]], activation, activate_last=True)
        obs_features = hidden_sizes[action_layer - 1] if action_layer else obs_dim
        self.q_layers = mlp([obs_features + action_dim, *hidden_sizes[action_layer:], 1], activation)
        if init == "fan_in":
            fan_in_init_(self, final_layer_bound)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        features = self.obs_layers(encoded(self.encoder, obs))
        return self.q_layers(torch.cat([features, actions.flatten(start_dim=1)], dim=1)).squeeze(-1)


def squashed_log_prob(gaussian_log_prob: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
    """log π(a) of a = tanh(u) in [-1, 1] (the units SAC learns in, whatever the env's bounds), from log N(u)
    (already summed over the action dimensions, shape (batch,)) and u (batch, action_dim):
    log N(u) − Σ log(1 − tanh(u)²).

    log(1 − tanh(u)²) is computed as 2(log 2 − u − softplus(−2u)): exact and finite for any u, where the
    textbook form rounds to log(0) once |u| passes ~9 in float32 (and an ε there biases the density)."""
    log_one_minus_tanh_squared = 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))
    return gaussian_log_prob - log_one_minus_tanh_squared.sum(dim=-1)


class SquashedGaussianActor(nn.Module):
    """SAC's policy: u ~ N(mean(s), std(s)) with a state-dependent std, squashed to a = tanh(u) in (-1, 1).

    The MLP trunk feeds a mean head and a log-std head; the log std is clamped to [log_std_min, log_std_max]
    (SB3's [-20, 2]) so the std neither collapses to 0 nor explodes."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
        encoder: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder_from(encoder)  # pictures: a CNN of its own (see observation_encoder)
        if self.encoder is not None:
            obs_dim = self.encoder.out_dim
        if log_std_min > log_std_max:
            raise ValueError(f"log_std_min {log_std_min} exceeds log_std_max {log_std_max}")
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        features = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.trunk = mlp([obs_dim, *hidden_sizes], activation, activate_last=True)
        self.mean_head = nn.Linear(features, action_dim)
        self.log_std_head = nn.Linear(features, action_dim)

    def mean_and_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(encoded(self.encoder, obs))
        log_std = self.log_std_head(features).clamp(self.log_std_min, self.log_std_max)
        return self.mean_head(features), log_std

    def forward(
        self,
        obs: torch.Tensor,
        deterministic: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit actions tanh(u) of shape (batch, action_dim), their log-densities (batch,)). u = mean + std·ε is
        reparameterised, so gradients flow through both; deterministic takes u = mean (ε = 0). ε comes from
        `generator` (torch's global one when None; with several, see `standard_normal`)."""
        mean, log_std = self.mean_and_log_std(obs)
        standard_noise = torch.zeros_like(mean) if deterministic else standard_normal(mean, generator)
        pre_tanh = mean + log_std.exp() * standard_noise
        # log N(u; mean, std) written with ε = (u − mean)/std: the same value and gradient, without a division
        gaussian_log_prob = (-0.5 * standard_noise.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)).sum(dim=-1)
        return torch.tanh(pre_tanh), squashed_log_prob(gaussian_log_prob, pre_tanh)

    def numpy_forward(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Deterministic actions tanh(mean) of a (batch, obs_dim) float32 array in NumPy, or None if this net
        cannot do that (a CNN)."""
        if self.encoder is not None:
            return None
        return numpy_sequential(nn.Sequential(*self.trunk, self.mean_head, nn.Tanh()))


@torch.no_grad()
def standard_normal(like: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """N(0, 1) draws of `like`'s shape, dtype and device from `generator`; from several generators, the rows in as
    many equal parts one after another (several seeds' batches: deeprl.seed_axis), each part from its own."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    parts = like.reshape(len(generator), -1, *like.shape[1:]).unbind(0)
    return torch.cat([standard_normal(part, own) for part, own in zip(parts, generator, strict=True)])


def clip_grad_norm_(parameters: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale the gradients so that their global L2 norm is at most `max_norm`: torch.nn.utils.clip_grad_norm_'s
    arithmetic (a factor max_norm / (norm + 1e-6), capped at 1), without its per-call grouping of the tensors by
    device and dtype, which costs more than the arithmetic on a small net."""
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if gradients:
        total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gradients)))
        torch._foreach_mul_(gradients, torch.clamp(max_norm / (total_norm + 1e-6), max=1.0))


def gradient_step(
    optimizer: torch.optim.Optimizer,
    parameters: Sequence[torch.Tensor],
    loss: torch.Tensor,
    max_grad_norm: float | None,
    step: int,
    advice: str = "try a lower lr",
) -> None:
    """One optimiser step on `loss`, its gradient's norm clipped first; a non-finite loss stops the run with
    `advice`."""
    if not torch.isfinite(loss):
        raise DeeprlError(f"the loss became {loss.item()} at step {step}; {advice}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()


def set_learning_rate(optimizers: Iterable[torch.optim.Optimizer], lr: float) -> None:
    """Every parameter group of each optimiser learns at `lr` from its next step (an annealed schedule's value)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr


@contextmanager
def frozen(parameters: Sequence[nn.Parameter]) -> Iterator[None]:
    """Parameters that take no gradient inside the block (an actor's loss passes through the critics without
    changing them). A list kept by the caller: Module.requires_grad_ walks the module tree on every call, Python
    work of the same order as a small network's whole gradient step."""
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


class SoftUpdate:
    """Polyak averaging of a target network towards its online twin, called after each of the online net's updates
    that the algorithm chooses: parameters ← (1 − τ)·target + τ·online (τ = 1: an exact copy); buffers (BatchNorm's
    running statistics) copied, since they are not learnt by gradient and averaging a step count is meaningless.

    The tensors are listed once, here: walking the module tree on every call costs more than the averaging itself on
    a small net. Training changes them in place (optimiser steps, load_state_dict), so the lists stay current."""

    def __init__(self, target: nn.Module, online: nn.Module, tau: float) -> None:
        self.target_parameters, self.online_parameters = list(target.parameters()), list(online.parameters())
        if len(self.target_parameters) != len(self.online_parameters):
            raise ValueError("target and online networks differ in their parameters")
        self.buffers = list(zip(target.buffers(), online.buffers(), strict=True))
        self.tau = tau

    @torch.no_grad()
    def __call__(self) -> None:
        torch._foreach_lerp_(self.target_parameters, self.online_parameters, self.tau)
        for target_buffer, online_buffer in self.buffers:
            target_buffer.copy_(online_buffer)
