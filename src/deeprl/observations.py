"""Observations as the networks read them, whatever Gymnasium space the env gives them in.

A Box observation reaches the networks as it is (a vector, or a picture for the CNN). Any other space goes through
one encoder built from the space, `ObservationEncoder`, which turns each observation into one float32 vector:

- a Box entry: its values, flattened (a uint8 picture inside a Dict or Tuple too, when it is smaller than the CNN
  takes; a bigger one goes to a CNN of its own: see below);
- Discrete(n): a one-hot vector of n;
- MultiDiscrete(nvec): one one-hot vector per dimension, one after the other;
- MultiBinary(n): its 0/1 values;
- Dict and Tuple (nested too): their entries' vectors concatenated, Dict entries in the space's key order
  (Gymnasium sorts the keys of a plain dict), Tuple entries by position;
- a text entry (Gymnasium's Text, MiniGrid's mission): ignored, with one warning;
- a top-level Dict entry named `action_mask`: not a feature; `EncodedObservations` moves it to info["action_mask"].

The env wrapper `EncodedObservations` applies the encoder to every observation, so replay, rollouts, observation
normalisation, checkpoints and every algorithm see one Box vector (normalisation standardises the Box entries'
columns of it alone, `box_columns`: deeprl.normalization). That Box (`EncodedSpace`) carries its encoder:
an agent's `act` (`as_batch`) takes the env's own observations (a dict, a tuple, an int) as well as encoded ones.

A Dict or Tuple holding pictures the CNN takes (`is_picture_space`, 36x36 or more) is encoded as one uint8 vector
instead: the bytes of the float32 vector of its other entries, then each picture's bytes as the env gives them. One
Box of bytes keeps replay, rollouts and checkpoints as they are for any observation while pictures stay uint8 there;
the Box carries a `network_encoder` description of that layout, from which nets.MultiInputEncoder splits the bytes
back, bit for bit, and reads each picture through a CNN of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from deeprl.errors import DeeprlError, warn
from deeprl.nets import (
    NATURE_CNN,
    channels_first_shape,
    is_picture_space,
    observation_encoder,
    picture_layout,
    smallest_picture,
)

ACTION_MASK_KEY = "action_mask"
# the spaces an env may give observations in (Dict and Tuple of any of them, nested too)
OBSERVATION_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
    gym.spaces.Dict,
    gym.spaces.Tuple,
)
_LEAF_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
_warned: set[str] = set()  # one warning per ignored entry and process, however many env copies a run makes


def observation_dtype(space: gym.Space) -> np.dtype:
    """How observations are held for the networks: uint8 pictures stay bytes, everything else float32."""
    return np.dtype(np.uint8 if space.dtype == np.uint8 else np.float32)


def as_batch(obs: Any, space: gym.Space) -> tuple[np.ndarray, bool]:
    """Observations as a batch of `observation_dtype` for the networks, and whether a single one was given. For an
    `EncodedSpace` they may be the env's own observations (see ObservationEncoder.batch) or encoded ones."""
    if isinstance(space, EncodedSpace):
        return space.encoder.batch(obs)
    try:
        array = np.asarray(obs, dtype=observation_dtype(space))
    except (TypeError, ValueError) as error:
        raise DeeprlError(f"observation is not an array of numbers for the agent's {space} ({error})") from None
    single = array.shape == space.shape
    if not single and array.shape[1:] != space.shape:
        raise DeeprlError(f"observation of shape {array.shape} does not fit the agent's space {space.shape}")
    return (array[None] if single else array), single


def needs_encoding(space: gym.Space) -> bool:
    """Whether observations of `space` reach the networks through an ObservationEncoder (anything but a Box)."""
    return not isinstance(space, gym.spaces.Box)


def is_text_space(space: gym.Space) -> bool:
    """Gymnasium's Text, or any other space of strings (MiniGrid's MissionSpace)."""
    dtype = getattr(space, "dtype", None)
    return isinstance(space, gym.spaces.Text) or (dtype is not None and np.dtype(dtype).kind in "US")


def _entry_name(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{key!r}]" for key in path) or "the observation"


@dataclass(frozen=True)
class _Leaf:
    """One entry the networks read: where it sits in an observation (`path` of Dict keys and Tuple positions), its
    space, and the slice [offset, offset + size) of the encoded vector it fills."""

    path: tuple[str | int, ...]
    space: gym.Space
    offset: int
    size: int

    def write(self, values: np.ndarray, out: np.ndarray) -> None:
        """Encode a batch of this entry's values (batch, *space.shape) into its columns of `out` (batch, total)."""
        rows = np.arange(len(values))
        columns = out[:, self.offset : self.offset + self.size]
        if isinstance(self.space, gym.spaces.Discrete):
            index = self._indices(values.reshape(len(values)), self.space.start, self.space.n)
            columns[rows, index] = 1.0
        elif isinstance(self.space, gym.spaces.MultiDiscrete):
            nvec = self.space.nvec.reshape(-1)
            index = self._indices(values.reshape(len(values), -1), self.space.start.reshape(-1), nvec)
            columns[rows[:, None], np.concatenate(([0], np.cumsum(nvec)[:-1])) + index] = 1.0
        else:  # Box and MultiBinary: the values themselves
            columns[:] = values.reshape(len(values), -1)

    def _indices(self, values: np.ndarray, start: Any, n: Any) -> np.ndarray:
        if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
            raise DeeprlError(f"observation entry {_entry_name(self.path)} is not a whole number for {self.space}")
        index = values.astype(np.int64) - start
        if index.size and (index.min() < 0 or np.any(index >= n)):
            raise DeeprlError(f"observation entry {_entry_name(self.path)} holds values outside {self.space}")
        return index


class ObservationEncoder:
    """Observations of `source` (any space but a bare Box: see the module's docstring) -> float32 vectors of
    `size` values, the concatenation of each entry's encoding in the space's order. `space` is the Box of those
    vectors, carrying this encoder.

    With `pictures` (entries the CNN reads, see the module's docstring) the encoded observation is `width` bytes
    instead: the float32 vector's 4 * `size` bytes, then each picture's bytes from its leaf's `offset` on."""

    def __init__(self, source: gym.Space) -> None:
        self.source = source
        self.leaves: list[_Leaf] = []
        self.pictures: list[_Leaf] = []  # offsets and sizes in bytes, set once the vector's size is known
        self.has_action_mask = isinstance(source, gym.spaces.Dict) and ACTION_MASK_KEY in source.spaces
        self.size = self._add(source, ())
        if not self.leaves and not self.pictures:
            raise DeeprlError(f"the observation space {source} has no entry the networks can read")
        # the [start, stop) columns of the float32 vector that hold Box values: what observation normalisation
        # standardises (one-hot and 0/1 columns are read as they are, pictures for the CNN are not in the vector)
        self.box_columns = [
            (leaf.offset, leaf.offset + leaf.size) for leaf in self.leaves if isinstance(leaf.space, gym.spaces.Box)
        ]
        self.network_encoder: dict[str, Any] | None = None
        if self.pictures:
            self.space = self._byte_space()
            return
        low = np.zeros(self.size, dtype=np.float32)
        high = np.ones(self.size, dtype=np.float32)
        for leaf in self.leaves:
            if isinstance(leaf.space, gym.spaces.Box):
                low[leaf.offset : leaf.offset + leaf.size] = leaf.space.low.reshape(-1)
                high[leaf.offset : leaf.offset + leaf.size] = leaf.space.high.reshape(-1)
        self.space = EncodedSpace(low, high, self)

    def _byte_space(self) -> EncodedSpace:
        """Lay the pictures out after the float32 vector's bytes; the Box of the `width` bytes. Sets the description
        nets.MultiInputEncoder is built from (JSON-able: a policy file rebuilds the network from it)."""
        offset = self.size * np.dtype(np.float32).itemsize
        described = []
        for index, picture in enumerate(self.pictures):
            self.pictures[index] = _Leaf(picture.path, picture.space, offset, picture.size)
            described.append({"offset": offset, "encoder": observation_encoder(picture.space)})
            offset += picture.size
        self.width = offset
        self.network_encoder = {"vector_size": self.size, "pictures": described}
        return EncodedSpace(np.zeros(self.width, dtype=np.uint8), np.full(self.width, 255, dtype=np.uint8), self)

    def _add(self, space: gym.Space, path: tuple[str | int, ...], offset: int = 0) -> int:
        """Walk `space` in its order, adding its entries from `offset` on; the offset after them."""
        if isinstance(space, gym.spaces.Dict):
            for key, entry in space.spaces.items():
                if not (path == () and key == ACTION_MASK_KEY):
                    offset = self._add(entry, (*path, key), offset)
            return offset
        if isinstance(space, gym.spaces.Tuple):
            for index, entry in enumerate(space.spaces):
                offset = self._add(entry, (*path, index), offset)
            return offset
        if is_text_space(space):
            message = f"observation entry {_entry_name(path)} is text, which deeprl's networks do not read: ignored"
            if message not in _warned:
                _warned.add(message)
                warn(message)
            return offset
        if not isinstance(space, _LEAF_SPACES):
            raise DeeprlError(
                f"observation entry {_entry_name(path)} is a {type(space).__name__} space, which deeprl cannot "
                f"encode (it reads {', '.join(kind.__name__ for kind in OBSERVATION_SPACES)}, nested, and ignores text)"
            )
        if is_picture_space(space) and self._fits_cnn(space):
            self.pictures.append(_Leaf(path, space, 0, int(np.prod(space.shape))))
            return offset
        if isinstance(space, gym.spaces.Discrete):
            size = int(space.n)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            size = int(space.nvec.sum())
        else:
            size = int(np.prod(space.shape))
        self.leaves.append(_Leaf(path, space, offset, size))
        return offset + size

    @staticmethod
    def _fits_cnn(space: gym.spaces.Box) -> bool:
        """Whether a picture entry is big enough for the Nature CNN (a smaller one is read flattened)."""
        _, height, width = channels_first_shape(space.shape, picture_layout(space.shape))
        return min(height, width) >= smallest_picture(NATURE_CNN["kernels"], NATURE_CNN["strides"])

    def encode(self, obs: Any) -> np.ndarray:
        """One observation as the env returns it -> its float32 vector (its bytes, with pictures)."""
        encoded, single = self.batch(obs)
        if not single:
            raise DeeprlError(f"expected one observation of {self.source}, got a batch of {len(encoded)}")
        return encoded[0]

    def batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        """(a batch of encoded vectors, whether one observation was given) for observations given as
        - one observation as the env returns it (a dict for a Dict space, a tuple for a Tuple, an int for Discrete),
        - a batch in Gymnasium's vector form: the same structure with each entry stacked along a first axis,
        - a list of single observations,
        - or vectors already encoded (float arrays of `size` values, or a batch of them), as deeprl's envs give."""
        if isinstance(obs, list) and not _is_leaf_source(self.source):
            if not obs:
                raise DeeprlError("an empty list of observations")
            return np.stack([self.encode(one) for one in obs]), False
        if self._is_encoded(obs):
            return (obs[None] if obs.ndim == 1 else obs).astype(self.space.dtype, copy=False), obs.ndim == 1
        leaves = self.leaves + self.pictures
        values = [self._values(obs, leaf) for leaf in leaves]
        counts = {None if value.shape == leaf.space.shape else len(value) for value, leaf in zip(values, leaves)}
        if len(counts) > 1:
            raise DeeprlError(
                f"the observation's entries are not all single values or batches of one size ({self.source})"
            )
        count = counts.pop()
        out = np.zeros((1 if count is None else count, self.size), dtype=np.float32)
        for value, leaf in zip(values, self.leaves):
            leaf.write(value.reshape(len(out), *leaf.space.shape), out)
        if self.pictures:
            out = self._packed(out, values[len(self.leaves) :])
        return out, count is None

    def _packed(self, vectors: np.ndarray, pictures: list[np.ndarray]) -> np.ndarray:
        """(batch, size) float32 vectors and each picture's batch -> (batch, width) bytes (see the class)."""
        packed = np.empty((len(vectors), self.width), dtype=np.uint8)
        packed[:, : self.size * vectors.itemsize] = vectors.view(np.uint8)
        for picture, leaf in zip(pictures, self.pictures):
            if picture.dtype != np.uint8 and not np.array_equal(picture, picture.astype(np.uint8)):
                raise DeeprlError(f"observation entry {_entry_name(leaf.path)} holds values outside {leaf.space}")
            packed[:, leaf.offset : leaf.offset + leaf.size] = picture.reshape(len(vectors), -1)
        return packed

    def _is_encoded(self, obs: Any) -> bool:
        """Float vectors of `size` values (or a batch of them) are encoded already, as deeprl's envs give them. The
        env's own values of a bare Discrete or MultiDiscrete space are integers; a MultiBinary's 0/1 read the same.
        With pictures, arrays of `width` bytes are (the env's own observations are then dicts or tuples)."""
        if not isinstance(obs, np.ndarray) or obs.ndim not in (1, 2):
            return False
        if self.pictures:
            return obs.dtype == np.uint8 and obs.shape[-1] == self.width
        return np.issubdtype(obs.dtype, np.floating) and obs.shape[-1] == self.size

    def _values(self, obs: Any, leaf: _Leaf) -> np.ndarray:
        """The array of `leaf`'s entry in `obs` (one value, or a stack of them), checked against its space's shape."""
        value = obs
        for depth, key in enumerate(leaf.path):
            where, container = _entry_name(leaf.path[:depth]), self._space_at(leaf.path[:depth])
            if isinstance(key, str) and not isinstance(value, Mapping):
                raise DeeprlError(f"{where} should be a dict for {container}, not {_describe(value)}")
            if isinstance(key, str) and key not in value:
                raise DeeprlError(f"{where} has no entry {key!r} (its space is {container})")
            if isinstance(key, int) and not (isinstance(value, tuple) and len(value) == len(container.spaces)):
                entries = len(container.spaces)
                raise DeeprlError(
                    f"{where} should be a tuple of {entries} entries for {container}, not {_describe(value)}"
                )
            value = value[key]
        try:
            array = np.asarray(value)
        except ValueError as error:
            raise DeeprlError(f"observation entry {_entry_name(leaf.path)} is not an array ({error})") from None
        shape = leaf.space.shape
        if array.dtype == object or (array.shape != shape and array.shape[1:] != shape):
            raise DeeprlError(
                f"observation entry {_entry_name(leaf.path)} has shape {array.shape}, but {leaf.space} takes shape "
                f"{shape} (or a batch of them: {(len(array), *shape) if array.ndim else ('N', *shape)})"
            )
        return array

    def _space_at(self, path: tuple[str | int, ...]) -> Any:
        space = self.source
        for key in path:
            space = space[key]
        return space


def _is_leaf_source(space: gym.Space) -> bool:
    return isinstance(space, _LEAF_SPACES)


def _describe(value: Any) -> str:
    return f"a {type(value).__name__}" + (f" of {len(value)} entries" if isinstance(value, (tuple, list)) else "")


class EncodedSpace(gym.spaces.Box):
    """The Box of an ObservationEncoder's vectors (float32, or bytes with pictures), carrying the encoder (and so the
    env's own space, `source`): a network sizes itself from the Box (and from `network_encoder` where it holds
    pictures), an agent reads the env's own observations through the encoder."""

    def __init__(self, low: np.ndarray, high: np.ndarray, encoder: ObservationEncoder) -> None:
        super().__init__(low, high, dtype=low.dtype)
        self.encoder = encoder

    @property
    def source(self) -> gym.Space:
        return self.encoder.source

    @property
    def network_encoder(self) -> dict[str, Any] | None:
        """nets.MultiInputEncoder's arguments where the vectors hold pictures (bytes), else None."""
        return self.encoder.network_encoder

    def __repr__(self) -> str:
        return f"Box({self.shape}, {self.dtype}) encoding {self.source}"


class EncodedObservations(gym.Wrapper):
    """Every observation of the env as its ObservationEncoder's vector (float32, or bytes with pictures). A top-level
    `action_mask` entry of a Dict observation is moved to info["action_mask"] at reset and at every step."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.encoder = ObservationEncoder(env.observation_space)
        self.observation_space = self.encoder.space

    def _encoded(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        if self.encoder.has_action_mask:
            info[ACTION_MASK_KEY] = np.asarray(obs[ACTION_MASK_KEY])
        return self.encoder.encode(obs)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self._encoded(obs, info), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._encoded(obs, info), reward, terminated, truncated, info
