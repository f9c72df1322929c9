"""Policy heads built from the action space: how the outputs of a policy network's last layer become a distribution
over actions, in torch (its log-probabilities and entropy for learning, samples and the mode for acting) and in NumPy
(the acting fast path, see deeprl.policies.PolicyAgent.raw_act).

- Discrete(n): a categorical over n logits.
- MultiDiscrete(nvec): one categorical per dimension, independent of the others: the log-probability and the entropy
  of an action are sums over the dimensions. The dimensions' logits are laid out as one row each of a table as wide as
  the widest dimension; the padding of narrower ones is never valid.
- MultiBinary(n): one Bernoulli per bit (a logit each), independent: sums over the bits again.
- Box(dim): a diagonal Gaussian of the network's means and a state-independent learnt log std (the network's).

Action masks (Discrete and MultiDiscrete; where they come from: deeprl.action_masks) are applied here: a masked
action's logit is -inf before sampling, in the log-probability and in the entropy, where its term p log p = 0 * -inf
counts as 0. A masked action is never drawn, and an update scores each step under the mask it was acted on with.

Without a mask, the Discrete and Box heads compute operation for operation what they did before masks existed (and
what torch.distributions computes), so runs on such envs are unchanged to the bit.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
ACTION_SPACES = (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary, gym.spaces.Box)


def action_description(space: gym.Space) -> dict[str, Any]:
    """What a policy head needs to know of an action space (JSON-able: a policy file rebuilds the head from it)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": [int(n) for n in space.nvec.reshape(-1)]}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": int(np.prod(space.shape))}
    return {"type": "Box", "dim": int(np.prod(space.shape))}


# --------------------------------------------------------------------------------------- categorical arithmetic


def masked_logits(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """`logits` with the entries where `valid` is False set to -inf (all of them kept without `valid`)."""
    return logits if valid is None else logits.masked_fill(~valid, -math.inf)


def categorical_log_prob_entropy(
    logits: torch.Tensor, actions: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities of `actions`, entropies) of categoricals over the last axis of `logits`; with `valid` (a
    boolean of the logits' shape), only the entries where it is True can be drawn.

    Written out rather than through torch.distributions (its distribution objects and argument checks cost more than
    a small network, and this runs once per minibatch), as torch.distributions computes it, to the bit."""
    if valid is None:
        log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)
        taken = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        return taken, -(log_probs * torch.softmax(log_probs, dim=-1)).sum(-1)
    masked = masked_logits(logits, valid)
    log_probs = masked - masked.logsumexp(dim=-1, keepdim=True)
    taken = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    # a masked entry's p log p is 0 * -inf: its log-probability is replaced by 0 before the product, so neither the
    # entropy nor its gradient meets a NaN
    entropy = -(torch.softmax(log_probs, dim=-1) * log_probs.masked_fill(~valid, 0.0)).sum(-1)
    return taken, entropy


def sample_categorical(
    logits: np.ndarray, rng: np.random.Generator, deterministic: bool, valid: np.ndarray | None = None
) -> np.ndarray:
    """One action per row of (batch, n) logits: the most likely, or a sample by inverse CDF from their softmax; with
    `valid` (batch, n), only the entries where it is True."""
    if valid is not None:
        logits = np.where(valid, logits, -np.inf)
    if deterministic:
        return logits.argmax(axis=1)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random((len(logits), 1)) * cumulative[:, -1:]
    drawn = (draws >= cumulative).sum(axis=1)
    # a draw that rounds up to the total falls past the end: it takes the last action that can be drawn
    last = logits.shape[1] - 1 if valid is None else logits.shape[1] - 1 - valid[:, ::-1].argmax(axis=1)
    return np.minimum(drawn, last)


# -------------------------------------------------------------------------------------------------- the heads


class CategoricalHead:
    """Discrete(n): n logits."""

    raw_shape: tuple[int, ...] = ()
    raw_dtype = np.dtype(np.int64)

    def __init__(self, n: int) -> None:
        self.width = self.mask_width = n

    def distribution(self, out: torch.Tensor, log_std: torch.Tensor | None, mask: torch.Tensor | None) -> Distribution:
        return Categorical(logits=masked_logits(out, mask))

    def log_prob_entropy(
        self, out: torch.Tensor, log_std: torch.Tensor | None, actions: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return categorical_log_prob_entropy(out, actions, mask)

    def sample(
        self,
        out: np.ndarray,
        log_std: np.ndarray | None,
        rng: np.random.Generator,
        deterministic: bool,
        mask: np.ndarray | None,
    ) -> np.ndarray:
        return sample_categorical(out, rng, deterministic, mask)


class MultiCategoricalHead:
    """MultiDiscrete(nvec): sum(nvec) logits, dimension after dimension, read as a (dimensions, widest) table whose
    padding is never valid. A mask is sum(nvec) booleans in the same order."""

    raw_dtype = np.dtype(np.int64)

    def __init__(self, nvec: list[int]) -> None:
        self.nvec = [int(n) for n in nvec]
        self.width = self.mask_width = sum(self.nvec)
        self.widest = max(self.nvec)
        self.raw_shape = (len(self.nvec),)
        self.layout = np.arange(self.widest)[None, :] < np.array(self.nvec)[:, None]  # (dimensions, widest)
        self.padded = not self.layout.all()
        self.positions = np.flatnonzero(self.layout)  # where each logit goes in the flattened table
        self.torch_layout: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self.torch_layout:
            with torch.inference_mode(False):  # made while acting, they serve in learning too
                self.torch_layout[device] = (
                    torch.from_numpy(self.layout).to(device),
                    torch.from_numpy(self.positions).to(device),
                )
        return self.torch_layout[device]

    def _table(self, flat: torch.Tensor, fill: float | bool) -> torch.Tensor:
        rows = flat.shape[:-1]
        if not self.padded:
            return flat.reshape(*rows, len(self.nvec), self.widest)
        _, positions = self._on(flat.device)
        table = flat.new_full((*rows, self.layout.size), fill)
        table[..., positions] = flat
        return table.reshape(*rows, *self.layout.shape)

    def _valid(self, out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is not None:
            return self._table(mask, False)
        return self._on(out.device)[0] if self.padded else None

    def distribution(self, out: torch.Tensor, log_std: torch.Tensor | None, mask: torch.Tensor | None) -> Distribution:
        return Independent(Categorical(logits=masked_logits(self._table(out, 0.0), self._valid(out, mask))), 1)

    def log_prob_entropy(
        self, out: torch.Tensor, log_std: torch.Tensor | None, actions: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs, entropies = categorical_log_prob_entropy(self._table(out, 0.0), actions, self._valid(out, mask))
        return log_probs.sum(-1), entropies.sum(-1)

    def _numpy_table(self, flat: np.ndarray, fill: float | bool) -> np.ndarray:
        table = np.full((len(flat), self.layout.size), fill, dtype=flat.dtype)
        table[:, self.positions] = flat
        return table.reshape(len(flat) * len(self.nvec), self.widest)

    def sample(
        self,
        out: np.ndarray,
        log_std: np.ndarray | None,
        rng: np.random.Generator,
        deterministic: bool,
        mask: np.ndarray | None,
    ) -> np.ndarray:
        valid = None
        if mask is not None:
            valid = self._numpy_table(mask, False)
        elif self.padded:
            valid = np.tile(self.layout, (len(out), 1))
        actions = sample_categorical(self._numpy_table(out, 0.0), rng, deterministic, valid)
        return actions.reshape(len(out), len(self.nvec))


class IndependentBernoullis(Independent):
    """Bernoullis summed over the last axis, whose mode is each bit's more likely value (torch's Bernoulli gives NaN
    for a bit at probability 0.5; here it is 0)."""

    @property
    def mode(self) -> torch.Tensor:
        logits = self.base_dist.logits
        return (logits > 0).to(logits.dtype)


class BernoulliHead:
    """MultiBinary(n): a logit per bit; actions are stored as 0.0 / 1.0 floats."""

    raw_dtype = np.dtype(np.float32)
    mask_width = None

    def __init__(self, n: int) -> None:
        self.width = n
        self.raw_shape = (n,)

    def distribution(self, out: torch.Tensor, log_std: torch.Tensor | None, mask: torch.Tensor | None) -> Distribution:
        return IndependentBernoullis(Bernoulli(logits=out), 1)

    def log_prob_entropy(
        self, out: torch.Tensor, log_std: torch.Tensor | None, actions: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # log p(a) = a log sigmoid(x) + (1 - a) log sigmoid(-x), minus the binary cross-entropy; the entropy is the
        # cross-entropy of the bit with its own probability
        log_probs = -F.binary_cross_entropy_with_logits(out, actions.to(out.dtype), reduction="none")
        entropies = F.binary_cross_entropy_with_logits(out, torch.sigmoid(out), reduction="none")
        return log_probs.sum(-1), entropies.sum(-1)

    def sample(
        self,
        out: np.ndarray,
        log_std: np.ndarray | None,
        rng: np.random.Generator,
        deterministic: bool,
        mask: np.ndarray | None,
    ) -> np.ndarray:
        if deterministic:
            return (out > 0).astype(np.float32)
        probabilities = 0.5 * (1.0 + np.tanh(0.5 * out))  # the sigmoid, without exp's overflow for large logits
        return (rng.random(out.shape) < probabilities).astype(np.float32)


class GaussianHead:
    """Box(dim): dim means; the std is exp(log_std), a learnt parameter of the network independent of the state.
    Actions are returned raw (unclipped): log-probabilities must be those of the sample the policy drew."""

    raw_dtype = np.dtype(np.float32)
    mask_width = None

    def __init__(self, dim: int) -> None:
        self.width = dim
        self.raw_shape = (dim,)

    def distribution(self, out: torch.Tensor, log_std: torch.Tensor | None, mask: torch.Tensor | None) -> Distribution:
        # Independent makes log_prob and entropy sum over the action dimensions
        return Independent(Normal(out, log_std.exp()), 1)

    def log_prob_entropy(
        self, out: torch.Tensor, log_std: torch.Tensor | None, actions: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # log N(a; mu, std) and its entropy, summed over the action dimensions (the constants are written as torch's
        # Normal writes them: log sqrt(2 pi) and 0.5 log(2 pi) differ in the last bit)
        std = log_std.exp()
        log_std = std.log().expand_as(out)
        log_probs = -((actions - out) ** 2) / (2 * std**2) - log_std - LOG_SQRT_2PI
        return log_probs.sum(-1), (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)

    def sample(
        self,
        out: np.ndarray,
        log_std: np.ndarray | None,
        rng: np.random.Generator,
        deterministic: bool,
        mask: np.ndarray | None,
    ) -> np.ndarray:
        if deterministic:
            return out.astype(np.float32)
        return (out + np.exp(log_std) * rng.standard_normal(out.shape)).astype(np.float32)


ActionHead = CategoricalHead | MultiCategoricalHead | BernoulliHead | GaussianHead


def action_head(action: dict[str, Any]) -> ActionHead:
    """The head an `action_description` stands for."""
    kind = action.get("type")
    if kind == "Discrete":
        return CategoricalHead(int(action["n"]))
    if kind == "MultiDiscrete":
        return MultiCategoricalHead(action["nvec"])
    if kind == "MultiBinary":
        return BernoulliHead(int(action["n"]))
    if kind == "Box":
        return GaussianHead(int(action["dim"]))
    raise ValueError(
        'action must be {"type": "Discrete", "n": N}, {"type": "MultiDiscrete", "nvec": [N, ...]}, '
        f'{{"type": "MultiBinary", "n": N}} or {{"type": "Box", "dim": D}}, not {action!r}'
    )
