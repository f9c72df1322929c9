"""Experience storage: a preallocated ring of transitions with uniform and n-step sampling (off-policy),
a rollout of n_steps x n_envs and its minibatches (on-policy), and discounted returns of an episode.

Transitions live in NumPy arrays allocated once; adding one is a handful of slice writes and sampling
is fancy indexing, so the hot loop creates no Python object per transition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


def to_device(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """A training batch's array as a tensor on `device`: on the CPU it shares the array's memory; to a GPU it goes
    through page-locked (pinned) memory, so the copy runs asynchronously while the host goes on (pictures stay
    uint8 on the way and are scaled on the device, by the network)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if torch.device(device).type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass
class TransitionBatch:
    """A sampled batch, ready for a TD target `returns + discounts * max_a Q(next_obs, a)`."""

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor  # n-step discounted reward sum (one step: the reward)
    next_obs: torch.Tensor  # observation to bootstrap from, m <= n steps later
    discounts: torch.Tensor  # gamma**m, or 0 when the window ended in a true terminal state
    next_action_masks: torch.Tensor | None = None  # the actions valid in next_obs (an env that masks actions)


class FrameStacks:
    """Observations that stack the last `depth` frames of a picture along its first axis (`frame_channels` channels a
    frame, oldest first), each frame stored once: consecutive observations share all but one frame, so a stack is
    rebuilt from the newest frames of the observations before it.

    Every observation added is checked against the one before: it *continues* the stack when its older frames are
    that one's newer frames, it *starts* one when it is its newest frame repeated (Gymnasium's FrameStackObservation
    at a reset, padding_type "reset"), and anything else is kept whole (an *anchor*: say, the first observation of a
    resumed run that refills its memory mid-episode). So the stacks rebuilt are always the observations added.

    Observations are numbered by when they were added; the ring keeps `capacity + depth - 1` frames, enough for the
    oldest observation's earlier frames.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], dtype: np.dtype, frame_channels: int) -> None:
        if len(obs_shape) < 1 or obs_shape[0] % frame_channels:
            raise ValueError(f"observations of shape {obs_shape} are no stack of {frame_channels}-channel frames")
        self.capacity, self.channels, self.depth = capacity, frame_channels, obs_shape[0] // frame_channels
        self.ring = capacity + self.depth - 1
        self.frames = np.zeros((self.ring, frame_channels, *obs_shape[1:]), dtype=dtype)
        self.starts = np.zeros(self.ring, dtype=np.bool_)  # the observation is its newest frame repeated
        self.anchored = np.zeros(self.ring, dtype=np.bool_)  # the observation is kept whole in `anchors`
        self.anchors: dict[int, np.ndarray] = {}  # ring index -> an observation kept whole
        self.latest = np.zeros(obs_shape, dtype=dtype)  # the last observation added, to check the next against
        self.added = 0

    def add(self, obs: np.ndarray) -> None:
        index = self.added % self.ring
        self.anchors.pop(index, None)
        newest = obs[-self.channels :]
        continues = self.added > 0 and np.array_equal(obs[: -self.channels], self.latest[self.channels :])
        starts = not continues and bool((obs.reshape(self.depth, *newest.shape) == newest).all())
        if not (continues or starts):
            self.anchors[index] = np.array(obs, dtype=self.frames.dtype)
        self.starts[index], self.anchored[index] = starts, not (continues or starts)
        self.frames[index] = newest
        self.latest[...] = obs
        self.added += 1

    def at(self, slots: np.ndarray) -> np.ndarray:
        """The observations of replay slots `slots` (the slot of observation number t is t % capacity)."""
        newest = self.added - 1
        return self.stacks(newest - (newest - np.asarray(slots, dtype=np.int64)) % self.capacity)

    def stacks(self, numbers: np.ndarray) -> np.ndarray:
        """The observations numbered `numbers` (each among the last `capacity` added), rebuilt from their frames."""
        window = numbers[:, None] + np.arange(1 - self.depth, 1)  # (batch, depth): the frames' numbers, oldest first
        index = window % self.ring
        never = np.iinfo(np.int64).min
        latest_start = np.where(self.starts[index], window, never).max(axis=1)
        # a stack that started inside the window repeats its first frame before it
        stacks = self.frames[np.maximum(window, latest_start[:, None]) % self.ring]
        if self.anchors:
            latest_anchor = np.where(self.anchored[index], window, never).max(axis=1)
            for row in np.flatnonzero(latest_anchor > latest_start):
                anchor = self.anchors[int(latest_anchor[row] % self.ring)].reshape(stacks.shape[1:])
                kept = int(latest_anchor[row] - numbers[row]) + self.depth  # the window's frames up to the anchor's
                stacks[row, :kept] = anchor[self.depth - kept :]
        return stacks.reshape(len(numbers), self.depth * self.channels, *stacks.shape[3:])

    def state_dict(self) -> dict[str, object]:
        filled = slice(0, min(self.added, self.ring))
        anchored = sorted(self.anchors)
        return {
            "added": self.added,
            "frames": torch.from_numpy(self.frames[filled].copy()),
            "starts": torch.from_numpy(self.starts[filled].copy()),
            "anchor_indices": torch.tensor(anchored, dtype=torch.int64),
            "anchors": torch.from_numpy(np.stack([self.anchors[index] for index in anchored]))
            if anchored
            else torch.zeros(0),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.added = int(state["added"])
        filled = slice(0, min(self.added, self.ring))
        self.frames[filled] = state["frames"].numpy()
        self.starts[filled] = state["starts"].numpy()
        self.anchors = {int(index): obs.numpy() for index, obs in zip(state["anchor_indices"], state["anchors"])}
        self.anchored[:] = False
        self.anchored[list(self.anchors)] = True
        if self.added:
            self.latest[...] = self.stacks(np.array([self.added - 1]))[0]


class ReplayBuffer:
    """Fixed-capacity ring buffer; the oldest transition is overwritten when full.

    With `shared_next_obs` (meant for images) each observation is stored once: a transition's successor
    is the next slot's observation, except for the newest transition (its successor waits in
    `pending_next_obs`) and for a truncated episode's last transition (its final observation is kept in
    `final_obs` until the slot is overwritten; a terminal successor is never bootstrapped from).

    With `frame_channels` as well (observations that stack frames of that many channels, deeprl's Atari frame stack)
    each frame is stored once (`FrameStacks`), not once in every observation that shows it.

    With `mask_width` (an env that masks actions) each transition also keeps the action mask of its successor, which a
    TD target's max over the next state's actions is taken under.
    """

    ARRAYS = ("obs", "next_obs", "actions", "rewards", "terminated", "episode_end")

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        action_shape: tuple[int, ...] = (),
        action_dtype: type = np.int64,
        shared_next_obs: bool = False,
        mask_width: int | None = None,
        frame_channels: int | None = None,
    ) -> None:
        self.capacity = capacity
        self.shared_next_obs = shared_next_obs or frame_channels is not None
        stacks = None if frame_channels is None else FrameStacks(capacity, obs_shape, obs_dtype, frame_channels)
        self.frame_stacks = stacks
        self.obs = np.zeros((0 if stacks else capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((0 if self.shared_next_obs else capacity, *obs_shape), dtype=obs_dtype)
        self.pending_next_obs = np.zeros(obs_shape, dtype=obs_dtype)
        self.final_obs: dict[int, np.ndarray] = {}
        self.actions = np.zeros((capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        # `terminated` stops bootstrapping; `episode_end` (terminated or truncated) only stops n-step sums.
        self.terminated = np.zeros(capacity, dtype=np.bool_)
        self.episode_end = np.zeros(capacity, dtype=np.bool_)
        self.next_action_masks = None if mask_width is None else np.ones((capacity, mask_width), dtype=np.bool_)
        self.arrays = self.ARRAYS if mask_width is None else (*self.ARRAYS, "next_action_masks")
        if self.frame_stacks:
            self.arrays = tuple(name for name in self.arrays if name not in ("obs", "next_obs"))
        self.position = 0  # next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool, next_action_mask=None
    ) -> None:
        slot = self.position
        if self.frame_stacks:
            self.frame_stacks.add(obs)
        else:
            self.obs[slot] = obs
        self.actions[slot] = action
        self.rewards[slot] = reward
        if self.shared_next_obs:
            self.pending_next_obs[...] = next_obs
            self.final_obs.pop(slot, None)
            if truncated and not terminated:
                self.final_obs[slot] = np.array(next_obs, dtype=self.pending_next_obs.dtype)
        else:
            self.next_obs[slot] = next_obs
        self.terminated[slot] = terminated
        self.episode_end[slot] = terminated or truncated
        if self.next_action_masks is not None:
            self.next_action_masks[slot] = next_action_mask
        self.position = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def state_dict(self) -> dict[str, object]:
        """The stored transitions (only the filled part) and the write position, as tensors and ints."""
        filled = slice(0, self.size)
        final_slots = sorted(self.final_obs)
        return {
            "position": self.position,
            "size": self.size,
            **{name: torch.from_numpy(getattr(self, name)[filled].copy()) for name in self.arrays},
            "pending_next_obs": torch.from_numpy(self.pending_next_obs.copy()),
            "final_slots": torch.tensor(final_slots, dtype=torch.int64),
            "final_obs": torch.from_numpy(np.stack([self.final_obs[slot] for slot in final_slots]))
            if final_slots
            else torch.zeros(0),
            **({"frame_stacks": self.frame_stacks.state_dict()} if self.frame_stacks else {}),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"checkpoint holds {size} transitions, more than the capacity {self.capacity}")
        if self.frame_stacks:
            self.frame_stacks.load_state_dict(state["frame_stacks"])
        for name in self.arrays:
            if not (name == "next_obs" and self.shared_next_obs):
                getattr(self, name)[:size] = state[name].numpy()
        self.pending_next_obs[...] = state["pending_next_obs"].numpy()
        self.final_obs = {int(slot): obs.numpy() for slot, obs in zip(state["final_slots"], state["final_obs"])}
        self.position, self.size = int(state["position"]), size

    def nstep_targets(
        self, indices: np.ndarray, n_step: int, gamma: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(returns, bootstrap slots, discounts) of the n-step windows starting at `indices`.

        A window stops early at the end of an episode or at the newest transition (whose successor
        is not stored yet); stopping early is still a valid m-step target with discount gamma**m.
        """
        newest = (self.position - 1) % self.capacity
        offsets = np.arange(n_step)
        slots = (indices[:, None] + offsets) % self.capacity  # (batch, n_step)
        stops = self.episode_end[slots] | (slots == newest)
        # step k belongs to the window when none of the steps before it ended the window
        included = np.ones(slots.shape, dtype=np.bool_)
        included[:, 1:] = np.cumsum(stops[:, :-1], axis=1) == 0
        powers = gamma ** offsets.astype(np.float64)
        returns = (self.rewards[slots] * powers * included).sum(axis=1)
        length = included.sum(axis=1)
        last = slots[np.arange(len(indices)), length - 1]
        discounts = np.where(self.terminated[last], 0.0, gamma ** length.astype(np.float64))
        return returns.astype(np.float32), last, discounts.astype(np.float32)

    def observations(self, slots: np.ndarray) -> np.ndarray:
        """The observations the transitions in `slots` started from."""
        return self.frame_stacks.at(slots) if self.frame_stacks else self.obs[slots]

    def successors(self, slots: np.ndarray) -> np.ndarray:
        """The observations that followed the transitions in `slots`."""
        if not self.shared_next_obs:
            return self.next_obs[slots]
        following = self.observations((slots + 1) % self.capacity)
        following[slots == (self.position - 1) % self.capacity] = self.pending_next_obs
        for index in np.flatnonzero(self.episode_end[slots] & ~self.terminated[slots]):
            if int(slots[index]) in self.final_obs:  # the newest slot's final observation is the pending one
                following[index] = self.final_obs[int(slots[index])]
        return following

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator,
        n_step: int = 1,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
    ) -> TransitionBatch:
        """Uniformly sampled transitions (with replacement, as is usual for DQN)."""
        indices = rng.integers(0, self.size, size=batch_size)
        return self.batch_at(indices, n_step, gamma, device)

    def batch_at(
        self, indices: np.ndarray, n_step: int, gamma: float, device: torch.device | str = "cpu"
    ) -> TransitionBatch:
        if n_step == 1:
            returns = self.rewards[indices]
            bootstrap = indices
            discounts = np.where(self.terminated[indices], 0.0, gamma).astype(np.float32)
        else:
            returns, bootstrap, discounts = self.nstep_targets(indices, n_step, gamma)

        return TransitionBatch(
            obs=to_device(self.observations(indices), device),
            actions=to_device(self.actions[indices], device),
            returns=to_device(returns, device),
            next_obs=to_device(self.successors(bootstrap), device),
            discounts=to_device(discounts, device),
            next_action_masks=None
            if self.next_action_masks is None
            else to_device(self.next_action_masks[bootstrap], device),
        )


def discounted_returns(rewards: np.ndarray, gamma: float, bootstrap: float | np.ndarray = 0.0) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1} along axis 0 (time), with G_T = `bootstrap`: 0 after a true terminal,
    V(final observation) after a time-limit cut. Trailing axes (e.g. envs) are independent episodes."""
    rewards = np.asarray(rewards, dtype=np.float32)
    returns = np.empty_like(rewards)
    running = np.asarray(bootstrap, dtype=np.float32)
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


class RolloutBatch(NamedTuple):
    """A minibatch of flattened rollout samples for a policy-gradient update."""

    obs: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    action_masks: torch.Tensor | None = None  # the masks the actions were taken under (an env that masks actions)


class RolloutBuffer:
    """One on-policy rollout: n_steps steps of n_envs vectorised envs, in arrays of shape (n_steps, n_envs, ...).

    `truncated_values` holds V(final observation) for envs cut by a time limit at that step (0 elsewhere):
    the copy's next stored observation already belongs to a new episode, so the bootstrap value of a truncated
    episode has to be stored with the step that ended it. With `mask_width`, `action_masks` holds the action mask every
    step was acted under, so that the update scores each action under the mask it was drawn with.
    """

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        action_shape: tuple[int, ...] = (),
        action_dtype: type = np.int64,
        mask_width: int | None = None,
    ) -> None:
        self.n_steps, self.n_envs = n_steps, n_envs
        steps = (n_steps, n_envs)
        self.obs = np.zeros((*steps, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((*steps, *action_shape), dtype=action_dtype)
        self.log_probs = np.zeros(steps, dtype=np.float32)
        self.values = np.zeros(steps, dtype=np.float32)
        self.rewards = np.zeros(steps, dtype=np.float32)
        self.terminated = np.zeros(steps, dtype=np.bool_)
        self.truncated = np.zeros(steps, dtype=np.bool_)
        self.truncated_values = np.zeros(steps, dtype=np.float32)
        self.advantages = np.zeros(steps, dtype=np.float32)
        self.returns = np.zeros(steps, dtype=np.float32)
        self.action_masks = None if mask_width is None else np.ones((*steps, mask_width), dtype=np.bool_)
        self.position = 0  # next step to write
        self.scored = True  # every step added so far came with its log-probability and value

    @property
    def full(self) -> bool:
        return self.position == self.n_steps

    def reset(self) -> None:
        """Start a new rollout; every array is overwritten by the next n_steps adds."""
        self.position = 0
        self.scored = True

    def add(
        self,
        obs,
        actions,
        rewards,
        terminated,
        truncated,
        truncated_values,
        action_masks=None,
        log_probs=None,
        values=None,
    ) -> None:
        """One step of all envs, as the env runner gave it: each argument has the envs along its first axis. The
        algorithm fills in `advantages` and `returns` once the rollout is full, and `log_probs` and `values` unless
        every step came with them (`scored`: a policy that acted in torch)."""
        if self.full:
            raise ValueError(f"the rollout already holds its {self.n_steps} steps; reset() it before adding")
        step = self.position
        if log_probs is None or values is None:
            self.scored = False
        else:
            self.log_probs[step], self.values[step] = log_probs, values
        self.obs[step] = obs
        self.actions[step] = actions
        self.rewards[step] = rewards
        self.terminated[step] = terminated
        self.truncated[step] = truncated
        self.truncated_values[step] = truncated_values
        if self.action_masks is not None:
            self.action_masks[step] = action_masks
        self.position = step + 1

    def minibatches(
        self, batch_size: int, rng: np.random.Generator, device: torch.device | str = "cpu"
    ) -> Iterator[RolloutBatch]:
        """Every sample exactly once, in random minibatches of `batch_size` (the last one smaller when it
        does not divide n_steps * n_envs). A batch_size covering the whole rollout yields it as one batch
        in storage order, sharing memory with the buffer on the CPU (rng untouched): one full-batch
        gradient does not depend on the order."""
        total = self.n_steps * self.n_envs
        stored = [self.obs, self.actions, self.log_probs, self.values, self.advantages, self.returns]
        if self.action_masks is not None:
            stored.append(self.action_masks)
        arrays = [array.reshape(total, *array.shape[2:]) for array in stored]

        def tensors(chosen: list[np.ndarray]) -> RolloutBatch:
            return RolloutBatch(*(to_device(array, device) for array in chosen))

        if batch_size >= total:
            yield tensors(arrays)
            return
        order = rng.permutation(total)
        for start in range(0, total, batch_size):
            indices = order[start : start + batch_size]
            yield tensors([array[indices] for array in arrays])
