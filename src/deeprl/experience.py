"""Collecting experience: N copies of a run's env stepped together, their episodes counted and reported to the
run, and the state that lets a run resume exactly at any step.

The copies live in Gymnasium's SyncVectorEnv (`vector: sync`) or AsyncVectorEnv (`async`, a process per copy), with
autoreset *disabled*: a step returns each copy's real next observation (the final one when its episode ended, never
a reset observation with reward 0), and deeprl then resets the copies that finished. Before each reset it records the
copy's RNG state (and an Atari game's emulator state, whose own RNG draws sticky actions), and it keeps the actions
taken since; a checkpoint holds both, and a resumed run restores the states, resets and replays the actions inside each
copy (EnvCopy, wherever the copy runs), so every copy is back in the middle of its episode exactly where it was
(deterministic envs, as Gymnasium's are).

An env that offers action masks (deeprl.action_masks) has them read after every reset and step: the runner holds the
mask of each copy's current state beside its observation, and each step's Transitions carry the masks the actions were
taken under and those of the states reached (the final ones where episodes ended). Replaying a copy on resume
recomputes its mask, so checkpoints need not hold it.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.async_vector_env import _async_worker

from deeprl.action_masks import (
    MASK_INFO_KEY,
    MASK_METHOD,
    checked_masks,
    mask_name,
    require_an_action,
)
from deeprl.envs import learning_signals
from deeprl.envs.atari import FRAME_CHANNELS, emulator_state, restore_emulator_state
from deeprl.errors import DeeprlError
from deeprl.run import Run


@dataclass
class Transitions:
    """One env step of every copy, made as training step `step`: what to learn from. `next_obs` holds the final
    observation of a copy whose episode ended (`terminated` or `truncated`); `EnvRunner.obs` already holds its next
    episode's first one."""

    step: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    # the episodes that ended here, in copy order: (episode number, return, length)
    ended: list[tuple[int, float, int]]
    # with an env that offers action masks: those the actions were taken under, and those of next_obs (all actions
    # valid in a terminal state: nothing is chosen or bootstrapped there)
    action_masks: np.ndarray | None = None
    next_action_masks: np.ndarray | None = None


class EnvCopy(gym.Wrapper):
    """The outermost wrapper of every env copy: what the runner asks of a copy beyond its steps and resets, through the
    vector env's `call` and `set_attr`, so that a copy in a process of its own answers as one in this process does."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        # set before replay_episode: how the episode began (a reset seed, or the state an unseeded reset began from)
        # and its actions, as the env takes them
        self.episode_to_replay: tuple[dict[str, Any], list[Any]] | None = None

    def optional_attr(self, name: str) -> Any:
        """`name` of the outermost wrapper that has it, or None (a missing one would end a worker process)."""
        return self.env.get_wrapper_attr(name) if self.env.has_wrapper_attr(name) else None

    def unseeded_start(self) -> dict[str, Any]:
        """What an unseeded reset now would begin from: the env's random generator (`rng`) and, for an Atari game,
        its emulator with the emulator's own random generator (`emulator`), which draws the sticky actions."""
        start = {"rng": self.env.unwrapped.np_random.bit_generator.state}
        emulator = emulator_state(self.env)
        return start if emulator is None else {**start, "emulator": emulator}

    def replay_episode(self) -> tuple[Any, dict[str, Any], float, int] | None:
        """Begin the episode `episode_to_replay` describes and take its actions again: (observation, info, return,
        length), or None where the episode ended before its actions did (an env that is not deterministic)."""
        start, actions = self.episode_to_replay
        self.episode_to_replay = None
        if "seed" in start:
            obs, info = self.env.reset(seed=start["seed"])
        else:
            self.env.unwrapped.np_random.bit_generator.state = start["rng"]
            if "emulator" in start:
                restore_emulator_state(self.env, start["emulator"])
            obs, info = self.env.reset()
        total = 0.0
        for action in actions:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                return None
        return obs, info, total, len(actions)


def _copy(make_env: Callable[..., gym.Env]) -> gym.Env:
    return EnvCopy(make_env())


def _copy_process(*worker_args: Any) -> None:
    """The life of an async copy's process: Gymnasium's worker, with Ctrl-C and SIGTERM left to the trainer (which
    checkpoints and then closes the copies), and a quiet exit once the trainer is gone (killed: its pipe closed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(EOFError, OSError):  # the pipe to a trainer that is gone
        _async_worker(*worker_args)


def _close_if_open(envs_ref: weakref.ref) -> None:
    envs = envs_ref()
    if envs is not None and not envs.closed:
        envs.close()


def vector_env(make_env: Callable[..., gym.Env], n_envs: int, vector: str = "sync") -> gym.vector.VectorEnv:
    """`n_envs` copies of `make_env`'s env without autoreset, stepped in this process (`sync`) or each in a process of
    its own (`async`, Gymnasium's AsyncVectorEnv: worth it where a step costs more than the round trip)."""
    copies = [partial(_copy, make_env) for _ in range(n_envs)]
    if vector == "async":
        envs = gym.vector.AsyncVectorEnv(
            copies, autoreset_mode=gym.vector.AutoresetMode.DISABLED, daemon=True, worker=_copy_process
        )
        # The copies ignore SIGTERM, which is how multiprocessing ends daemon children at exit (and then waits for
        # them): a process that exits without closing its envs would hang, so they are closed before that.
        atexit.register(_close_if_open, weakref.ref(envs))
        return envs
    return gym.vector.SyncVectorEnv(copies, autoreset_mode=gym.vector.AutoresetMode.DISABLED)


class EnvRunner:
    def __init__(
        self, make_env: Callable[..., gym.Env], n_envs: int, seed: int, run: Run, vector: str = "sync"
    ) -> None:
        self.envs = vector_env(make_env, n_envs, vector)
        self.n_envs = n_envs
        self.seed = seed
        self.run = run
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        # actions other than Discrete ones are arrays: a resumed run replays them as arrays of the space's dtype
        self.array_actions = not isinstance(self.action_space, gym.spaces.Discrete)
        self.episode_returns = np.zeros(n_envs)
        self.episode_lengths = np.zeros(n_envs, dtype=np.int64)
        self.episodes = 0  # finished episodes, all copies together
        # how each copy's current episode began (a reset seed, or the RNG state before an unseeded reset) and the
        # actions taken in it since: enough to rebuild the copy exactly on resume
        self.episode_starts: list[dict[str, Any]] = [{"seed": seed + index} for index in range(n_envs)]
        self.episode_actions: list[list[Any]] = [[] for _ in range(n_envs)]
        self.obs, infos = self.envs.reset(seed=[seed + index for index in range(n_envs)])
        self.envs.action_space.seed(seed)
        self.env_name = getattr(getattr(run, "config", None), "env", "the env")
        # the channels of one frame where the observations are a frame stack shifting by one each step (else None)
        self.frame_channels: int | None = self.envs.call("optional_attr", FRAME_CHANNELS)[0]
        # where the env offers action masks: "method", "info" or None
        self.mask_source = (
            "method"
            if self.envs.call("has_wrapper_attr", MASK_METHOD)[0]
            else "info"
            if MASK_INFO_KEY in infos
            else None
        )
        # the mask of every copy's current state (None for an env without masks)
        self.action_masks = None if self.mask_source is None else self._acting_masks(self._masks(range(n_envs), infos))

    def step(self, actions: np.ndarray, step: int) -> Transitions:
        """Step every copy with `actions` (one per copy, as the env takes them) as training step `step`; the
        copies whose episode ended are reset (their episodes are reported with `report`)."""
        obs, acted_masks = self.obs, self.action_masks
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        next_masks = None
        if self.mask_source is not None:  # read before any copy resets: a finished copy's are its final state's
            next_masks = self._masks(range(self.n_envs), infos)
            next_masks[terminated] = True
            require_an_action(next_masks, self.action_space, self._mask_name())
        self.episode_returns += rewards
        self.episode_lengths += 1
        for index in range(self.n_envs):
            self.episode_actions[index].append(_plain(actions[index]))
        finished = np.flatnonzero(terminated | truncated).tolist()
        self.obs = next_obs
        ended = []
        for index in finished:
            self.episodes += 1
            ended.append((self.episodes, float(self.episode_returns[index]), int(self.episode_lengths[index])))
        reset_infos = self._reset(finished) if finished else {}
        if next_masks is not None:
            self.action_masks = next_masks.copy()
            if finished:
                self.action_masks[finished] = self._acting_masks(self._masks(finished, reset_infos))
        # the learner's rewards and terminals may differ from the reported game's (Atari: clipped, lives)
        learning_rewards, learning_terminated = learning_signals(rewards, terminated, infos)
        transitions = Transitions(step, obs, actions, learning_rewards, next_obs, learning_terminated, truncated, ended)
        transitions.action_masks, transitions.next_action_masks = acted_masks, next_masks
        return transitions

    def report(self, transitions: Transitions, **extra: Any) -> None:
        """Write a metrics row per episode that ended in `transitions` (with the algorithm's `extra` columns)."""
        for episode, episodic_return, length in transitions.ended:
            self.run.end_episode(transitions.step, episode, episodic_return, length, **extra)

    def _mask_name(self) -> str:
        return mask_name(self.env_name, self.mask_source)

    def _masks(self, copies: Any, infos: dict[str, Any] | list[dict[str, Any]]) -> np.ndarray:
        """The (len(copies), mask_width) masks of the states `copies` are in, shape-checked: their action_masks(), or
        info["action_mask"] of `infos` (the vector env's merged infos, or one info per copy)."""
        rows = []
        method_masks = self.envs.call(MASK_METHOD) if self.mask_source == "method" else None
        for row, index in enumerate(copies):
            if method_masks is not None:
                raw = method_masks[index]
            elif isinstance(infos, list):
                raw = infos[row].get(MASK_INFO_KEY)
            else:  # the vector env's infos: a copy's entry counts where its "_action_mask" flag is set
                given = infos.get(f"_{MASK_INFO_KEY}")
                raw = infos[MASK_INFO_KEY][index] if given is not None and given[index] else None
            if raw is None:
                raise DeeprlError(
                    f"{self.env_name} gave info[{MASK_INFO_KEY!r}] at its first reset but not at every reset and step "
                    "after it: an env that masks actions must give the mask of every state"
                )
            rows.append(checked_masks(raw, self.action_space, 1, self._mask_name(), acting=False)[0])
        return np.stack(rows)

    def _acting_masks(self, masks: np.ndarray) -> np.ndarray:
        """Masks of states the policy will act in: each must leave an action."""
        require_an_action(masks, self.action_space, self._mask_name())
        return masks

    def _reset(self, copies: list[int]) -> dict[str, Any]:
        """Reset `copies`; their reset infos (the vector env's, merged)."""
        unseeded_starts = self.envs.call("unseeded_start")
        for index in copies:
            self.episode_starts[index] = unseeded_starts[index]
            self.episode_actions[index] = []
            self.episode_returns[index], self.episode_lengths[index] = 0.0, 0
        mask = np.zeros(self.n_envs, dtype=np.bool_)
        mask[copies] = True
        reset_obs, infos = self.envs.reset(options={"reset_mask": mask})
        self.obs = np.where(mask.reshape(-1, *([1] * (reset_obs.ndim - 1))), reset_obs, self.obs)
        return infos

    def state_dict(self) -> dict[str, Any]:
        """Plain data (loads with weights_only=True): each copy's episode start, actions since, and counters, and
        the observations the copies are at (to check the replay against), as a tensor: a list of Python numbers
        would be a pickled object per pixel (225 792 for 8 Atari frame stacks: 45 ms a save, twice the bytes)."""
        import torch  # the runner itself needs none

        try:
            obs: Any = torch.from_numpy(self.obs.copy())
        except TypeError:  # a dtype torch has no tensor of
            obs = self.obs.tolist()
        return {
            "episode_starts": self.episode_starts,
            "episode_actions": self.episode_actions,
            "episodes": self.episodes,
            "obs": obs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild every copy mid-episode: restore how its episode began, reset, replay its actions."""
        self.episodes = int(state["episodes"])
        self.episode_starts = [dict(start) for start in state["episode_starts"]]
        self.episode_actions = [list(actions) for actions in state["episode_actions"]]
        # an action goes back with the dtype it was sent with (Pendulum steps float32 torques differently)
        requests = [
            (start, [np.asarray(action, dtype=self.action_space.dtype) for action in actions])
            if self.array_actions
            else (start, actions)
            for start, actions in zip(self.episode_starts, self.episode_actions)
        ]
        self.envs.set_attr("episode_to_replay", requests)
        observations, latest_infos = [], []
        for index, replayed in enumerate(self.envs.call("replay_episode")):
            if replayed is None:
                raise DeeprlError(
                    f"env copy {index} ended its episode while replaying it for resume; "
                    "the env is not deterministic, so this run cannot resume exactly"
                )
            obs, info, self.episode_returns[index], self.episode_lengths[index] = replayed
            observations.append(obs)
            latest_infos.append(info)
        self.obs = np.stack(observations).astype(self.obs.dtype)
        if not np.array_equal(self.obs, np.asarray(state["obs"], dtype=self.obs.dtype)):
            raise DeeprlError(
                "replaying the checkpoint's episodes did not reach the same observations; "
                "the env is not deterministic, so this run cannot resume exactly"
            )
        if isinstance(self.envs, gym.vector.SyncVectorEnv):  # its own bookkeeping: every copy is mid-episode again
            self.envs._autoreset_envs[:] = False
        if self.mask_source is not None:  # the replayed states' masks, as the env gives them
            self.action_masks = self._acting_masks(self._masks(range(self.n_envs), latest_infos))

    def close(self) -> None:
        self.envs.close()


def _plain(action: Any) -> Any:
    """An action as plain data for a checkpoint (an int, or a list of floats)."""
    array = np.asarray(action)
    return array.item() if array.ndim == 0 else array.tolist()
