"""Recurrent policies for the rollout algorithms (A2C, PPO): `--set recurrent=lstm` (or gru).

The network (`RecurrentActorCritic`) reads each observation through a recurrent cell of `recurrent_hidden_size` units
and gives the cell's output to the feed-forward actor-critic (deeprl.nets.ActorCritic: its MLPs, action head and
value head), so the action distributions, masks included, are the feed-forward policy's. The critic has a cell of its
own (`recurrent_critic=separate`, sb3-contrib's default) or reads the actor's (`shared`). Its state is one tensor per
env copy, (parts, hidden): an LSTM's h and c (a GRU's h) for the actor, then for a separate critic.

Collection acts one step at a time from a state per env copy, reset to zeros when the copy's episode ends, and
stores with every step the state it acted from and whether it began an episode (`SequenceRolloutBuffer`). Training
unrolls the cells over minibatches of whole sequences: each copy's steps cut into pieces of `sequence_length`, every
piece starting from the state stored at its first step, and the state reset to zeros exactly at every episode start
inside a piece, so each step is trained from the state it was collected with. A piece shorter than the rest (the
rollout's steps not a multiple of sequence_length) is padded; the padding is left out of every loss. Each cell runs
as torch's nn.LSTM / nn.GRU over all the stretches between episode starts side by side (`SegmentLayout`), one call
per minibatch rather than one per step; acting steps the actor's and a separate critic's cell in one fused call.

An episode cut by a time limit bootstraps from V(final observation), read with the critic's state after the last
step. The collecting state is part of the checkpoint; the agent's own state (`RecurrentAgent`, one row per env copy
that `act` is given) is apart from it, so evaluations, which reset it at every episode start, never disturb training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from deeprl.action_masks import checked_masks
from deeprl.buffers import RolloutBatch, RolloutBuffer, to_device
from deeprl.errors import DeeprlError
from deeprl.nets import ActorCritic, encoded, encoder_from, mlp, orthogonal_init_
from deeprl.normalization import ObservationNormalizer
from deeprl.observations import as_batch
from deeprl.policies import PolicyAgent, policy_agent_parts, policy_file_data, policy_network

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}
RECURRENT_KINDS = ("none", *CELLS)
CRITIC_KINDS = ("separate", "shared")
AGENT_KIND = "recurrent_policy"  # the policy file's agent kind (deeprl.policies.AGENT_LOADERS)
# one step of a cell from its weights (what nn.LSTMCell and nn.GRUCell call) and the gates its weights stack
STEP_FUNCTIONS: dict[str, Callable[..., Any]] = {"lstm": torch.lstm_cell, "gru": torch.gru_cell}
GATES = {"lstm": 4, "gru": 3}
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # nn.LSTM's and nn.GRU's add "_l0" (the layer)


# ----------------------------------------------------------------------------------------------------- the network


class RecurrentCell(nn.Module):
    """A one-layer LSTM or GRU whose state is one tensor (batch, parts, hidden): parts 2 (h, c) for an LSTM, 1 a GRU.
    Training runs it over the stretches of sequences between episode starts, side by side (`unroll`); acting steps it
    from its weights (RecurrentActorCritic.step)."""

    def __init__(self, kind: str, input_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.cell = CELLS[kind](input_dim, hidden_size)
        self.parts = 2 if kind == "lstm" else 1
        self.register_load_state_dict_pre_hook(with_layer_names)

    def weights(self) -> tuple[torch.Tensor, ...]:
        """(weight_ih, weight_hh, bias_ih, bias_hh), gates stacked in torch's order (LSTM i f g o, GRU r z n)."""
        return tuple(getattr(self.cell, f"{name}_l0") for name in WEIGHT_NAMES)

    def unroll(self, inputs: torch.Tensor, state: torch.Tensor, layout: SegmentLayout) -> torch.Tensor:
        """The outputs h of the rows of `inputs` laid out as `layout` says, each segment run from its row of `state`
        (segments, parts, hidden): one call of nn.LSTM / nn.GRU per chunk."""
        hidden_state = state.transpose(0, 1).contiguous()  # (parts, segments, hidden): h (and c) as nn.LSTM takes them
        carried = [hidden_state[part : part + 1] for part in range(self.parts)]
        outputs, row = [], 0
        for width in layout.widths:
            chunk_inputs = inputs[row : row + layout.chunk * width].reshape(layout.chunk, width, -1)
            running = tuple(part[:, :width] for part in carried)  # the segments still running: the first `width`
            chunk_outputs, last = self.cell(chunk_inputs, running if self.parts == 2 else running[0])
            carried = list(last) if self.parts == 2 else [last]
            outputs.append(chunk_outputs.reshape(layout.chunk * width, -1))
            row += layout.chunk * width
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def with_layer_names(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Policy files and checkpoints written when the cells were nn.LSTMCell / nn.GRUCell name the same tensors
    (same shapes, same gate order) without nn.LSTM's layer suffix: they load under the new names."""
    for name in WEIGHT_NAMES:
        old = f"{prefix}cell.{name}"
        if old in state_dict:
            state_dict[f"{old}_l0"] = state_dict.pop(old)


def side_by_side(cells: Sequence[RecurrentCell]) -> tuple[torch.Tensor, ...]:
    """The weights of one cell that computes `cells` at once on the same input, as STEP_FUNCTIONS take them: its
    state is theirs concatenated, each gate's rows are every cell's rows of that gate in turn, and the recurrent
    weights are block-diagonal (a cell reads only its own state)."""
    if len(cells) == 1:
        return cells[0].weights()
    gates, hidden, count = GATES[cells[0].kind], cells[0].cell.hidden_size, len(cells)

    def stacked(index: int) -> torch.Tensor:  # every cell's rows of each gate in turn
        rows = [cell.weights()[index].reshape(gates, hidden, -1) for cell in cells]
        return torch.stack(rows, dim=1).reshape(gates * count * hidden, -1)

    weight_hh = cells[0].cell.weight_hh_l0.new_zeros(gates, count, hidden, count, hidden)
    for index, cell in enumerate(cells):
        weight_hh[:, index, :, index] = cell.weights()[1].reshape(gates, hidden, hidden)
    return stacked(0), weight_hh.reshape(gates * count * hidden, -1), stacked(2).flatten(), stacked(3).flatten()


class SegmentLayout(NamedTuple):
    """How sequences (T, B) cut at every episode start run through the cells (RecurrentActorCritic.unroll). Each
    piece (a segment) starts from zeros when it begins an episode, else (a sequence's first segment, mid-episode)
    from the sequence's stored state. The segments run side by side, longest first, in chunks of `chunk` steps: one
    call of a cell per chunk, each segment's chunk from the state its previous chunk ended in (the segments still
    running are the first `widths[j]` of chunk j). A segment shorter than the chunk is padded after its end; chunks
    are as long as possible while the steps computed stay within twice the sequences' steps."""

    gather: np.ndarray  # row of the chunks (chunk after chunk, each time first, segments within) -> step t * B + b
    scatter: np.ndarray  # step t * B + b -> its row
    chunk: int
    widths: list[int]  # the segments still running in each chunk
    segment_sequence: np.ndarray  # per segment (longest first): the sequence it belongs to
    segment_fresh: np.ndarray  # per segment: it begins an episode (runs from zeros)

    @staticmethod
    def of(episode_starts: np.ndarray) -> SegmentLayout:
        steps, batch = episode_starts.shape
        begins = episode_starts.T.copy()  # (B, T): each sequence's steps in a row
        begins[:, 0] = True  # every sequence's first step begins a segment
        flat_begins = begins.reshape(-1)
        segment_of = np.cumsum(flat_begins) - 1  # per step, sequences one after the other
        firsts = np.flatnonzero(flat_begins)  # per segment: its first step
        lengths = np.diff(firsts, append=steps * batch)
        order = np.argsort(-lengths, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        chunk = int(lengths.max())
        while chunk * np.ceil(lengths / chunk).sum() > 2 * steps * batch:
            chunk = -(-chunk // 2)
        widths = np.array([(lengths > start).sum() for start in range(0, int(lengths.max()), chunk)])
        chunk_rows = np.concatenate(([0], np.cumsum(widths)[:-1])) * chunk
        # the step at position p of its segment: chunk p // chunk, time p % chunk, column its segment's rank
        chunk_index, time = np.divmod(np.arange(steps * batch) - firsts[segment_of], chunk)
        rows = chunk_rows[chunk_index] + time * widths[chunk_index] + rank[segment_of]
        scatter = rows.reshape(batch, steps).T.reshape(-1)
        gather = np.zeros(chunk * widths.sum(), dtype=np.int64)  # padding reads step 0; its outputs go nowhere
        gather[scatter] = np.arange(steps * batch)
        sequence, first_step = np.divmod(firsts[order], steps)
        return SegmentLayout(gather, scatter, chunk, widths.tolist(), sequence, episode_starts[first_step, sequence])


class Sequences(NamedTuple):
    """Observations of a minibatch of sequences, time first, and what the cells need to unroll them."""

    obs: torch.Tensor  # (T, B, *obs_shape)
    initial_states: torch.Tensor  # (B, parts, hidden): each sequence's state before its first step, as collected
    episode_starts: torch.Tensor  # (T, B) bool: the state is zeros before this step (an episode begins there)
    valid: torch.Tensor  # (T, B) bool: False on the padding after a sequence's last step


class RecurrentActorCritic(nn.Module):
    """A recurrent cell (and a separate one for the critic, or none) before a feed-forward ActorCritic
    (`feed_forward`) that reads the cell's output. Its arguments are policy_network's (the ActorCritic's, save that it
    reads `recurrent_hidden_size` features) and the three recurrent settings: all JSON-able, so a policy file rebuilds
    it."""

    def __init__(
        self,
        obs_dim: int,
        action: dict[str, Any],
        recurrent: str = "lstm",
        recurrent_hidden_size: int = 64,
        recurrent_critic: str = "separate",
        encoder: dict[str, Any] | None = None,
        **feed_forward: Any,
    ) -> None:
        super().__init__()
        if recurrent not in CELLS:
            raise ValueError(f"recurrent must be one of {', '.join(CELLS)}, not {recurrent!r}")
        if recurrent_critic not in CRITIC_KINDS:
            raise ValueError(f"recurrent_critic must be one of {', '.join(CRITIC_KINDS)}, not {recurrent_critic!r}")
        self.encoder = encoder_from(encoder)
        if self.encoder is not None and feed_forward.get("orthogonal_init", True):  # as ActorCritic's CNN
            orthogonal_init_(self.encoder, np.sqrt(2))
        input_dim = obs_dim if self.encoder is None else self.encoder.out_dim
        self.actor_cell = RecurrentCell(recurrent, input_dim, recurrent_hidden_size)
        separate = recurrent_critic == "separate"
        self.critic_cell = RecurrentCell(recurrent, input_dim, recurrent_hidden_size) if separate else None
        # ActorCritic's value trunk reads the actor's features; a separate critic has its own trunk after its own cell
        value = feed_forward.pop("value", "separate")
        self.feed_forward = ActorCritic(
            obs_dim=recurrent_hidden_size, action=action, value="none" if separate else value, **feed_forward
        )
        self.critic_value: nn.Module | None = None
        if separate:
            sizes = [recurrent_hidden_size, *feed_forward.get("hidden_sizes", (64, 64))]
            trunk = mlp(sizes, feed_forward.get("activation", "tanh"), activate_last=True)
            self.critic_value = nn.Sequential(trunk, nn.Linear(sizes[-1], 1))
            if feed_forward.get("orthogonal_init", True):  # as ActorCritic's value MLP: sqrt(2) hidden, 1 output
                orthogonal_init_(trunk, np.sqrt(2))
                orthogonal_init_(self.critic_value[-1], 1.0)
        self.hidden_size = recurrent_hidden_size
        self.actor_parts = self.actor_cell.parts
        parts = self.actor_parts + (0 if self.critic_cell is None else self.critic_cell.parts)
        self.state_shape = (parts, recurrent_hidden_size)
        self.cells = [cell for cell in (self.actor_cell, self.critic_cell) if cell is not None]
        # acting steps every cell at once with their weights side by side, built again only when a parameter changed
        self.cell_weights = [weight for cell in self.cells for weight in cell.weights()]
        self.acting_weights: tuple[torch.Tensor, ...] = ()
        self.acting_weights_of: list[tuple[int, int]] = []  # (address, version) of each cell weight they came from

    @property
    def head(self) -> Any:
        """The action head (deeprl.action_heads), as ActorCritic.head."""
        return self.feed_forward.head

    def initial_state(self, batch: int) -> torch.Tensor:
        """The state of a copy at an episode's start: zeros."""
        return torch.zeros((batch, *self.state_shape), device=self.feed_forward.policy_head.weight.device)

    def step(self, inputs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of the cells on encoded observations, for acting (no gradient reaches the cells): (the actor's
        features, the critic's, the next state). A separate critic's cell steps in the same call as the actor's."""
        batch, hidden, count, parts = len(inputs), self.hidden_size, len(self.cells), self.actor_parts
        by_cell = state.reshape(batch, count, parts, hidden)  # (h, c) of the actor's cell, then of the critic's
        previous = [by_cell[:, :, part].reshape(batch, count * hidden) for part in range(parts)]
        outputs = STEP_FUNCTIONS[self.actor_cell.kind](
            inputs, tuple(previous) if parts == 2 else previous[0], *self.side_by_side_weights()
        )
        outputs = outputs if parts == 2 else (outputs,)
        next_state = torch.stack([output.reshape(batch, count, hidden) for output in outputs], dim=2)
        features = outputs[0]  # h: the actor's units, then the critic's
        return features[:, :hidden], features[:, -hidden:], next_state.reshape(batch, *self.state_shape)

    def side_by_side_weights(self) -> tuple[torch.Tensor, ...]:
        """side_by_side(self.cells), kept while no weight of theirs changes: a load or an in-place change bumps a
        weight's version, a move to another device its address, and every training unroll drops them (a fused
        optimiser steps the weights without bumping their versions)."""
        made_of = [(weight.data_ptr(), weight._version) for weight in self.cell_weights]
        if made_of != self.acting_weights_of:
            with torch.inference_mode(False), torch.no_grad():  # plain tensors, usable outside inference mode too
                self.acting_weights = tuple(weight.detach() for weight in side_by_side(self.cells))
            self.acting_weights_of = made_of
        return self.acting_weights

    def values_of(self, actor_features: torch.Tensor, critic_features: torch.Tensor) -> torch.Tensor:
        """V from the cells' features, shape (batch,)."""
        if self.critic_value is None:
            return self.feed_forward.value(actor_features)
        return self.critic_value(critic_features).squeeze(-1)

    def act_step(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the actor's features, the next state) of one step on a batch of observations."""
        actor_features, _, next_state = self.step(encoded(self.encoder, obs), state)
        return actor_features, next_state

    def value_step(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """V(obs) read with `state`, shape (batch,)."""
        return self.values_of(*self.step(encoded(self.encoder, obs), state)[:2])

    def unroll(self, sequences: Sequences) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's and the critic's features (T, B, hidden) of every step of `sequences`: the cells run from
        each sequence's initial state, and the state is zeros again before every step that begins an episode. The
        sequences are cut at their episode starts and each cell runs over all the pieces side by side, one call per
        chunk of steps (SegmentLayout): a single call unless a few long pieces beside many short ones would pad it
        to more than twice the steps."""
        if torch.is_grad_enabled():  # a gradient step may follow: acting builds its weights again
            self.acting_weights_of = []
        steps, batch = sequences.episode_starts.shape
        inputs = encoded(self.encoder, sequences.obs.reshape(steps * batch, *sequences.obs.shape[2:]))
        layout = SegmentLayout.of(sequences.episode_starts.cpu().numpy())
        device = inputs.device
        rows = inputs[torch.from_numpy(layout.gather).to(device)]
        # each segment from zeros (an episode begins there, exactly as collection reset it) or its stored state
        fresh = torch.from_numpy(layout.segment_fresh).to(device).reshape(-1, 1, 1)
        initial = sequences.initial_states[torch.from_numpy(layout.segment_sequence).to(device)]
        initial = torch.where(fresh, 0.0, initial)
        scatter = torch.from_numpy(layout.scatter).to(device)
        actor = self.actor_cell.unroll(rows, initial[:, : self.actor_parts], layout)[scatter].reshape(steps, batch, -1)
        if self.critic_cell is None:
            return actor, actor
        critic = self.critic_cell.unroll(rows, initial[:, self.actor_parts :], layout)[scatter]
        return actor, critic.reshape(steps, batch, -1)

    def evaluate_actions(
        self, sequences: Sequences, actions: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ActorCritic.evaluate_actions for sequences: (log-probabilities, entropies, values) of the valid steps,
        flattened time first (the order of the flat per-step tensors of the same minibatch). `actions` (and an
        `action_mask`) are (T, B, ...) as the sequences."""
        actor_features, critic_features = self.unroll(sequences)
        valid = sequences.valid
        mask = None if action_mask is None else action_mask[valid]
        log_probs, entropies, feed_forward_values = self.feed_forward.evaluate_actions(
            actor_features[valid], actions[valid], mask
        )
        values = (
            feed_forward_values if self.critic_value is None else self.critic_value(critic_features[valid]).squeeze(-1)
        )
        return log_probs, entropies, values


def recurrent_network(obs_space: gym.Space, action_space: gym.Space, config: Any) -> dict[str, Any]:
    """RecurrentActorCritic's arguments for a run's spaces and settings (JSON-able): policy_network's plus the
    recurrent ones."""
    return {
        **policy_network(obs_space, action_space, config, config.value_network, config.log_std_init),
        "recurrent": config.recurrent,
        "recurrent_hidden_size": config.recurrent_hidden_size,
        "recurrent_critic": config.recurrent_critic,
    }


def check_settings(config: Any) -> None:
    """Refuse recurrent settings that contradict each other, in one line each."""
    if config.recurrent == "none":
        return
    if config.recurrent_critic == "separate" and config.value_network == "shared":
        raise DeeprlError(
            "value_network=shared puts the value head on the policy's trunk, but recurrent_critic=separate gives "
            "the critic a recurrent cell of its own: set recurrent_critic=shared, or value_network=separate"
        )
    length, batch_size = sequence_length(config), getattr(config, "batch_size", None)
    if batch_size is not None and batch_size < config.n_steps * config.n_envs:
        sequences = config.n_envs * -(-config.n_steps // length)
        minibatches = -(-config.n_steps * config.n_envs // batch_size)
        if sequences < minibatches:
            raise DeeprlError(
                f"sequence_length {length} cuts the rollout ({config.n_envs} copies x {config.n_steps} steps) into "
                f"{sequences} sequences, fewer than the {minibatches} minibatches of batch_size {batch_size}: lower "
                f"sequence_length to batch_size or less, or raise batch_size"
            )


def sequence_length(config: Any) -> int:
    """The steps of a training sequence: the setting (PPO's), else min(n_steps, batch_size), so that every minibatch
    holds at least one sequence; A2C's one full batch trains on every copy's whole rollout."""
    chosen = getattr(config, "sequence_length", None)
    if chosen is not None:
        return min(chosen, config.n_steps)
    return min(config.n_steps, getattr(config, "batch_size", config.n_steps))


# ------------------------------------------------------------------------------------------------------ the agent


class RecurrentAgent:
    """Acts with a recurrent policy, keeping a state per env copy: row i of a batch given to `act` is copy i, whose
    state carries over to its next call. `reset()` clears every copy's state (the next `act` starts afresh with as
    many copies as it is given), `reset(copies)` those copies' only (their episodes begin again). An `act` with a
    batch of another size than the state's is refused: reset first.

    Sampling, the deterministic mode and the actions' trip to the env are the feed-forward PolicyAgent's, on the
    actor cell's output (`features_agent`)."""

    def __init__(
        self,
        policy: RecurrentActorCritic,
        observation_space: gym.Space,
        action_space: gym.Space,
        network: dict[str, Any],
        obs_normalizer: ObservationNormalizer | None = None,
    ) -> None:
        self.policy = policy
        self.observation_space = observation_space
        self.action_space = action_space
        self.network = network
        self.obs_normalizer = obs_normalizer
        self.device = policy.feed_forward.policy_head.weight.device
        features = gym.spaces.Box(-1.0, 1.0, shape=(policy.hidden_size,), dtype=np.float32)
        self.features_agent = PolicyAgent(policy.feed_forward, features, action_space, {})
        self.state: torch.Tensor | None = None  # (copies, parts, hidden), None before the first act after a reset
        self.episode_starts = np.zeros(0, dtype=np.bool_)  # per copy: its next step begins an episode
        self.rng = self.features_agent.rng
        self.run_dir: Path | None = None  # the run it belongs to: set by deeprl.train and deeprl.load
        self.summary: dict[str, Any] | None = None

    def reset(self, copies: Sequence[int] | np.ndarray | None = None) -> None:
        """Every copy's state (None), or those of `copies`, back to an episode's start."""
        if copies is None:
            self.state = None
            return
        if self.state is not None and len(copies):  # (collection asks at every step, mostly for no copy)
            rows = torch.as_tensor(np.asarray(copies, dtype=np.int64), device=self.device)
            with torch.inference_mode():  # the state was made there
                self.state = self.state.index_fill(0, rows, 0.0)
            self.episode_starts[copies] = True

    def ensure_state(self, copies: int) -> None:
        """A fresh state for `copies` copies after a reset; a batch of another size is refused."""
        if self.state is None:
            self.state = self.policy.initial_state(copies)
            self.episode_starts = np.ones(copies, dtype=np.bool_)
        elif len(self.state) != copies:
            raise DeeprlError(
                f"the recurrent agent keeps a state for {len(self.state)} env copies and was given {copies} "
                "observations: call agent.reset() before acting on another number of copies"
            )

    def current_state(self, copies: int) -> torch.Tensor:
        """The state every copy acts from at its next step (zeros for `copies` copies after a reset)."""
        self.ensure_state(copies)
        return self.state

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
        """Actions for a batch of network inputs, one per copy, as the network gives them (PolicyAgent.raw_act);
        every copy's state steps."""
        self.ensure_state(len(obs))
        with torch.inference_mode():
            features, self.state = self.policy.act_step(torch.from_numpy(obs).to(self.device), self.state)
        self.episode_starts[:] = False
        return self.features_agent.raw_act(features.cpu().numpy(), deterministic, rng, action_masks)

    def values(self, obs: np.ndarray, copies: np.ndarray | None = None) -> np.ndarray:
        """V of network inputs read with the current state of every copy (or of `copies`, one row each); no state
        changes."""
        state = self.state if copies is None else self.state[torch.as_tensor(copies, device=self.device)]
        with torch.inference_mode():
            return self.policy.value_step(torch.from_numpy(obs).to(self.device), state).cpu().numpy()

    def to_env(self, raw_actions: np.ndarray) -> np.ndarray:
        return self.features_agent.to_env(raw_actions)

    def act(self, obs: Any, deterministic: bool = True, action_mask: Any = None, episode_start: Any = None) -> Any:
        """Actions for one observation or a batch (row i: env copy i), under `action_mask` as PolicyAgent.act.
        `episode_start` (a bool per copy, as sb3-contrib's predict takes it) resets the copies whose episode begins
        with this observation."""
        batch, single = as_batch(obs, self.observation_space)
        masks = checked_masks(action_mask, self.action_space, len(batch), "action_mask")
        self.ensure_state(len(batch))
        if episode_start is not None:
            self.reset(np.flatnonzero(np.asarray(episode_start, dtype=np.bool_).reshape(-1)))
        actions = self.to_env(self.raw_act(self.network_input(batch), deterministic, action_masks=masks))
        if single:
            return int(actions[0]) if isinstance(self.action_space, gym.spaces.Discrete) else actions[0]
        return actions

    def predict(
        self, obs: Any, deterministic: bool = True, action_masks: Any = None, episode_start: Any = None
    ) -> tuple[Any, None]:
        """(action, None), as Stable-Baselines3's `model.predict` returns (see Agent.predict); the state stays in
        the agent."""
        return self.act(obs, deterministic, action_mask=action_masks, episode_start=episode_start), None

    def state_dict(self) -> dict[str, Any]:
        """The state of every copy (a training checkpoint holds the collecting agent's)."""
        return {
            "state": None if self.state is None else self.state.detach().cpu(),
            "episode_starts": self.episode_starts.tolist(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.state = None if saved["state"] is None else saved["state"].to(self.device)
        self.episode_starts = np.asarray(saved["episode_starts"], dtype=np.bool_)

    def policy_data(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        details: dict[str, Any] = {"action_units": "unit"}
        if self.obs_normalizer is not None:
            details["obs_normalization"] = self.obs_normalizer.state_dict()
        return policy_file_data(
            AGENT_KIND, self.policy, self.observation_space, self.action_space, self.network, **details
        )


def load_recurrent_agent(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> RecurrentAgent:
    return RecurrentAgent(*policy_agent_parts(meta, tensors, RecurrentActorCritic))


# ------------------------------------------------------------------------------------------------ the rollout


class SequenceRolloutBuffer(RolloutBuffer):
    """A RolloutBuffer that also stores, per step, the state each copy acted from and whether it began an episode,
    and yields minibatches of whole sequences (see the module's doc)."""

    def __init__(self, *args: Any, state_shape: tuple[int, ...], sequence_length: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.states = np.zeros((self.n_steps, self.n_envs, *state_shape), dtype=np.float32)
        self.episode_starts = np.zeros((self.n_steps, self.n_envs), dtype=np.bool_)
        self.sequence_length = sequence_length

    def add_states(self, states: torch.Tensor, episode_starts: np.ndarray) -> None:
        """The state every copy acts from at the next step `add` stores, and whether the step begins an episode."""
        self.states[self.position] = states.cpu().numpy()
        self.episode_starts[self.position] = episode_starts

    def minibatches(
        self, batch_size: int, rng: np.random.Generator | None, device: torch.device | str = "cpu"
    ) -> Iterator[RolloutBatch]:
        """Minibatches of sequences, together about `batch_size` steps each, every step exactly once: as many
        minibatches as a RolloutBuffer of the same size would yield, the sequences shuffled by `rng`. The batch's
        `obs` are `Sequences`, its `actions` and `action_masks` (T, B, ...); its per-step tensors hold the valid
        steps, flattened time first. A batch_size covering the whole rollout yields one batch of every copy's whole
        rollout, one sequence per copy (rng untouched), whose valid steps are in storage order: step-major, copies
        within."""
        total = self.n_steps * self.n_envs
        length = self.n_steps if batch_size >= total else self.sequence_length
        pieces = -(-self.n_steps // length)
        padded_steps = pieces * length

        def as_sequences(array: np.ndarray) -> np.ndarray:
            """(n_steps, n_envs, ...) -> (length, pieces * n_envs, ...), padded with zeros after the last step;
            sequence index = piece * n_envs + copy."""
            padding = np.zeros((padded_steps - self.n_steps, *array.shape[1:]), dtype=array.dtype)
            padded = np.concatenate((array, padding)) if len(padding) else array
            shaped = padded.reshape(pieces, length, *array.shape[1:]).swapaxes(0, 1)
            return shaped.reshape(length, pieces * self.n_envs, *array.shape[2:])

        valid = as_sequences(np.ones((self.n_steps, self.n_envs), dtype=np.bool_))
        starts = as_sequences(self.episode_starts)
        states = as_sequences(self.states)[0]  # the state stored at each sequence's first step
        obs, actions = as_sequences(self.obs), as_sequences(self.actions)
        per_step = [as_sequences(a) for a in (self.log_probs, self.values, self.advantages, self.returns)]
        sequences = pieces * self.n_envs
        if length == self.n_steps and batch_size >= total:
            groups = [np.arange(sequences)]
        else:
            groups = np.array_split(rng.permutation(sequences), min(-(-total // batch_size), sequences))

        def tensor(array: np.ndarray) -> torch.Tensor:
            return to_device(array, device)

        masks = None if self.action_masks is None else as_sequences(self.action_masks)
        for chosen in groups:
            kept = valid[:, chosen]
            yield RolloutBatch(
                Sequences(tensor(obs[:, chosen]), tensor(states[chosen]), tensor(starts[:, chosen]), tensor(kept)),
                tensor(actions[:, chosen]),
                *(tensor(array[:, chosen][kept]) for array in per_step),
                action_masks=None if masks is None else tensor(masks[:, chosen]),
            )
