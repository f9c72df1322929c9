"""Action masks: which actions are valid in the state an env is in, for Discrete and MultiDiscrete actions.

An env offers them in one of two ways, read in this order of precedence:

1. a method `action_masks()` (as sb3-contrib's MaskablePPO reads it), found through any wrappers, returning the
   current state's mask;
2. `info["action_mask"]` in what `reset` and `step` return (a Dict observation's "action_mask" entry, as PettingZoo's
   classic games give it, arrives there too).

A mask holds a boolean per action (True: valid): n of them for Discrete(n), and for MultiDiscrete(nvec) one per choice
of each dimension, dimension after dimension (sum(nvec) in all), each dimension masked on its own. A state where no
action is valid cannot be acted in: that stops the run with one line. The policies apply masks in their heads
(deeprl.action_heads), DQN in its greedy choice and in its target's max.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.errors import DeeprlError

MASK_METHOD = "action_masks"
MASK_INFO_KEY = "action_mask"


def mask_width(space: gym.Space) -> int | None:
    """The booleans of one state's mask for `space`, or None for a space masks do not apply to."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(space.nvec.sum())
    return None


def mask_source(env: gym.Env, info: dict[str, Any]) -> str | None:
    """Where `env` (given `info`, its reset's) offers masks: "method", "info", or None where it offers none."""
    if env.has_wrapper_attr(MASK_METHOD):
        return "method"
    return "info" if MASK_INFO_KEY in info else None


def mask_name(env_name: str, source: str) -> str:
    """How a message names the masks an env gives from `source` (see `mask_source`)."""
    where = f"{MASK_METHOD}()" if source == "method" else f"info[{MASK_INFO_KEY!r}]"
    return f"the action mask of {env_name} ({where})"


def check_first_mask(env: gym.Env, info: dict[str, Any], env_name: str) -> None:
    """Refuse, before a run starts, an env whose first state's mask (after the reset that returned `info`) does not
    fit its action space or leaves no action."""
    source = mask_source(env, info)
    if source is not None:
        checked_masks(current_mask(env, info), env.action_space, 1, mask_name(env_name, source))


def checked_masks(masks: Any, space: gym.Space, rows: int, source: str, acting: bool = True) -> np.ndarray | None:
    """`masks` as a (rows, mask_width) boolean array (one state's mask is taken for a single row), or one line
    saying what is wrong with them: `source` names where they came from. With `acting`, every row must allow an
    action (masks of terminal states, never acted in, need not). No masks (None) stay None."""
    if masks is None:
        return None
    width = mask_width(space)
    if width is None:
        raise DeeprlError(f"{source} is given, but masks apply to Discrete and MultiDiscrete actions, not {space}")
    array = np.asarray(masks)
    if rows == 1 and array.shape == (width,):
        array = array[None]
    if array.shape != (rows, width):
        expected = f"({width},)" if rows == 1 else f"({rows}, {width})"
        raise DeeprlError(
            f"{source} has shape {np.shape(masks)}, but the action space {space} takes masks of shape {expected}: "
            "a boolean per action (for MultiDiscrete, each dimension's choices one after another)"
        )
    array = array.astype(np.bool_)
    if acting:
        require_an_action(array, space, source)
    return array


def require_an_action(masks: np.ndarray, space: gym.Space, source: str) -> None:
    """One line when a row of (rows, mask_width) masks leaves no valid action (in some dimension)."""
    empty = np.flatnonzero(~valid_in_every_dimension(masks, space))
    if len(empty):
        row = f" (row {int(empty[0])})" if len(masks) > 1 else ""
        raise DeeprlError(
            f"{source} allows no action in a state{row}: an env must leave at least one valid action (of each "
            "dimension) in every state it expects an action in"
        )


def valid_in_every_dimension(masks: np.ndarray, space: gym.Space) -> np.ndarray:
    """Per row of (rows, mask_width) masks: whether some action is valid (in each dimension, for MultiDiscrete)."""
    choices = [int(space.n)] if isinstance(space, gym.spaces.Discrete) else space.nvec.reshape(-1).tolist()
    starts = np.cumsum([0, *choices[:-1]])
    return np.logical_or.reduceat(masks, starts, axis=1).all(axis=1)


def current_mask(env: gym.Env, info: dict[str, Any]) -> Any:
    """The mask of the state `env` is in (its `action_masks()` first, else `info["action_mask"]`, `info` being what
    its last reset or step returned), unchecked; None where it offers neither."""
    if env.has_wrapper_attr(MASK_METHOD):
        return env.get_wrapper_attr(MASK_METHOD)()
    return info.get(MASK_INFO_KEY)


def act_in(agent: Any, env: gym.Env, obs: Any, info: dict[str, Any], deterministic: bool = True) -> Any:
    """The agent's action for one observation of `env`, under the env's mask where it offers one."""
    mask = current_mask(env, info)
    if mask is None:
        return agent.act(obs, deterministic=deterministic)
    return agent.act(obs, deterministic=deterministic, action_mask=mask)
